"""The lab stage of a build, and the edges of the lab engine shared by `lab` and `check`.

    gather_facts   read what the planner needs: cache entries, code and file digests
    carry_out      run a plan's steps wave by wave on the executor; record new entries
    run_lab_stage  the pipeline's stage: collect -> plan -> carry out -> render
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from labnotes.errors import BuildError
from labnotes.labs.claims import Verdict, evaluate
from labnotes.labs.cache import CacheEntry, LabCache, figure_files, file_digest, module_digests
from labnotes.labs.directive import LabCall, SourceCall
from labnotes.labs.executor import WarmPools, WorkerPool, execute
from labnotes.labs.plan import Facts, Plan, SiteLabs, collect_labs, count, plan_labs
from labnotes.labs.progress import Progress
from labnotes.labs.render import (LabRenderer, LabResult, lab_markdown, output_with_note,
                                  source_markdown, value_text)
from labnotes.labs.resolve import LabcodeIndex
from labnotes.labs.runner import RunOutcome, RunRequest
from labnotes.labs.runtime import (WORKER_IGNORE, device_for, lab_seed, reusable_devices,
                                   torch_version, worker_env)
from labnotes.model import (Document, FencedBlock, LabRecord, LabStage, LabValue,
                            NotebookLab, PublishedLab, RenderedBlock, SiteConfig)


class FalseClaim(BuildError):
    """An `expect:` line that does not hold for the result shown, with the values it read."""

    def __init__(self, call: LabCall, verdict: Verdict, result: LabResult):
        super().__init__(call.path, claim_message(verdict, result), verdict.claim.line)


def claim_message(verdict: Verdict, result: LabResult) -> str:
    """`claim "forward_max == 0" is false: forward_max = 1.2e-07 (CPU AMD EPYC (AVX2))`."""
    text = verdict.claim.text
    if verdict.error:
        return f'claim "{text}" cannot be checked: {verdict.error} ({result.hardware})'
    return f'claim "{text}" is false: {verdict.values_text or "it reads no value"} ({result.hardware})'


def claim_verdicts(site: SiteLabs, results: dict[str, LabResult]) -> dict[tuple, tuple[Verdict, ...]]:
    """Each lab block's claims evaluated against the result it shows (cached or fresh); a lab
    that failed has none. Keyed by (path, line) of the block."""
    labs = {name: results[stem].data for name, (stem, _) in site.names.items()
            if stem in results and not results[stem].failed}
    verdicts = {}
    for key, target in site.blocks.items():
        if isinstance(target, SourceCall) or not target[1].expects:
            continue
        stem, call = target
        result = results.get(stem)
        if result is None or result.failed:
            continue
        verdicts[key] = tuple(evaluate(claim, result.data, labs) for claim in call.expects)
    return verdicts


class LabFailure(BuildError):
    """A lab raised or timed out: one error line, then its traceback cut to labcode."""

    def __init__(self, call: LabCall, error: str, traceback: str = ""):
        super().__init__(call.path, f"lab {call.ref} failed: {error}", call.line)
        self.details = traceback


@dataclass
class Run:
    """How one plan is carried out: where, on what, with which limits."""

    config: SiteConfig
    device: str
    cache: LabCache                 # where figures go, and entries when `save`
    progress: Progress
    save: bool = True               # record new entries (a build); `lab` and `check` do not
    keep_going: bool = False
    quick: bool = False
    jobs: int = 1
    timeout: float | None = None    # overrides every lab's timeout (`lab --timeout`)
    warm: WarmPools | None = None   # workers kept between builds (`serve`); None: started and stopped here
    protected: tuple[str, ...] = () # folders a lab must not write into (content, templates, static, output)

    @property
    def root(self) -> Path:
        return self.config.root


def gather_facts(site: SiteLabs, cache: LabCache, root: Path, devices: list[str]) -> Facts:
    """Everything the planner needs from the disk, each file hashed once."""
    entries = {i.stem: cache.load_any(i.stem, devices) for i in site.instances}
    found = [e for e in entries.values() if e is not None]
    modules, definitions = module_digests(root, sorted({m for e in found for m in e.modules}))
    files = sorted({rel for e in found for rel in [*e.reads, *e.writes]})
    return Facts(entries={s: e for s, e in entries.items() if e is not None},
                 modules=modules, definitions=definitions,
                 files={rel: file_digest(root / rel) for rel in files},
                 torch_version=torch_version(), figures=cache.figure_names())


def carry_out(plan: Plan, site: SiteLabs, facts: Facts, run: Run,
              index: LabcodeIndex) -> dict[str, LabResult]:
    """Each step's result: reused from its entry or run, wave after wave.

    A lab whose upstream failed fails without running. Without keep_going the first failure
    is raised once its wave has finished (what ran before it is recorded).
    """
    entries = dict(facts.entries)
    results: dict[str, LabResult] = {}
    pool_of = run.warm.pool if run.warm is not None else WorkerPool
    pool = pool_of(run.root, worker_env(run.root, run.config.labs.tiktoken_cache_dir),
                   [run.config.labs.cache_dir, *WORKER_IGNORE], run.jobs)
    try:
        for wave in plan.waves():
            ready = []
            for step in wave:
                call, upstream = step.instance.call, step.instance.upstream
                if not step.run:
                    results[step.stem] = _result(call, entries[step.stem], "cached", index)
                    run.progress.lab_done(call.ref, "cached")
                elif upstream is not None and results[upstream].failed:
                    results[step.stem] = LabResult(call, "failed", error=f"upstream lab "
                                                   f"{site.instance(upstream).call.ref} failed")
                    run.progress.lab_done(call.ref, "failed")
                else:
                    ready.append(step)
            requests = [_request(step.instance.call, run) for step in ready]
            before = labcode_stats(run.root)   # to tell a module saved while its lab ran
            outcomes = execute(
                pool, requests,
                on_start=lambda request: run.progress.lab_started(request.ref),
                on_progress=lambda request, info: run.progress.training(request.ref, info),
                stop_after_failure=not run.keep_going)
            for step, outcome in zip(ready, outcomes):
                if outcome is None:          # not reached: an earlier lab of the wave failed
                    continue
                results[step.stem] = _record(step, outcome, entries, run, index, before)
            failures = [s for s in wave if s.stem in results and results[s.stem].failed]
            for step in failures:
                result = results[step.stem]
                failure = LabFailure(step.instance.call, result.error, result.traceback)
                if not run.keep_going:
                    raise failure
                run.progress.warn("\n".join(filter(None, [failure.one_line(), failure.details])))
    finally:
        if run.warm is None:
            pool.stop()
        for warning in run.cache.warnings:
            run.progress.warn(warning)
        run.progress.close()
    return results


def labcode_stats(root: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every labcode source file, by project-relative path."""
    stats = {}
    for path in (root / "labcode").rglob("*.py"):
        st = path.stat()
        stats[path.relative_to(root).as_posix()] = (st.st_mtime_ns, st.st_size)
    return stats


