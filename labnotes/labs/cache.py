"""The lab cache on disk: one JSON entry per lab call and device, and the figures they name.

An entry records a lab's result and what it was made from: the code digest of every
labcode module it imported, the project data files it read (by path and content), other
files it read (tiktoken's encoding: by name and content, wherever they live), the files it
wrote, the upstream lab it ran after, and the torch release. Deciding what is fresh is
the planner's job (plan.py); this module only reads, writes and hashes. The folder holds
no clock time and no absolute path, so it can be committed and republished elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labnotes.labs.resolve import code_digests, module_file

FORMAT = 2


@dataclass
class CacheEntry:
    """A lab's recorded result and the inputs it was made from."""

    ref: str
    args: list[list[str]]
    quick: bool
    device: str
    device_name: str
    torch_version: str
    modules: dict[str, str]                 # module name -> digest of its code
    definitions: dict[str, dict[str, str]]  # module name -> {top-level name: digest}
    reads: dict[str, str]                   # project data file or listed folder (relative) -> sha256
    resources: dict[str, str]               # other file read, by name -> sha256
    writes: dict[str, str]                  # file the lab wrote (relative) -> sha256
    after: dict[str, str]                   # {"ref": upstream ref, "digest": its digest}
    result: dict = field(default_factory=dict)  # output, value, data, figures, wall_s

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


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, or of a folder's sorted names; None when there is neither."""
    path = Path(path)
    try:
        if path.is_dir():
            return hashlib.sha256("\n".join(sorted(os.listdir(path))).encode()).hexdigest()
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def module_digests(root: Path, modules) -> tuple[dict[str, str | None], dict[str, dict]]:
    """Code digests of labcode modules as they are on disk now (None: the module is gone).

    Parsing is the slow part of a build that runs no lab, so digests are remembered in
    .cache/code-digests.json (safe to delete), for each module the version last seen (by the
    sha256 of its bytes): the file stays as small as labcode however often modules change.
    """
    memo_path = Path(root) / ".cache" / "code-digests.json"
    try:
        saved = json.loads(memo_path.read_text(encoding="utf-8"))
        memo = saved["modules"] if saved.get("format") == 2 else {}
    except (OSError, ValueError, AttributeError, KeyError):
        memo = {}
    changed = False
    whole: dict[str, str | None] = {}
    parts: dict[str, dict] = {}
    for name in modules:
        file = module_file(root, name)
        if file is None:
            whole[name] = None
            changed |= memo.pop(name, None) is not None
            continue
        data = file.read_bytes()
        key = hashlib.sha256(data).hexdigest()
        if not (isinstance(memo.get(name), list) and memo[name][:1] == [key]):
            try:
                memo[name] = [key, *code_digests(data.decode("utf-8"))]
            except (SyntaxError, UnicodeDecodeError, ValueError):
                memo[name] = [key, key, {}]
            changed = True
        whole[name], parts[name] = memo[name][1], memo[name][2]
    if changed:
        try:
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=memo_path.parent, prefix=".digests-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": 2, "modules": memo}, handle)
            os.replace(temp, memo_path)
        except OSError:
            pass            # a cache that cannot be written only costs time
    return whole, parts


def figure_files(figures: list[dict]) -> set[str]:
    """The files under figures/ a lab's figures name: each figure, and its preview if any."""
    return {name for f in figures for name in (f["file"], f.get("preview")) if name}


class LabCache:
    """Reads and writes entries under `folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.figures = self.folder / "figures"
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
                return None      # an older engine's entry: rerun and replace it
            return CacheEntry(**data)
        except (ValueError, TypeError, UnicodeDecodeError, AttributeError) as exc:
            self.warnings.append(f"{os.path.relpath(path)}: warning: corrupt cache entry "
                                 f"ignored and rebuilt ({type(exc).__name__})")
            return None

    def load_any(self, stem: str, devices: list[str]) -> CacheEntry | None:
        for device in devices:
            entry = self.load(stem, device)
            if entry is not None:
                return entry
        return None

    def figure_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.figures.iterdir()) if self.figures.is_dir() \
            else frozenset()

    def save(self, stem: str, entry: CacheEntry) -> None:
        """Write `entry` atomically; figures only the entry it replaces named are removed."""
        replaced = self.load(stem, entry.device)
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, **asdict(entry)}, sort_keys=True, indent=1,
                          ensure_ascii=False) + "\n"
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".entry-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, self.path(stem, entry.device))
        if replaced is not None:
            old = figure_files(replaced.result.get("figures", []))
            for name in old - self._named_figures():
                (self.figures / name).unlink(missing_ok=True)

    def _named_figures(self) -> set[str]:
        named = set()
        for path in self.folder.glob("*.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                named.update(figure_files(data["result"].get("figures", [])))
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                continue
        return named

    def orphans(self, keep: set[str]) -> list[Path]:
        """Entries whose stem is not in `keep`, and figures no kept entry names."""
        if not self.folder.is_dir():
            return []
        found, named = [], set()
        for path in sorted(self.folder.glob("*.json")):
            if path.name.rsplit(".", 2)[0] not in keep:
                found.append(path)
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                named.update(figure_files(data["result"].get("figures", [])))
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                continue
        if self.figures.is_dir():
            found += [p for p in sorted(self.figures.iterdir()) if p.name not in named]
        return found
