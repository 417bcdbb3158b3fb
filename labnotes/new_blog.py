"""`labnotes init DIR`: a new blog, copied from blog_starter/ with its few blanks filled in.

The new blog has no templates or static files of its own: the generator's are used in place
(pages.py and pipeline.py look in the blog's templates/ and static/ first, file by file), so a
blog overrides exactly the files it copies, and gets the generator's fixes for the others.
"""
from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from datetime import date
from pathlib import Path

from .errors import BuildError

STARTER = Path(__file__).resolve().parent / "blog_starter"
GENERATOR_ROOT = STARTER.parent.parent
POST_NAME = "softmax-temperature"
# Written into the workflow when the generator's own repository is not known (no git remote).
UNKNOWN_REPOSITORY = "https://example.org/REPLACE-WITH-THE-LAB-NOTES-REPOSITORY.git"


def create_blog(folder: Path, today: date) -> list[str]:
    """Write a new blog into `folder` (absent or empty); returns notes for the user."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        what = "is a file" if not folder.is_dir() else "exists and is not empty"
        error = BuildError(None, f"{folder} {what}; `labnotes init` writes only into a new or empty "
                           "folder: give another path")
        error.exit_status = 2
        raise error
    repository = generator_repository()
    blanks = {"@LABNOTES_REPOSITORY@": repository or UNKNOWN_REPOSITORY,
              "@TORCH_VERSION@": _torch_version(), "@TITLE@": "My Lab Notes", "@DATE@": today.isoformat()}
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(STARTER.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(STARTER)
        if relative.name == "POST.md":
            relative = relative.with_name(f"{today.isoformat()}-{POST_NAME}.md")
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        for blank, value in blanks.items():
            text = text.replace(blank, value)
        target.write_text(text, encoding="utf-8")
        shutil.copymode(source, target)
    notes = []
    if not repository:
        notes.append(f"note: Lab Notes' own repository is not known here (no git remote in {GENERATOR_ROOT}): "
                     f"set LABNOTES_REPOSITORY in {folder / '.github/workflows/publish.yml'} before you publish")
    return notes


def generator_repository() -> str:
    """Where this copy of Lab Notes was cloned from (its git remote `origin`), or ""."""
    try:
        found = subprocess.run(["git", "-C", str(GENERATOR_ROOT), "remote", "get-url", "origin"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return found.stdout.strip() if found.returncode == 0 else ""


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch").split("+", 1)[0]
    except importlib.metadata.PackageNotFoundError:
        return "2.13.0"
