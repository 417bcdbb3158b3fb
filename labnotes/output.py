"""Write stage: put a whole site in place, or nothing at all.

Every file that must be made is rendered before the output folder is touched, so a build that
fails anywhere leaves the last good site exactly as it was. A first build (no output folder yet)
is written to a sibling temporary folder and renamed into place. A rebuild updates the folder
in place, file by file, each through a temporary file and a rename: a file is never seen half
written, and files whose bytes did not change are not touched (their modification times stay,
which keeps rsync-style deploys and browser caches quiet). Files the site no longer has go.

Each planned file carries a key that names its bytes (equal key, equal bytes) and renders them
only on demand. A manifest of the last site written (key, size, mtime, inode of every file)
lets a rebuild reuse a file whose key is unchanged without rendering or even reading it, as
long as the file on disk is still the one that was written; when every file is, nothing is
written at all.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError
from .render_cache import content_key, read_blob, write_blob

# path -> (key, size, mtime_ns, inode) of each file of the last site written
Manifest = dict[str, tuple[str, int, int, int]]


@dataclass(frozen=True)
class OutputFile:
    """One file to publish: `key` names its bytes, `make()` renders them when needed."""

    key: str
    make: Callable[[], bytes] = field(compare=False, repr=False)

    @classmethod
    def of(cls, data: bytes) -> "OutputFile":
        """A file whose bytes are already at hand."""
        return cls("bytes:" + content_key(data), lambda: data)


@dataclass(frozen=True)
class WriteResult:
    """What the write stage did."""

    changed: int                   # files whose bytes changed (or that are new)
    rendered: tuple[str, ...]      # files whose bytes had to be made this time
    manifest: Manifest             # the site now in place, for the next build


def write_site(out_dir: Path, files: Mapping[str, OutputFile | bytes], manifest: Path | None = None) -> WriteResult:
    """Replace `out_dir` with exactly `files` (output-relative path -> file).

    `manifest` is the file where the last call for this folder left its manifest, and where
    this one leaves its own; a missing or corrupt manifest only means every file is rendered.
    """
    out_dir = Path(out_dir)
    files = {path: f if isinstance(f, OutputFile) else OutputFile.of(f) for path, f in files.items()}
    loaded = read_blob(manifest) if manifest is not None else None
    previous: Manifest = loaded if isinstance(loaded, dict) else {}
    result = _write(out_dir, files, previous)
    if manifest is not None and result.manifest != previous:
        write_blob(manifest, result.manifest)
    return result


def _write(out_dir: Path, files: dict[str, OutputFile], previous: Manifest) -> WriteResult:
    present = scan_folder(out_dir)
    reusable = {path for path, f in files.items()
                if path in previous and previous[path][0] == f.key and present.get(path) == previous[path][1:]}
    if out_dir.exists() and len(reusable) == len(files) == len(present):
        return WriteResult(0, (), {path: previous[path] for path in sorted(files)})
    made = {path: files[path].make() for path in sorted(files) if path not in reusable}   # may raise: nothing written yet
    if out_dir.is_dir() and not _shape_conflict(files, present):
        return _update_in_place(out_dir, files, made, present, previous)
    return _write_and_swap(out_dir, files, made, present, previous)


def _update_in_place(out_dir: Path, files: dict[str, OutputFile], made: dict[str, bytes],
                     present: dict[str, tuple[int, int, int]], previous: Manifest) -> WriteResult:
    """Write the files of `made` whose bytes differ, each atomically; remove the ones not in `files`."""
    for relative in sorted(set(present) - set(files), reverse=True):
        (out_dir / relative).unlink()
        _remove_empty_parents(out_dir, relative)
    changed = 0
    manifest: Manifest = {}
    for relative in sorted(files):
        if relative not in made:
            manifest[relative] = previous[relative]
            continue
        target = out_dir / relative
        data = made[relative]
        if not (relative in present and _bytes_equal(target, data)):
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            try:
                temporary.write_bytes(data)
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            changed += 1
        stat = os.stat(target)
        manifest[relative] = (files[relative].key, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    return WriteResult(changed, tuple(sorted(made)), manifest)


def _write_and_swap(out_dir: Path, files: dict[str, OutputFile], made: dict[str, bytes],
                    present: dict[str, tuple[int, int, int]], previous: Manifest) -> WriteResult:
    """Write the whole site into a sibling folder (unchanged files hard-linked) and rename it into place."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f"{out_dir.name}.tmp-{os.getpid()}"
    retired = parent / f"{out_dir.name}.old-{os.getpid()}"
    for leftover in (staging, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    changed = 0
    manifest: Manifest = {}
    made_dirs: set[Path] = set()
    try:
        for relative in sorted(files):
            target = staging / relative
            if target.parent not in made_dirs:
                target.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(target.parent)
            old = out_dir / relative
            if relative not in made and _link(old, target):
                manifest[relative] = previous[relative]
                continue
            data = made[relative] if relative in made else files[relative].make()
            if not (relative in present and _bytes_equal(old, data) and _link(old, target)):
                target.write_bytes(data)
                changed += 1
            stat = os.stat(target)
            manifest[relative] = (files[relative].key, stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if out_dir.exists() or out_dir.is_symlink():
            os.rename(out_dir, retired)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not out_dir.exists():
            os.rename(retired, out_dir)
        raise
    if retired.is_dir() and not retired.is_symlink():
        shutil.rmtree(retired, ignore_errors=True)
    else:
        retired.unlink(missing_ok=True)
    return WriteResult(changed, tuple(sorted(made)), manifest)


def _shape_conflict(files: Mapping[str, object], present: Mapping[str, object]) -> bool:
    """Whether a new file would need a folder where a file is, or the other way round."""
    def folders(paths):
        return {path[:i] for path in paths for i, char in enumerate(path) if char == "/"}
    return bool(folders(files) & set(present)) or bool(folders(present) & set(files))


def _remove_empty_parents(out_dir: Path, relative: str) -> None:
    folder = (out_dir / relative).parent
    while folder != out_dir:
        try:
            folder.rmdir()
        except OSError:     # not empty
            return
        folder = folder.parent


# Every site holds this file: a folder with it is one the build may empty and refill.
MARKER = ".labnotes-site"
MARKER_TEXT = (b"This folder is a site written by Lab Notes (build.py): the next build replaces its "
               b"files and removes the ones the site no longer has.\n")


def check_output_folder(out_dir: Path, keep: Mapping[str, Path], manifest: Path | None = None) -> None:
    """Refuse, before anything runs, an output folder whose writing would destroy what Lab Notes
    did not write: one that is or holds a folder in `keep` (label -> path: the content, the
    project), one inside the content, a file, or a folder of other files. A folder with the
    marker file, or one this project's cache has a manifest for, is a site of ours."""
    out = Path(out_dir).resolve()
    for label, path in keep.items():
        kept = Path(path).resolve()
        if out == kept or out in kept.parents:
            where = f"is {label}" if out == kept else f"would hold {label} ({path})"
            raise BuildError(None, f"the output folder {out_dir} {where}, and a build removes every file "
                                   "of its output it did not make: choose a folder of its own with --out, "
                                   "such as output/")
    content = keep.get("the content folder")
    if content is not None and Path(content).resolve() in out.parents:
        raise BuildError(None, f"the output folder {out_dir} is inside the content folder {content}, so "
                               "the next build would read the site as content: choose --out outside it")
    if out.exists() and not out.is_dir():
        raise BuildError(None, f"--out {out_dir} is a file, not a folder: choose a folder for the site")
    if out.is_dir() and not (out / MARKER).is_file() and not (manifest is not None and manifest.is_file()):
        others = sorted(entry.name for entry in os.scandir(out))
        if others:
            raise BuildError(None, f"the output folder {out_dir} holds files Lab Notes did not write "
                                   f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}), and a "
                                   "build removes what it did not make: build into a new or empty folder, "
                                   "or move those files away first")


