"""What a build reports about its input: errors stop it, warnings do not.

Both name a file, maybe a line, what is wrong and what to do, on one line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class BuildError(Exception):
    """Bad input: printed as one line `path:line: message` and the build exits 1."""

    def __init__(self, path: Path | str | None, message: str, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """`content/posts/a.md:12: error: ...` with the path relative to the working folder."""
        return _one_line(self.path, self.line, "error", self.message)


@dataclass(frozen=True)
class BuildWarning:
    """Input that builds but breaks a rule of the blog (a copied lab number): printed, not fatal."""

    path: Path
    message: str
    line: int | None = None

    def one_line(self) -> str:
        """`content/posts/a.md:12: warning: ...`."""
        return _one_line(self.path, self.line, "warning", self.message)


def display_path(path: Path) -> Path:
    """`path` relative to the working folder when it is inside it, as messages show files."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _one_line(path: Path | None, line: int | None, level: str, message: str) -> str:
    if path is None:
        return f"{level}: {message}"
    shown = display_path(path)
    where = f"{shown}:{line}" if line is not None else str(shown)
    return f"{where}: {level}: {message}"
