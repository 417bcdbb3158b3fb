"""`build.py lab REF` (run one lab standalone) and `build.py check` (would output change?)."""
from __future__ import annotations

import ast
import shutil
import sys
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path

from labnotes.errors import BuildError
from labnotes.labs.cache import LabCache
from labnotes.labs.directive import LabCall
from labnotes.labs.progress import Progress
from labnotes.labs.render import output_with_note
from labnotes.labs.resolve import LabcodeIndex
from labnotes.labs.runner import RunRequest, Worker
from labnotes.labs.stage import (LabPlan, choose_device, execute_labs, plan_labs,
                                 worker_env)
from labnotes.model import Document, SiteConfig


def parse_arg(text: str) -> tuple[str, str]:
    """`k=v` from the command line -> (k, Python literal); a bare word counts as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise BuildError(None, f"--arg {text!r}: write --arg name=value, e.g. --arg seq_len=6")
    try:
        ast.literal_eval(value)
    except (ValueError, SyntaxError):
        value = repr(value)
    return name, value


def run_one_lab(ref: str, args: list[str], config: SiteConfig, documents: list[Document], *,
                device: str | None, figures_dir: Path, timeout: float | None,
                out=sys.stdout) -> int:
    """Run one lab outside a build: print its output and value, save its figures."""
    root = config.root
    call = LabCall(ref=ref, args=tuple(parse_arg(a) for a in args),
                   path=Path("<command line>"), line=0, ref_line=0,
                   show=("output", "value", "figures"))
    try:
        LabcodeIndex(root).resolve(call)
    except BuildError as error:          # no post and line to name: the command line is wrong
        raise BuildError(None, error.message) from None
    device = choose_device(device or config.labs.device)
    # Labs that need another lab's artefact (after:) get it first, from the cache when fresh.
    plan = plan_labs(documents, root)
    consumer = next((i for i in plan.instances
                     if i.call.ref == ref and i.upstream is not None), None)
    if consumer is not None:
        needed = _plan_of(plan, consumer.upstream)
        execute_labs(needed, config, device=device, explicit_device=False, keep_going=False,
                     progress=Progress(len(needed.instances)))
        if consumer.upstream.result.status == "cached" and _inputs_missing(consumer, config):
            # cached upstream, but its artefacts (a checkpoint) are not on this disk
            execute_labs(needed, config, device=device, explicit_device=False,
                         keep_going=False, force=True, progress=Progress(len(needed.instances)))
    worker = Worker(root, worker_env(config, quick=False),
                    ignore=[config.labs.cache_dir, ".git", ".venv"])
    scratch = Path(tempfile.mkdtemp(prefix="lab-figures-"))
    try:
        outcome = worker.run(RunRequest(
            ref=ref, args=call.args, device=device, seed=zlib.crc32(ref.encode()) & 0x7FFFFFFF,
            figdir=scratch, timeout=timeout or config.labs.timeout,
            max_output_chars=config.labs.max_output_chars, progress=True),
            on_progress=lambda p: Progress(1).training(ref, p))
        out.write(output_with_note(outcome.output, outcome.output_dropped))
        if outcome.value:
            value = outcome.value
            if value["kind"] == "table":
                from labnotes.labs.render import markdown_table
                out.write(markdown_table(value["columns"], value["rows"]) + "\n")
            else:
                out.write(value["text"] + "\n")
        if outcome.figures:
            figures_dir.mkdir(parents=True, exist_ok=True)
            for figure in outcome.figures:
                shutil.copyfile(scratch / figure["file"], figures_dir / figure["file"])
                out.write(f"figure: {figures_dir / figure['file']}\n")
    finally:
        worker.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if not outcome.ok:
        if outcome.traceback:
            sys.stderr.write(outcome.traceback + "\n")
        sys.stderr.write(f"error: lab {ref} failed: {outcome.error}\n")
        return 1
    out.write(f"ran {ref} on {outcome.device_name} with torch {outcome.torch_version} "
              f"in {outcome.wall_s:.2f} s\n")
    return 0


def _inputs_missing(consumer, config: SiteConfig) -> bool:
    """Did the post's run of this lab read files that are not on this disk now?"""
    cache = LabCache(config.root / config.labs.cache_dir, config.root)
    entry = cache.load_any(consumer.stem, ["cpu", "cuda", "mps"])
    return entry is None or any(cache.file_hash(config.root / rel) is None for rel in entry.reads)


def _plan_of(plan: LabPlan, target) -> LabPlan:
    chain = []
    while target is not None:
        chain.insert(0, target)
        target = target.upstream
    return replace(plan, instances=chain)


def check_labs(config: SiteConfig, documents: list[Document], *, device: str | None,
               out=sys.stdout) -> list[str]:
    """Rerun every lab beside the cache and list the posts whose published output would change."""
    root = config.root
    published = LabCache(root / config.labs.cache_dir, root)
    plan = plan_labs(documents, root)
    chosen = choose_device(device or config.labs.device)
    before = {}
    for instance in plan.instances:
        entry = published.load_any(instance.stem, [chosen, "cpu", "cuda", "mps"])
        before[instance.stem] = entry.result if entry is not None else None
    with tempfile.TemporaryDirectory(prefix="lab-check-") as scratch:
        fresh_config = replace(config, labs=replace(config.labs, cache_dir=scratch))
        execute_labs(plan, fresh_config, device=chosen, explicit_device=True, keep_going=True,
                     force=True, progress=Progress(len(plan.instances)))
        changes = []
        for instance in plan.instances:
            old, new = before[instance.stem], instance.result
            reason = _difference(old, new)
            if reason:
                changes.append(f"{instance.call.path}:{instance.call.line}: {instance.call.ref}: "
                               f"{reason}")
    for line in changes:
        out.write(line + "\n")
    out.write(f"check: {len(plan.instances)} labs rerun, {len(changes)} would change "
              "published output\n")
    return changes


def _difference(old: dict | None, new) -> str:
    if new.failed:
        return f"now fails: {new.error}"
    if old is None:
        return "not published yet (no cached result)"
    if old.get("output", "") != new.output:
        return "output would change"
    if old.get("value") != new.value:
        return "value would change"
    if [f["file"] for f in old.get("figures", [])] != [f["file"] for f in new.figures]:
        return "figures would change"
    return ""


