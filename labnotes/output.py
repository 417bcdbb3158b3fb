"""Write stage: put a whole site in place at once, or not at all.

The new site is written to a sibling temporary folder and swapped in by renames, so a build
that fails anywhere before this stage leaves the last good site exactly as it was. Files whose
bytes did not change are hard-linked from the old site, so they are not rewritten (their
modification times stay, which keeps rsync-style deploys and browser caches quiet).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_site(out_dir: Path, files: dict[str, bytes]) -> int:
    """Replace `out_dir` with exactly `files` (output-relative path -> bytes); returns files changed."""
    out_dir = Path(out_dir)
    if out_dir.exists() and _same_tree(out_dir, files):
        return 0
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f"{out_dir.name}.tmp-{os.getpid()}"
    retired = parent / f"{out_dir.name}.old-{os.getpid()}"
    for leftover in (staging, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    changed = 0
    try:
        for relative in sorted(files):
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            old = out_dir / relative
            if not _link_if_same(old, target, files[relative]):
                target.write_bytes(files[relative])
                changed += 1
        if out_dir.exists():
            os.rename(out_dir, retired)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not out_dir.exists():
            os.rename(retired, out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    return changed


def remove_site(out_dir: Path) -> bool:
    """Delete the output folder (the `clean` command); False when there was none."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return False
    shutil.rmtree(out_dir)
    return True


def _same_tree(out_dir: Path, files: dict[str, bytes]) -> bool:
    present = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file() or p.is_symlink()}
    if present != set(files):
        return False
    return all(_bytes_equal(out_dir / rel, data) for rel, data in files.items())


def _bytes_equal(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _link_if_same(old: Path, target: Path, data: bytes) -> bool:
    if not _bytes_equal(old, data):
        return False
    try:
        os.link(old, target)
    except OSError:
        return False
    return True
