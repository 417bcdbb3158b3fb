"""The warm worker: a process that runs labs on request, importing torch once, when the first
lab that needs it comes.

It reads one JSON request per line on stdin and answers with JSON lines on its
original stdout (progress messages, then one result). What a lab prints is captured
(capture.py), so nothing it writes can break the protocol. Before each lab, labcode is
dropped from sys.modules (afterwards sys.modules holds exactly the labcode modules the
lab imported) and the starting state is put back (capture.LabState).

A lab whose sources import only the standard library and labcode (imports.py) runs without
torch: the worker answers "ready" before importing it, and imports it (with matplotlib) only
for the first lab that needs it. A light lab that imports torch after all is run again, once
torch's state has been set, so that its seed applies.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

from labnotes.labs.capture import (PACKAGE, CappedText, FileWatch, LabState,
                                   UnpublishableValue, close_figures, encode_value,
                                   save_figures)
from labnotes.labs.imports import ImportReader
from labnotes.labs.runtime import missing_encoding_hint, torch_version


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--ignore", action="append", default=[])
    opts = parser.parse_args()
    root = Path(opts.root).resolve()

    # Keep the real stdout for the protocol; anything else written to fd 1 goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Requests come on stdin; labs get none (input() would wait for the timeout), nor do their
    # children, which read /dev/null.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    os.chdir(root)
    sys.path.insert(0, str(root))
    os.environ.setdefault("MPLBACKEND", "Agg")

    watch = FileWatch([root / PACKAGE] + [root / p for p in opts.ignore], root)
    state = LabState()
    reader = ImportReader(root)
    send = lambda message: protocol.write(json.dumps(message) + "\n")  # noqa: E731
    send({"type": "ready", "torch": torch_version()})
    for line in requests:
        if line.strip():
            request = json.loads(line)
            if not reader.is_light(request["ref"]):
                load_torch(state, watch)
            result = run_lab(request, root, watch, state, send)
            if "torch" not in state.torch_state and "torch" in sys.modules:
                # a light lab imported torch after all, after its seeds were set: run it again
                load_torch(state, watch)
                result = run_lab(request, root, watch, state, send)
            send(result)


def load_torch(state: LabState, watch: FileWatch) -> None:
    """Import torch and matplotlib (once), take torch's starting state and watch its savers."""
    if "torch" in state.torch_state:
        return
    import torch  # paid once, for the first lab that needs it
    import matplotlib
    matplotlib.use("Agg")
    with contextlib.suppress(ImportError):
        import numpy  # noqa: F401  (imported before the first reset, so that it is seeded)
    state.take_torch_state(torch)
    watch.wrap_writers()


def run_lab(request: dict, root: Path, watch: FileWatch, state: LabState, send) -> dict:
    """Run one lab from the worker's starting state; return the result message."""
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    state.reset(request["seed"])
    sys.stdin, sys.breakpointhook = ClosedInput(), no_breakpoint
    captured = CappedText(request["max_output_chars"])
    result: dict = {"type": "result", "id": request["id"], "ok": True}
    device = request["device"]
    start = time.perf_counter()
    watch.start(request.get("protected"))
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            target = _target(request["ref"], root)
            value = target(**_arguments(target, request, send))
            if device == "cuda":
                sys.modules["torch"].cuda.synchronize()
        result["wall_s"] = time.perf_counter() - start
        result["value"], result["data"] = encode_value(value)
        result["figures"] = save_figures(value, Path(request["figdir"]), request["ref"])
    except UnpublishableValue as exc:
        result.update(ok=False, wall_s=time.perf_counter() - start, error=str(exc))
        close_figures()
    except BaseException as exc:  # a lab may raise anything, SystemExit included
        error = f"{type(exc).__name__}: {exc}".strip()
        error += missing_encoding_hint(error, os.environ.get("TIKTOKEN_CACHE_DIR"))
        result.update(ok=False, wall_s=time.perf_counter() - start, error=error,
                      traceback=_labcode_traceback(exc, root))
        close_figures()
    finally:
        watch.stop()
    if watch.forbidden and result["ok"]:
        result.update(ok=False, error=forbidden_write_error(sorted(watch.forbidden), request["protected"], root))
    result["output"] = captured.getvalue()
    result["output_dropped"] = captured.dropped
    result["modules"] = sorted(m for m in sys.modules
                               if m == PACKAGE or m.startswith(PACKAGE + "."))
    result["reads"] = sorted(watch.reads)
    result["writes"] = sorted(watch.writes)
    result["listed"] = sorted(watch.listed)
    result["leftovers"] = state.leftovers()
    result["device_name"] = device_name(device)
    result["torch_version"] = torch_version()
    return result


