"""Tiny sites in tmp_path: a few lines of Markdown in, the built files out."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

SITE_TOML = """\
title = "Test Notes"
author = "Ada"
base_url = "https://example.org/"
timezone = "Europe/Paris"
posts_per_page = 2
blogroll = [{ name = "Distill", url = "https://distill.pub/" }]
"""


def post_text(title="A post", date="2026-03-01T09:30:00+00:00", categories="[Notes]", body="Hello.", **extra) -> str:
    """A post file's text with the usual front matter."""
    lines = ["---", f"title: {title}", f"date: {date}"]
    if categories is not None:
        lines.append(f"categories: {categories}")
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines + ["---", textwrap.dedent(body)])


class TinySite:
    """A project folder with site.toml and content/; `build()` runs the real pipeline."""

    def __init__(self, root: Path):
        self.root = root
        self.config = root / "site.toml"
        self.content = root / "content"
        self.out = root / "output"
        self.config.write_text(SITE_TOML, encoding="utf-8")
        (self.content / "posts").mkdir(parents=True)
        (self.content / "pages").mkdir(parents=True)

    def post(self, name: str, text: str | bytes) -> Path:
        path = self.content / "posts" / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    def page(self, name: str, text: str) -> Path:
        path = self.content / "pages" / name
        path.write_text(text, encoding="utf-8")
        return path

    def build(self, **options):
        from labnotes.model import BuildOptions
        from labnotes.pipeline import build
        return build(self.config, self.content, self.out, BuildOptions(**options))

    def html(self, relative: str):
        from bs4 import BeautifulSoup
        return BeautifulSoup((self.out / relative).read_text(encoding="utf-8"), "html5lib")

    def snapshot(self) -> dict[str, bytes]:
        return {p.relative_to(self.out).as_posix(): p.read_bytes() for p in sorted(self.out.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path) -> TinySite:
    return TinySite(tmp_path)
