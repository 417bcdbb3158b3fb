"""The lab stage of a build: parse, resolve, run what is stale, render.

    plan_labs      every block parsed and resolved, `after:` wired, nothing run yet
    execute_labs   fresh cache entries reused, stale labs run in dependency order
    LabStage       renders each block and lists the figure files to publish
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Queue

from labnotes.errors import BuildError
from labnotes.labs.cache import CacheEntry, LabCache, instance_id
from labnotes.labs.directive import LabCall, SourceCall, parse_block
from labnotes.labs.progress import Progress
from labnotes.labs.render import (LabRenderer, LabResult, lab_markdown, output_with_note,
                                  source_markdown)
from labnotes.labs.resolve import LabcodeIndex
from labnotes.labs.runner import RunRequest, Worker
from labnotes.model import (Document, FencedBlock, LabCounts, LabStage, RenderedBlock,
                            SiteConfig)

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


class LabFailure(BuildError):
    """A lab raised or timed out: one error line, then its traceback cut to labcode."""

    def __init__(self, call: LabCall, error: str, traceback: str = ""):
        super().__init__(call.path, f"lab {call.ref} failed: {error}", call.line)
        self.details = traceback


@dataclass
class LabInstance:
    """One distinct lab call (reference + arguments); several blocks may show it."""

    call: LabCall
    stem: str
    upstream: "LabInstance | None" = None
    entry: CacheEntry | None = None       # the record of the result shown
    previous: CacheEntry | None = None    # the stale record this run replaces, if any
    result: LabResult | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class LabPlan:
    """Every lab and source block of the site, resolved, in run order."""

    index: LabcodeIndex
    instances: list[LabInstance]                    # dependency order
    by_block: dict[tuple[Path, int], tuple[LabInstance, LabCall] | SourceCall]


def plan_labs(documents: list[Document], root: Path, quick: bool = False) -> LabPlan:
    """Parse and resolve every block before anything runs; BuildError on the first problem."""
    index = LabcodeIndex(root)
    by_block: dict[tuple[Path, int], tuple[LabInstance, LabCall] | SourceCall] = {}
    instances: dict[str, LabInstance] = {}
    per_document: dict[Path, list[LabInstance]] = {}
    for document in documents:
        for block in document.blocks:
            call = parse_block(block)
            index.resolve(call)
            if isinstance(call, SourceCall):
                by_block[(block.path, block.line)] = call
                continue
            stem = instance_id(call.ref, call.args, quick)
            instance = instances.setdefault(stem, LabInstance(call, stem))
            by_block[(block.path, block.line)] = (instance, call)
            per_document.setdefault(document.source, []).append(instance)
    for instance in instances.values():
        call = instance.call
        if call.after:
            instance.upstream = _find_upstream(call, per_document, instances, index)
    return LabPlan(index, _dependency_order(list(instances.values())), by_block)


def _find_upstream(call, per_document, instances, index) -> LabInstance:
    same_post = [i for i in per_document.get(call.path, []) if i.call.ref == call.after]
    anywhere = [i for i in instances.values() if i.call.ref == call.after]
    candidates = same_post or anywhere
    if not candidates:
        near = index.nearest(call.after)
        hint = " (it resolves: add a ```lab block for it)" if call.after in index.callables \
            else (f"; nearest: {', '.join(near)}" if near else "")
        raise BuildError(call.path, f"after: {call.after} names no lab of this site{hint}",
                         call.line)
    if len({i.stem for i in candidates}) > 1:
        raise BuildError(call.path, f"after: {call.after} is ambiguous: it runs with "
                         "different arguments in several posts; keep one in this post",
                         call.line)
    return candidates[0]


def _dependency_order(instances: list[LabInstance]) -> list[LabInstance]:
    ordered, state = [], {}

    def visit(instance: LabInstance, chain: list[str]) -> None:
        if state.get(instance.stem) == "done":
            return
        if state.get(instance.stem) == "visiting":
            raise BuildError(instance.call.path, "after: dependencies form a cycle: "
                             + " -> ".join(chain + [instance.call.ref]), instance.call.line)
        state[instance.stem] = "visiting"
        if instance.upstream is not None:
            visit(instance.upstream, chain + [instance.call.ref])
        state[instance.stem] = "done"
        ordered.append(instance)

    for instance in instances:
        visit(instance, [])
    return ordered


def choose_device(requested: str | None) -> str:
    """--device or [labs] device, else CUDA, then MPS, then CPU (decided without torch)."""
    if requested:
        return requested
    if torch_version().endswith("+cpu"):
        return "cpu"
    if os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0"):
        return "cuda"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"


def torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def worker_env(config: SiteConfig, quick: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TIKTOKEN_CACHE_DIR", str(config.root / config.labs.tiktoken_cache_dir))
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join([str(config.root)] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["LABCODE_QUICK"] = "1" if quick else "0"
    return env


def execute_labs(plan: LabPlan, config: SiteConfig, *, device: str, explicit_device: bool,
                 keep_going: bool, force: bool = False, progress: Progress | None = None,
                 quick: bool = False, jobs: int = 1) -> tuple[LabCounts, LabCache]:
    """Reuse fresh entries, run stale labs (up to `jobs` at once); LabFailure unless keep_going.

    Labs run in waves: a wave holds labs whose `after:` upstream finished in an earlier
    wave, so the labs of one wave are independent and may share the workers.
    """
    cache = LabCache(config.root / config.labs.cache_dir, config.root)
    current_torch = torch_version()
    # A CPU-only machine republishes results made on an accelerator (SPEC 4).
    devices = [device] if explicit_device or device != "cpu" else ["cpu", "cuda", "mps"]
    progress = progress or Progress(len(plan.instances), enabled=False)
    pool = WorkerPool(config, quick, size=jobs)
    counts = {"ran": 0, "cached": 0, "failed": 0}
    lock = threading.Lock()

    def run(instance: LabInstance) -> None:
        upstream = instance.upstream
        if upstream is not None and upstream.result.status == "cached" and \
                _artefacts_missing(instance, cache):
            # the upstream result is cached but the files it made are not on this disk
            progress.total += 1
            progress.lab_started(upstream.call.ref)
            pool.run(upstream, cache, device, progress, current_torch, plan)
            progress.lab_done(upstream.call.ref, upstream.result.status, upstream.result.wall_s,
                              ["its artefacts are not on this disk"])
            with lock:
                counts["ran"] += 1
                counts["cached"] -= 1
        progress.lab_started(instance.call.ref)
        pool.run(instance, cache, device, progress, current_torch, plan)
        result = instance.result
        progress.lab_done(instance.call.ref, result.status, result.wall_s, instance.reasons)

    try:
        for wave in _waves(plan.instances):
            stale = []
            for instance in wave:
                if _reuse(instance, cache, devices, force, current_torch, plan):
                    counts["cached"] += 1
                    progress.lab_done(instance.call.ref, "cached")
                elif instance.upstream is not None and instance.upstream.entry is None:
                    instance.result = LabResult(instance.call, "failed",
                                                error=f"upstream lab {instance.upstream.call.ref}"
                                                " failed")
                    progress.lab_done(instance.call.ref, "failed")
                else:
                    stale.append(instance)
            if len(stale) > 1 and jobs > 1:
                with ThreadPoolExecutor(max_workers=jobs) as executor:
                    list(executor.map(run, stale))
            else:
                for instance in stale:
                    run(instance)
                    if instance.result.failed and not keep_going:
                        break
            for instance in wave:
                if instance.result is None:      # not reached: an earlier lab failed
                    continue
                if instance.result.status == "ran":
                    counts["ran"] += 1
                if instance.result.status != "failed":
                    continue
                counts["failed"] += 1
                failure = LabFailure(instance.call, instance.result.error,
                                     instance.result.traceback)
                if not keep_going:
                    raise failure
                progress.warn("\n".join(filter(None, [failure.one_line(), failure.details])))
    finally:
        pool.stop()
        for warning in cache.warnings:
            progress.warn(warning)
        progress.close()
    return LabCounts(counts["ran"], counts["cached"], counts["failed"]), cache


def _waves(instances: list[LabInstance]) -> list[list[LabInstance]]:
    """Group labs (already in dependency order) by the depth of their `after:` chain."""
    depth: dict[str, int] = {}
    waves: list[list[LabInstance]] = []
    for instance in instances:
        level = 0 if instance.upstream is None else depth[instance.upstream.stem] + 1
        depth[instance.stem] = level
        while len(waves) <= level:
            waves.append([])
        waves[level].append(instance)
    return waves


def _reuse(instance: LabInstance, cache: LabCache, devices: list[str], force: bool,
           current_torch: str, plan: LabPlan) -> bool:
    """Take the cached result when it is fresh; otherwise record why the lab must run."""
    upstream = instance.upstream
    entry = None if force else cache.load_any(instance.stem, devices)
    instance.previous = entry
    if entry is None:
        instance.reasons = ["rerun forced"] if force else ["no cached result"]
        return False
    instance.reasons = cache.stale_reasons(entry, current_torch,
                                           upstream.entry if upstream is not None else None)
    if instance.reasons:
        return False
    instance.entry = entry
    instance.result = _result_from_entry(instance.call, entry, "cached", plan)
    return True


class WorkerPool:
    """Up to `size` warm workers for one device, started only when a lab has to run."""

    def __init__(self, config: SiteConfig, quick: bool, size: int = 1):
        self.config, self.quick, self.size = config, quick, max(1, size)
        self.idle: Queue[Worker] = Queue()
        self.started: list[Worker] = []
        self.lock = threading.Lock()

    def _take(self) -> Worker:
        with self.lock:
            if self.idle.empty() and len(self.started) < self.size:
                worker = Worker(self.config.root, worker_env(self.config, self.quick),
                                ignore=[self.config.labs.cache_dir, ".git", ".venv"])
                self.started.append(worker)
                return worker
        return self.idle.get()

    def run(self, instance: LabInstance, cache: LabCache, device: str, progress: Progress,
            current_torch: str, plan: LabPlan) -> None:
        worker = self._take()
        try:
            _run(instance, worker, cache, self.config, device, progress, current_torch, plan,
                 self.quick)
        finally:
            self.idle.put(worker)

    def stop(self) -> None:
        for worker in self.started:
            worker.stop()


def _artefacts_missing(instance: LabInstance, cache: LabCache) -> bool:
    """Before a lab runs after a cached upstream: are the upstream's files on this disk?

    Known files are those the upstream wrote through Python and those this lab read last
    time; a lab with no previous record may need anything, so its upstream reruns.
    """
    if instance.previous is None:
        return True
    expected = {**instance.upstream.entry.writes,
                **{rel: digest for rel, digest in instance.previous.reads.items()
                   if rel not in instance.upstream.entry.writes}}
    return any(cache.file_hash(cache.root / rel) != digest for rel, digest in expected.items())


def _run(instance: LabInstance, worker: Worker, cache: LabCache, config: SiteConfig,
         device: str, progress: Progress, current_torch: str, plan: LabPlan,
         quick: bool) -> None:
    call = instance.call
    request = RunRequest(ref=call.ref, args=call.args, device=device,
                         seed=zlib.crc32(call.ref.encode()) & 0x7FFFFFFF,
                         figdir=cache.figures, timeout=call.timeout or config.labs.timeout,
                         max_output_chars=config.labs.max_output_chars, progress=True,
                         quick=quick)
    outcome = worker.run(request, on_progress=lambda p: progress.training(call.ref, p))
    output = output_with_note(outcome.output, outcome.output_dropped)
    if not outcome.ok:
        instance.entry = None
        instance.result = LabResult(call, "failed", output=output, error=outcome.error,
                                    traceback=outcome.traceback, wall_s=outcome.wall_s,
                                    source=_source(call, plan))
        return
    cache.forget(outcome.writes)
    upstream = instance.upstream
    entry = CacheEntry(
        ref=call.ref, args=[list(a) for a in call.args], quick=quick,
        device=device, device_name=outcome.device_name,
        torch_version=outcome.torch_version or current_torch,
        modules=cache.module_hashes(outcome.modules),
        reads={rel: cache.file_hash(config.root / rel) for rel in outcome.reads
               if cache.file_hash(config.root / rel) is not None},
        writes={rel: cache.file_hash(config.root / rel) for rel in outcome.writes
                if cache.file_hash(config.root / rel) is not None},
        after={"ref": upstream.call.ref, "digest": upstream.entry.digest()}
        if upstream is not None and upstream.entry is not None else {},
        result={"output": output, "value": outcome.value, "figures": outcome.figures,
                "wall_s": round(outcome.wall_s, 3)})
    cache.save(instance.stem, entry)
    instance.entry = entry
    instance.result = _result_from_entry(call, entry, "ran", plan)


def _source(call: LabCall, plan: LabPlan) -> str:
    return plan.index.source_of(call.ref)[0] if "source" in call.show else ""


def _result_from_entry(call: LabCall, entry: CacheEntry, status: str, plan: LabPlan) -> LabResult:
    result = entry.result
    return LabResult(call, status, output=result.get("output", ""), value=result.get("value"),
                     figures=result.get("figures", []), wall_s=result.get("wall_s", 0.0),
                     device_name=entry.device_name, torch_version=entry.torch_version,
                     source=_source(call, plan))


def run_lab_stage(documents: list[Document], config: SiteConfig, options) -> LabStage:
    """The pipeline's lab stage: every lab fresh or run, each block renderable."""
    quick = os.environ.get("LABCODE_QUICK") == "1"
    plan = plan_labs(documents, config.root, quick)
    requested = getattr(options, "device", None) or config.labs.device
    device = choose_device(requested)
    progress = Progress(len(plan.instances), enabled=bool(plan.instances),
                        why=getattr(options, "why", False))
    counts, cache = execute_labs(plan, config, device=device, explicit_device=bool(requested),
                                 keep_going=getattr(options, "keep_going", False),
                                 progress=progress, quick=quick,
                                 jobs=getattr(options, "jobs", 1))
    # Keep the committed cache to what the site shows (both quick and full results).
    cache.prune({instance_id(i.call.ref, i.call.args, q) for i in plan.instances
                 for q in (False, True)})
    templates = config.root / "templates"
    # root-relative URLs: the Markdown stage prefixes the site's base path to every one
    renderer = LabRenderer(templates if (templates / "lab.html").is_file() else REPO_TEMPLATES)
    files: dict[str, bytes] = {}
    for instance in plan.instances:
        for figure in instance.result.figures:
            files[f"labs/{figure['file']}"] = (cache.figures / figure["file"]).read_bytes()

    def render_block(block: FencedBlock) -> RenderedBlock:
        target = plan.by_block[(block.path, block.line)]
        if isinstance(target, SourceCall):
            source, file, line = plan.index.source_of(target.ref)
            shown = file.relative_to(config.root).as_posix()
            return RenderedBlock(renderer.source_html(target.ref, source, shown, line),
                                 source_markdown(target.ref, source))
        instance, call = target
        result = replace(instance.result, call=call, source=_source(call, plan))
        return RenderedBlock(renderer.lab_html(result), lab_markdown(result))

    return LabStage(render_block, files, counts)