def _module_files(module: str) -> tuple[str, str]:
    """Where a labcode module's source can be: `a/b.py` or `a/b/__init__.py`."""
    base = module.replace(".", "/")
    return f"{base}.py", f"{base}/__init__.py"


def _request(call: LabCall, run: Run) -> RunRequest:
    labs = run.config.labs
    return RunRequest(ref=call.ref, args=call.args, device=run.device, seed=lab_seed(call.ref),
                      figdir=run.cache.figures, timeout=run.timeout or call.timeout or labs.timeout,
                      max_output_chars=labs.max_output_chars, progress=True, quick=run.quick,
                      protected=run.protected)


def _record(step, outcome: RunOutcome, entries: dict, run: Run, index, before: dict) -> LabResult:
    """The result of a lab that ran; its new entry is kept (and saved by a build) unless a
    module it imported was edited while it ran: then the code that ran is not known, and the
    next build runs it again."""
    call = step.instance.call
    output = output_with_note(outcome.output, outcome.output_dropped)
    if outcome.leftovers:
        run.progress.warn(f"{call.path}:{call.line}: warning: lab {call.ref} left "
                          f"{', '.join(outcome.leftovers)} running; its worker was replaced, so "
                          "nothing it left reaches another lab")
    if not outcome.ok:
        entries.pop(step.stem, None)
        result = LabResult(call, "failed", output=output, error=outcome.error,
                           traceback=outcome.traceback, wall_s=outcome.wall_s,
                           source=_source(call, index))
        run.progress.lab_done(call.ref, "failed", outcome.wall_s, list(step.reasons))
        return result
    upstream = entries.get(step.instance.upstream) if step.instance.upstream else None
    entry = make_entry(call, outcome, run, upstream)
    now = labcode_stats(run.root)
    edited = sorted(name for name in entry.modules
                    if any(before.get(path) != now.get(path) for path in _module_files(name)))
    if edited:
        run.progress.warn(f"{call.path}:{call.line}: warning: {', '.join(edited)} changed while "
                          f"lab {call.ref} ran; its result is shown but not cached, so the next "
                          "build runs it again")
    else:
        entries[step.stem] = entry
        if run.save:
            run.cache.save(step.stem, entry)
    run.progress.lab_done(call.ref, "ran", outcome.wall_s, list(step.reasons))
    return _result(call, entry, "ran", index)


