"""The lab cache: one JSON entry per lab and device, keyed on what the lab really used.

An entry records the hash of every labcode module the lab imported, every data
file it read, every file it wrote, the upstream lab it ran after, and the torch
version. A lab is fresh when all of these still match; otherwise `stale_reasons`
says what changed (that is what `--why` prints). The folder holds no clock time
and no absolute path, so it can be committed and republished elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from labnotes.labs.resolve import module_file

FORMAT = 1


@dataclass
class CacheEntry:
    """A lab's recorded result and the inputs it was made from."""

    ref: str
    args: list[list[str]]
    quick: bool
    device: str
    device_name: str
    torch_version: str
    modules: dict[str, str]           # module name -> sha256 of its source
    reads: dict[str, str]             # project-relative data file -> sha256
    writes: dict[str, str]            # project-relative file the lab wrote -> sha256
    after: dict[str, str]             # {"ref": upstream ref, "digest": upstream digest}
    result: dict = field(default_factory=dict)  # output, output_dropped, value, figures, wall_s

    def digest(self) -> str:
        """Changes when what downstream labs can see of this lab changes."""
        seen = json.dumps([self.result, self.writes], sort_keys=True)
        return hashlib.sha256(seen.encode()).hexdigest()[:16]


def instance_id(ref: str, args, quick: bool) -> str:
    """Stable file stem for one lab call: readable prefix + hash of reference and arguments."""
    blob = json.dumps([ref, [list(a) for a in args], quick])
    short = hashlib.sha256(blob.encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", ref.removeprefix("labcode."))
    return f"{readable}-{short}"


def base_version(version: str) -> str:
    """2.13.0+cpu and 2.13.0+cu128 are the same torch release."""
    return version.split("+", 1)[0]


class LabCache:
    """Reads and writes entries under `folder`; hashes project files at most once per build."""

    def __init__(self, folder: Path, root: Path):
        self.folder, self.root = Path(folder), Path(root)
        self.figures = self.folder / "figures"
        self._hashes: dict[Path, str | None] = {}
        self.warnings: list[str] = []

    def path(self, stem: str, device: str) -> Path:
        return self.folder / f"{stem}.{device}.json"

    def load(self, stem: str, device: str) -> CacheEntry | None:
        """The entry, or None when absent; a corrupt entry is a warning, never fatal."""
        path = self.path(stem, device)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.pop("format", None) != FORMAT:
                raise ValueError("unknown format")
            return CacheEntry(**data)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            self.warnings.append(f"{os.path.relpath(path)}: warning: corrupt cache entry ignored "
                                 "and rebuilt "
                                 f"({type(exc).__name__})")
            return None

    def load_any(self, stem: str, devices: list[str]) -> CacheEntry | None:
        for device in devices:
            entry = self.load(stem, device)
            if entry is not None:
                return entry
        return None

    def save(self, stem: str, entry: CacheEntry) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, **entry.__dict__}
        text = json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        target = self.path(stem, entry.device)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".entry-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, target)

    def prune(self, keep: set[str]) -> list[Path]:
        """Delete entries whose stem is not in `keep` and figures no entry names.

        Run after a full build, so a committed cache holds only what the site shows.
        """
        removed = []
        if not self.folder.is_dir():
            return removed
        named = set()
        for path in sorted(self.folder.glob("*.json")):
            stem = path.name.rsplit(".", 2)[0]
            if stem not in keep:
                path.unlink()
                removed.append(path)
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                named.update(f["file"] for f in data["result"].get("figures", []))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        if self.figures.is_dir():
            for path in sorted(self.figures.iterdir()):
                if path.name not in named:
                    path.unlink()
                    removed.append(path)
        return removed

    def file_hash(self, path: Path) -> str | None:
        """sha256 of a file's bytes, None if it does not exist."""
        path = Path(path)
        if path not in self._hashes:
            try:
                self._hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                self._hashes[path] = None
        return self._hashes[path]

    def forget(self, paths) -> None:
        """Files just written by a lab: hash them afresh next time."""
        for rel in paths:
            self._hashes.pop(self.root / rel, None)

    def module_hashes(self, modules: list[str]) -> dict[str, str]:
        hashes = {}
        for name in modules:
            file = module_file(self.root, name)
            if file is not None:
                hashes[name] = self.file_hash(file)
        return hashes

    def stale_reasons(self, entry: CacheEntry, torch_version: str,
                      upstream: CacheEntry | None) -> list[str]:
        """Why this entry cannot be reused; an empty list means it is fresh."""
        reasons = []
        if base_version(entry.torch_version) != base_version(torch_version):
            reasons.append(f"torch {base_version(entry.torch_version)} -> "
                           f"{base_version(torch_version)}")
        for name, digest in sorted(entry.modules.items()):
            file = module_file(self.root, name)
            if file is None:
                reasons.append(f"module {name} is gone")
            elif self.file_hash(file) != digest:
                reasons.append(f"{file.relative_to(self.root)} changed")
        upstream_writes = upstream.writes if upstream is not None else {}
        for rel, digest in sorted(entry.reads.items()):
            if rel in upstream_writes:
                if upstream_writes[rel] != digest:
                    reasons.append(f"{rel} (made by {upstream.ref}) changed")
            elif upstream is not None and self.file_hash(self.root / rel) is None:
                # Missing on this disk (a fresh clone): an artefact of the upstream lab,
                # whose own record vouches for it (torch.save writes outside Python's open).
                continue
            elif self.file_hash(self.root / rel) != digest:
                reasons.append(f"data file {rel} changed")
        if entry.after:
            if upstream is None:
                reasons.append(f"upstream lab {entry.after['ref']} has no result")
            elif upstream.digest() != entry.after.get("digest"):
                reasons.append(f"upstream lab {entry.after['ref']} changed")
        for figure in entry.result.get("figures", []):
            if not (self.figures / figure["file"]).is_file():
                reasons.append(f"figure {figure['file']} is missing from the cache")
        return reasons
