"""Drive the warm worker: send a lab, wait with a deadline, kill and replace on timeout."""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from labnotes.errors import BuildError
from labnotes.labs.runtime import worker_python


@dataclass
class RunRequest:
    """What the worker needs to run one lab."""

    ref: str
    args: tuple[tuple[str, str], ...]
    device: str
    seed: int
    figdir: Path
    timeout: float
    max_output_chars: int
    progress: bool = False
    quick: bool = False          # passed to a lab that takes `quick`
    protected: tuple[str, ...] = ()   # absolute folders the lab must not write into


@dataclass
class RunOutcome:
    """The worker's answer, or a timeout / crash seen from outside."""

    ok: bool
    output: str = ""
    output_dropped: int = 0
    value: dict | None = None          # how the page shows the return value
    data: object = None                # the return value as JSON, for citations
    figures: list[dict] = field(default_factory=list)
    error: str = ""
    traceback: str = ""
    wall_s: float = 0.0
    modules: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)     # folders it listed
    device_name: str = ""
    torch_version: str = ""
    leftovers: list[str] = field(default_factory=list)   # threads/processes the lab left running


class WorkerError(BuildError):
    """The lab worker could not start: reported as a one-line error like bad input."""

    def __init__(self, message: str):
        super().__init__(None, message)


class Worker:
    """One warm worker process for one device; restarted after a timeout or a crash."""

    def __init__(self, root: Path, env: dict[str, str], ignore: list[str]):
        self.root, self.env, self.ignore = Path(root), env, ignore
        self.process: subprocess.Popen | None = None
        self.torch_version = ""
        self._next_id = 0
        self._buffer = b""

    def start(self) -> None:
        command = [worker_python(self.root), "-m", "labnotes.labs.worker", "--root",
                   str(self.root)]
        for path in self.ignore:
            command += ["--ignore", path]
        self.process = subprocess.Popen(
            command, cwd=self.root, env=self.env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self._buffer = b""
        ready = self._read_message(deadline=time.monotonic() + 120)
        if ready is None or ready.get("type") != "ready":
            self.stop()
            raise WorkerError(f"the lab worker ({command[0]}) did not start; run `make setup` "
                              "in the project folder and try again")
        self.torch_version = ready["torch"]

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                stream.close()
            self.process = None

    def run(self, request: RunRequest,
            on_progress: Callable[[dict], None] | None = None) -> RunOutcome:
        """Run one lab; on timeout the worker is killed and the next lab gets a new one."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        self._next_id += 1
        message = {"id": self._next_id, "ref": request.ref, "args": list(request.args),
                   "device": request.device, "seed": request.seed,
                   "figdir": str(request.figdir), "progress": request.progress,
                   "quick": request.quick, "protected": list(request.protected),
                   "max_output_chars": request.max_output_chars}
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return RunOutcome(ok=False, error="the lab worker died before the lab started")
        started = time.monotonic()
        deadline = started + request.timeout
        while True:
            reply = self._read_message(deadline)
            if reply is None:
                timed_out = time.monotonic() >= deadline
                self.stop()
                if timed_out:
                    return RunOutcome(ok=False, wall_s=time.monotonic() - started,
                                      error=f"timed out after {request.timeout:g} s "
                                      "(raise it with `timeout:` in the lab or [labs] timeout "
                                      "in site.toml)")
                return RunOutcome(ok=False, wall_s=time.monotonic() - started,
                                  error="the lab worker died while running this lab "
                                  "(out of memory, or the lab killed its own process?)")
            if reply.get("type") == "progress":
                if on_progress is not None:
                    on_progress(reply)
                continue
            fields = {k: v for k, v in reply.items() if k in RunOutcome.__dataclass_fields__}
            outcome = RunOutcome(**fields)
            if outcome.leftovers:
                # What a lab left running must not reach the next lab: a new worker runs it.
                self.stop()
            return outcome

    def _read_message(self, deadline: float) -> dict | None:
        """One JSON line from the worker, or None at the deadline or end of stream."""
        stream = self.process.stdout
        selector = selectors.DefaultSelector()
        selector.register(stream, selectors.EVENT_READ)
        try:
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(timeout=left):
                    return None
                chunk = os.read(stream.fileno(), 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        finally:
            selector.close()
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)