def make_entry(call: LabCall, outcome: RunOutcome, run: Run,
               upstream: CacheEntry | None) -> CacheEntry:
    """The cache record of a successful run.

    Files inside the project (but not its machine-local .cache/) are keyed by path and
    content; files its upstream wrote are covered by the upstream's digest; anything else
    it read (tiktoken's encoding, wherever TIKTOKEN_CACHE_DIR points) by name and content.
    """
    root = run.root.resolve()
    reads, resources, writes = {}, {}, {}
    upstream_writes = upstream.writes if upstream is not None else {}
    for path in outcome.writes:
        rel = _inside(Path(path), root)
        digest = file_digest(Path(path))
        if rel is not None and digest is not None:
            writes[rel] = digest
    for path in [*outcome.reads, *outcome.listed]:
        digest = file_digest(Path(path))
        rel = _inside(Path(path), root)
        if rel is not None and path in outcome.listed:
            rel += "/"                       # a folder: keyed by the names in it
        if digest is None or rel in upstream_writes:
            continue
        if rel is not None and not rel.startswith(".cache/"):
            reads[rel] = digest
        else:
            resources[Path(path).name] = digest
    modules, definitions = module_digests(run.root, outcome.modules)
    return CacheEntry(
        ref=call.ref, args=[list(a) for a in call.args], quick=run.quick, device=run.device,
        device_name=outcome.device_name, torch_version=outcome.torch_version or torch_version(),
        modules={m: d for m, d in modules.items() if d is not None}, definitions=definitions,
        reads=reads, resources=resources, writes=writes,
        after={"ref": upstream.ref, "digest": upstream.digest()} if upstream else {},
        result={"output": output_with_note(outcome.output, outcome.output_dropped),
                "value": outcome.value, "data": outcome.data, "figures": outcome.figures,
                "wall_s": round(outcome.wall_s, 3)})


