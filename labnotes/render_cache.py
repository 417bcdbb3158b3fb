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


def config_key(config: Any) -> str:
    """A digest of a configuration dataclass (paths as text: `repr` of a Path is not stable, some
    libraries patch it)."""
    return content_key(json.dumps(dataclasses.asdict(config), default=str, sort_keys=True))


def generator_version(site_templates: Path | None = None) -> str:
    """A digest of everything that turns content into output besides the content itself."""
    parts: list[Any] = [sys.version_info[:2], [library_version(name) for name in RENDERING_LIBRARIES]]
    # labnotes/labs/ is left out: what the lab engine makes reaches the output only as rendered
    # blocks and figure files, and those are keyed on their own bytes.
    files = sorted(_PACKAGE.glob("*.py")) + sorted(_BUILTIN_TEMPLATES.rglob("*"))
    if site_templates is not None and site_templates.is_dir():
        files += sorted(site_templates.rglob("*"))
    for path in files:
        if path.is_file():
            parts.append((str(path), path.read_bytes()))
    return content_key(*parts)


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


def write_blob(path: Path, value: Any, dumps: Callable[[Any], bytes] = marshal.dumps) -> None:
    """Save `value` (built-in types only, unless `dumps` is e.g. pickle's) atomically: a reader
    sees the old file or the new one."""
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


def _identity(stat: os.stat_result, start: bytes) -> tuple:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino, start)


# Shards of a sharded blob: an edit of one post changes a handful of entries (its document, its
# mirror, its feed item: each an old key out and a new one in), so it rewrites at most a few
# sixty-fourths of the cache instead of megabytes of untouched posts.
SHARDS = 64


def shard_of_name(name: str) -> int:
    """The shard of the entry named `name` (stable across processes, unlike `hash`)."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % SHARDS


class ShardedBlob:
    """A dict saved as `SHARDS` blob files in `folder`; `save(new)` rewrites only the shards
    whose set of keys differs from what was loaded (entries are immutable by key)."""

    def __init__(self, folder: Path, shard_of: Callable[[Hashable], int] = shard_of_name,
                 loads: Callable[[bytes], Any] = marshal.loads, dumps: Callable[[Any], bytes] = marshal.dumps):
        self.folder = Path(folder)
        self.shard_of = shard_of
        self.dumps = dumps
        self.loaded: list[dict] = []
        for index in range(SHARDS):
            value = read_blob(self._path(index), loads)
            self.loaded.append(value if isinstance(value, dict) else {})

    def merged(self) -> dict:
        """Every loaded entry in one dict."""
        merged: dict = {}
        for shard in self.loaded:
            merged.update(shard)
        return merged

    def save(self, entries: dict) -> int:
        """Keep exactly `entries`; returns how many shard files were written."""
        shards: list[dict] = [{} for _ in range(SHARDS)]
        for key, value in entries.items():
            shards[self.shard_of(key)][key] = value
        written = 0
        for index, (new, old) in enumerate(zip(shards, self.loaded)):
            if new.keys() != old.keys():
                write_blob(self._path(index), new, self.dumps)
                written += 1
        self.loaded = shards
        return written

    def _path(self, index: int) -> Path:
        return self.folder / f"{index:02x}.bin"


class RenderCache:
    """Rendered pieces (strings and tuples of them) by kind and key, kept in `folder`/rendered/
    as a `ShardedBlob`.

    Only the entries a build asked for are saved, so removed posts do not pile up.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / "rendered"
        self._blob = ShardedBlob(self.path)
        self._old: dict[str, Any] = self._blob.merged()
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
        if name in self._new:
            return self._new[name]
        if name in self._old:
            self.hits += 1
            value = self._old[name]
        else:
            self.misses += 1
            value = make()
        self._new[name] = value
        return value

    def known(self, kind: str, keys: list[str]) -> set[str]:
        """Those of `keys` that have an entry of `kind`."""
        return {key for key in keys if f"{kind}:{key}" in self._new or f"{kind}:{key}" in self._old}

    def peek(self, kind: str, key: str) -> Any:
        """The entry (`kind`, `key`), or None; not kept for the next build unless asked."""
        name = f"{kind}:{key}"
        return self._new[name] if name in self._new else self._old.get(name)

    def keep(self, kind: str, key: str) -> None:
        """Keep the entry (`kind`, `key`), if there is one, for the next build without reading it."""
        name = f"{kind}:{key}"
        if name not in self._new and name in self._old:
            self._new[name] = self._old[name]

    def put(self, kind: str, key: str, value: Any) -> None:
        """Remember `value` for (`kind`, `key`)."""
        self._new[f"{kind}:{key}"] = value

    def save(self) -> None:
        """Write the entries used by this build, unless they are exactly what was loaded."""
        if self._new.keys() != self._old.keys():
            self._blob.save(self._new)
            # The single-file cache of earlier versions, megabytes nobody reads any more.
            with contextlib.suppress(OSError):
                (self.folder / "rendered.bin").unlink(missing_ok=True)
