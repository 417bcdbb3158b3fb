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

import contextlib
import os
import pickle
import shutil
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from .errors import BuildError
from .parallel import can_fork, map_batches
from .render_cache import content_key, read_blob, write_blob

# path -> (key, size, mtime_ns, inode) of each file of the last site written; a file made of
# pieces adds the keys of its pieces (joined by newlines) and their lengths (an array of int64).
Manifest = dict[str, tuple]
# Pieces made at once when a pieced file is written from scratch: few enough to hold in memory.
PIECES_AT_ONCE = 512


@dataclass(slots=True)   # not frozen: a site has tens of thousands, made afresh every build
class OutputFile:
    """One file to publish: `key` names its bytes, `make()` renders them when needed.

    A file made of `pieces` (a feed of items, llms-full.txt of documents) names each piece by
    a key and makes the bytes of those it is asked for with `make_pieces(indices)`: a rebuild
    copies from the file on disk the pieces it already holds and makes only the others.
    """

    key: str
    make: Callable[[], bytes] = field(compare=False, repr=False)
    pieces: tuple[str, ...] = field(default=(), compare=False, repr=False)
    make_pieces: Callable[[list[int]], list[bytes]] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, data: bytes) -> "OutputFile":
        """A file whose bytes are already at hand."""
        return cls("bytes:" + content_key(data), lambda: data)

    @classmethod
    def pieced(cls, key: str, pieces: tuple[str, ...], make_pieces: Callable[[list[int]], list[bytes]]) -> "OutputFile":
        """A file made of `pieces` (their keys, in order; a key holds no newline)."""
        return cls(key, lambda: b"".join(make_pieces(list(range(len(pieces))))), tuple(pieces), make_pieces)


@dataclass(frozen=True)
class WriteResult:
    """What the write stage did."""

    changed: int                   # files whose bytes changed (or that are new)
    rendered: tuple[str, ...]      # files whose bytes had to be made this time
    manifest: Manifest             # the site now in place, for the next build


@dataclass(frozen=True)
class Spread:
    """Lets the write stage make files on several forked processes when there are many.

    What making a file leaves besides the file (render cache entries) stays in the process that
    made it: a child calls `mark()` before a batch of files and `gather(mark)` after it, and the
    parent hands what that gave to `keep`.
    """

    processes: int
    mark: Callable[[], Any]
    gather: Callable[[Any], Any]
    keep: Callable[[Any], None]


# Below this many files to make, starting processes costs more than it saves; files per batch.
SPREAD_MIN_FILES = 256
BATCH_FILES = 64


def write_site(out_dir: Path, files: Mapping[str, OutputFile | bytes], manifest: Path | None = None,
               spread: Spread | None = None) -> WriteResult:
    """Replace `out_dir` with exactly `files` (output-relative path -> file).

    `manifest` is the file where the last call for this folder left its manifest, and where
    this one leaves its own; a missing or corrupt manifest only means every file is rendered.
    With `spread`, many files are made on several processes.
    """
    out_dir = Path(out_dir)
    files = {path: f if isinstance(f, OutputFile) else OutputFile.of(f) for path, f in files.items()}
    loaded = read_blob(manifest) if manifest is not None else None
    previous: Manifest = loaded if isinstance(loaded, dict) else {}
    result = _write(out_dir, files, previous, spread, None if manifest is None else _attic(manifest))
    if manifest is not None and result.manifest != previous:
        write_blob(manifest, result.manifest)
    return result


