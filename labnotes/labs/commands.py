"""`build.py lab REF` (run one lab by hand), `check` (would the page change?), `prune`.

All three go through the planner, like a build. None of them writes the site's lab cache
except `prune`, which removes only what it lists.
"""
from __future__ import annotations

import ast
import io
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from labnotes.errors import BuildError
from labnotes.labs.cache import LabCache, instance_id
from labnotes.labs.claims import Verdict, evaluate
from labnotes.labs.directive import LabCall, SourceCall
from labnotes.labs.plan import LabInstance, SiteLabs, collect_labs, plan_labs
from labnotes.labs.progress import Progress
from labnotes.labs.render import LabRenderer, LabResult, format_cell, markdown_table
from labnotes.labs.resolve import LabcodeIndex
from labnotes.labs.runtime import DEVICES, UsageError, device_for, reusable_devices
from labnotes.citations import changed_citations
from labnotes.copied_numbers import find_copied_numbers
from labnotes.errors import display_path
from labnotes.labs.precision import (SAME, Comparison, combine, compare_data, compare_svg,
                                     compare_table, compare_text, is_number, printed_bounds)
from labnotes.labs.stage import (Run, carry_out, claim_message, claim_verdicts, gather_facts,
                                 lab_values, published_labs)
from labnotes.model import Document, SiteConfig

HAND_RUN = "command-line"


def parse_arg(text: str) -> tuple[str, str]:
    """`k=v` from the command line -> (k, Python literal); a bare word counts as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise UsageError(f"--arg {text!r}: write --arg name=value, e.g. --arg seq_len=6")
    try:
        ast.literal_eval(value)
    except (ValueError, SyntaxError):
        value = repr(value)
    return name, value


def run_one_lab(ref: str, args: list[str], config: SiteConfig, documents: list[Document], *,
                device: str | None, figures_dir: Path, timeout: float | None,
                out=None) -> int:
    """Run one lab by hand: print its output and value, save its figures.

    When a post runs this lab `after:` another, the other's files are needed: the plan
    reuses them when they are on this disk and reruns the upstream otherwise. Nothing is
    written to the site's lab cache.
    """
    out = out or sys.stdout
    root = config.root
    call = LabCall(ref=ref, args=tuple(parse_arg(a) for a in args),
                   path=Path("<command line>"), line=0, ref_line=0,
                   show=("output", "value", "figures"))
    index = LabcodeIndex(root)
    try:
        index.resolve(call)
    except BuildError as error:          # no post and line to name: the command line is wrong
        raise BuildError(None, error.message) from None
    chosen = device_for(device, config.labs.device, config.source)
    site = collect_labs(documents, index)
    consumer = next((i for i in site.instances if i.call.ref == ref and i.upstream), None)
    if consumer is not None:
        call = replace(call, after=site.instance(consumer.upstream).call.ref)
    hand = LabInstance(call, HAND_RUN, consumer.upstream if consumer else None)
    site = replace(site, instances=site.instances + (hand,))
    cache = LabCache(root / config.labs.cache_dir)
    facts = gather_facts(site, cache, root, reusable_devices(chosen, bool(device)))
    plan = plan_labs(site, facts, only=HAND_RUN)
    scratch = Path(tempfile.mkdtemp(prefix="lab-figures-"))
    run = Run(config, chosen, LabCache(scratch), Progress(len(plan.steps), why=True),
              save=False, timeout=timeout)
    # cached upstream results keep their figures in the site's cache; new ones go to scratch
    try:
        results = carry_out(plan, site, facts, replace(run, keep_going=True), index)
        result = results[HAND_RUN]
        _print_result(result, out)
        if result.figures:
            figures_dir.mkdir(parents=True, exist_ok=True)
            for figure in result.figures:
                shutil.copyfile(scratch / "figures" / figure["file"], figures_dir / figure["file"])
                out.write(f"figure: {figures_dir / figure['file']}\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.failed:
        if result.traceback:
            sys.stderr.write(result.traceback + "\n")
        sys.stderr.write(f"error: lab {ref} failed: {result.error}\n")
        return 1
    out.write(f"ran {ref} on {result.hardware} with torch {result.torch_version} "
              f"in {result.wall_s:.2f} s\n")
    false = 0
    for call, verdict in hand_claims(site, facts, result):
        where = f"{display_path(call.path)}:{verdict.claim.line}"
        if verdict.holds:
            out.write(f"{where}: claim \"{verdict.claim.text}\" holds ({verdict.values_text})\n")
        else:
            false += 1
            sys.stderr.write(f"{where}: error: {claim_message(verdict, result)}\n")
    return 1 if false else 0


def hand_claims(site: SiteLabs, facts, result: LabResult) -> list[tuple[LabCall, Verdict]]:
    """The claims of every block that shows the lab run by hand (same reference and
    arguments), evaluated on its result; other labs' names read their published results."""
    labs = {name: facts.entries[stem].result.get("data") for name, (stem, _) in site.names.items()
            if stem in facts.entries}
    found = []
    for target in site.blocks.values():
        if isinstance(target, SourceCall):
            continue
        call = target[1]
        if call.ref == result.call.ref and call.args == result.call.args:
            found += [(call, evaluate(claim, result.data, labs)) for claim in call.expects]
    return found