def input_folders(root: Path, content_dir: Path) -> dict[str, Path]:
    """The folders a build reads (name -> path): a folder inside one is read as input."""
    return {"content": Path(content_dir), "static": root / "static", "templates": root / "templates",
            "labcode": root / "labcode"}


def check_apart_from_inputs(out_dir: Path, cache_dir: Path, inputs: Mapping[str, Path],
                            config_path: Path, cache_line: int | None) -> None:
    """Refuse an output or lab-cache folder inside an input folder: the site (or the cache)
    would be read back as input by the next build, and grow with every one."""
    for name, folder in inputs.items():
        folder = Path(folder).resolve()
        if folder == Path(out_dir).resolve() or folder in Path(out_dir).resolve().parents:
            raise BuildError(None, f"the output folder {out_dir} is inside the input folder {name}/ "
                                   f"({inputs[name]}), so every build would read the last site as input: "
                                   "choose --out outside content, static, templates and labcode, such as output/")
        if folder == cache_dir.resolve() or folder in cache_dir.resolve().parents:
            raise BuildError(config_path, f"[labs] cache_dir {cache_dir} is inside the input folder {name}/ "
                                          f"({inputs[name]}), so lab results would be read as input: use a "
                                          'folder of its own, such as cache_dir = "labcache"', cache_line)


def remove_site(out_dir: Path) -> bool:
    """Delete the output folder (the `clean` command); False when there was none. A folder
    without the marker of a Lab Notes site is refused."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return False
    if not out_dir.is_dir() or not (out_dir / MARKER).is_file():
        raise BuildError(None, f"{out_dir} is not a site written by Lab Notes (it has no {MARKER} file), "
                               "so `clean` leaves it alone: delete it yourself if you mean to")
    shutil.rmtree(out_dir)
    return True


def scan_folder(folder: Path, skip: frozenset[str] = frozenset()) -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, inode) of every plain file under `folder` by relative path, leaving out
    folders named in `skip`; links and odd files are listed with an impossible stat so that
    they never match a manifest."""
    found: dict[str, tuple[int, int, int]] = {}
    pending = [(str(folder), "")]
    while pending:
        current, prefix = pending.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in skip:
                    pending.append((entry.path, relative + "/"))
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                found[relative] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
            else:
                found[relative] = (-1, -1, -1)
    return found


def _bytes_equal(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _link(old: Path, target: Path) -> bool:
    try:
        os.link(old, target)
    except OSError:
        return False
    return True
