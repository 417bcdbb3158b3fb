"""What a lab leaves behind, captured inside the worker: output, files, figures, value.

Each piece works on plain Python objects, so it is tested without a worker process:
    CappedText     what the lab printed, cut past a limit
    FileWatch      files it read and wrote (an audit hook, plus writers that bypass open)
    LabState       the state every lab starts from, whatever ran before it
    save_figures   every matplotlib figure it made, as SVG or PNG
    encode_value   its return value: the JSON prose cites, and how the page shows it
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import random
import sys
import threading
from pathlib import Path

PACKAGE = "labcode"
MAX_TEXT = 100_000
# What a lab may return; anything else fails the lab (its text would change on every run).
RETURN_TYPES = ("None, bool, int, float, str, a list, tuple or dict of these, a dataclass, "
                "a torch tensor, a numpy array or a matplotlib figure")


class UnpublishableValue(TypeError):
    """A lab returned something without a stable, publishable form."""


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
    """Records the files a lab opens while `active` (an audit hook cannot be removed).

    Files are recorded by absolute path; `ignore` folders (the checkout's own state) and
    Python sources are left out. Writers that bypass Python's open (torch.save and
    safetensors write from C++/Rust) are wrapped by `wrap_writers` once torch is imported.
    """

    def __init__(self, ignore: list[Path], root: Path | None = None):
        self.ignore = [str(p) for p in ignore]
        self.root = str(root) if root is not None else None
        self.active = False
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.listed: set[str] = set()
        self.protected: list[str] = []      # folders a lab must not write into (the build's inputs, output)
        self.forbidden: set[str] = set()    # what it wrote there
        sys.addaudithook(self._hook)

    def start(self, protected: list[str] | None = None) -> None:
        self.reads, self.writes, self.listed, self.active = set(), set(), set(), True
        self.protected, self.forbidden = list(protected or []), set()

    def stop(self) -> None:
        self.active = False

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            self.saw(path, bool(writing))
        elif event in ("os.rename", "os.replace") and len(args) >= 2:
            self.saw(args[1], True)
        elif event in ("os.listdir", "os.scandir") and args:
            self.saw_listing(args[0])

    def saw_listing(self, path) -> None:
        """Record a folder the lab listed (a glob over posts): adding a file there is a change.

        Only folders inside the project count, not the project root or anything on sys.path,
        which Python's importer lists on its own.
        """
        if self.root is None or not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(path))
        if not path.startswith(self.root + os.sep) or path in sys.path:
            return
        if not any(path == p or path.startswith(p + os.sep) for p in self.ignore):
            self.listed.add(path)

    def saw(self, path, writing: bool) -> None:
        """Record one access to `path` (reading unless `writing`)."""
        if not self.active or not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(path))
        if writing and any(path.startswith(p + os.sep) for p in self.protected):
            self.forbidden.add(path)
        if path.endswith((".py", ".pyc")) or path.startswith(("/proc/", "/dev/", "/sys/")):
            return
        if any(path == p or path.startswith(p + os.sep) for p in self.ignore):
            return
        if writing:
            self.writes.add(path)
            self.reads.discard(path)
        elif path not in self.writes and os.path.isfile(path):
            self.reads.add(path)

    def wrap_writers(self) -> None:
        """Record the path argument of savers that write outside Python's open."""
        import torch
        targets = [(torch, "save", 1, True), (torch, "load", 0, False)]
        try:
            import safetensors.torch as st
            targets += [(st, "save_file", 1, True), (st, "load_file", 0, False)]
        except ImportError:
            pass
        for owner, name, position, writing in targets:
            original = getattr(owner, name)
            if getattr(original, "_watched", False):
                continue
            setattr(owner, name, self._wrapped(original, position, writing))

    def _wrapped(self, original, position: int, writing: bool):
        watch = self

        def wrapped(*args, **kwargs):
            target = args[position] if len(args) > position else \
                kwargs.get("f", kwargs.get("filename"))
            if isinstance(target, (str, os.PathLike)):
                watch.saw(target, writing)
            return original(*args, **kwargs)

        wrapped._watched = True
        wrapped.__wrapped__ = original
        wrapped.__doc__ = original.__doc__
        return wrapped


