"""The warm worker: a process that imports torch once and then runs labs on request.

It reads one JSON request per line on stdin and answers with JSON lines on its
original stdout (progress messages, then one result). What a lab prints is
captured, so nothing it writes can break the protocol.

What a lab depended on is recorded while it runs:
- modules: labcode is dropped from sys.modules before each lab, so afterwards
  sys.modules holds exactly the labcode modules this lab imported;
- data files: an audit hook sees every file opened under the project root.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

PACKAGE = "labcode"


class CappedText(io.TextIOBase):
    """A text stream that keeps the first `limit` characters and counts the rest."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.kept, self.dropped = limit, [], 0, 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


class FileWatch:
    """Records files opened under `root` while `active` (an audit hook cannot be removed)."""

    def __init__(self, root: Path, ignore: list[Path]):
        self.root = str(root)
        self.ignore = [str(p) for p in ignore]
        self.active = False
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        sys.addaudithook(self._hook)

    def start(self) -> None:
        self.reads, self.writes, self.active = set(), set(), True

    def stop(self) -> None:
        self.active = False

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event != "open":
            return
        path, mode, flags = (tuple(args) + (None, None))[:3]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(path))
        if not path.startswith(self.root + os.sep) or path.endswith((".py", ".pyc")):
            return
        if any(path == p or path.startswith(p + os.sep) for p in self.ignore):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        rel = os.path.relpath(path, self.root)
        if writing:
            self.writes.add(rel)
        elif rel not in self.writes:
            self.reads.add(rel)


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
    os.chdir(root)
    sys.path.insert(0, str(root))
    os.environ.setdefault("MPLBACKEND", "Agg")

    import torch  # noqa: F401  (paid once for the whole build)
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "lab-notes"

    watch = FileWatch(root, [root / PACKAGE] + [root / p for p in opts.ignore])
    send = lambda message: protocol.write(json.dumps(message) + "\n")  # noqa: E731
    send({"type": "ready", "torch": torch.__version__})
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            send(run_lab(request, root, watch, send))


def run_lab(request: dict, root: Path, watch: FileWatch, send) -> dict:
    """Run one lab; return the result message."""
    import torch

    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    seed = request["seed"]
    random.seed(seed)
    torch.manual_seed(seed)
    with contextlib.suppress(ImportError):
        import numpy
        numpy.random.seed(seed)

    captured = CappedText(request["max_output_chars"])
    result: dict = {"type": "result", "id": request["id"], "ok": True}
    device = request["device"]
    start = time.perf_counter()
    watch.start()
    try:
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("the build asked for CUDA but torch sees no GPU here; "
                               "use --device cpu")
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            module_name, qualname = request["ref"].split(":", 1)
            module = importlib.import_module(module_name)
            _check_origin(module, root)
            target = module
            for part in qualname.split("."):
                target = getattr(target, part)
            kwargs = {name: _literal(source) for name, source in request["args"]}
            params = _parameters(target)
            if "device" in params:
                kwargs["device"] = device
            if "quick" in params:
                kwargs["quick"] = bool(request.get("quick"))
            if "progress" in params and request.get("progress"):
                kwargs["progress"] = _progress_sender(send, request["id"])
            value = target(**kwargs)
            if device == "cuda":
                torch.cuda.synchronize()
        result["wall_s"] = time.perf_counter() - start
        result["figures"] = _save_figures(value, Path(request["figdir"]), request["ref"])
        result["value"] = describe_value(value)
    except BaseException as exc:  # a lab may raise anything, SystemExit included
        result.update(ok=False, wall_s=time.perf_counter() - start,
                      error=f"{type(exc).__name__}: {exc}".strip(),
                      traceback=_labcode_traceback(exc, root))
        _close_figures()
    finally:
        watch.stop()
    result["output"] = captured.getvalue()
    result["output_dropped"] = captured.dropped
    result["modules"] = sorted(m for m in sys.modules
                               if m == PACKAGE or m.startswith(PACKAGE + "."))
    result["reads"] = sorted(watch.reads)
    result["writes"] = sorted(watch.writes)
    result["device_name"] = device_name(device)
    result["torch_version"] = torch.__version__
    return result


