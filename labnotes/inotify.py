"""Wake `serve`'s watcher when the kernel says a watched folder changed (Linux inotify).

Polling a site's inputs every 0.05 s costs a tenth of a core on 1,000 posts while nothing
happens. With inotify the watcher sleeps until a watched folder reports an event, then looks
(so what counts as a change is still decided by comparing file stats, in one place). Where
inotify is missing (macOS, Windows) or refuses (watch limit reached), `ChangeSignal.open`
returns None and the watcher polls as before.
"""
from __future__ import annotations

import ctypes
import os
import select
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

# <sys/inotify.h>: what changes a folder's listing or a file in it
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_ONLYDIR = 0x400, 0x800, 0x1000000
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, getattr(os, "O_CLOEXEC", 0o2000000)
_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
         | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR)
# Saving a file is several events (truncate, writes, close, maybe a rename): wait this long
# for the burst to end, so one save is one look.
_SETTLE_SECONDS = 0.01


class ChangeSignal:
    """An inotify instance watching folders; `wait` returns when one of them had an event."""

    def __init__(self, libc, fd: int, folders: Iterable[Path], skip: Iterable[Path]):
        self._libc = libc
        self._fd = fd
        self._folders = [Path(f) for f in folders]
        self._skip = {Path(p).absolute() for p in skip}
        self._watched: set[Path] = set()
        self._wake_read, self._wake_write = os.pipe()
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, folders: Iterable[Path], skip: Iterable[Path] = ()) -> "ChangeSignal | None":
        """A signal for `folders` and every folder below them (hidden ones, `__pycache__` and
        `skip` left out), or None where inotify cannot watch them all."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            # The C library is already loaded into every Linux Python: no `find_library`, which
            # runs ldconfig.
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        signal = cls(libc, fd, folders, skip)
        if not signal.watch_new_folders():
            signal.close()
            return None
        return signal

    def watch_new_folders(self) -> bool:
        """Add a watch on each folder made since the last call; False when the kernel refuses one."""
        for top in self._folders:
            for folder in _folders_under(top, self._skip):
                if folder in self._watched:
                    continue
                if self._libc.inotify_add_watch(self._fd, os.fsencode(folder), _MASK) < 0:
                    if ctypes.get_errno() in (2, 20):   # ENOENT, ENOTDIR: gone meanwhile
                        continue
                    return False
                self._watched.add(folder)
        return True

    def wait(self, timeout: float) -> bool:
        """Block until an event (True) or `timeout` seconds (False); `interrupt` ends it early."""
        ready, _, _ = select.select([self._fd, self._wake_read], [], [], timeout)
        if self._fd not in ready:
            return False
        while select.select([self._fd], [], [], _SETTLE_SECONDS)[0]:
            try:
                os.read(self._fd, 65536)
            except BlockingIOError:
                break
        if not self.watch_new_folders():     # a new folder the kernel will not watch: the
            self._folders = []                # periodic look still sees its files
        return True

    def interrupt(self) -> None:
        """Make a `wait` in another thread return now (nothing once closed)."""
        with self._lock:   # a closed descriptor's number may already belong to another file
            if not self._closed:
                os.write(self._wake_write, b"x")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._fd, self._wake_read, self._wake_write):
                os.close(fd)


def _folders_under(top: Path, skip: set[Path]) -> list[Path]:
    """`top` (or the folder holding it, for a file) and every folder below, as absolute paths."""
    top = Path(top).absolute()
    if not top.is_dir():
        return [top.parent] if top.parent.is_dir() else []
    found, pending = [], [top]
    while pending:
        folder = pending.pop()
        if folder in skip:
            continue
        found.append(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".") \
                    and entry.name != "__pycache__":
                pending.append(Path(entry.path))
    return found
