"""The input manifest: make's rule for a whole site, so a build with nothing to do costs a look.

After a build that published the site as its inputs say (no lab ran or failed), the manifest
records the size, mtime and inode of every input file: site.toml, the content folder, the
site's templates/, static/ and labcode/, the lab cache, the files labs read, the generator's
own code, templates and static files. Beside them: the environment the output depends on (Python,
the versions of the rendering libraries and torch, the accelerator, the build options), the
time the first held-back future post comes out, and the stat of every output file. The next
build that finds all of these equal publishes nothing new, so it stops there, before loading
anything that renders (`unchanged_build`); any difference means a real, incremental build.

The skip decision is made on inputs only; which outputs exist is whatever the last full build
wrote, so a new kind of output is covered without a word here.

A file changed within a clock tick of the build that read it could keep its size and mtime
(git's "racily clean" files): such a file is recorded as unknown, so the next build looks again.
"""
from __future__ import annotations

import dataclasses
import marshal
import os
import pickle
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .model import BuildOptions, BuildReport, Content, LabCounts, LabStage, SiteConfig
from .output import scan_folder
from .render_cache import CACHE_DIR, RENDERING_LIBRARIES, content_key, library_version, read_blob, write_blob

GENERATOR = Path(__file__).resolve().parent          # labnotes/, the lab engine included
_PROJECT = GENERATOR.parent                          # its built-in templates/ and static/
# Files whose mtime is this close to (or after) the start of the build that read them are not
# trusted: a coarse file-system clock (a tick is 1-10 ms) could give an edit the same mtime.
RACY_NS = 20_000_000
UNKNOWN = (-1, -1, -1)
_SKIPPED = frozenset({"__pycache__"})
# What makes the lab engine pick another device, or another torch: see labs/runtime.choose_device.
_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0")
_ENVIRONMENT_VARIABLES = ("TIKTOKEN_CACHE_DIR", "CUDA_VISIBLE_DEVICES")

Stats = dict[str, tuple[int, int, int]]


def manifest_path(config_path: Path | str, content_dir: Path | str, out_dir: Path | str) -> Path:
    """Where the input manifest of this (site.toml, content, output) triple lives."""
    config_path = Path(config_path)
    name = content_key(*(str(Path(p).resolve()) for p in (config_path, content_dir, out_dir)))
    return config_path.parent / CACHE_DIR / f"inputs-{name}.bin"


def watched_paths(config_path: Path | str, content_dir: Path | str, config: SiteConfig,
                  labs: LabStage | None = None) -> list[Path]:
    """Every file and folder whose change could change the site."""
    root = config.root
    paths = [Path(config_path), Path(content_dir), root / "templates", root / "static", root / "labcode",
             root / config.labs.cache_dir, root / config.labs.tiktoken_cache_dir,
             GENERATOR, _PROJECT / "templates", _PROJECT / "static"]
    paths += [root / relative for relative in (labs.inputs if labs is not None else ())]
    return [path.absolute() for path in paths]   # the next build may run from another folder


def input_stats(paths: list[Path], started_ns: int | None = None) -> Stats:
    """(size, mtime_ns, inode) of every file under `paths` by path; a file changed since
    `started_ns` (or a tick before) is UNKNOWN, so it never matches."""
    stats: Stats = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        if os.path.isdir(path):
            stats.update((f"{path}/{relative}", found)
                         for relative, found in scan_folder(path, _SKIPPED).items())
        else:
            stats[str(path)] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if started_ns is not None:
        stats = {path: UNKNOWN if stat[1] >= started_ns - RACY_NS else stat for path, stat in stats.items()}
    return stats


def environment_key(options: BuildOptions) -> str:
    """What besides the input files decides the output: interpreter, the generator's own folder
    (two copies of Lab Notes do not take each other's builds for theirs), libraries, accelerator
    and the build options, but the clock and the options that only say how labs are run or
    reported (`why`, `jobs`, `keep_going`: a build where a lab failed is never recorded)."""
    chosen = dataclasses.replace(options, now=None, why=False, jobs=1, keep_going=False)
    return content_key(sys.version, sys.executable, str(GENERATOR),
                       [library_version(name) for name in (*RENDERING_LIBRARIES, "torch")],
                       [os.path.exists(path) for path in _DEVICE_FILES], shutil.which("nvidia-smi"),
                       [os.environ.get(name) for name in _ENVIRONMENT_VARIABLES], repr(chosen))


def stats_at_start(paths: list[Path], started_ns: int, look: Look | None = None) -> Stats:
    """`input_stats(paths, started_ns)` for a build starting now, taken from `look` when
    `unchanged_build` looked at the same paths a moment before. A file changed in that moment
    keeps its stats from before the change, which only makes the next build look again."""
    if look is None or [str(path) for path in look.paths] != [str(path) for path in paths]:
        return input_stats(paths, started_ns)
    return {path: UNKNOWN if stat[1] >= started_ns - RACY_NS else stat for path, stat in look.stats.items()}


def build_clock(options: BuildOptions) -> datetime:
    """The time a build publishes for: `now` when given, else the clock."""
    return options.now or datetime.now(timezone.utc)


