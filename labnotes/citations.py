"""Prose cites what labs returned: `{{ train.val_loss:.2f }}` (SPEC 3).

    find_citations     where a document cites, parsed; malformed syntax is a BuildError
    lab_names          the `name:` of every lab block of the site; a name used twice is an error
    check_cited_names  before any lab runs: every cited name is a lab of the site
    cite_document      after the labs: each citation of a document as the reader sees it
    changed_citations  what readers would see change if the labs' values changed (for `check`)

A citation is `{{ NAME.PATH:FORMAT }}`: NAME a lab's `name:`, PATH keys (`.key`, `["a key"]`)
and indices (`[0]`, `[-1]`) into the JSON tree the lab returned, FORMAT an optional Python
format spec. Code, maths and `\\{{` are never citations (see prose.py).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BuildError, display_path
from .model import Document, LabValue
from .prose import inline_spans, prose_view

if TYPE_CHECKING:
    from .labs.directive import LabCall

MAX_TEXT_CHARS = 80     # a cited string longer than this (or on several lines) is not prose
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_STRING_KEY = re.compile(r"""\[\s*(?:"([^"]*)"|'([^']*)')\s*\]""")
_NAME_LINE = re.compile(r"^\s*name\s*:", re.MULTILINE)
_FORM = "a citation reads {{ name.key[0][\"a key\"]:.2f }}; write \\{{ for literal braces"


@dataclass(frozen=True)
class Citation:
    """One `{{ ... }}` in a document's prose."""

    name: str                          # the lab's `name:`
    keys: tuple[str | int, ...]        # dict keys (str) and list indices (int), in order
    spec: str | None                   # the format spec after `:`, None when there is none
    source: str                        # as written, braces included
    path: Path                         # the document, and the line of the citation in it
    line: int
    offset: int                        # where `source` starts in the document's body

    @property
    def expression(self) -> str:
        """`train.history[-1].loss`: the name and the path, as a reader would write them."""
        return self.name + path_text(self.keys)


@dataclass(frozen=True)
class CitedValue:
    """A citation as the reader sees it: the text, and the provenance shown on hover."""

    text: str        # "3.75"
    title: str       # "train: labcode.labs.tiny_gpt:train_on_blog on CPU, torch 2.13.0"


def path_text(keys: Sequence[str | int]) -> str:
    """`.history[-1].loss`, `["max |grad|"]`: keys as a citation writes them."""
    parts = []
    for key in keys:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _IDENTIFIER.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append(f'["{key}"]' if '"' not in key else f"['{key}']")
    return "".join(parts)


def find_citations(doc: Document) -> list[Citation]:
    """Every citation in `doc`'s prose, in order; BuildError for one that cannot be parsed."""
    if "{{" not in doc.body:
        return []
    view = prose_view(doc.body)
    found = []
    for span in inline_spans(view):
        if span.kind == "cite":
            line = doc.body_line + doc.body.count("\n", 0, span.start)
            found.append(parse_citation(doc.body[span.start:span.end], doc.source, line, span.start))
    return found


def parse_citation(source: str, path: Path, line: int, offset: int = 0) -> Citation:
    """`{{ train.history[-1]["a key"]:.2f }}` as a Citation; BuildError when malformed."""
    def malformed(problem: str) -> BuildError:
        return BuildError(path, f"cannot read citation {source}: {problem} ({_FORM})", line)

    if not source.endswith("}}"):
        raise malformed("it is not closed with }} on the same line")
    inner = source[2:-2].strip()
    if not inner:
        raise malformed("it is empty")
    name = _IDENTIFIER.match(inner)
    if name is None:
        raise malformed(f"expected a lab name (letters, digits, _) at {inner[:12]!r}")
    keys: list[str | int] = []
    i = name.end()
    spec = None
    while i < len(inner):
        ch = inner[i]
        if ch == ".":
            key = _IDENTIFIER.match(inner, i + 1)
            if key is None:
                raise malformed('expected a key after "." (write ["..."] for a key that is not a plain word)')
            keys.append(key.group(0))
            i = key.end()
        elif ch == "[":
            index, text_key = _INDEX.match(inner, i), _STRING_KEY.match(inner, i)
            if index is not None:
                keys.append(int(index.group(1)))
                i = index.end()
            elif text_key is not None:
                keys.append(text_key.group(1) if text_key.group(1) is not None else text_key.group(2))
                i = text_key.end()
            else:
                raise malformed('expected an index such as [0] or [-1], or a quoted key such as ["a key"]')
        elif ch == ":" or ch.isspace() and inner[i:].lstrip().startswith(":"):
            spec = inner[i:].lstrip()[1:].strip()
            if not spec:
                raise malformed('nothing follows ":" (a format spec such as .2f or ,)')
            break
        else:
            raise malformed(f"unexpected {inner[i:].strip()[:12]!r} after {inner[:i]!r}")
    return Citation(name.group(0), tuple(keys), spec, source, path, line, offset)