class LabState:
    """The state each lab starts from: seeds, threads, dtype, precision, plotting defaults.

    Taken when the worker is ready; `reset` puts it back before every lab, so a lab's
    result does not depend on what ran before it in the same worker.
    """

    def __init__(self):
        self.torch_state: dict = {}   # taken by `take_torch_state` once torch is imported
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.thread_ids = {t.ident for t in threading.enumerate()}
        self.child_pids = set(child_processes())

    def take_torch_state(self, torch) -> None:
        """torch's defaults, taken right after it is imported and before any lab uses it."""
        self.torch_state = {"torch": torch, "threads": torch.get_num_threads(),
                            "dtype": torch.get_default_dtype(),
                            "matmul": torch.get_float32_matmul_precision(),
                            "deterministic": torch.are_deterministic_algorithms_enabled()}
        self.thread_ids |= {t.ident for t in threading.enumerate()}

    def reset(self, seed: int) -> None:
        os.chdir(self.cwd)
        os.environ.clear()
        os.environ.update(self.environ)
        random.seed(seed)
        if self.torch_state:
            torch, state = self.torch_state["torch"], self.torch_state
            torch.set_num_threads(state["threads"])
            torch.set_default_dtype(state["dtype"])
            torch.set_float32_matmul_precision(state["matmul"])
            torch.use_deterministic_algorithms(state["deterministic"])
            torch.set_grad_enabled(True)
            if "torch._dynamo" in sys.modules:   # torch.compile's caches and hooks from a lab before
                sys.modules["torch._dynamo"].reset()
            torch.set_printoptions(profile="default")
            if torch.backends.cudnn.is_available():
                torch.backends.cudnn.benchmark = False
            torch.manual_seed(seed)      # every device's generator
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(seed)
        if "matplotlib" in sys.modules:
            import matplotlib
            matplotlib.rcdefaults()
            matplotlib.rcParams["svg.hashsalt"] = "lab-notes"
            close_figures()

    def leftovers(self) -> list[str]:
        """Threads and child processes a lab started and left running."""
        left = [f"thread {t.name}" for t in threading.enumerate()
                if t.ident not in self.thread_ids and t.is_alive()]
        known = set(self.child_pids)
        if "multiprocessing" in sys.modules:
            children = sys.modules["multiprocessing"].active_children()
            left += [f"process {p.pid}" for p in children]
            known |= {p.pid for p in children}
        # A child made by os.fork or subprocess: killed with the worker, so say so.
        left += [f"process {pid}" for pid in child_processes() if pid not in known]
        return left


def child_processes() -> list[int]:
    """Live (not zombie) child processes of this one, from /proc (none where there is no /proc)."""
    me, children = os.getpid(), []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me and state not in ("Z", "X"):
            children.append(int(entry))
    return sorted(children)


def close_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def lab_figures(value) -> list:
    """Every matplotlib figure a lab made: those pyplot holds open, then figures it returned."""
    if "matplotlib.pyplot" not in sys.modules:
        return []
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    figures = [plt.figure(n) for n in plt.get_fignums()]
    returned = value if isinstance(value, (list, tuple)) else [value]
    figures += [f for f in returned if isinstance(f, Figure) and f not in figures]
    return figures


def figure_image(figure) -> tuple[bytes, str]:
    """A figure as published: (bytes, "svg") for line plots, (bytes, "png") when it shows an image."""
    raster = any(ax.images or any(type(c).__name__ == "QuadMesh" for c in ax.collections)
                 for ax in figure.axes)
    if raster:
        return figure_png(figure, dpi=120), "png"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue(), "svg"


def figure_png(figure, dpi: int) -> bytes:
    """A figure as PNG bytes, with no software stamp (same plot, same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def figure_alt(figure, number: int, ref: str) -> str:
    """A figure's alt text: its title, else its place among the lab's figures."""
    return _figure_title(figure) or f"Figure {number} of {ref}"


def save_figures(value, figdir: Path, ref: str) -> list[dict]:
    """Save every figure the lab made: SVG for line plots, PNG when it shows an image.

    An SVG figure also gets a small PNG `preview`: link previews (OpenGraph, Twitter cards)
    do not show SVG, so a page whose first figure is a plot shares this image instead.
    """
    figures = lab_figures(value)
    saved = []
    if figures:
        figdir.mkdir(parents=True, exist_ok=True)
    for number, figure in enumerate(figures, start=1):
        data, kind = figure_image(figure)
        entry = {"file": _write_named(figdir, data, kind), "alt": figure_alt(figure, number, ref)}
        if kind == "svg":
            entry["preview"] = _write_named(figdir, figure_png(figure, dpi=100), "png")
        saved.append(entry)
    close_figures()
    return saved


def _write_named(figdir: Path, data: bytes, kind: str) -> str:
    """Write a figure's bytes under a name made from them (same plot, same file)."""
    name = f"{hashlib.sha256(data).hexdigest()[:16]}.{kind}"
    (figdir / name).write_bytes(data)
    return name


def _figure_title(figure) -> str:
    if figure._suptitle is not None and figure._suptitle.get_text():
        return figure._suptitle.get_text()
    for ax in figure.axes:
        if ax.get_title():
            return ax.get_title()
    return ""


