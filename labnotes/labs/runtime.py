"""Facts about where labs run, each decided in one place: device, seed, worker environment.

Nothing here imports torch: the device is chosen from what is installed and what the
machine exposes, so a build can refuse `--device cuda` before it starts a worker.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
import zlib
from pathlib import Path

from labnotes.errors import BuildError

DEVICES = ("cpu", "cuda", "mps")
# Folders a lab's file accesses are never recorded in (the engine's own state, the checkout).
WORKER_IGNORE = (".git", ".venv", "output", ".cache/render")


class UsageError(BuildError):
    """A command-line choice that cannot work here: one line, exit status 2."""

    exit_status = 2

    def __init__(self, message: str):
        super().__init__(None, message)


def lab_seed(ref: str) -> int:
    """The seed every run of `ref` starts from, whatever ran before it.

    It comes from the lab's own name, the qualified name after the `:` (`eps_demo` in
    `labcode.labs.layernorm:eps_demo`), not from its module: moving a lab to another module
    does not reseed it, so its published numbers stay the same.
    """
    return zlib.crc32(ref.rpartition(":")[2].encode()) & 0x7FFFFFFF


def torch_version() -> str:
    """The installed torch release (e.g. 2.13.0+cpu), or "none"."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cuda_present() -> bool:
    """A CUDA build of torch and an NVIDIA driver on this machine."""
    if torch_version().endswith("+cpu"):
        return False
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0") or \
        shutil.which("nvidia-smi") is not None


def mps_present() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def choose_device(requested: str | None, named: str = "--device") -> str:
    """--device or [labs] device when this machine has it, else CUDA, then MPS, then CPU.

    An explicit device the machine lacks is a usage error, said before any lab starts; `named`
    is where it was asked for ("--device", or site.toml's "[labs] device").
    """
    if requested:
        fix = ("leave --device out or use --device cpu" if named == "--device"
               else f'remove {named} or set it to "cpu"')
        if requested == "cuda" and not cuda_present():
            raise UsageError(f"{named} cuda: this machine has no CUDA GPU that torch "
                             f"{torch_version()} can use; {fix}")
        if requested == "mps" and not mps_present():
            raise UsageError(f"{named} mps: Apple's MPS is only on Apple-silicon Macs; {fix}")
        return requested
    if cuda_present():
        return "cuda"
    return "mps" if mps_present() else "cpu"


def device_for(option: str | None, site_device: str | None, site_toml: Path | None = None) -> str:
    """Where a build runs labs: --device (`option`), else site.toml's [labs] device, else the
    best this machine has; an error names whichever asked for a device the machine lacks
    (site.toml's with its line)."""
    if option:
        return choose_device(option)
    try:
        return choose_device(site_device, "[labs] device")
    except UsageError as error:
        if site_toml is None:
            raise
        from labnotes.config import line_of_key
        located = BuildError(site_toml, error.message, line_of_key(site_toml, "labs", "device"))
        located.exit_status = 2
        raise located from None


def reusable_devices(device: str, explicit: bool) -> list[str]:
    """Devices whose cached results this build may publish.

    A CPU machine republishes results made on an accelerator (SPEC 4) unless asked
    for the CPU explicitly, which forces them to be made here.
    """
    return [device] if explicit or device != "cpu" else list(DEVICES)


def worker_python(root: Path) -> str:
    """A Python that has torch: this one, else the project's .venv (made by `make setup`)."""
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    for candidate in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    raise BuildError(None, f"torch is not installed in this Python ({sys.executable}): run "
                     "`make setup` in the project folder, then `.venv/bin/python build.py ...` "
                     "(or `source .venv/bin/activate` and `python build.py ...`)")


# tiktoken's GPT-2 encoding, as tiktoken downloads and caches it (file name: sha1 of the URL).
R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
R50K_CACHE_NAME = "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4"


def missing_encoding_hint(error: str, cache_dir: str | None) -> str:
    """What to add to a lab's error when it failed for want of tiktoken's GPT-2 encoding: both
    ways to get it (tiktoken's own download, and a copy through TIKTOKEN_SOURCE); "" otherwise."""
    if "encoding not found" not in error and "openaipublic.blob.core.windows.net" not in error:
        return ""
    where = f"TIKTOKEN_CACHE_DIR ({cache_dir})" if cache_dir else "TIKTOKEN_CACHE_DIR"
    return (f"; on a machine online, tiktoken downloads it on first use from {R50K_URL} and caches "
            f"it in {where} as {R50K_CACHE_NAME}: `make setup` does that; offline, put that file in "
            "a folder DIR and run `make setup TIKTOKEN_SOURCE=DIR`")


def worker_env(root: Path, tiktoken_cache_dir: str) -> dict[str, str]:
    """The environment a lab worker starts with."""
    env = dict(os.environ)
    env.setdefault("TIKTOKEN_CACHE_DIR", str(root / tiktoken_cache_dir))
    env["MPLBACKEND"] = "Agg"
    generator = str(Path(__file__).resolve().parents[2])   # where labnotes itself lives
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(root), generator] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    return env