def patch_site(out_dir: Path, files: Mapping[str, OutputFile], manifest: Path, previous: Manifest | None = None) -> WriteResult:
    """Update `files` (some of the site's) in `out_dir`, a site `write_site` wrote with
    `manifest`, leaving every other file as it is: a rebuild that knows which files an edit
    changed (patch.py). Each file is made, compared and put in place as `write_site` does, and
    the manifest is updated for those files only. `previous`: the manifest, when read already."""
    out_dir = Path(out_dir)
    if previous is None:
        loaded = read_blob(manifest)
        previous = loaded if isinstance(loaded, dict) else {}
    present = {}
    for path in files:   # as `scan_folder` sees them
        with contextlib.suppress(OSError):
            stat = os.lstat(out_dir / path)
            present[path] = (stat.st_size, stat.st_mtime_ns, stat.st_ino) if S_ISREG(stat.st_mode) else (-1, -1, -1)
    intact = {path: previous[path] for path in files if path in previous and present.get(path) == previous[path][1:4]}
    reusable = {path for path, entry in intact.items() if entry[0] == files[path].key}
    result = _update_in_place(out_dir, dict(files), reusable, intact, present, attic=_attic(manifest))
    entries = {**previous, **result.manifest}
    if entries != previous:
        write_blob(manifest, entries)
    return WriteResult(result.changed, result.rendered, entries)


def _attic(manifest: Path) -> Path:
    """Where this process puts the old copies of big files (beside the manifest: in the cache)."""
    return Path(manifest).parent / f"attic-{os.getpid()}"


def _write(out_dir: Path, files: dict[str, OutputFile], previous: Manifest, spread: Spread | None = None,
           attic: Path | None = None) -> WriteResult:
    present = scan_folder(out_dir)
    # The files on disk that are still the ones the last build wrote, and those of them to keep.
    intact = {path: previous[path] for path in files if path in previous and present.get(path) == previous[path][1:4]}
    reusable = {path for path, entry in intact.items() if entry[0] == files[path].key}
    if out_dir.exists() and len(reusable) == len(files) == len(present):
        return WriteResult(0, (), {path: previous[path] for path in sorted(files)})
    if out_dir.is_dir() and not _shape_conflict(files, present):
        return _update_in_place(out_dir, files, reusable, intact, present, spread, attic)
    return _write_and_swap(out_dir, files, reusable, intact, present, spread)