def _print_result(result: LabResult, out) -> None:
    out.write(result.output)
    if result.output and not result.output.endswith("\n"):
        out.write("\n")
    value = result.value
    if value:
        if value["kind"] == "table":
            out.write(markdown_table(value["columns"], value["rows"]) + "\n")
        else:
            out.write(value["text"] + "\n")


@dataclass(frozen=True)
class Change:
    """One difference a reader would see, a number that moved within its lab's declared
    precision, a measurement that moved, or a claim that no longer holds."""

    where: str          # "content/posts/a.md:12"
    ref: str
    what: str
    kind: str = "changed"    # "changed", "reproduced" (within tolerance), "measured", "claim"

    @property
    def counts_as_change(self) -> bool:
        return self.kind in ("changed", "claim")

    def line(self) -> str:
        note = {"reproduced": " (reproduced within tolerance; not a change)",
                "measured": " (measured; not a change)"}.get(self.kind, "")
        return f"{self.where}: {self.ref}: {self.what}{note}"


def check_labs(config: SiteConfig, documents: list[Document], *, device: str | None,
               out=None, renderer: LabRenderer | None = None) -> "CheckReport":
    """Rerun every lab beside the site's cache; list what a reader would see change.

    Blocks are compared as rendered (wall time and hardware left out), number by number
    within each lab's declared precision (`tolerance:`), figures without sub-pixel noise,
    cited values as the prose shows them, and keys a lab declares `measured:` are reported
    apart, not as changes. Every `expect:` claim is evaluated on the fresh results. Numbers
    typed into prose that repeat a lab's result are listed too. Nothing is written to the
    site's cache.
    """
    changes, copied = _check(config, documents, device=device, out=out or sys.stdout,
                             renderer=renderer)
    return CheckReport(tuple(changes), copied)


@dataclass(frozen=True)
class CheckReport:
    """What `check` found about the labs: published changes and copied numbers."""

    changes: tuple[Change, ...]
    copied: int

    @property
    def clean(self) -> bool:
        return not any(c.counts_as_change for c in self.changes) and not self.copied


def _check(config: SiteConfig, documents: list[Document], *, device: str | None,
           out, renderer: LabRenderer | None) -> tuple[list[Change], int]:
    root = config.root
    index = LabcodeIndex(root)
    site = collect_labs(documents, index)
    chosen = device_for(device, config.labs.device, config.source)
    published_cache = LabCache(root / config.labs.cache_dir)
    published = gather_facts(site, published_cache, root, reusable_devices(chosen, bool(device)))
    renderer = renderer or LabRenderer(root / "templates")
    with tempfile.TemporaryDirectory(prefix="lab-check-") as scratch:
        fresh_cache = LabCache(Path(scratch))
        facts = gather_facts(site, fresh_cache, root, [chosen])
        plan = plan_labs(site, facts, force=True)
        run = Run(config, chosen, fresh_cache, Progress(len(plan.steps)), save=False,
                  keep_going=True)
        results = carry_out(plan, site, facts, run, index)
        changes = []
        for (path, line), target in site.blocks.items():
            if isinstance(target, SourceCall):
                continue
            stem, call = target
            old = published.entries.get(stem)
            changes += _block_changes(f"{path}:{line}", call, old, results[stem],
                                      published_cache, fresh_cache, renderer)
    before = {stem: _result_of(entry) for stem, entry in published.entries.items()}
    calls = {name: call for name, (_, call) in site.names.items()}
    changes += _citation_changes(documents, lab_values(site, before), lab_values(site, results),
                                 calls)
    verdicts = claim_verdicts(site, results)
    claims = sum(len(found) for found in verdicts.values())
    for key, found in verdicts.items():
        stem, call = site.blocks[key]
        for verdict in found:
            if not verdict.holds:
                where = f"{display_path(call.path)}:{verdict.claim.line}"
                changes.append(Change(where, call.ref, claim_message(verdict, results[stem]),
                                      kind="claim"))
    copied = find_copied_numbers(documents, published_labs(site, results))
    kinds = {kind: [c for c in changes if c.kind == kind]
             for kind in ("changed", "claim", "reproduced", "measured")}
    for kind in ("changed", "claim", "reproduced", "measured"):
        for change in kinds[kind]:
            out.write(change.line() + "\n")
    for number in copied:
        out.write(number.warning().one_line() + "\n")
    out.write(f"check: {len(plan.steps)} labs rerun on {_hardware(results)}, "
              f"{len(kinds['changed'])} published outputs would change, "
              f"{len(kinds['reproduced'])} reproduced within tolerance, "
              f"{len(kinds['measured'])} measurements moved, "
              f"{claims - len(kinds['claim'])} of {claims} claims hold, "
              f"{len(copied)} numbers copied into prose instead of cited\n")
    return changes, len(copied)


