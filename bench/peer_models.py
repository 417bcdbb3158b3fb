"""The peers' GPT models, vendored unchanged under bench/peers/ (see its README), loaded by path.

A bench asks for a peer's module with `load_peer`; when the file is absent (or will not import)
it gets None and a printed note, and leaves that peer's row out.
"""
import contextlib
import importlib.util
import io
from pathlib import Path

PEERS = Path(__file__).resolve().parent / "peers"
NANOGPT = "nanogpt/model.py"                                      # karpathy/nanoGPT
LLMS_FROM_SCRATCH = "llms_from_scratch/gpt_ch04.py"               # the book's chapter 4 GPT
LLMS_FROM_SCRATCH_KV = "llms_from_scratch/gpt_with_kv_cache_optimized.py"


def load_peer(relative: str):
    """The module at bench/peers/`relative`, or None after a note saying why it is skipped."""
    path = PEERS / relative
    if not path.is_file():
        print(f"note: skipping {relative}: not in bench/peers/ (see bench/peers/README.md)")
        return None
    spec = importlib.util.spec_from_file_location(f"peer_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        print(f"note: skipping {relative}: {error}")
        return None
    return module


def quietly(build):
    """Call `build()` without its prints (nanoGPT announces its parameter count)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return build()
