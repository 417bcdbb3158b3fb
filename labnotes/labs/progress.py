"""Terminal progress while labs run: a bar per build, step/loss/ETA for training labs."""
from __future__ import annotations

import sys
import threading
import time


def _locked(method):
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    locked.__doc__ = method.__doc__
    return locked


class Progress:
    """Writes to stderr: an updating bar on a terminal, one line per lab otherwise."""

    def __init__(self, total: int, enabled: bool = True, why: bool = False, stream=None):
        self.total, self.enabled, self.why = total, enabled, why
        self.stream = stream or sys.stderr
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self._last_width = 0
        self._lock = threading.RLock()   # labs may finish on several worker threads
        self._quiet_until = 0.0          # without a terminal, training lines every 10 s

    def _bar(self) -> str:
        width = 24
        filled = round(width * self.done / self.total) if self.total else width
        return f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total}"

    def _status(self, text: str) -> None:
        if self.tty:
            line = f"\rlabs {self._bar()} {text}"[:200]
            self.stream.write(line + " " * max(0, self._last_width - len(line)))
            self._last_width = len(line)
            self.stream.flush()

    @_locked
    def lab_started(self, ref: str) -> None:
        if self.enabled:
            self._status(f"running {ref}")

    @_locked
    def training(self, ref: str, info: dict) -> None:
        """A training lab reported progress through labcode's callback."""
        if not self.enabled:
            return
        parts = [f"step {info.get('step')}/{info.get('total')}"]
        if info.get("loss") is not None:
            parts.append(f"loss {info['loss']:.3f}")
        if info.get("tokens_per_s"):
            parts.append(f"{info['tokens_per_s']:,.0f} tok/s")
        if info.get("eta_s") is not None:
            parts.append(f"ETA {_duration(info['eta_s'])}")
        text = f"{ref} " + " ".join(parts)
        if self.tty:
            self._status(text)
        elif info.get("step") == info.get("total") or time.monotonic() >= self._quiet_until:
            self._quiet_until = time.monotonic() + 10
            self.stream.write(f"  {text}\n")

    @_locked
    def lab_done(self, ref: str, status: str, wall_s: float = 0.0,
                 reasons: list[str] | None = None) -> None:
        self.done += 1
        if not self.enabled:
            return
        if status == "cached":
            self._status(f"cached {ref}")
            return
        detail = f" in {_duration(wall_s)}" if status == "ran" else ""
        message = f"lab {self.done}/{self.total} {status} {ref}{detail}"
        if self.why and reasons:
            message += f" (why: {'; '.join(reasons)})"
        if self.tty:
            self.stream.write("\r" + message.ljust(self._last_width) + "\n")
            self._last_width = 0
            self._status("")
        else:
            self.stream.write(message + "\n")

    @_locked
    def warn(self, message: str) -> None:
        """A problem the build recovers from (a corrupt cache entry): always shown."""
        self.close()
        self._last_width = 0
        self.stream.write(message + "\n")

    def close(self) -> None:
        if self.tty and self._last_width:
            self.stream.write("\r" + " " * self._last_width + "\r")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"
