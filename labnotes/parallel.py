"""Work spread over the machine's cores, on forked processes.

A forked child starts with the parent's memory: the work it runs (closures over documents,
templates, caches) is inherited, never pickled; only each batch's result travels back. The
child freezes what it inherited out of the cyclic collector's sight (a build pauses that
collector; a child that renders thousands of pages runs it, over its own objects only).
"""
from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

# The work of the pool being started: a forked child finds it here.
_WORK: Callable[[int], Any] | None = None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether this platform forks (Linux and other Unixes; not Windows)."""
    import multiprocessing
    return "fork" in multiprocessing.get_all_start_methods()


def map_batches(work: Callable[[int], Any], batches: int, processes: int) -> list[Any]:
    """`work(i)` for each batch i in range(batches), on `processes` forked processes, results
    in batch order. `work` must not raise: it returns its error as part of its result."""
    import multiprocessing

    global _WORK
    _WORK = work
    try:
        with multiprocessing.get_context("fork").Pool(min(processes, batches), initializer=_start_child) as pool:
            return pool.map(_run, range(batches), chunksize=1)
    finally:
        _WORK = None


def _start_child() -> None:
    gc.freeze()
    gc.enable()


def _run(batch: int) -> Any:
    return _WORK(batch)
