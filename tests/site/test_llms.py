"""llms.txt, Markdown mirrors and llms-full.txt, read back with the llms-txt parser and markdown2."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import markdown2
from bs4 import BeautifulSoup
from llms_txt import parse_llms_file

from labnotes.llms import (mirror_path, mirror_url, render_llms_full, render_llms_txt,
                           render_markdown_mirror)
from labnotes.model import Document, RenderedDocument, SiteConfig

CONFIG = SiteConfig(title="Lab Notes", author="Ada", base_url="https://example.org/",
                    description="Notes that run their own PyTorch code.")
UTC = timezone.utc

BODY = """Attention weights, computed by the lab below.

![Attention map](/figures/attn.png "heat map")

See [the previous post](/posts/old.html), [a sibling](new.html), [the footnote](#fn-1)
and [elsewhere](https://pytorch.org/docs/).

[ref]: /posts/old.html#setup

Inline `[not a link](/x)` code.

```python
print("[kept](/as/written)")
```

```text
loss 3.14 after 10 steps
```
"""


def rendered(kind: str, slug: str, title: str, *, day: int = 1, summary: str = "",
             categories=(), markdown: str = BODY) -> RenderedDocument:
    doc = Document(kind=kind, source=Path(f"content/{kind}s/{slug}.md"), title=title, slug=slug,
                   body=markdown, body_line=1,
                   date=datetime(2024, 3, day, 8, 0, tzinfo=UTC) if kind == "post" else None,
                   categories=tuple(categories), summary=summary)
    return RenderedDocument(document=doc, html="", intro_html="", has_more=False, markdown=markdown)


POSTS = [rendered("post", "old", "Old post", day=1, summary="The first one."),
         rendered("post", "new", "New post", day=9, summary="The second one.", categories=("GPT-2",))]
PAGES = [rendered("page", "about", "About", summary="Who writes this.")]


def test_llms_txt_parses_with_title_summary_and_sections_in_order():
    parsed = parse_llms_file(render_llms_txt(CONFIG, POSTS, PAGES))
    assert parsed.title == "Lab Notes"
    assert parsed.summary == "Notes that run their own PyTorch code."
    assert "PyTorch" in parsed.info
    assert list(parsed.sections) == ["Posts", "Optional"]


def test_llms_txt_links_each_post_markdown_mirror_newest_first():
    parsed = parse_llms_file(render_llms_txt(CONFIG, POSTS, PAGES))
    posts = parsed.sections["Posts"]
    assert [(p.title, p.url) for p in posts] == [
        ("New post", "https://example.org/posts/new.html.md"),
        ("Old post", "https://example.org/posts/old.html.md"),
    ]
    assert "The second one." in posts[0].desc


def test_llms_txt_optional_section_has_pages_and_full_text():
    parsed = parse_llms_file(render_llms_txt(CONFIG, POSTS, PAGES))
    urls = [link.url for link in parsed.sections["Optional"]]
    assert urls == ["https://example.org/about/index.html.md", "https://example.org/llms-full.txt"]


def test_llms_txt_sections_hold_only_link_lines():
    text = render_llms_txt(CONFIG, POSTS, PAGES)
    after_first_section = text[text.index("\n## "):]
    for line in after_first_section.splitlines():
        assert line == "" or line.startswith("## ") or re.fullmatch(r"- \[[^\]]+\]\([^)\s]+\)(: .+)?", line), line


def test_mirror_urls_are_html_url_plus_md():
    assert mirror_path(POSTS[0].document) == "posts/old.html.md"
    assert mirror_path(PAGES[0].document) == "about/index.html.md"
    assert mirror_url(CONFIG, PAGES[0].document) == "https://example.org/about/index.html.md"


def test_llms_txt_survives_brackets_newlines_markup_and_emoji_in_titles():
    nasty = 'Arrays [1:2] & <script>alert("x")</script>\nsecond line 🚀'
    posts = [rendered("post", "nasty", nasty, summary="x < y & [z]\nnext")]
    text = render_llms_txt(CONFIG, posts, [])
    link = parse_llms_file(text).sections["Posts"][0]
    assert link.url == "https://example.org/posts/nasty.html.md"
    # As a reader sees the line once Markdown is rendered: the whole title is link text.
    html = markdown2.markdown(next(l for l in text.splitlines() if l.startswith("- [")))
    anchor = BeautifulSoup(html, "html.parser").find("a")
    assert anchor["href"] == "https://example.org/posts/nasty.html.md"
    assert anchor.get_text() == 'Arrays (1:2) & <script>alert("x")</script> second line 🚀'
    assert BeautifulSoup(html, "html.parser").find("script") is None


def test_llms_txt_title_with_markup_reads_back():
    config = SiteConfig(title="R&D <Notes> 🧪", description="A > B & C", base_url="https://example.org/")
    parsed = parse_llms_file(render_llms_txt(config, POSTS, PAGES))
    heading = BeautifulSoup(markdown2.markdown(f"# {parsed.title}"), "html.parser").h1
    assert heading.get_text() == "R&D <Notes> 🧪"
    assert parsed.summary == "A > B & C"


def test_markdown_mirror_has_title_metadata_and_canonical_url():
    mirror = render_markdown_mirror(CONFIG, POSTS[1])
    assert mirror.startswith("# New post\n")
    soup = BeautifulSoup(markdown2.markdown(mirror, extras=["fenced-code-blocks"]), "html.parser")
    meta = soup.find("ul").get_text()
    assert "2024-03-09" in meta and "GPT-2" in meta
    assert soup.find("a", href="https://example.org/posts/new.html") is not None


def test_markdown_mirror_links_and_images_are_absolute_but_code_is_untouched():
    mirror = render_markdown_mirror(CONFIG, POSTS[1])
    soup = BeautifulSoup(markdown2.markdown(mirror, extras=["fenced-code-blocks"]), "html.parser")
    assert soup.find("img")["src"] == "https://example.org/figures/attn.png"
    hrefs = [a["href"] for a in soup.find_all("a")]
    assert "https://example.org/posts/old.html" in hrefs
    assert "https://example.org/posts/new.html" in hrefs        # new.html relative to posts/
    assert "https://example.org/posts/new.html#fn-1" in hrefs
    assert "https://pytorch.org/docs/" in hrefs
    assert "[ref]: https://example.org/posts/old.html#setup" in mirror
    assert "`[not a link](/x)`" in mirror
    assert 'print("[kept](/as/written)")' in mirror
    assert "loss 3.14 after 10 steps" in mirror


def test_markdown_mirror_escapes_markup_in_titles():
    doc = rendered("post", "x", "Use <b> & enjoy 🚀", categories=("Q&A <tips>",))
    html = markdown2.markdown(render_markdown_mirror(CONFIG, doc))
    soup = BeautifulSoup(html, "html.parser")
    assert soup.h1.get_text() == "Use <b> & enjoy 🚀"
    assert soup.find("b") is None
    assert "Q&A <tips>" in soup.get_text()


def test_llms_full_has_every_post_newest_first_then_pages():
    full = render_llms_full(CONFIG, POSTS, PAGES)
    headings = re.findall(r"^# (.+)$", full, flags=re.MULTILINE)
    assert headings == ["Lab Notes", "New post", "Old post", "About"]
    assert full.count("loss 3.14 after 10 steps") == 3
    assert full.count("https://example.org/figures/attn.png") == 3


def test_outputs_are_stable_for_the_same_input():
    assert render_llms_txt(CONFIG, POSTS, PAGES) == render_llms_txt(CONFIG, POSTS[::-1], PAGES)
    assert render_llms_full(CONFIG, POSTS, PAGES) == render_llms_full(CONFIG, POSTS[::-1], PAGES)


def test_markdown_mirror_root_links_mean_the_site_root_under_a_sub_path():
    config = SiteConfig(base_url="https://example.org/blog/")
    doc = rendered("post", "p", "P", markdown="![fig](/figures/a.png) and [b](b.html)\n")
    mirror = render_markdown_mirror(config, doc)
    assert "![fig](https://example.org/blog/figures/a.png)" in mirror
    assert "[b](https://example.org/blog/posts/b.html)" in mirror


def test_mirror_keeps_footnote_definitions_as_written():
    body = "A claim.[^1]\n\n[^1]: Not quite: see the later post.\n[ref]: /posts/old.html\n"
    mirror = render_markdown_mirror(CONFIG, rendered("post", "claims", "Claims", markdown=body))
    assert "[^1]: Not quite: see the later post." in mirror
    assert "[ref]: https://example.org/posts/old.html" in mirror
