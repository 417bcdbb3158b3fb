"""The planner: from the site's lab blocks and what is on disk, decide what runs and why.

Everything here is a pure function of data. The edges gather that data (`Facts`: cache
entries, code digests, file digests) and carry the plan out; nothing is decided there.

    collect_labs   every block parsed and resolved, one LabInstance per distinct call,
                   `after:` wired, in dependency order (cycles and ambiguity are errors)
    plan_labs      a Step per lab: reuse its cached result, or run it, with the reasons
    stale_reasons  why a cached result cannot be reused (what `--why` prints)
    artefacts_on_disk  the one rule for "are the files this lab made still here"
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labnotes.errors import BuildError
from labnotes.labs.cache import CacheEntry, instance_id
from labnotes.labs.directive import LabCall, SourceCall, parse_block
from labnotes.labs.resolve import LabcodeIndex
from labnotes.model import Document, LabCounts


@dataclass(frozen=True)
class LabInstance:
    """One distinct lab call (reference + arguments); several blocks may show it."""

    call: LabCall                 # the first block that runs it
    stem: str                     # its cache file stem
    upstream: str | None = None   # stem of the lab it runs `after:`


@dataclass(frozen=True)
class SiteLabs:
    """Every lab and source block of the site, resolved, labs in dependency order."""

    instances: tuple[LabInstance, ...] = ()
    blocks: Mapping[tuple[Path, int], tuple[str, LabCall] | SourceCall] = field(
        default_factory=dict)
    names: Mapping[str, tuple[str, LabCall]] = field(default_factory=dict)  # name -> (stem, call)

    def instance(self, stem: str) -> LabInstance:
        return next(i for i in self.instances if i.stem == stem)

    def upstream_chain(self, stem: str) -> list[str]:
        """`stem` and every lab it runs after, upstream first."""
        chain, current = [], stem
        while current is not None:
            chain.insert(0, current)
            current = self.instance(current).upstream
        return chain


@dataclass(frozen=True)
class Facts:
    """What the planner needs to know about the disk and the machine."""

    entries: Mapping[str, CacheEntry]               # stem -> cached entry (None: none)
    modules: Mapping[str, str | None]               # labcode module -> code digest now
    definitions: Mapping[str, Mapping[str, str]]    # module -> {top-level name: digest}
    files: Mapping[str, str | None]                 # project-relative path -> sha256 now
    torch_version: str
    figures: frozenset[str] = frozenset()           # figure files in the cache folder


@dataclass(frozen=True)
class Step:
    """What the build does with one lab."""

    instance: LabInstance
    run: bool
    reasons: tuple[str, ...] = ()
    wave: int = 0                 # labs of one wave are independent of each other

    @property
    def stem(self) -> str:
        return self.instance.stem


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()   # dependency order

    def waves(self) -> list[list[Step]]:
        waves: list[list[Step]] = []
        for step in self.steps:
            while len(waves) <= step.wave:
                waves.append([])
            waves[step.wave].append(step)
        return waves

    @property
    def to_run(self) -> list[Step]:
        return [s for s in self.steps if s.run]


def collect_labs(documents: list[Document], index: LabcodeIndex, quick: bool = False) -> SiteLabs:
    """Parse and resolve every block before anything runs; BuildError on the first problem."""
    blocks: dict = {}
    calls: dict[str, LabCall] = {}
    per_document: dict[Path, list[str]] = {}
    names: dict[str, tuple[str, LabCall]] = {}
    for document in documents:
        for block in document.blocks:
            call = parse_block(block)
            index.resolve(call)
            if isinstance(call, SourceCall):
                blocks[(block.path, block.line)] = call
                continue
            stem = instance_id(call.ref, call.args, quick)
            calls.setdefault(stem, call)
            blocks[(block.path, block.line)] = (stem, call)
            per_document.setdefault(document.source, []).append(stem)
            if call.name:
                if call.name in names and names[call.name][0] != stem:
                    other = names[call.name][1]
                    raise BuildError(call.path, f"name: {call.name} is already the name of "
                                     f"the lab at {other.path}:{other.line}; names are unique "
                                     "in the site", call.line)
                names.setdefault(call.name, (stem, call))
    upstreams = {stem: _find_upstream(call, per_document, calls, index) if call.after else None
                 for stem, call in calls.items()}
    instances = {stem: LabInstance(call, stem, upstreams[stem]) for stem, call in calls.items()}
    return SiteLabs(tuple(_dependency_order(instances)), blocks, names)


def _find_upstream(call: LabCall, per_document, calls, index) -> str:
    same_post = [s for s in per_document.get(call.path, []) if calls[s].ref == call.after]
    anywhere = [s for s, c in calls.items() if c.ref == call.after]
    candidates = sorted(set(same_post or anywhere))
    line = call.arg_lines.get("after", call.line)
    if not candidates:
        near = index.nearest(call.after)
        hint = " (it resolves: add a ```lab block for it)" if call.after in index.callables \
            else (f"; nearest: {', '.join(near)}" if near else "")
        raise BuildError(call.path, f"after: {call.after} names no lab of this site{hint}", line)
    if len(candidates) > 1:
        raise BuildError(call.path, f"after: {call.after} is ambiguous: it runs with "
                         "different arguments in several posts; keep one in this post", line)
    return candidates[0]


def _dependency_order(instances: dict[str, LabInstance]) -> list[LabInstance]:
    ordered, state = [], {}

    def visit(instance: LabInstance, chain: list[str]) -> None:
        if state.get(instance.stem) == "done":
            return
        if state.get(instance.stem) == "visiting":
            call = instance.call
            raise BuildError(call.path, "after: dependencies form a cycle: "
                             + " -> ".join(chain + [call.ref]),
                             call.arg_lines.get("after", call.line))
        state[instance.stem] = "visiting"
        if instance.upstream is not None:
            visit(instances[instance.upstream], chain + [instance.call.ref])
        state[instance.stem] = "done"
        ordered.append(instance)

    for instance in instances.values():
        visit(instance, [])
    return ordered


def plan_labs(site: SiteLabs, facts: Facts, *, force: bool = False,
              only: str | None = None) -> Plan:
    """A Step for each lab of the site (or of `only` and the labs it runs after).

    A lab runs when it has no fresh cached result, when `force` (or it is `only`), when its
    upstream runs, or when a lab that must run needs files its upstream made and they are
    not on this disk. Everything else is reused.
    """
    stems = set(site.upstream_chain(only)) if only else {i.stem for i in site.instances}
    instances = [i for i in site.instances if i.stem in stems]
    reasons: dict[str, list[str]] = {}
    for instance in instances:
        entry = facts.entries.get(instance.stem)
        upstream = instance.upstream
        if force or instance.stem == only:
            reasons[instance.stem] = ["rerun forced"] if force else ["run by hand"]
        elif entry is None:
            reasons[instance.stem] = ["no cached result"]
        else:
            reasons[instance.stem] = stale_reasons(
                entry, facts, facts.entries.get(upstream) if upstream else None,
                site.instance(upstream).call.ref if upstream else None)
    changed = True
    while changed:              # upstream runs pull downstream in, missing artefacts pull upstream in
        changed = False
        for instance in instances:
            upstream = instance.upstream
            if upstream is None:
                continue
            ref = site.instance(upstream).call.ref
            pulled = f"upstream lab {ref} reruns"
            if reasons[upstream] and pulled not in reasons[instance.stem]:
                reasons[instance.stem] = [r for r in reasons[instance.stem]
                                          if not r.startswith(f"upstream lab {ref}")] + [pulled]
                changed = True
            elif reasons[instance.stem] and not reasons[upstream] and \
                    not artefacts_on_disk(facts.entries[upstream], facts.files):
                reasons[upstream] = [f"its artefacts are not on this disk "
                                     f"({instance.call.ref} needs them)"]
                changed = True
    depth: dict[str, int] = {}
    steps = []
    for instance in instances:
        depth[instance.stem] = depth[instance.upstream] + 1 if instance.upstream else 0
        steps.append(Step(instance, bool(reasons[instance.stem]),
                          tuple(reasons[instance.stem]), depth[instance.stem]))
    return Plan(tuple(steps))


def artefacts_on_disk(entry: CacheEntry, files: Mapping[str, str | None]) -> bool:
    """Are the files this lab wrote on this disk, as it wrote them?"""
    return all(files.get(rel) == digest for rel, digest in entry.writes.items())


def stale_reasons(entry: CacheEntry, facts: Facts, upstream: CacheEntry | None,
                  upstream_ref: str | None) -> list[str]:
    """Why this entry cannot be reused; an empty list means it is fresh."""
    reasons = []
    if _release(entry.torch_version) != _release(facts.torch_version):
        reasons.append(f"torch {_release(entry.torch_version)} -> "
                       f"{_release(facts.torch_version)}")
    for name, digest in sorted(entry.modules.items()):
        now = facts.modules.get(name)
        if now is None:
            reasons.append(f"module {name} is gone")
        elif now != digest:
            reasons.append(f"{module_path(name)} changed" + _changed_definitions(
                entry.definitions.get(name, {}), facts.definitions.get(name, {})))
    for rel, digest in sorted(entry.reads.items()):
        now = facts.files.get(rel)
        if now != digest:
            if rel.endswith("/"):
                reasons.append(f"folder {rel} " + ("is gone" if now is None else
                                                   "has other files now"))
            else:
                reasons.append(f"data file {rel} " + ("is gone" if now is None else "changed"))
    if upstream_ref and not entry.after:
        reasons.append(f"it now runs after {upstream_ref}")
    elif entry.after:
        if upstream is None:
            reasons.append(f"upstream lab {entry.after['ref']} has no result")
        elif upstream.digest() != entry.after.get("digest"):
            reasons.append(f"upstream lab {entry.after['ref']} changed")
    for figure in entry.result.get("figures", []):
        if figure["file"] not in facts.figures:
            reasons.append(f"figure {figure['file']} is missing from the cache")
    return reasons


def _changed_definitions(before: Mapping[str, str], now: Mapping[str, str]) -> str:
    names = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
    if not names or not before:
        return ""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f": {shown}"


def module_path(name: str) -> str:
    """labcode.gelu -> labcode/gelu.py, labcode -> labcode/__init__.py, as --why shows it."""
    return name.replace(".", "/") + ("/__init__.py" if "." not in name else ".py")


def _release(version: str) -> str:
    """2.13.0+cpu and 2.13.0+cu128 are the same torch release."""
    return version.split("+", 1)[0]


def count(statuses: list[str]) -> LabCounts:
    """Counts of a build, derived from each lab's final status."""
    return LabCounts(run=statuses.count("ran"), cached=statuses.count("cached"),
                     failed=statuses.count("failed"))
