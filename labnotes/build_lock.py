"""One build of a site at a time: `serve` and `build`, or two builds, take turns.

Two builds writing one output folder at once would each remove, rename and replace files the
other has just handled. A build holds an exclusive lock (flock) on the project folder, the one
holding site.toml, where its caches and input manifest live too. Locking the folder itself
writes nothing, so a build refused before it starts leaves the project exactly as it was; the
holder's pid, for the line of a build that has to wait, comes from the kernel's list of locks
(/proc/locks). The kernel drops the lock when the holder exits, however it exits, so a killed
build never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:   # not POSIX: builds are not serialised there
    fcntl = None


def project_folder(config_path: Path | str) -> Path:
    """The folder whose lock a build of the site configured by `config_path` holds."""
    return Path(config_path).parent


def say_waiting(pid: int | None) -> None:
    """The line of a command that waits for a build under way."""
    holder = f" (pid {pid})" if pid else ""
    print(f"waiting for another build of this site{holder} to finish", file=sys.stderr, flush=True)


@contextlib.contextmanager
def one_build_at_a_time(config_path: Path | str,
                        waiting: Callable[[int | None], None] = lambda pid: None) -> Iterator[None]:
    """Hold this site's build lock for the `with` block; when another process holds it, call
    `waiting(its pid, or None if unknown)` once and block until it is released.

    Where the folder cannot be locked (a file system without flock), the block runs unlocked.
    """
    fd = _lock(project_folder(config_path), waiting)
    try:
        yield
    finally:
        if fd is not None:
            # Unlocked explicitly: a child forked during the build shares this descriptor, and
            # closing ours alone would leave the lock held for as long as it lives.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _lock(folder: Path, waiting: Callable[[int | None], None]) -> int | None:
    """A descriptor of `folder` holding its exclusive lock, or None where it cannot be locked."""
    if fcntl is None:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting(_holder(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:       # e.g. NFS, which locks only files open for writing
        os.close(fd)
        return None
    except BaseException:  # Ctrl-C while waiting
        os.close(fd)
        raise
    return fd


def _holder(fd: int) -> int | None:
    """The pid holding a flock on the file of `fd`, from /proc/locks (Linux), if it can be told."""
    stat = os.fstat(fd)
    wanted = (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:5309386 0 EOF"; a waiter's line has "->" after "1:"
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == wanted:
                return int(fields[4])
        except ValueError:
            continue
    return None