class _NewBytes:
    """The new bytes of one file, made file by file (a build holds one file's bytes at a time,
    not the site's): `same` when they are the bytes of the file on disk already."""

    def __init__(self, old: Path, file: OutputFile, entry: tuple | None, present: bool):
        self.old, self.file = old, file
        self.chunks: list[bytes | tuple[int, int]] = []    # bytes, or (offset, length) in the old file
        self.lengths: list[int] = []                        # of each piece
        self.same = False
        self.streamed = not present                         # made while written: nothing to compare with
        self._stat: os.stat_result | None = None            # of the file written, when known
        if not file.pieces:
            if present:
                data = file.make()
                self.chunks, self.same = [data], _bytes_equal(old, data)
            return
        if entry is not None and len(entry) == 6 and isinstance(entry[4], str):
            self._reuse_pieces(dict(zip(entry[4].split("\n"), _offsets(array("q", entry[5])))))
            self.streamed = False
        elif present:
            self.chunks = file.make_pieces(list(range(len(file.pieces))))
            self.lengths = [len(chunk) for chunk in self.chunks]
            self.same = _bytes_equal(old, b"".join(self.chunks))

    def _reuse_pieces(self, old_pieces: dict[str, tuple[int, int]]) -> None:
        """Plan the file as pieces copied from the old file and pieces made now."""
        keys = self.file.pieces
        wanted = [i for i, key in enumerate(keys) if key not in old_pieces]
        made = dict(zip(wanted, self.file.make_pieces(wanted) if wanted else []))
        same, offset = True, 0
        with open(self.old, "rb") as old:
            size = os.fstat(old.fileno()).st_size
            for i, key in enumerate(keys):
                if i in made:
                    chunk = made[i]
                    same = same and os.pread(old.fileno(), len(chunk), offset) == chunk
                else:
                    chunk = old_pieces[key]
                    same = same and chunk[0] == offset
                length = len(chunk) if isinstance(chunk, bytes) else chunk[1]
                self.chunks.append(chunk)
                self.lengths.append(length)
                offset += length
        self.same = same and offset == size

    def write(self, target: Path) -> None:
        """Write the new bytes to `target` (a new file)."""
        if self.streamed and not self.file.pieces:
            # Most files of a first build: one system call each to create, write and close,
            # where `open` would also ask whether the file is a terminal and where it stands.
            self._stat = _write_new_file(target, self.file.make())
            return
        with open(target, "wb") as out:
            if self.streamed:
                for start in range(0, len(self.file.pieces), PIECES_AT_ONCE):
                    for chunk in self.file.make_pieces(list(range(start, min(start + PIECES_AT_ONCE, len(self.file.pieces))))):
                        out.write(chunk)
                        self.lengths.append(len(chunk))
            else:
                _write_chunks(out, self.chunks, self.old)

    def record(self, target: Path) -> tuple:
        """The manifest entry of the file now at `target`."""
        stat = self._stat or os.stat(target)
        entry = (self.file.key, stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if not self.file.pieces:
            return entry
        # The pieces' keys (hex digests) as one text and their lengths as one string of bytes:
        # a manifest holding tens of thousands of feed items reads as a few long values.
        return entry + ("\n".join(self.file.pieces), array("q", self.lengths).tobytes())


def _write_new_file(path: Path, data: bytes) -> os.stat_result:
    """Write `data` to a new file at `path`; its stat once written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return os.fstat(fd)
    finally:
        os.close(fd)


def _offsets(lengths: array) -> list[tuple[int, int]]:
    offsets, at = [], 0
    for length in lengths:
        offsets.append((at, length))
        at += length
    return offsets


def _write_chunks(out, chunks: list[bytes | tuple[int, int]], old: Path) -> None:
    """Write `chunks` to the open file `out`: bytes as they are, (offset, length) copied from
    `old` (runs of adjacent pieces in one copy)."""
    runs: list[bytes | list[int]] = []
    for chunk in chunks:
        if isinstance(chunk, bytes):
            runs.append(chunk)
        elif runs and isinstance(runs[-1], list) and runs[-1][0] + runs[-1][1] == chunk[0]:
            runs[-1][1] += chunk[1]
        else:
            runs.append(list(chunk))
    with open(old, "rb") if any(isinstance(run, list) for run in runs) else contextlib.nullcontext() as source:
        for run in runs:
            if isinstance(run, bytes):
                out.write(run)
            else:
                out.flush()
                _copy_range(source.fileno(), out.fileno(), *run)
                out.seek(0, os.SEEK_END)


def _copy_range(source: int, target: int, offset: int, length: int) -> None:
    """Append `length` bytes of `source` from `offset` to `target` (in the kernel where it can)."""
    while length > 0:
        try:
            done = os.copy_file_range(source, target, length, offset)
        except (AttributeError, OSError):
            done = 0
        if done <= 0:
            data = os.pread(source, min(length, 1 << 20), offset)
            if not data:
                raise OSError(f"the old copy of a file ended early ({length} bytes missing)")
            done = os.write(target, data)
        offset += done
        length -= done


def _make_files(paths: list[str], files: dict[str, OutputFile], old_folder: Path, intact: Manifest,
                present: Mapping[str, object], scratch: Path, spread: Spread | None,
                place: Callable[[str], Path] | None = None) -> dict[str, tuple]:
    """Make each of `paths` into a file of `scratch/<process id>/` (a folder of each process's
    own: on this kind of file system, files made in one folder are made one at a time, in two
    folders two at a time), on several processes when there are many. Returns path -> (manifest
    entry, scratch file), or (entry of the file in `old_folder`, None) when its bytes are those
    already there. With `place` (relative path -> where the file goes, its folder made), each
    process renames what it made there at once, so the folders and renames of a first build
    are spread too, and the file returned is that place. Raises the first error, in the order
    of `paths`."""
    folder = scratch / str(os.getpid())
    made: list[int] = []

    def make(relative: str) -> tuple:
        old = old_folder / relative
        new = _NewBytes(old, files[relative], intact.get(relative), relative in present)
        if new.same:
            return relative, new.record(old), None
        if not made:
            folder.mkdir(parents=True, exist_ok=True)
        made.append(len(made))
        target = folder / str(len(made))
        new.write(target)
        entry = new.record(target)   # a rename keeps inode and mtime
        if place is not None:
            placed = place(relative)
            os.rename(target, placed)
            return relative, entry, placed
        return relative, entry, target

    if spread is None or spread.processes < 2 or len(paths) < SPREAD_MIN_FILES or not can_fork():
        return {relative: (entry, target) for relative, entry, target in map(make, paths)}
    # Files of pieces first and together: they share feed items and mirrors, made once so.
    pieced = [relative for relative in paths if files[relative].pieces]
    rest = [relative for relative in paths if not files[relative].pieces]
    batches = [pieced] + [rest[i:i + BATCH_FILES] for i in range(0, len(rest), BATCH_FILES)]

    def work(index: int) -> tuple:
        nonlocal folder
        folder = scratch / str(os.getpid())
        mark = spread.mark()
        outcomes = []
        for relative in batches[index]:
            try:
                outcomes.append(make(relative))
            except Exception as error:   # noqa: BLE001 - raised again in the parent
                return outcomes, (relative, _portable(error)), None
        return outcomes, None, spread.gather(mark)

    outcomes: dict[str, tuple] = {}
    failed = []
    for done, failure, gathered in map_batches(work, len(batches), spread.processes):
        if failure is not None:
            failed.append(failure)
        else:
            spread.keep(gathered)
        outcomes.update((relative, (entry, target)) for relative, entry, target in done)
    if failed:
        raise _raised(min(failed)[1])   # the first in the order of `paths`, which is sorted
    return outcomes


def _portable(error: Exception) -> object:
    """`error` as it can travel from a child process (a BuildError as its parts)."""
    if isinstance(error, BuildError):
        return ("BuildError", error.path, error.message, error.line)
    try:
        pickle.dumps(error)
    except Exception:   # noqa: BLE001 - anything that does not pickle travels as its text
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _raised(error: object) -> BaseException:
    if isinstance(error, tuple) and error[0] == "BuildError":
        return BuildError(*error[1:])
    return error


# A file replaced in place whose old copy is at least this big is freed by a process of its own
# (see `_update_in_place`).
BIG_FILE = 1 << 20
_FREEING: list[int] = []   # the processes doing so


def _update_in_place(out_dir: Path, files: dict[str, OutputFile], reusable: set[str], intact: Manifest,
                     present: dict[str, tuple[int, int, int]], spread: Spread | None = None,
                     attic: Path | None = None) -> WriteResult:
    """Make every file not in `reusable` into a scratch folder inside `out_dir`; once all are
    made, rename those whose bytes differ into place and remove the files not in `files`.

    With `attic` (a folder outside the site, on the same file system), the old copy of a big
    file is linked there before the new one takes its place, and a process of its own deletes
    the attic: freeing the blocks of a 47 MB feed takes the rename tens of milliseconds here."""
    made = [relative for relative in sorted(files) if relative not in reusable]
    scratch = out_dir / f".labnotes-new-{os.getpid()}"
    new_folders: list[Path] = []
    kept_aside = 0
    try:
        outcomes = _make_files(made, files, out_dir, intact, present, scratch, spread)
        # Pages first: a reader (or `serve`'s browser) waits for them, not for the feeds.
        for relative in sorted(made, key=lambda relative: not relative.endswith(".html")):
            if outcomes[relative][1] is not None:
                target = out_dir / relative
                _make_folders(target.parent, new_folders)
                if attic is not None and present.get(relative, (0,))[0] >= BIG_FILE:
                    kept_aside += _link_aside(target, attic, kept_aside)
                os.replace(outcomes[relative][1], target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        for folder in reversed(new_folders):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    if kept_aside:
        _delete_aside(attic)
    for relative in sorted(set(present) - set(files), reverse=True):
        (out_dir / relative).unlink()
        _remove_empty_parents(out_dir, relative)
    entries = {relative: intact[relative] for relative in reusable}
    entries.update((relative, entry) for relative, (entry, _) in outcomes.items())
    changed = sum(1 for _, target in outcomes.values() if target is not None)
    return WriteResult(changed, tuple(made), {relative: entries[relative] for relative in sorted(files)})


def _link_aside(path: Path, attic: Path, number: int) -> int:
    """Link `path` into `attic` (1), or leave it (0: another file system, no hard links)."""
    try:
        attic.mkdir(parents=True, exist_ok=True)
        os.link(path, attic / str(number))
    except OSError:
        return 0
    return 1


def _delete_aside(attic: Path) -> None:
    """Delete `attic`, and any an earlier build left beside it, in a process of its own (one
    that is not waited for); here if none can be started."""
    for pid in list(_FREEING):   # a long-running process (`serve`) collects the ones done
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _FREEING.remove(pid)
    folders = [str(path) for path in attic.parent.glob(attic.name.rsplit("-", 1)[0] + "-*")]
    try:
        _FREEING.append(os.posix_spawnp("rm", ["rm", "-rf", "--", *folders], os.environ, setsid=True))
    except (OSError, AttributeError):   # no `rm`, or no posix_spawn
        shutil.rmtree(attic, ignore_errors=True)


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Create `folder` and its missing parents, adding each one created to `made`."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for one in reversed(missing):
        one.mkdir()
        made.append(one)


def _write_and_swap(out_dir: Path, files: dict[str, OutputFile], reusable: set[str], intact: Manifest,
                    present: dict[str, tuple[int, int, int]], spread: Spread | None = None) -> WriteResult:
    """Write the whole site into a sibling folder (unchanged files hard-linked) and rename it into place."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f"{out_dir.name}.tmp-{os.getpid()}"
    retired = parent / f"{out_dir.name}.old-{os.getpid()}"
    for leftover in (staging, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    made_dirs: set[Path] = set()

    def place(relative: str) -> Path:
        # also called in the processes that make files: each has its own copy of `made_dirs`,
        # and mkdir's exist_ok covers a folder another one made first
        target = staging / relative
        if target.parent not in made_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(target.parent)
        return target

    try:
        staging.mkdir()
        manifest: Manifest = {relative: intact[relative] for relative in sorted(reusable)
                              if _link(out_dir / relative, place(relative))}
        outcomes = _make_files([relative for relative in sorted(files) if relative not in manifest], files, out_dir,
                               intact, present, staging / ".labnotes-new", spread, place)
        changed = 0
        for relative, (entry, made) in outcomes.items():
            if made is None and not _link(out_dir / relative, place(relative)):
                shutil.copyfile(out_dir / relative, place(relative))
                entry = entry[:1] + tuple(_stat_of(place(relative))) + entry[4:]
            elif made is not None:   # made in its place already
                changed += 1
            manifest[relative] = entry
        shutil.rmtree(staging / ".labnotes-new", ignore_errors=True)
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
    return WriteResult(changed, tuple(relative for relative in sorted(files) if relative not in reusable),
                       {relative: manifest[relative] for relative in sorted(files)})


def _stat_of(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _shape_conflict(files: Mapping[str, object], present: Mapping[str, object]) -> bool:
    """Whether a new file would need a folder where a file is, or the other way round."""
    def folders(paths) -> set[str]:
        found: set[str] = set()
        for path in paths:
            end = path.rfind("/")
            while end > 0 and path[:end] not in found:   # its parents are known once it is
                found.add(path[:end])
                end = path.rfind("/", 0, end)
        return found
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
