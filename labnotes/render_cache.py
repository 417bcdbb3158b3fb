"""The render cache (`.cache/render/`): what the last build rendered, keyed on what it was made from.

A key is a hash of every input of a piece of output: the document's source and the lab blocks
it shows, the site configuration, and the generator itself (its Python code, templates and the
versions of the libraries that render). Equal key, equal bytes: that is what lets a rebuild skip
work without ever showing stale output. Entries are spread over a fixed set of shard files, each
checked by a hash of its bytes, so that an edit rewrites the few shards whose entries changed
rather than every rendered post; a missing, truncated or corrupt shard is an empty part of the
cache, never an error. Nothing here holds a clock time, so a cache never changes what a build
produces, only how fast.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import marshal
import os
import sys
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

CACHE_DIR = ".cache/render"
FORMAT = b"labnotes-render-cache-1\n"
_PACKAGE = Path(__file__).resolve().parent
_BUILTIN_TEMPLATES = _PACKAGE.parent / "templates"
# The libraries whose output ends up in the site: a new version may render other bytes.
RENDERING_LIBRARIES = ("markdown2", "pygments", "jinja2", "markupsafe", "feedgen", "lxml", "latex2mathml",
                       "nbformat")


def content_key(*parts: Any) -> str:
    """A hex digest of `parts`: strings, bytes, numbers, None, and tuples or lists of those.

    Those types have a `repr` that is deterministic and tells values apart ("ab", "c" is not
    "a", "bc"), and `repr` of a whole tuple runs in C: keying 1,000 posts costs milliseconds.
    """
    return hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def text_digest(text: str) -> str:
    """A hex digest of one text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def config_key(config: Any) -> str:
    """A digest of a configuration dataclass (paths as text: `repr` of a Path is not stable, some
    libraries patch it)."""
    return content_key(json.dumps(dataclasses.asdict(config), default=str, sort_keys=True))


def generator_version(site_templates: Path | None = None, code: str | None = None) -> str:
    """A digest of everything that turns content into output besides the content itself: the
    generator's code (`code`, when `generator_version()` gave it already) and the site's templates."""
    if code is None:
        parts: list[Any] = [sys.version_info[:2], [library_version(name) for name in RENDERING_LIBRARIES]]
        # labnotes/labs/ is left out: what the lab engine makes reaches the output only as rendered
        # blocks and figure files, and those are keyed on their own bytes.
        parts += _file_parts(sorted(_PACKAGE.glob("*.py")) + sorted(_BUILTIN_TEMPLATES.rglob("*")))
        code = content_key(*parts)
    if site_templates is None or not site_templates.is_dir():
        return code
    return content_key(code, *_file_parts(sorted(site_templates.rglob("*"))))


def _file_parts(paths: list[Path]) -> list[tuple[str, bytes]]:
    return [(str(path), path.read_bytes()) for path in paths if path.is_file()]