def _literal(source: str):
    import ast
    return ast.literal_eval(source)


def _parameters(target) -> set[str]:
    import inspect
    try:
        return set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return set()


def _check_origin(module, root: Path) -> None:
    package = sys.modules[PACKAGE]
    origin = Path(package.__file__).resolve().parent
    if origin != root / PACKAGE:
        raise ImportError(f"labcode was imported from {origin}, not from {root / PACKAGE}")


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
    """A label for the provenance line: "CPU", "NVIDIA H100 80GB HBM3", "Apple MPS"."""
    import torch
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return {"mps": "Apple MPS"}.get(device, "CPU")


def _figures_of(value) -> list:
    if "matplotlib.pyplot" not in sys.modules:
        return []
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    figures = [plt.figure(n) for n in plt.get_fignums()]
    returned = value if isinstance(value, (list, tuple)) else [value]
    figures += [f for f in returned if isinstance(f, Figure) and f not in figures]
    return figures


def _close_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def _save_figures(value, figdir: Path, ref: str) -> list[dict]:
    """Save every figure the lab made: SVG for line plots, PNG when it shows an image."""
    figures = _figures_of(value)
    saved = []
    figdir.mkdir(parents=True, exist_ok=True)
    for number, figure in enumerate(figures, start=1):
        raster = any(ax.images or any(type(c).__name__ == "QuadMesh" for c in ax.collections)
                     for ax in figure.axes)
        buffer = io.BytesIO()
        if raster:
            figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight",
                           metadata={"Software": None})
        else:
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
        data = buffer.getvalue()
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.{'png' if raster else 'svg'}"
        (figdir / name).write_bytes(data)
        saved.append({"file": name, "alt": _figure_title(figure) or f"Figure {number} of {ref}"})
    _close_figures()
    return saved


def _figure_title(figure) -> str:
    if figure._suptitle is not None and figure._suptitle.get_text():
        return figure._suptitle.get_text()
    for ax in figure.axes:
        if ax.get_title():
            return ax.get_title()
    return ""


def describe_value(value) -> dict | None:
    """A JSON description of a lab's return value: tensor, table or text."""
    if value is None or _is_figures(value):
        return None
    try:
        import torch
        if isinstance(value, torch.Tensor):
            with _tensor_print():
                text = str(value.detach().cpu())
            return {"kind": "tensor", "shape": list(value.shape),
                    "dtype": str(value.dtype).replace("torch.", ""), "text": text}
    except ImportError:
        pass
    if isinstance(value, (list, tuple)) and value and all(isinstance(r, dict) for r in value):
        table = [{str(k): v for k, v in row.items()} for row in value]
        columns: list[str] = []
        for row in table:
            columns += [k for k in row if k not in columns]
        rows = [[_cell(row.get(c, "")) for c in columns] for row in table]
        return {"kind": "table", "columns": columns, "rows": rows}
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        return {"kind": "table", "columns": ["name", "value"],
                "rows": [[str(k), _cell(v)] for k, v in value.items()]}
    text = value if isinstance(value, str) else repr(value)
    return {"kind": "text", "text": text[:100_000]}


def _is_figures(value) -> bool:
    from matplotlib.figure import Figure
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(isinstance(v, Figure) for v in items)


@contextlib.contextmanager
def _tensor_print():
    import torch
    torch.set_printoptions(precision=4, sci_mode=False)
    try:
        yield
    finally:
        torch.set_printoptions(profile="default")


def _cell(value):
    """A table cell as JSON: numbers stay numbers (the page formats them), the rest text."""
    try:
        import torch
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
    except ImportError:
        pass
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


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
