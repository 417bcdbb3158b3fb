"""Parsed documents from the last build, by file stat: a post nobody touched is not read again.

A document is reused when its file has the size, mtime and inode it had when it was parsed,
under the same kind, time zone and set of publishable images (the image check depends on
them), by the same generator (a document keeps values it computed once, such as its digests). Files changed within a clock tick of the build are parsed every time (see
`input_manifest.RACY_NS`). A missing or damaged cache is empty, never an error.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

from .content import load_document
from .input_manifest import RACY_NS, UNKNOWN
from .model import Document
from .render_cache import SHARDS, ShardedBlob

FOLDER_NAME = "documents"


class ParsedDocuments:
    """`load_document` through a cache kept in `folder`; `save()` keeps what this build used."""

    def __init__(self, folder: Path, started_ns: int, version: str = "", stats: dict[str, tuple] | None = None):
        """`version`: the generator's (`render_cache.generator_version()`); `stats`: the input
        files' (size, mtime, inode) by absolute path as the build saw them at its start, so a
        document is taken from the cache as of that look (and its file is not looked at again)."""
        self.folder = Path(folder)
        self.version = version
        self._stats = stats or {}
        self._cwd = os.getcwd()
        self._blob = ShardedBlob(self.folder / FOLDER_NAME, shard_of=_shard_of_key,
                                 loads=pickle.loads, dumps=_dumps)
        self._old: dict = self._blob.merged()
        self._new: dict = {}
        self._trusted_before = started_ns - RACY_NS
        self.parsed = 0
        self.saved_as: dict[str, tuple] = {}   # path -> the key its document is saved under

    def load(self, path: Path, kind: str, zone: ZoneInfo, images: dict[str, Path] | None = None) -> Document:
        """The document in `path`, parsed now only if its file changed."""
        name = str(path)
        seen = self._stats.get(name if name.startswith("/") else f"{self._cwd}/{name}")
        if seen is None or seen == UNKNOWN:
            stat = os.stat(path)
            seen = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        key = (name, kind, zone.key, None if images is None else tuple(images), *seen, self.version)
        document = _document(self._old.get(key), path)
        if document is None:
            document = load_document(path, kind, zone, images)
            self.parsed += 1
        if seen[1] < self._trusted_before:
            self._new[key] = document
            self.saved_as[name] = key
        return document

    def save(self, complete: bool = True) -> None:
        """Write the entries of this build, unless they are those that were loaded; unless
        `complete` (a build that failed), add them to those kept instead."""
        if not complete:
            self._blob.add({key: document for key, document in self._new.items() if key not in self._old})
        elif self._new.keys() != self._old.keys():
            self._blob.save(self._new)
            with contextlib.suppress(OSError):   # the single file of earlier versions
                (self.folder / "documents.bin").unlink(missing_ok=True)


def saved_documents(folder: Path, keys: list[tuple]) -> list[Document] | None:
    """The documents `ParsedDocuments` in `folder` saved under `keys` (`saved_as`), in that
    order; None when one of them is not there."""
    saved = ShardedBlob(Path(folder) / FOLDER_NAME, shard_of=_shard_of_key, loads=pickle.loads, dumps=_dumps)
    documents = []
    for key in keys:
        document = _document(saved.get(key), Path(key[0]))
        if document is None:
            return None
        documents.append(document)
    return documents


def _document(state: object, path: Path) -> Document | None:
    """The document of `path` from what the cache holds of it: its fields, or the document
    itself as this process saved it (`serve`); None for nothing."""
    if isinstance(state, Document):
        return state
    if not isinstance(state, dict):
        return None
    document = Document.__new__(Document)
    document.__dict__.update(state)
    document.source = path
    return document


def _dumps(documents: tuple[Document, ...]) -> bytes:
    # Each document is saved as its fields (and the values it computed once, such as its
    # digests) without its path, which the key holds: a Path is slow to unpickle. Only the
    # shards an edit changed are saved, so only their documents are taken apart.
    return pickle.dumps(tuple({name: value for name, value in document.__dict__.items() if name != "source"}
                              if isinstance(document, Document) else document for document in documents))


def _shard_of_key(key: tuple) -> int:
    # By source path: every version of a file's entry lands in the same shard.
    return zlib.crc32(key[0].encode("utf-8", "surrogatepass")) % SHARDS