@dataclass
class Look:
    """What `unchanged_build` saw of the inputs, for the build that follows it at once
    (`stats_at_start`): the paths it looked at and their stats."""

    paths: list[Path] = field(default_factory=list)
    stats: Stats = field(default_factory=dict)


def unchanged_build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str,
                    options: BuildOptions = BuildOptions(), look: Look | None = None) -> BuildReport | None:
    """The report of the last build when nothing it depends on changed since and its output is
    as it left it; None when the site must be built, and then `look` holds what it saw."""
    started = time.perf_counter()
    saved = read_blob(manifest_path(config_path, content_dir, out_dir), loads=pickle.loads)
    if not isinstance(saved, dict) or saved.get("environment") != environment_key(options):
        return None
    if clock_moved(saved, options):
        return None
    inputs = input_stats(saved["watched"])
    if look is not None:
        look.paths, look.stats = saved["watched"], inputs
    # The output's stats are read only when the inputs' match: an edit is told apart sooner.
    if inputs != _stats(saved["inputs"]) or scan_folder(Path(out_dir)) != _stats(saved["output"]):
        return None
    seconds = time.perf_counter() - started
    return dataclasses.replace(saved["report"], seconds=seconds, stages=(("compare the inputs with the last build's", seconds),))


def record_build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str, options: BuildOptions,
                 watched: list[Path], before: Stats, inputs: Stats, content: Content, report: BuildReport,
                 output: Stats, snapshot: str | None = None) -> bool:
    """Remember a build for `unchanged_build`: `watched` as the build ended, `inputs` their
    stats (`input_stats` with the build's start: those taken as it started, and those of the
    files labs read); `before`, the ones taken as it started.

    A build that ran a lab is not remembered: the next one shows the lab as reused (the labs
    page says so), so it is not a repeat. Nor is one that read a file saved in its own clock
    tick; one that read a file changed or deleted while it ran is remembered with the file as it
    was before, so the next build is a real one.

    `snapshot` names what patch.py kept of this build, which holds only while these stats do.
    Returns whether the build was remembered.
    """
    path = manifest_path(config_path, content_dir, out_dir)
    if report.labs.run or report.labs.failed or report.labs.false_claims or UNKNOWN in inputs.values() or not before.keys() <= inputs.keys():
        path.unlink(missing_ok=True)
        return False
    comes_out = min((doc.date for doc in content.held_back if doc.date is not None), default=None)
    latest = max((doc.date for doc in content.documents if doc.date is not None), default=None)
    repeat = dataclasses.replace(report, changed=0, rendered=(), documents_rendered=0,
                                 labs=LabCounts(cached=report.labs.cached), stages=())
    write_blob(path, {"environment": environment_key(options), "comes_out": comes_out, "latest": latest,
                      "watched": watched,
                      "inputs": marshal.dumps(inputs), "output": marshal.dumps(output), "report": repeat,
                      "snapshot": snapshot}, dumps=pickle.dumps)
    return True


def clock_moved(saved: dict, options: BuildOptions) -> bool:
    """Whether the build's clock (`build_clock`) would publish other documents than the build
    `saved` (`last_build`) did: a post it held back comes out, or (a clock set back, `now`) one
    it published is dated after it."""
    if options.future:
        return False
    now = build_clock(options)
    comes_out, latest = saved.get("comes_out"), saved.get("latest")
    return (comes_out is not None and now >= comes_out) or (latest is not None and now < latest)


def forget_build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str) -> None:
    """Forget the last build: the next one is a full build."""
    manifest_path(config_path, content_dir, out_dir).unlink(missing_ok=True)


def last_build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str) -> dict | None:
    """What `record_build` remembered of the last build (see there), or None."""
    saved = read_blob(manifest_path(config_path, content_dir, out_dir), loads=pickle.loads)
    return saved if isinstance(saved, dict) else None


def changed_inputs(saved: dict, stats: Stats) -> list[str] | None:
    """The input files whose stats differ from those `saved` (`last_build`) recorded, added
    and removed ones included; None when its record cannot be read."""
    inputs = _stats(saved.get("inputs"))
    if inputs is None:
        return None
    return sorted(path for path in inputs.keys() | stats.keys() if inputs.get(path) != stats.get(path))


def record_patch(config_path: Path | str, content_dir: Path | str, out_dir: Path | str, saved: dict,
                 inputs: Stats, output: Stats) -> None:
    """Remember a build that patched the last one (patch.py): `saved` (`last_build`) with the
    inputs and output now. One that read a file saved in its own clock tick is not remembered."""
    path = manifest_path(config_path, content_dir, out_dir)
    if UNKNOWN in inputs.values():
        path.unlink(missing_ok=True)
        return
    write_blob(path, {**saved, "inputs": marshal.dumps(inputs), "output": marshal.dumps(output)}, dumps=pickle.dumps)


def _stats(saved: object) -> Stats | None:
    """Stats as `record_build` saved them (marshal's bytes, quicker to read than pickle's)."""
    try:
        return marshal.loads(saved)
    except (TypeError, ValueError, EOFError):
        return None
