"""Front matter: the strict YAML subset posts use, with a line number in every error.

Supported: `key: value` scalars (plain, "double" or 'single' quoted), `true`/`false`,
integers, flow lists `[a, "b, c"]`, block lists (`key:` then `- item` lines), comments and
blank lines. Anything else (nesting, anchors, multi-line strings) is an error, not a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError

_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$")
_ITEM = re.compile(r"^[ \t]+-[ \t]+(.*?)[ \t]*$|^-[ \t]+(.*?)[ \t]*$")
_DOUBLE_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "/": "/"}


@dataclass(frozen=True)
class Field:
    """One front matter value and the line it was written on."""

    value: object   # str, bool, int, or list of those
    line: int


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Field], str, int]:
    """Split `text` into its front matter fields, the body, and the body's first line number."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        raise BuildError(path, "front matter missing: the file must start with a `---` line, then `title: ...`, `date: ...`, then `---`", 1)
    for end in range(1, len(lines)):
        if lines[end].rstrip() == "---":
            break
    else:
        raise BuildError(path, "front matter is never closed: add a `---` line after the last `key: value`", 1)
    fields = parse_fields(lines[1:end], path, first_line=2)
    return fields, "\n".join(lines[end + 1:]), end + 2


def parse_fields(lines: list[str], path: Path, first_line: int) -> dict[str, Field]:
    """Parse `key: value` lines; `first_line` is the file line of `lines[0]`."""
    fields: dict[str, Field] = {}
    open_list: str | None = None     # key whose `- item` lines follow
    for index, raw in enumerate(lines):
        number = first_line + index
        line = _strip_comment(raw, path, number)
        if not line.strip():
            continue
        item = _ITEM.match(line)
        if item:
            if open_list is None:
                raise BuildError(path, "front matter: a `- item` line must follow a `key:` line with nothing after the colon", number)
            fields[open_list].value.append(_scalar((item.group(1) or item.group(2) or "").strip(), path, number))
            continue
        if line[0].isspace():
            raise BuildError(path, f"front matter: unexpected indentation in {raw.strip()!r}; nested values are not supported", number)
        key = _KEY.match(line)
        if not key:
            raise BuildError(path, f"front matter: expected `key: value`, got {raw.strip()!r}", number)
        name, value = key.group(1), key.group(2)
        if name in fields:
            raise BuildError(path, f"front matter: `{name}` is given twice (first on line {fields[name].line})", number)
        if value is None or value == "":
            fields[name] = Field([], number)
            open_list = name
            continue
        open_list = None
        fields[name] = Field(_value(value, path, number), number)
    return fields


def _value(text: str, path: Path, line: int):
    if text.startswith("["):
        if not text.endswith("]"):
            raise BuildError(path, f"front matter: list {text!r} is not closed with `]` on the same line", line)
        return [_scalar(item, path, line) for item in _split_flow(text[1:-1], path, line)]
    if text.startswith(("{", "|", ">", "&", "*", "!")):
        raise BuildError(path, f"front matter: {text!r} uses YAML that is not supported here; quote the value", line)
    return _scalar(text, path, line)


def _scalar(text: str, path: Path, line: int):
    if not text:
        raise BuildError(path, "front matter: empty list item", line)
    if text[0] == '"':
        return _double_quoted(text, path, line)
    if text[0] == "'":
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            raise BuildError(path, f"front matter: badly quoted string {text}", line)
        return text[1:-1].replace("''", "'")
    if text[0] in "[]{}":
        raise BuildError(path, f"front matter: nested lists are not supported ({text!r})", line)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return text


def _double_quoted(text: str, path: Path, line: int) -> str:
    if "\\" not in text and text.find('"', 1) == len(text) - 1:   # no escapes, one closing quote
        return text[1:-1]
    out = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            if nxt not in _DOUBLE_ESCAPES:
                raise BuildError(path, f"front matter: unknown escape \\{nxt} in {text}", line)
            out.append(_DOUBLE_ESCAPES[nxt])
            i += 2
        elif ch == '"':
            if i != len(text) - 1:
                raise BuildError(path, f"front matter: text after the closing quote in {text}", line)
            return "".join(out)
        else:
            out.append(ch)
            i += 1
    raise BuildError(path, f"front matter: string {text} is never closed with `\"`", line)


def _split_flow(inner: str, path: Path, line: int) -> list[str]:
    """Split `a, "b, c", 'd'` at top-level commas."""
    items, current, quote = [], [], None
    i = 0
    while i < len(inner):
        ch = inner[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote == '"':
                current.append(inner[i + 1:i + 2])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if quote:
        raise BuildError(path, "front matter: a quoted string in a list is never closed", line)
    last = "".join(current).strip()
    if last or items:
        items.append(last)
    return items


def _strip_comment(line: str, path: Path, number: int) -> str:
    """Remove a `#` comment that starts a line or follows whitespace outside quotes."""
    if "\t" in line[: len(line) - len(line.lstrip())]:
        raise BuildError(path, "front matter: indent with spaces, not tabs", number)
    if "#" not in line:
        return line
    quote = None
    escaped = False
    for i, ch in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'" and (i == 0 or line[i - 1] in " \t:[,-"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line