def _hardware(results: dict[str, LabResult]) -> str:
    names = sorted({r.hardware for r in results.values() if not r.failed and r.device_name})
    return ", ".join(names) or "no device"


def _result_of(entry) -> LabResult:
    return LabResult(LabCall(entry.ref, ()), "cached", data=entry.result.get("data"),
                     device_name=entry.device_name, torch_version=entry.torch_version,
                     device=entry.device)


def _citation_changes(documents, before, after, calls: dict[str, LabCall]) -> list[Change]:
    """Cited values a reader would see change: within the lab's tolerance they were
    reproduced; those citing a measured key are measurements."""
    changes = []
    for citation, old, new in changed_citations(documents, before, after):
        where = f"{display_path(citation.path)}:{citation.line}"
        keys = citation.keys
        call = calls.get(citation.name)
        if old.text == new.text:          # the provenance moved (another CPU or GPU): the same
            continue
        kind = "changed"
        detail = ""
        if call is not None and keys and str(keys[0]) in call.measured:
            kind = "measured"
        elif call is not None and citation.name in before and citation.name in after:
            was = _walk(before[citation.name].data, keys)
            now = _walk(after[citation.name].data, keys)
            compared = compare_data(was, now, call.tolerance, tuple(keys))
            if compared.reproduced:
                kind, detail = "reproduced", f", within {call.tolerance.bound_for(tuple(keys))}"
            elif is_number(was) and is_number(now):
                detail = f" (beyond {call.tolerance.bound_for(tuple(keys))})"
        changes.append(Change(where, citation.source, f"cited value {old.text} -> {new.text}{detail}",
                              kind=kind))
    return changes


def _walk(data, keys):
    for key in keys:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _block_changes(where, call, old, new: LabResult, old_cache, new_cache, renderer):
    if new.failed:
        return [Change(where, call.ref, f"now fails: {new.error}")]
    if old is None:
        return [Change(where, call.ref, "not published yet (no cached result)")]
    before = LabResult(call, "cached", output=old.result.get("output", ""),
                       value=old.result.get("value"), figures=old.result.get("figures", []),
                       data=old.result.get("data"),
                       device_name=old.device_name, torch_version=old.torch_version)
    after = replace(new, call=call, status="cached", source="", device_name=old.device_name,
                    torch_version=old.torch_version)
    changes = []
    for key in call.measured:
        was, now = _measured(before.value, key), _measured(after.value, key)
        if was != now:
            changes.append(Change(where, call.ref, f"{key}: {format_cell(was)} -> "
                                  f"{format_cell(now)}", kind="measured"))
    if _seen(renderer, before, call.measured) != _seen(renderer, after, call.measured):
        compared = _compare_shown(renderer, before, after, call)
        changes.append(Change(where, call.ref, "the rendered block would change "
                              f"({compared.detail})" if not compared.reproduced else
                              f"the rendered block moved ({compared.detail})",
                              kind="reproduced" if compared.reproduced else "changed"))
    old_figures = [old_cache.figures / f["file"] for f in before.figures]
    new_figures = [new_cache.figures / f["file"] for f in after.figures]
    if "figures" in call.show:
        compared = _compare_figures(old_figures, new_figures, call.tolerance.figure_bound_px)
        if not compared.same:
            # a figure that plots measurements (`measured: figures`) moves with them
            kind = "measured" if "figures" in call.measured else \
                "reproduced" if compared.reproduced else "changed"
            changes.append(Change(where, call.ref, f"a figure moved ({compared.detail})"
                                  if kind == "reproduced" else "a figure would change", kind=kind))
    return changes


def _compare_shown(renderer, before: LabResult, after: LabResult, call: LabCall) -> Comparison:
    """The parts of a block a reader sees, number by number within the lab's tolerance: its
    printed output, its value, and the rest of the block exactly."""
    parts = []
    if "output" in call.show:
        bound = call.tolerance.output_bound()
        parts.append(compare_text(before.output, after.output, bound,
                                  printed_bounds(call.tolerance, before.data, after.data, bound)))
    if "value" in call.show:
        parts.append(_compare_value(before.value, after.value, call))
    rest = [_seen(renderer, replace(r, output="", value=None), call.measured)
            for r in (before, after)]
    if rest[0] != rest[1]:
        parts.append(Comparison(False, False, _first_difference(
            renderer, replace(before, output="", value=None),
            replace(after, output="", value=None), call.measured)))
    found = combine(parts)
    return found if not found.same else Comparison(False, False, "layout")


