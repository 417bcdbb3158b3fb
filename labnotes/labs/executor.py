"""The executor: run a list of independent lab requests on up to N warm workers.

It decides nothing: which labs run, in what order and why is the plan's (plan.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue

from labnotes.labs.runner import RunOutcome, RunRequest, Worker


class WorkerPool:
    """Up to `size` warm workers for one device, started only when a lab has to run."""

    def __init__(self, root: Path, env: dict[str, str], ignore: list[str], size: int = 1):
        self.root, self.env, self.ignore, self.size = root, env, ignore, max(1, size)
        self.idle: Queue[Worker] = Queue()
        self.started: list[Worker] = []
        self.lock = threading.Lock()

    def _take(self) -> Worker:
        with self.lock:
            if self.idle.empty() and len(self.started) < self.size:
                worker = Worker(self.root, self.env, ignore=self.ignore)
                self.started.append(worker)
                return worker
        return self.idle.get()

    def run(self, request: RunRequest, on_progress: Callable[[dict], None] | None = None
            ) -> RunOutcome:
        worker = self._take()
        try:
            return worker.run(request, on_progress=on_progress)
        finally:
            self.idle.put(worker)

    def stop(self) -> None:
        for worker in self.started:
            worker.stop()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class WarmPools:
    """Worker pools kept from one build to the next, for a process that builds again and again
    (`serve`): a lab rerun by an edit then finds its worker with torch already imported
    instead of paying seconds for a new one. A worker forgets labcode before every lab and
    resets its state, exactly as between two labs of one build; a pool is kept per set of
    everything that makes workers differ (project, environment, ignored paths, size)."""

    def __init__(self):
        self._pools: dict[tuple, WorkerPool] = {}
        self._lock = threading.Lock()

    def pool(self, root: Path, env: dict[str, str], ignore: list[str], size: int = 1) -> WorkerPool:
        key = (str(Path(root).resolve()), tuple(sorted(env.items())), tuple(ignore), size)
        with self._lock:
            if key not in self._pools:
                self._pools[key] = WorkerPool(root, env, ignore, size)
            return self._pools[key]

    def stop(self) -> None:
        """Stop every kept worker (when the process is done building)."""
        with self._lock:
            for pool in self._pools.values():
                pool.stop()
            self._pools.clear()


def execute(pool: WorkerPool, requests: list[RunRequest], *,
            on_start: Callable[[RunRequest], None] = lambda request: None,
            on_progress: Callable[[RunRequest, dict], None] = lambda request, info: None,
            stop_after_failure: bool = False) -> list[RunOutcome | None]:
    """Run `requests` (independent of each other) and return their outcomes in order.

    With one worker they run one after another, and `stop_after_failure` leaves the rest
    unrun (None); with several they share the workers.
    """
    def run(request: RunRequest) -> RunOutcome:
        on_start(request)
        return pool.run(request, on_progress=lambda info: on_progress(request, info))

    if pool.size > 1 and len(requests) > 1:
        with ThreadPoolExecutor(max_workers=pool.size) as threads:
            return list(threads.map(run, requests))
    outcomes: list[RunOutcome | None] = []
    failed = False
    for request in requests:
        outcome = None if failed and stop_after_failure else run(request)
        failed = failed or (outcome is not None and not outcome.ok)
        outcomes.append(outcome)
    return outcomes
