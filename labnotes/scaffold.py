"""`build.py new "Title"`: a post file with front matter, ready to write."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from .errors import BuildError
from .slugs import slugify


def new_post(content_dir: Path, title: str, day: date) -> Path:
    """Create content/posts/YYYY-MM-DD-slug.md; never overwrites an existing file."""
    if not title.strip():
        raise BuildError(None, 'give the post a title: build.py new "My title"')
    path = Path(content_dir) / "posts" / f"{day.isoformat()}-{slugify(title)}.md"
    if path.exists():
        raise BuildError(path, "already exists; choose another title or edit that file")
    path.parent.mkdir(parents=True, exist_ok=True)
    quoted = json.dumps(title.strip(), ensure_ascii=False)
    path.write_text(
        f"---\ntitle: {quoted}\ndate: {day.isoformat()}\ncategories: []\ndraft: true\n---\n"
        "The intro: what this post shows and why it matters.\n\n<!--more-->\n\n## First section\n",
        encoding="utf-8",
    )
    return path
