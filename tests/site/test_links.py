"""`build.py check` finds broken internal links and anchors in the built site."""
from pathlib import Path

from labnotes.links import broken_links


def page(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!DOCTYPE html><html><body>\n{body}\n</body></html>")


def test_missing_page_and_missing_anchor_are_reported_with_line(tmp_path):
    out = tmp_path / "output"
    page(out / "index.html", '<a href="/blog/posts/a.html#intro">a</a>\n'
                             '<a href="/blog/posts/gone.html">gone</a>\n'
                             '<a href="posts/a.html#nowhere">bad anchor</a>\n'
                             '<a href="https://elsewhere.org/x">external</a>\n'
                             '<a href="/blog/about/">about</a>\n'
                             '<img src="https://example.org/blog/labs/missing.svg">')
    page(out / "posts" / "a.html", '<h2 id="intro">Intro</h2><a href="#intro">self</a>')
    page(out / "about" / "index.html", "About")
    problems = broken_links(out, "https://example.org/blog/")
    assert problems == [
        "output/index.html:3: broken link /blog/posts/gone.html (no posts/gone.html)",
        'output/index.html:4: broken anchor posts/a.html#nowhere (no id "nowhere" in '
        "posts/a.html)",
        "output/index.html:7: broken link https://example.org/blog/labs/missing.svg "
        "(no labs/missing.svg)",
    ]


def test_a_site_whose_links_all_resolve_has_no_problems(tmp_path):
    out = tmp_path / "output"
    page(out / "index.html", '<a href="/posts/a.html">a</a><a href="#top" id="top">top</a>')
    page(out / "posts" / "a.html", '<a href="../index.html">home</a>')
    assert broken_links(out, "https://example.org/") == []