def library_version(name: str) -> tuple:
    """What names the installed version of library `name`, found without importing it (nor
    importlib.metadata, which costs more than a whole rebuild's hashing): the `NAME-VERSION.dist-info`
    folder beside it, else the size and time of its code file."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return (name, None)
    origin = Path(spec.origin)
    folder = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    prefix = name.lower() + "-"
    try:
        infos = sorted(entry for entry in os.listdir(folder)
                       if entry.lower().replace("_", "-").startswith(prefix) and entry.endswith(".dist-info"))
    except OSError:
        infos = []
    if infos:
        return (name, infos)
    stat = origin.stat()
    return (name, str(origin), stat.st_size, stat.st_mtime_ns)


# The value each blob file last held in this process, by path, with the file's (size, mtime,
# inode) and checksum then: a process that builds again (`serve`) does not parse megabytes it
# wrote itself. The checksum catches a same-size rewrite in the same clock tick. Every reader
# treats a loaded value as read-only.
_REMEMBERED: dict[str, tuple[tuple, Any]] = {}


def read_blob(path: Path, loads: Callable[[bytes], Any] = marshal.loads) -> Any:
    """The value saved by `write_blob` (with the matching `dumps`), or None when the file is
    missing or not intact."""
    head = len(FORMAT)
    try:
        with open(path, "rb") as file:
            start = file.read(head + 32)
            identity = _identity(os.fstat(file.fileno()), start)
            remembered = _REMEMBERED.get(str(path))
            if remembered is not None and remembered[0] == identity:
                return remembered[1]
            payload = file.read()
    except OSError:
        return None
    if start[:head] != FORMAT or hashlib.blake2b(payload, digest_size=32).digest() != start[head:]:
        return None
    try:
        value = loads(payload)
    except Exception:   # noqa: BLE001 - whatever a damaged or outdated blob raises, it is no cache
        return None
    _REMEMBERED[str(path)] = (identity, value)
    return value


def write_blob(path: Path, value: Any, dumps: Callable[[Any], bytes] = marshal.dumps) -> bool:
    """Save `value` (built-in types only, unless `dumps` is e.g. pickle's) atomically: a reader
    sees the old file or the new one. Returns whether it was saved."""
    path = Path(path)
    payload = dumps(value)
    start = FORMAT + hashlib.blake2b(payload, digest_size=32).digest()
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    _REMEMBERED.pop(str(path), None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(start + payload)
        os.replace(temporary, path)
        _REMEMBERED[str(path)] = (_identity(os.stat(path), start), value)
    except OSError:   # a cache that cannot be saved only costs time
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return False
    return True


def _identity(stat: os.stat_result, start: bytes) -> tuple:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino, start)


# Shards of a sharded blob: an edit of one post changes a handful of entries (its document, its
# mirror, its feed item: each an old key out and a new one in), so it rewrites at most a few
# 256ths of the cache (half a megabyte each for 10,000 posts) instead of megabytes of untouched
# posts.
SHARDS = 256
# A shard file: this line, then the digest and length of its names, the length and digest of its
# values, the names (marshal), the values (`dumps`, in the order of the names). The names are
# read at once, the values only when one of them is asked for: an edit of one post reads the few
# shards it needs, not the rendered pages of every post.
SHARD_FORMAT = b"labnotes-shard-2\n"
_SHARD_HEAD = len(SHARD_FORMAT) + 32 + 8 + 8 + 32
# Stands for an entry kept from the last build without reading its value (see `ShardedBlob.save`).
KEPT = object()


def shard_of_name(name: str) -> int:
    """The shard of the entry named `name` (stable across processes, unlike `hash`)."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % SHARDS


class ShardedBlob:
    """A dict saved as `SHARDS` files in `folder`, each holding the entries of one shard.

    The names of every entry are read when it is opened, a shard's values when one of them is
    asked for; `save(new)` rewrites only the shards whose set of names differs from what was
    loaded (entries are immutable by name). A missing, truncated or damaged shard is empty.
    """

    def __init__(self, folder: Path, shard_of: Callable[[Hashable], int] = shard_of_name,
                 loads: Callable[[bytes], Any] = marshal.loads, dumps: Callable[[Any], bytes] = marshal.dumps):
        self.folder = Path(folder)
        self.shard_of = shard_of
        self.loads = loads
        self.dumps = dumps
        # Read shard by shard when first needed: an edit patched into the last site (patch.py)
        # looks up the names of a few shards, a full build those of all of them.
        self._names: list[tuple | None] = [None] * SHARDS
        self._name_sets: list[frozenset | None] = [None] * SHARDS
        self._values: list[dict | None] = [None] * SHARDS

    def names(self) -> set:
        """The name of every entry."""
        return {name for index in range(SHARDS) for name in self._names_of(index)}

    def has(self, name: Hashable) -> bool:
        """Whether there is an entry `name` (its shard's names read now if they were not)."""
        index = self.shard_of(name)
        if self._name_sets[index] is None:
            self._name_sets[index] = frozenset(self._names_of(index))
        return name in self._name_sets[index]

    def get(self, name: Hashable, default: Any = None) -> Any:
        """The value of entry `name` (its shard read now if it was not), or `default` when it
        has none or its shard is damaged."""
        return self._shard(self.shard_of(name)).get(name, default)

    def merged(self) -> dict:
        """Every entry in one dict (every shard read)."""
        merged: dict = {}
        for index in range(SHARDS):
            merged.update(self._shard(index))
        return merged

    def save(self, entries: dict) -> int:
        """Keep exactly `entries`, where a value may be `KEPT`: the value loaded under that
        name (an entry whose shard turns out damaged is dropped). Returns how many shard files
        were written."""
        shards: list[dict] = [{} for _ in range(SHARDS)]
        for name, value in entries.items():
            shards[self.shard_of(name)][name] = value
        written = 0
        for index, new in enumerate(shards):
            if new.keys() == set(self._names_of(index)):
                continue
            if any(value is KEPT for value in new.values()):
                old = self._shard(index)
                new = {name: old[name] if value is KEPT else value for name, value in new.items()
                       if value is not KEPT or name in old}
            self._write(index, new)
            written += 1
        return written

    def add(self, entries: dict) -> int:
        """Add `entries` to those kept (an entry of the same name is replaced), rewriting only
        the shards they fall in; returns how many shard files were written."""
        shards: dict[int, dict] = {}
        for name, value in entries.items():
            shards.setdefault(self.shard_of(name), {})[name] = value
        for index, new in shards.items():
            self._write(index, {**self._shard(index), **new})
        return len(shards)

    def _write(self, index: int, entries: dict) -> None:
        _write_shard(self._path(index), entries, self.dumps)
        self._names[index], self._name_sets[index], self._values[index] = tuple(entries), None, entries

    def _names_of(self, index: int) -> tuple:
        if self._names[index] is None:
            self._names[index] = _read_shard(self._path(index), self.loads, values=False)[0]
        return self._names[index]

    def _shard(self, index: int) -> dict:
        if self._values[index] is None:
            names, values = _read_shard(self._path(index), self.loads, values=True)
            if self._names[index] is None:
                self._names[index] = names
            self._values[index] = values if names == self._names[index] else {}
        return self._values[index]

    def _path(self, index: int) -> Path:
        return self.folder / f"{index:02x}.bin"


def _read_shard(path: Path, loads: Callable[[bytes], Any], values: bool) -> tuple[tuple, dict]:
    """(names, {name: value}) of a shard file; the values only when `values` (else {}). A
    missing or damaged file reads as empty."""
    try:
        with open(path, "rb") as file:
            head = file.read(_SHARD_HEAD)
            stat = os.fstat(file.fileno())
            identity = (stat.st_size, stat.st_mtime_ns, stat.st_ino, head)
            remembered = _REMEMBERED.get(str(path))
            if remembered is not None and remembered[0] == identity and (remembered[1][1] is not None or not values):
                names, kept = remembered[1]
                return names, (kept if values else {})
            if len(head) != _SHARD_HEAD or not head.startswith(SHARD_FORMAT):
                return (), {}
            at = len(SHARD_FORMAT)
            names_digest, names_size, values_size, values_digest = (
                head[at:at + 32], int.from_bytes(head[at + 32:at + 40], "little"),
                int.from_bytes(head[at + 40:at + 48], "little"), head[at + 48:at + 80])
            if stat.st_size != _SHARD_HEAD + names_size + values_size:   # truncated
                return (), {}
            payload = file.read(names_size)
            if hashlib.blake2b(payload, digest_size=32).digest() != names_digest:
                return (), {}
            names = marshal.loads(payload)
            if not values:
                _REMEMBERED[str(path)] = (identity, (names, None))
                return names, {}
            payload = file.read(values_size)
    except (OSError, ValueError, EOFError, TypeError):
        return (), {}
    try:
        if hashlib.blake2b(payload, digest_size=32).digest() != values_digest:
            return names, {}
        kept = dict(zip(names, loads(payload), strict=True))
    except Exception:   # noqa: BLE001 - whatever a damaged or outdated shard raises, it is no cache
        return names, {}
    _REMEMBERED[str(path)] = (identity, (names, kept))
    return names, kept


def _write_shard(path: Path, entries: dict, dumps: Callable[[Any], bytes]) -> None:
    """Save the shard `entries` atomically (see `SHARD_FORMAT`); a shard that cannot be saved
    only costs time."""
    names = marshal.dumps(tuple(entries))
    values = dumps(tuple(entries.values()))
    head = (SHARD_FORMAT + hashlib.blake2b(names, digest_size=32).digest() + len(names).to_bytes(8, "little")
            + len(values).to_bytes(8, "little") + hashlib.blake2b(values, digest_size=32).digest())
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    _REMEMBERED.pop(str(path), None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(head)
            file.write(names)
            file.write(values)
        os.replace(temporary, path)
        stat = os.stat(path)
        _REMEMBERED[str(path)] = ((stat.st_size, stat.st_mtime_ns, stat.st_ino, head), (tuple(entries), dict(entries)))
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


class RenderCache:
    """Rendered pieces (strings and tuples of them) by kind and key, kept in `folder` as two
    `ShardedBlob`s: `outline/` for the small entries every build reads (kinds in
    `OUTLINE_KINDS`), `rendered/` for the rest, read only where a build needs a value.

    Only the entries a build asked for are saved, so removed posts do not pile up.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / "rendered"
        self._blobs = {False: ShardedBlob(self.path), True: ShardedBlob(self.folder / "outline")}
        self._all_old: set[str] | None = None
        self._new: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0

    def manifest_path(self, out_dir: Path | str) -> Path:
        """Where the write stage keeps its manifest of the site in `out_dir`."""
        return self.manifest_path_in(self.folder, out_dir)

    @staticmethod
    def manifest_path_in(folder: Path, out_dir: Path | str) -> Path:
        """`manifest_path` for a cache in `folder`, without loading the cache."""
        return Path(folder) / f"output-{content_key(str(Path(out_dir).resolve()))}.bin"

    def get(self, kind: str, key: str, make: Callable[[], Any]) -> Any:
        """The cached value for (`kind`, `key`), or `make()`'s, remembered for next time."""
        name = f"{kind}:{key}"
        value = self._new.get(name, KEPT)
        if value is KEPT:
            value = self._stored(kind, name)
            if value is KEPT:
                self.misses += 1
                value = make()
            else:
                self.hits += 1
            self._new[name] = value
        return value

    def known(self, kind: str, keys: list[str]) -> set[str]:
        """Those of `keys` that have an entry of `kind` (no value is read)."""
        held = self._held(kind, len(keys))
        return {key for key in keys if f"{kind}:{key}" in self._new or held(f"{kind}:{key}")}

    def peek(self, kind: str, key: str) -> Any:
        """The entry (`kind`, `key`), or None; not kept for the next build unless asked."""
        name = f"{kind}:{key}"
        value = self._new.get(name, KEPT)
        if value is KEPT:
            value = self._stored(kind, name)
        return None if value is KEPT else value

    def keep(self, kind: str, *keys: str) -> None:
        """Keep the entries (`kind`, each of `keys`) there are for the next build, without reading them."""
        new, held = self._new, self._held(kind, len(keys))
        for key in keys:
            name = f"{kind}:{key}"
            if name not in new and held(name):
                new[name] = KEPT

    def put(self, kind: str, key: str, value: Any) -> None:
        """Remember `value` for (`kind`, `key`)."""
        self._new[f"{kind}:{key}"] = value

    def mark(self) -> int:
        """A mark for `since`: how many entries this build has asked for or made so far."""
        return len(self._new)

    def since(self, mark: int) -> list[tuple[str, Any]]:
        """The entries asked for or made after `mark`, for `take` in another process (whose
        cache was this one's when it forked)."""
        return list(itertools.islice(self._new.items(), mark, None))

    def take(self, entries: list[tuple[str, Any]]) -> None:
        """Keep `entries` (from `since` in another process) as if made here."""
        self._new.update(entries)

    def save(self) -> None:
        """Write the entries used by this build, unless they are exactly what was loaded."""
        if self._new.keys() != self._old_names():
            for outline, blob in self._blobs.items():
                blob.save({name: value for name, value in self._new.items()
                           if (name.split(":", 1)[0] in OUTLINE_KINDS) == outline})
            # The single-file cache of earlier versions, megabytes nobody reads any more.
            with contextlib.suppress(OSError):
                (self.folder / "rendered.bin").unlink(missing_ok=True)

    def save_added(self) -> None:
        """Add the entries this build made to those kept, leaving the others as they are: what
        a build that patched the last site saves (it asked for a few entries, not all it keeps)."""
        added = {name: value for name, value in self._new.items()
                 if value is not KEPT and not self._blobs[name.split(":", 1)[0] in OUTLINE_KINDS].has(name)}
        for outline, blob in self._blobs.items():
            blob.add({name: value for name, value in added.items() if (name.split(":", 1)[0] in OUTLINE_KINDS) == outline})

    def _stored(self, kind: str, name: str) -> Any:
        if not self._held(kind, 1)(name):
            return KEPT
        return self._blobs[kind in OUTLINE_KINDS].get(name, KEPT)

    def _held(self, kind: str, asked: int) -> Callable[[str], bool]:
        """Whether the cache held an entry of `kind` by name: asked of many names (a full
        build), every name is read once; of a few (a patched build), their shards' names."""
        if self._all_old is None and asked > SHARDS:
            self._old_names()
        if self._all_old is not None:
            return self._all_old.__contains__
        return self._blobs[kind in OUTLINE_KINDS].has

    def _old_names(self) -> set[str]:
        if self._all_old is None:
            self._all_old = self._blobs[False].names() | self._blobs[True].names()
        return self._all_old


# Kinds of small entries that a build reads for every document: kept apart from the rendered
# pages, so that reading them does not read those.
OUTLINE_KINDS = frozenset({"outline"})
