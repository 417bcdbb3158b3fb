"""References to other posts stay right (SPEC 3): `[](post:SLUG)` shows the post's current title,
`[part](post:SLUG)` its part in its series, and the link is filled in wherever the document is
published; a reference to no published post is a one-line error naming file and line."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import feedparser
import markdown2
import nbformat
import pytest
from bs4 import BeautifulSoup

import build as cli
from conftest import post_text
from labnotes.errors import BuildError
from labnotes.model import Document, SiteConfig
from labnotes.notebooks import notebook_pieces, render_notebook
from labnotes.post_references import PostLink, find_references

SERIES = "LLM from scratch"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def series_site(site, citing_body: str, base_url: str | None = None):
    """Posts `tokens` (part 1) and `attention` (part 2) of a series, and `notes`, which refers
    to them with `citing_body`."""
    if base_url:
        site.config.write_text(site.config.read_text().replace('"https://example.org/"', f'"{base_url}"'))
    site.post("tokens.md", post_text(title='"Tokens & ids"', date="2026-01-05", series=SERIES,
                                     body="## From text to ids\n\nText.\n"))
    site.post("attention.md", post_text(title="Attention, one step at a time", date="2026-01-20", series=SERIES,
                                        body="## The mask\n\nMasked.\n"))
    return site.post("notes.md", post_text(title="Notes", date="2026-02-01", body=citing_body))


def markdown_links(markdown: str) -> list[tuple[str, str]]:
    """(text, URL) of each link of `markdown`, read by a Markdown parser."""
    html = markdown2.markdown(markdown)
    return [(a.get_text(), a["href"]) for a in BeautifulSoup(html, "html5lib").select("a")]


def build_error(site, **options) -> BuildError:
    with pytest.raises(BuildError) as caught:
        site.build(**options)
    return caught.value


# --- what a reference shows, everywhere the document is published -------------------------

def test_empty_text_shows_the_posts_title_and_part_its_part_number_in_every_output(site):
    series_site(site, "Start with [](post:tokens), then [part](post:attention); [Part](post:tokens) "
                      "is first and [the mask](post:attention#the-mask) comes later.\n",
                base_url="https://example.org/blog/")
    site.build()
    expected_text = ["Tokens & ids", "part 2", "Part 1", "the mask"]
    page = site.html("posts/notes.html").select_one(".post-body")
    assert [(a.get_text(), a["href"]) for a in page.select("a")] == list(zip(expected_text, [
        "/blog/posts/tokens.html", "/blog/posts/attention.html", "/blog/posts/tokens.html",
        "/blog/posts/attention.html#the-mask"]))
    absolute = ["https://example.org/blog/posts/tokens.html", "https://example.org/blog/posts/attention.html",
                "https://example.org/blog/posts/tokens.html", "https://example.org/blog/posts/attention.html#the-mask"]
    feed = feedparser.parse((site.out / "feed.xml").read_bytes())
    item = next(e for e in feed.entries if e.title == "Notes")
    content = BeautifulSoup(item.content[0].value, "html5lib")
    assert [(a.get_text(), a["href"]) for a in content.select("a")] == list(zip(expected_text, absolute))
    mirror = (site.out / "posts/notes.html.md").read_text(encoding="utf-8")
    body = mirror.split("\n\n", 3)[3]   # title, metadata, summary, then the body
    assert markdown_links(body) == list(zip(expected_text, absolute))
    assert "post:" not in (site.out / "llms-full.txt").read_text(encoding="utf-8")
    assert "[Tokens \\& ids](https://example.org/blog/posts/tokens.html)" in \
        (site.out / "llms-full.txt").read_text(encoding="utf-8")


def test_summaries_and_intros_show_the_filled_in_text(site):
    series_site(site, "Picks up where [](post:attention) stopped, [part](post:attention).\n\n<!--more-->\n\nMore.\n")
    site.build()
    description = site.html("posts/notes.html").select_one('meta[name="description"]')["content"]
    assert description == "Picks up where Attention, one step at a time stopped, part 2."
    feed = feedparser.parse((site.out / "feed.xml").read_bytes())
    assert next(e for e in feed.entries if e.title == "Notes").summary == description
    intro = site.html("index.html").select_one('article:has(a[href="/posts/notes.html"]) .post-body')
    assert ("Attention, one step at a time", "/posts/attention.html") in \
        [(a.get_text(), a["href"]) for a in intro.select("a")]
    assert "stopped, part 2." in (site.out / "llms.txt").read_text(encoding="utf-8")


def test_a_page_refers_to_posts_too(site):
    series_site(site, "Text.\n")
    site.page("about.md", "---\ntitle: About\n---\nStart at [](post:tokens).\n")
    site.build()
    links = [(a.get_text(), a["href"]) for a in site.html("about/index.html").select("article.page .post-body a")]
    assert links == [("Tokens & ids", "/posts/tokens.html")]


def test_code_maths_and_escaped_brackets_are_never_references(site):
    body = "\n".join([
        "Real: [](post:tokens).",
        "Span: `[](post:nowhere)`; maths $[a](post:nowhere)$; image-like ![x](/images/none.png) left out.",
        "",
        "```markdown",
        "[](post:nowhere)",
        "```",
        "",
        "    [](post:nowhere-indented)",
        "",
    ]).replace("![x](/images/none.png) left out", "nothing else")
    series_site(site, body)
    site.build()
    page = site.html("posts/notes.html").select_one(".post-body")
    assert [a.get_text() for a in page.select("a")] == ["Tokens & ids"]
    assert "[](post:nowhere)" in page.select_one("code").get_text()
    assert "[](post:nowhere-indented)" in page.select("pre")[-1].get_text()
    assert [r.slug for r in find_references(Document("post", Path("n.md"), "N", "n", body, 1))] == ["tokens"]


def test_a_link_text_over_two_lines_keeps_its_text(site):
    series_site(site, "As [the previous\npart](post:tokens) showed.\n")
    site.build()
    (link,) = site.html("posts/notes.html").select(".post-body a")
    assert " ".join(link.get_text().split()) == "the previous part" and link["href"] == "/posts/tokens.html"


def test_notebook_markdown_cells_fill_in_references():
    body = "See [](post:tokens) and [part](post:attention#the-mask).\n"
    doc = Document("post", Path("content/posts/notes.md"), "Notes", "notes", body, 5)
    links = {ref: link for ref, link in zip(find_references(doc), [
        PostLink("Tokens & ids", "/posts/tokens.html"), PostLink("part 2", "/posts/attention.html#the-mask")])}
    config = SiteConfig(base_url="https://example.org/blog/")
    pieces = notebook_pieces(doc, None, None, refer=links.__getitem__)
    notebook = nbformat.reads(render_notebook(config, doc, pieces).decode("utf-8"), as_version=4)
    prose = "\n".join(cell.source for cell in notebook.cells[2:] if cell.cell_type == "markdown")
    assert markdown_links(prose) == [("Tokens & ids", "https://example.org/blog/posts/tokens.html"),
                                     ("part 2", "https://example.org/blog/posts/attention.html#the-mask")]


# --- the numbers and titles follow their posts ----------------------------------------------

def test_inserting_a_part_renumbers_and_retitling_renames_the_references(site, tmp_path):
    from test_incremental import clean_build, edit
    notes = series_site(site, "The [part](post:attention) on [](post:attention); also [see this](post:tokens).\n")
    site.build()
    texts = lambda: [a.get_text() for a in site.html("posts/notes.html").select(".post-body a")]
    assert texts() == ["part 2", "Attention, one step at a time", "see this"]
    site.post("embeddings.md", post_text(title="Embeddings", date="2026-01-10", series=SERIES))
    report = site.build()
    assert texts() == ["part 3", "Attention, one step at a time", "see this"]
    assert "posts/notes.html" in report.rendered
    edit(site.content / "posts" / "attention.md", "title: Attention, one step at a time",
         "title: Attention, step by step")
    site.build()
    assert texts() == ["part 3", "Attention, step by step", "see this"]
    assert site.snapshot() == clean_build(site, tmp_path)
    assert notes.exists()


def test_a_document_is_rendered_again_only_when_what_its_references_show_changes(site):
    from test_incremental import edit
    series_site(site, "After [](post:attention) and [the ids](post:tokens).\n")
    site.build()
    # the referenced post's prose: only that post is rendered again
    edit(site.content / "posts" / "attention.md", "Masked.", "Masked, edited.")
    assert site.build().documents_rendered == 1
    # the title of a post referred to with text of its own: pages listing that title, not the
    # referrer (a title is front matter: no body is rendered again)
    edit(site.content / "posts" / "tokens.md", 'title: "Tokens & ids"', 'title: "Tokens and ids"')
    report = site.build()
    assert report.documents_rendered == 0
    assert not {"posts/notes.html", "posts/notes.html.md"} & set(report.rendered)
    # the title it shows: the referrer's body, so its page, mirror and feed item
    edit(site.content / "posts" / "attention.md", "title: Attention, one step at a time", "title: Attention")
    report = site.build()
    assert report.documents_rendered == 1
    assert {"posts/notes.html", "posts/notes.html.md", "feed.xml"} <= set(report.rendered)
    assert [a.get_text() for a in site.html("posts/notes.html").select(".post-body a")] == ["Attention", "the ids"]


def test_a_rebuild_reads_the_references_of_edited_documents_only(site, monkeypatch):
    import os
    import time

    import labnotes.post_references as references
    from test_incremental import edit
    series_site(site, "See [](post:tokens) and [part](post:attention).\n")
    past = time.time() - 10    # files saved within a clock tick of a build are parsed every time
    for path in (site.content / "posts").iterdir():
        os.utime(path, (past, past))
    site.build()
    read = []
    real = references.find_references
    monkeypatch.setattr(references, "find_references", lambda doc: read.append(doc.slug) or real(doc))
    edit(site.content / "posts" / "tokens.md", "Text.", "Text, edited.")
    site.build()
    assert read == ["tokens"]


# --- errors ----------------------------------------------------------------------------------

def test_an_unknown_slug_is_one_line_naming_file_line_and_the_nearest_slugs(site, capsys, monkeypatch):
    site.post("training-a-tiny-gpt-on-this-blog.md", post_text(title="Training", date="2026-01-01"))
    site.post("a.md", post_text(title="A", date="2026-01-02", body="One.\n\nSee [](post:tiny-gpt).\n"))
    monkeypatch.chdir(site.root)
    code = cli.main(["build", "--config", "site.toml", "--content", "content", "--out", "output"])
    err = capsys.readouterr().err
    assert code == 1 and not site.out.exists()
    assert err.strip() == ("content/posts/a.md:8: error: post reference post:tiny-gpt: no post has this slug; "
                           "nearest: training-a-tiny-gpt-on-this-blog")


def test_a_reference_to_a_draft_or_a_held_back_post_says_why_and_what_to_do(site):
    site.post("a.md", post_text(title="A", date="2026-03-01", body="See [](post:soon) and [](post:wip).\n"))
    site.post("soon.md", post_text(title="Soon", date="2026-04-01"))
    site.post("wip.md", post_text(title="Work in progress", date="2026-03-02", draft="true"))
    error = build_error(site, now=NOW)
    assert (error.path.name, error.line) == ("a.md", 6)
    assert "post reference post:soon: " in error.message and "is dated 2026-04-01" in error.message
    assert "held back" in error.message and "--future" in error.message
    error = build_error(site, now=NOW, future=True)
    assert "post reference post:wip: " in error.message and "is a draft" in error.message
    assert "draft: true" in error.message and "serve --drafts" in error.message
    site.build(now=NOW, future=True, drafts=True)   # a preview of both publishes both
    assert [a.get_text() for a in site.html("posts/a.html").select(".post-body a")] == ["Soon", "Work in progress"]


@pytest.mark.parametrize("body, message", [
    ("See [](post:).", "post reference [](post:) names no post"),
    ("See [text](post:).", "post reference [text](post:) names no post"),
    ("See [](post:tokens#).", "has an empty #fragment"),
    ('See [x](post:tokens "a title").', "cannot read post reference"),
    ("See [a [nested] text](post:tokens).", "cannot read post reference"),
    ("See [part](post:notes).", "post reference [part](post:notes): notes is in no series, so it has no part number"),
    ("See [x][r].\n\n[r]: post:tokens", "post reference post:tokens is not filled in"),
    ("See ![a picture](post:tokens).", "post reference post:tokens is not filled in"),
])
def test_malformed_references_are_one_line_errors(site, body, message):
    series_site(site, body)
    error = build_error(site)
    line = 6 + body[:body.index("post:")].count("\n")    # where the URL is
    assert error.path.name == "notes.md" and error.line == line and message in error.message
    assert "\n" not in error.one_line()


def test_a_reference_in_a_draft_or_held_back_post_must_still_name_a_post(site):
    series_site(site, "Text.\n")
    site.post("later.md", post_text(title="Later", date="2026-04-01", body="See [](post:attension).\n"))
    error = build_error(site, now=NOW)
    assert (error.path.name, error.line) == ("later.md", 6) and "nearest: attention" in error.message
    site.post("later.md", post_text(title="Later", date="2026-04-01", draft="true", body="See [](post:soon).\n"))
    site.post("soon.md", post_text(title="Soon", date="2026-05-01"))
    site.build(now=NOW)   # a draft may refer to a post that is not out yet


def test_a_fragment_is_checked_against_the_ids_of_the_post(site):
    series_site(site, "See [the mask](post:attention#the-mask) and [](post:attention#the-masks).\n")
    error = build_error(site)
    assert (error.path.name, error.line) == ("notes.md", 6)
    assert error.message == ('broken anchor post:attention#the-masks (/posts/attention.html#the-masks): '
                             'posts/attention.html has no id "the-masks"; nearest: the-mask')


def test_a_reference_to_a_page_says_how_to_link_it(site):
    series_site(site, "See [](post:about).\n")
    site.page("about.md", "---\ntitle: About\n---\nHi.\n")
    assert "about is a page: link it as [About](/about/)" in build_error(site).message