def lab_names(documents: Sequence[Document]) -> dict[str, LabCall]:
    """Each lab name of the site and the (first) block that declares it; BuildError when two
    different labs share a name (two blocks showing the same call may both carry it). Only
    blocks with a `name:` line are parsed."""
    from .labs.directive import parse_block

    names: dict[str, LabCall] = {}
    for doc in documents:
        for block in doc.blocks:
            if block.kind != "lab" or not _NAME_LINE.search(block.text):
                continue
            call = parse_block(block)
            if call.name is None:
                continue
            first = names.get(call.name)
            if first is not None and (first.ref, first.args) != (call.ref, call.args):
                raise BuildError(call.path, f"lab name `{call.name}` is already used by the lab at "
                                 f"{display_path(first.path)}:{first.line}; names are unique in the site",
                                 call.line)
            names.setdefault(call.name, call)
    return names


def check_cited_names(documents: Sequence[Document]) -> None:
    """Before any lab runs: every citation parses and names a lab block of the site (and no
    two labs share a name). A site with no `{{` in any body parses nothing."""
    citing = [doc for doc in documents if "{{" in doc.body]
    if not citing:
        return
    names = lab_names(documents)
    for doc in citing:
        for citation in find_citations(doc):
            if citation.name not in names:
                raise _unknown_name(citation, sorted(names))


def cite_document(doc: Document, values: Mapping[str, LabValue],
                  failed_labs: bool = False) -> dict[Citation, CitedValue]:
    """Each citation of `doc` with what the reader sees; BuildError for an unknown name or key, a
    value that is not a number or short text, or a format spec that does not apply.

    `failed_labs`: some lab failed and the build goes on (`--keep-going`); a citation of a lab
    that has no value then shows a marker instead of failing the build.
    """
    return {c: cite(c, values, failed_labs) for c in find_citations(doc)}


def changed_citations(documents: Sequence[Document], before: Mapping[str, LabValue],
                      after: Mapping[str, LabValue]) -> list[tuple[Citation, CitedValue, CitedValue]]:
    """(citation, as published, as it would read) for every citation whose text or provenance
    differs between two sets of lab values; BuildError when a citation no longer resolves."""
    changes = []
    for doc in documents:
        for citation in find_citations(doc):
            old, new = cite(citation, before), cite(citation, after)
            if old != new:
                changes.append((citation, old, new))
    return changes


def cite(citation: Citation, values: Mapping[str, LabValue], failed_labs: bool = False) -> CitedValue:
    """One citation resolved against the labs' values and formatted."""
    value = values.get(citation.name)
    if value is None:
        if failed_labs:
            return CitedValue(f"[lab {citation.name} failed]",
                              f"{citation.name}: this lab failed in this build, so it has no value")
        raise _no_value(citation, values)
    data = resolve(citation, value.data)
    return CitedValue(format_cited(citation, data), provenance(value))


def provenance(value: LabValue) -> str:
    """`train: labcode.labs.tiny_gpt:train_on_blog on CPU, torch 2.13.0`."""
    return f"{value.name}: {value.ref} on {value.device_name}, torch {value.torch_version}"


