"""The one error type a build reports: a file, maybe a line, what is wrong and what to do."""
from __future__ import annotations

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
        if self.path is None:
            return f"error: {self.message}"
        shown = _relative(self.path)
        where = f"{shown}:{self.line}" if self.line is not None else str(shown)
        return f"{where}: error: {self.message}"


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