class ClosedInput(io.TextIOBase):
    """A lab's sys.stdin: reading it fails at once, with a message saying why."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> str:
        raise EOFError("standard input is closed: a build runs labs unattended, so input() and "
                       "reads of sys.stdin get nothing; give the value as an argument of the lab")

    readline = read


def no_breakpoint(*args, **kwargs) -> None:
    """A lab's breakpoint(): fails at once instead of waiting for a debugger nobody can reach."""
    raise RuntimeError("breakpoint() in a lab: a build runs labs unattended, with no terminal to "
                       "debug in; call the function in `python -i` or the post's notebook to debug it")


def forbidden_write_error(paths: list[str], protected: list[str], root: Path) -> str:
    """The lab's error when it wrote into a folder the build reads or writes."""
    def shown(path: str) -> str:
        return os.path.relpath(path, root) if path.startswith(str(root) + os.sep) else path
    folder = next(p for p in protected if paths[0].startswith(p + os.sep))
    more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
    return (f"it wrote {shown(paths[0])}{more}, inside {shown(folder)}/, a folder the build reads or "
            "publishes (content, templates, static, the output), where the file would be taken for "
            "input or overwritten: write elsewhere (data/, or a path the lab is given), and remove "
            f"{shown(paths[0])} if you did not mean to keep it")


def _target(ref: str, root: Path):
    module_name, qualname = ref.split(":", 1)
    module = importlib.import_module(module_name)
    origin = Path(sys.modules[PACKAGE].__file__).resolve().parent
    if origin != root / PACKAGE:
        raise ImportError(f"labcode was imported from {origin}, not from {root / PACKAGE}")
    target = module
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _arguments(target, request: dict, send) -> dict:
    """The block's arguments, plus what the build fills in: device, quick, progress."""
    import ast
    import inspect
    kwargs = {name: ast.literal_eval(source) for name, source in request["args"]}
    try:
        params = set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        params = set()
    if "device" in params:
        kwargs["device"] = request["device"]
    if "quick" in params:
        kwargs["quick"] = bool(request.get("quick"))
    if "progress" in params and request.get("progress"):
        kwargs["progress"] = _progress_sender(send, request["id"])
    return kwargs


def _progress_sender(send, request_id: int):
    """A callback for labcode's training loop: forwards step/loss/ETA to the build."""
    last = [0.0]

    def progress(info) -> None:
        now = time.monotonic()
        get = (lambda k: info.get(k)) if isinstance(info, dict) else \
            (lambda k: getattr(info, k, None))
        step, total = get("step"), get("total_steps")
        if now - last[0] < 0.2 and step != total:
            return
        last[0] = now
        send({"type": "progress", "id": request_id, "step": step, "total": total,
              "loss": get("loss"), "eta_s": get("eta_s"), "tokens_per_s": get("tokens_per_s")})

    return progress


def device_name(device: str) -> str:
    """The hardware a result comes from, for its provenance: a CPU's model and the vector ISA
    torch's kernels used ("AMD EPYC CPU (AVX2)"), a GPU's name, CUDA version and compute
    capability ("NVIDIA H100 80GB HBM3 (CUDA 12.8, sm_90)"), or "Apple MPS". A lab that ran
    without torch ran no torch kernel: its CPU is named without one ("AMD EPYC CPU")."""
    torch = sys.modules.get("torch")
    if torch is None:
        return f"Apple MPS ({cpu_model()})" if device == "mps" else f"{cpu_model()} CPU"
    if device == "cuda" and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, sm_{major}{minor})"
    if device == "mps":
        return f"Apple MPS ({cpu_model()})"
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{cpu_model()} CPU ({'scalar kernels' if isa == 'DEFAULT' else isa})"


def cpu_model() -> str:
    """The CPU's marketing name without trademarks and clock ("Intel Xeon Platinum 8375C")."""
    import platform
    import re
    import subprocess
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            name = next((line.split(":", 1)[1] for line in cpuinfo
                         if line.lower().startswith(("model name", "hardware"))), "")
    except OSError:
        pass
    if not name.strip() and platform.system() == "Darwin":
        try:
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5, stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            pass
    name = name.strip() or platform.processor() or platform.machine() or "CPU"
    name = re.sub(r"\((?:R|TM|tm|r)\)|\bCPU\b|@.*$|\d+-Core Processor", " ", name)
    return " ".join(name.split()) or "CPU"


def _labcode_traceback(exc: BaseException, root: Path) -> str:
    """The traceback cut to frames inside labcode (the last frame when none is)."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if Path(f.filename).resolve().is_relative_to(root / PACKAGE)]
    kept = inside or frames[-1:]
    lines = ["Traceback (labcode frames only):"]
    for frame in kept:
        shown = os.path.relpath(frame.filename, root) if frame.filename.startswith(str(root)) \
            else frame.filename
        lines.append(f'  File "{shown}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line}")
    lines += traceback.format_exception_only(type(exc), exc)[-1:]
    return "\n".join(l.rstrip("\n") for l in lines)


if __name__ == "__main__":
    main()