def resolve(citation: Citation, data: object) -> object:
    """The part of `data` that `citation.keys` walk to; BuildError naming what is there instead."""
    def missing(problem: str) -> BuildError:
        return BuildError(citation.path, f"{citation.source}: {problem}", citation.line)

    for depth, key in enumerate(citation.keys):
        where = citation.name + path_text(citation.keys[:depth])
        if isinstance(data, dict):
            if isinstance(key, int):
                raise missing(f"{where} is a dict, not a list: use a key ({_listing(list(data))})")
            if key not in data:
                nearest = difflib.get_close_matches(key, [str(k) for k in data], n=3)
                hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
                raise missing(f"{where} has no key {key!r}; its keys: {_listing(list(data))}{hint}")
            data = data[key]
        elif isinstance(data, list):
            if not isinstance(key, int):
                raise missing(f"{where} is a list of {len(data)} items, not a dict: use an index "
                              "such as [0] or [-1]")
            if not -len(data) <= key < len(data):
                span = f"[0] to [{len(data) - 1}], or [-{len(data)}] to [-1]" if data else "none"
                raise missing(f"{where} has no index [{key}]: it is a list of {len(data)} items ({span})")
            data = data[key]
        else:
            raise missing(f"{where} is {_describe(data)}, which has no keys or indices")
    return data


def format_cited(citation: Citation, data: object) -> str:
    """The text of a resolved value: its format spec applied, or the default (ints as digits,
    floats to 4 significant digits, bools as true/false, short text as it is)."""
    def refuse(problem: str) -> BuildError:
        return BuildError(citation.path, f"{citation.source}: {problem}", citation.line)

    if data is None:
        raise refuse(f"{citation.expression} is null (None), not a number or short text")
    if isinstance(data, (dict, list)):
        inside = "[-1]" if isinstance(data, list) else path_text([str(next(iter(data), ""))])
        example = f", e.g. {{{{ {citation.expression}{inside} }}}}" if data else ""
        raise refuse(f"{citation.expression} is {_describe(data)}, not a number or short text; "
                     f"cite one value inside it{example}")
    try:
        text = format_value(data, citation.spec)
    except (ValueError, TypeError) as error:
        raise refuse(f"format spec {citation.spec!r} does not apply to {_describe(data)}: {error}") from None
    if isinstance(data, str) and (len(text) > MAX_TEXT_CHARS or "\n" in text):
        lines = " on several lines" if "\n" in data else ""
        raise refuse(f"{citation.expression} is text of {len(data):,} characters{lines}; prose cites "
                     f"numbers and text of at most {MAX_TEXT_CHARS} characters on one line (a spec "
                     "such as :.40 shortens it)")
    return text


def format_value(value: object, spec: str | None = None) -> str:
    """`value` (a JSON scalar) as prose shows it; `format(value, spec)` when a spec is given."""
    if spec is not None:
        return format(value, spec)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".4g")       # as lab tables show floats (labs/render.py format_cell)
    return str(value)


def _unknown_name(citation: Citation, names: list[str]) -> BuildError:
    nearest = difflib.get_close_matches(citation.name, names, n=3)
    if nearest:
        hint = f"nearest: {', '.join(nearest)}"
    elif names:
        hint = f"lab names: {_listing(names)}"
    else:
        hint = f"no lab block has a name; add `name: {citation.name}` to the lab whose value this cites"
    return BuildError(citation.path, f"{citation.source}: no lab of this site is named "
                      f"{citation.name}; {hint}", citation.line)


def _no_value(citation: Citation, values: Mapping[str, LabValue]) -> BuildError:
    # The name is a lab of the site (checked before the labs ran), or this is a render without labs.
    named = f" (labs with a value: {_listing(sorted(values))})" if values else ""
    return BuildError(citation.path, f"{citation.source}: lab {citation.name} gave no value to "
                      f"cite{named}", citation.line)


def _listing(items: list, limit: int = 12) -> str:
    if not items:
        return "none"
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


def _describe(data: object) -> str:
    if isinstance(data, dict):
        return f"a dict (keys: {_listing(list(data))})"
    if isinstance(data, list):
        return f"a list of {len(data)} items"
    if isinstance(data, bool):
        return f"a bool ({'true' if data else 'false'})"
    if isinstance(data, (int, float)):
        return f"{'an int' if isinstance(data, int) else 'a float'} ({data!r})"
    if isinstance(data, str):
        return f"text ({data[:30]!r}{'…' if len(data) > 30 else ''})"
    return "null" if data is None else type(data).__name__