def _compare_value(old: dict | None, new: dict | None, call: LabCall) -> Comparison:
    if not old or not new or old.get("kind") != new.get("kind"):
        return SAME if old == new else Comparison(False, False, "the value's kind")
    if old["kind"] == "table":
        measured = set(call.measured)
        return compare_table(_mask_table(old, measured) if measured else old,
                             _mask_table(new, measured) if measured else new, call.tolerance)
    bound = call.tolerance.whole or call.tolerance.output_bound()
    meta = {k: v for k, v in old.items() if k != "text"} == {k: v for k, v in new.items() if k != "text"}
    if not meta:
        return Comparison(False, False, "the value's shape or type")
    return compare_text(old.get("text", ""), new.get("text", ""), bound)


def _seen(renderer: LabRenderer, result: LabResult, measured) -> str:
    """The block as a reader sees it, less wall time, hardware, figure file names and
    measurements."""
    value = result.value
    if value and value.get("kind") == "table" and measured:
        value = _mask_table(value, set(measured))
    shown = replace(result, value=value, wall_s=0.0, device_name="", torch_version="",
                    figures=[{**f, "file": f"figure-{i}", "preview": f"preview-{i}"}
                             for i, f in enumerate(result.figures)])
    return renderer.lab_html(shown)


def _mask_table(value: dict, measured: set[str]) -> dict:
    columns = value["columns"]
    if columns == ["name", "value"]:
        rows = [[n, "(measured)" if n in measured else v] for n, v in value["rows"]]
    else:
        rows = [["(measured)" if c in measured else v for c, v in zip(columns, row)]
                for row in value["rows"]]
    return {**value, "rows": rows}


def _measured(value: dict | None, key: str):
    if not value or value.get("kind") != "table":
        return None
    if value["columns"] == ["name", "value"]:
        return next((v for n, v in value["rows"] if n == key), None)
    if key in value["columns"]:
        return [row[value["columns"].index(key)] for row in value["rows"]]
    return None


def _first_difference(renderer, before, after, measured) -> str:
    old = _seen(renderer, before, measured).splitlines()
    new = _seen(renderer, after, measured).splitlines()
    for a, b in zip(old + [""] * len(new), new + [""] * len(old)):
        if a != b:
            text = lambda s: re.sub(r"<[^>]+>", "", s).strip()[:70]  # noqa: E731
            return f"{text(a)!r} -> {text(b)!r}"
    return "layout"


def _compare_figures(old: list[Path], new: list[Path], pixels: float) -> Comparison:
    """Figures as a reader sees them: SVG marks within `pixels`, PNG pixels nearly equal."""
    if len(old) != len(new):
        return Comparison(False, False, f"{len(old)} figures -> {len(new)}")
    parts = []
    for a, b in zip(old, new):
        if not a.is_file() or not b.is_file():
            return Comparison(False, False, f"missing {a.name if not a.is_file() else b.name}")
        if a.read_bytes() == b.read_bytes():
            continue
        if a.suffix == ".svg" and b.suffix == ".svg":
            parts.append(compare_svg(a.read_text(encoding="utf-8"), b.read_text(encoding="utf-8"),
                                     pixels))
        elif not _png_close(a, b):       # nearly equal pixels: noise no reader sees
            parts.append(Comparison(False, False, "PNG pixels differ"))
    return combine(parts)


def _png_close(a: Path, b: Path) -> bool:
    import matplotlib.image
    import numpy
    x, y = matplotlib.image.imread(a), matplotlib.image.imread(b)
    return x.shape == y.shape and float(numpy.abs(x - y).mean()) < 1e-3


def prune_cache(config: SiteConfig, documents: list[Document], *, dry_run: bool,
                out=None) -> list[Path]:
    """Remove cache entries no lab of the site runs (quick or full), and unnamed figures."""
    out = out or sys.stdout
    site = collect_labs(documents, LabcodeIndex(config.root))
    keep = {instance_id(i.call.ref, i.call.args, quick) for i in site.instances
            for quick in (False, True)}
    cache = LabCache(config.root / config.labs.cache_dir)
    found = cache.orphans(keep)
    for path in found:
        out.write(f"{'would remove' if dry_run else 'removed'} {path.relative_to(config.root)}\n")
        if not dry_run:
            path.unlink()
    out.write(f"prune: {len(found)} files {'to remove' if dry_run else 'removed'}; "
              f"{len(site.instances)} labs of the site kept\n")
    return found