def _inside(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _source(call: LabCall, index: LabcodeIndex) -> str:
    return index.source_of(call.ref)[0] if "source" in call.show else ""


def _result(call: LabCall, entry: CacheEntry, status: str, index: LabcodeIndex) -> LabResult:
    result = entry.result
    return LabResult(call, status, output=result.get("output", ""), value=result.get("value"),
                     data=result.get("data"), figures=result.get("figures", []),
                     wall_s=result.get("wall_s", 0.0), device_name=entry.device_name,
                     torch_version=entry.torch_version, source=_source(call, index),
                     device=entry.device)


def run_lab_stage(documents: list[Document], config: SiteConfig, options,
                  warm: WarmPools | None = None, protected: tuple[Path, ...] = (),
                  remember=None) -> LabStage:
    """The pipeline's lab stage: every lab fresh or run, each block renderable; `warm` keeps
    the workers for the next build, `protected` are the folders no lab may write into, and
    `remember` (a `RenderCache.get`) keeps the highlighted source of lab blocks."""
    quick = getattr(options, "quick", False)
    index = LabcodeIndex(config.root)
    site = collect_labs(documents, index, quick)
    requested = getattr(options, "device", None) or config.labs.device
    device = device_for(getattr(options, "device", None), config.labs.device, config.source)
    cache = LabCache(config.root / config.labs.cache_dir)
    facts = gather_facts(site, cache, config.root, reusable_devices(device, bool(requested)))
    plan = plan_labs(site, facts)
    progress = Progress(len(plan.steps), enabled=bool(plan.to_run),
                        why=getattr(options, "why", False))
    run = Run(config, device, cache, progress, keep_going=getattr(options, "keep_going", False),
              quick=quick, jobs=getattr(options, "jobs", 1), warm=warm,
              protected=tuple(str(Path(p).resolve()) for p in protected))
    results = carry_out(plan, site, facts, run, index) if plan.steps else {}
    # A quick build's labs run a few steps: claims speak of the published results, not of these.
    verdicts = claim_verdicts(site, results) if not quick else {}
    if quick and any(not isinstance(t, SourceCall) and t[1].expects for t in site.blocks.values()):
        progress.warn("--quick: claims (expect:) are not checked, since they speak of the labs' "
                      "full results")
    false = [(site.blocks[key][1], verdict, results[site.blocks[key][0]])
             for key, found in verdicts.items() for verdict in found if not verdict.holds]
    if false and not run.keep_going:
        raise FalseClaim(*false[0])
    for call, verdict, result in false:
        progress.warn(FalseClaim(call, verdict, result).one_line())
    counts = replace(count([results[s.stem].status for s in plan.steps if s.stem in results]),
                     false_claims=len(false))
    renderer = LabRenderer(config.root / "templates", remember)
    files = {f"labs/{name}": (cache.figures / name).read_bytes()
             for result in results.values() for name in figure_files(result.figures)}
    values = lab_values(site, results)
    published = published_labs(site, results)

    def render_block(block: FencedBlock) -> RenderedBlock:
        target = site.blocks[(block.path, block.line)]
        if isinstance(target, SourceCall):
            source, file, line = index.source_of(target.ref)
            shown = file.relative_to(config.root).as_posix()
            return RenderedBlock(renderer.source_html(target.ref, source, shown, line),
                                 source_markdown(target.ref, source))
        stem, call = target
        result = replace(results[stem], call=call, source=_source(call, index),
                         claims=verdicts.get((block.path, block.line), ()))
        return RenderedBlock(renderer.lab_html(result), lab_markdown(result))

    docs = {doc.source: doc for doc in documents}

    def notebook_lab(stem: str, call: LabCall) -> NotebookLab:
        result = replace(results[stem], call=call, source=_source(call, index),
                         claims=verdicts.get((call.path, call.line), ()))
        found = index.callables.get(call.ref)
        params = found.params if found is not None else ()
        fills = tuple(p for p in ("device", "quick") if p in params and (p == "device" or quick))
        upstream = site.instance(stem).upstream
        doc = docs.get(call.path)
        return NotebookLab(result, fills, tuple(files[f"labs/{f['file']}"] for f in result.figures),
                           doc.title if doc else "", doc.url if doc else "",
                           notebook_lab(upstream, site.instance(upstream).call) if upstream else None)

    records = lab_records(site, results)
    return LabStage(render_block, files, counts, values=values, published=published, records=records,
                    notebook_lab=lambda block: notebook_lab(*site.blocks[(block.path, block.line)]),
                    inputs=tuple(sorted(facts.files)))


def lab_records(site: SiteLabs, results: dict[str, LabResult]) -> tuple[LabRecord, ...]:
    """Each lab block with its result's provenance, for the labs page."""
    records = []
    for (path, line), target in site.blocks.items():
        if isinstance(target, SourceCall) or target[0] not in results:
            continue
        stem, call = target
        result = replace(results[stem], call=call)
        records.append(LabRecord(call.ref, result.args_text, path, line, result.anchor,
                                 result.device_name, result.torch_version, result.wall_text,
                                 result.status, result.command))
    return tuple(records)


def lab_values(site: SiteLabs, results: dict[str, LabResult]) -> dict[str, LabValue]:
    """What each named lab returned, as prose cites it (failed labs have none)."""
    return {name: LabValue(name, call.ref, results[stem].data, results[stem].device_name,
                           results[stem].torch_version, call.path, call.line)
            for name, (stem, call) in site.names.items()
            if stem in results and not results[stem].failed}


def published_labs(site: SiteLabs, results: dict[str, LabResult]) -> tuple[PublishedLab, ...]:
    """What each lab showed readers, for the copied-number lint."""
    names = {stem: name for name, (stem, _) in site.names.items()}
    shown = []
    for instance in site.instances:
        result = results.get(instance.stem)
        if result is None or result.failed:
            continue
        call = instance.call
        shown.append(PublishedLab(call.ref, names.get(instance.stem), result.output,
                                  value_text(result.value), result.data, call.path, call.line,
                                  call.tolerance))
    return tuple(shown)