def _is_figure(value) -> bool:
    return "matplotlib.figure" in sys.modules and \
        isinstance(value, sys.modules["matplotlib.figure"].Figure)


def _is_tensor(value) -> bool:
    return "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor)


def _is_numpy(value) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def to_data(value, where: str = "the returned value"):
    """The returned value as JSON for citations; UnpublishableValue for what has no stable form."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _is_tensor(value) or _is_numpy(value):
        if (value.numel() if _is_tensor(value) else value.size) > MAX_DATA_NUMBERS:
            return _array_summary(value)
        items = value.detach().cpu().tolist() if _is_tensor(value) else value.tolist()
        return to_data(items, where)
    if _is_figure(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        data = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise UnpublishableValue(f"{where} has a key of type {type(key).__name__}; "
                                  "use str keys")
            data[str(key)] = to_data(item, f"{where}[{key!r}]")
        return data
    if isinstance(value, (list, tuple)):
        return [to_data(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise UnpublishableValue(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, "
                             f"which has no stable text form; a lab may return {RETURN_TYPES}")


# A tensor or array with more numbers than this (torch's own threshold for printing a
# shortened tensor) is kept as a summary: a 3000x3000 result made an 81 MB cache entry.
MAX_DATA_NUMBERS = 1000


def _array_summary(value) -> dict:
    """What prose can cite of a large tensor or array: its shape, dtype, size, min, max, mean."""
    if _is_tensor(value):
        numbers = value.detach().cpu()
        dtype = str(value.dtype).replace("torch.", "")
        stats = lambda: (numbers.min().item(), numbers.max().item(), numbers.double().mean().item())  # noqa: E731
        size = value.numel()
    else:
        numbers, dtype, size = value, str(value.dtype), int(value.size)
        stats = lambda: (numbers.min().item(), numbers.max().item(), float(numbers.mean()))  # noqa: E731
    summary = {"shape": list(value.shape), "dtype": dtype, "numbers": size,
               "note": f"{size:,} numbers, too many to keep: the page shows them shortened and this "
                       "summary is kept; return the numbers prose cites"}
    try:
        low, high, mean = stats()
        summary.update(min=to_data(low), max=to_data(high), mean=to_data(mean))
    except (RuntimeError, TypeError, ValueError):   # a dtype without an order or a mean
        pass
    return summary


def describe_value(value) -> dict | None:
    """How the page shows a lab's return value: a tensor, a table or text."""
    if value is None or _all_figures(value):
        return None
    if _is_tensor(value):
        import torch
        torch.set_printoptions(precision=4, sci_mode=False)
        try:
            text = str(value.detach().cpu())
        finally:
            torch.set_printoptions(profile="default")
        return {"kind": "tensor", "shape": list(value.shape),
                "dtype": str(value.dtype).replace("torch.", ""), "text": text}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)) and value and all(isinstance(r, dict) for r in value):
        return _table(value)
    if isinstance(value, dict) and value:
        tables = [v for v in value.values() if isinstance(v, (list, tuple)) and v
                  and all(isinstance(r, dict) for r in v)]
        scalars = {k: v for k, v in value.items() if _scalar(v)}
        if len(tables) == 1:      # the table is what a reader sees; the rest is for prose
            return _table(tables[0])
        if scalars:
            return {"kind": "table", "columns": ["name", "value"],
                    "rows": [[str(k), _cell(v)] for k, v in scalars.items()]}
    if isinstance(value, str):
        return {"kind": "text", "text": value[:MAX_TEXT]}
    import json
    return {"kind": "text", "text": json.dumps(to_data(value), indent=1)[:MAX_TEXT]}


def _table(rows) -> dict:
    table = [{str(k): v for k, v in row.items()} for row in rows]
    columns: list[str] = []
    for row in table:
        columns += [k for k in row if k not in columns]
    return {"kind": "table", "columns": columns,
            "rows": [[_cell(row.get(c)) for c in columns] for row in table]}


def _all_figures(value) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(_is_figure(v) for v in items)


def _scalar(value) -> bool:
    if _is_tensor(value):
        return value.numel() == 1
    if _is_numpy(value):
        return value.size == 1
    return value is None or isinstance(value, (bool, int, float, str))


def _cell(value):
    """A table cell as JSON: numbers stay numbers (the page formats them), the rest text."""
    if (_is_tensor(value) and value.numel() == 1) or (_is_numpy(value) and value.size == 1):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return str(to_data(value))


def encode_value(value) -> tuple[dict | None, object]:
    """(how the page shows it, the JSON prose cites); UnpublishableValue when it cannot be published."""
    data = to_data(value)
    return describe_value(value), data
