"""One build of a site at a time: `serve` and `build`, or two builds, take turns.

Two builds writing one output folder at once would each remove, rename and replace files the
other has just handled. A build holds an exclusive lock (flock) on `.cache/build.lock` beside
site.toml, the folder where its caches and input manifest live too, and writes its pid there
so that a build that has to wait can say whom it waits for. The kernel drops the lock when
the holder exits, however it exits, so a killed build never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:   # not POSIX: builds are not serialised there
    fcntl = None

LOCK_FILE = Path(".cache") / "build.lock"


def lock_path(config_path: Path | str) -> Path:
    """The lock file of the site whose settings are `config_path` (which need not exist)."""
    return Path(config_path).parent / LOCK_FILE


@contextlib.contextmanager
def one_build_at_a_time(config_path: Path | str,
                        waiting: Callable[[int | None], None] = lambda pid: None) -> Iterator[None]:
    """Hold this site's build lock for the `with` block; when another process holds it, call
    `waiting(its pid, or None if unknown)` once and block until it is released.

    Where the lock file cannot be made (a read-only project), the block runs unlocked.
    """
    fd = _open(lock_path(config_path))
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting(_holder(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        # Unlocked explicitly: a child forked during the build shares this descriptor, and
        # closing ours alone would leave the lock held for as long as it lives.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open(path: Path) -> int | None:
    if fcntl is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None


def _holder(fd: int) -> int | None:
    """The pid the current holder wrote, if it has written it yet."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None
