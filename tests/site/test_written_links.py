"""Every build checks the internal links and anchors that posts and pages write (SPEC 3): a
broken one is a one-line error naming the file and line, raised before anything is written."""
from __future__ import annotations

import pytest

import build as cli
from conftest import post_text
from labnotes.errors import BuildError
from labnotes.model import LabStage, RenderedBlock

FOOTNOTED = """\
## Set-up

Text with a footnote.[^1]

## Results

Done.

[^1]: The note.
"""


def two_posts(site, body: str):
    """Post `b` (headings, a footnote, in series S and category Notes), page `about`, an image,
    and post `a` whose body is `body`."""
    (site.content / "images").mkdir(exist_ok=True)
    (site.content / "images" / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    site.post("b.md", post_text(title="B", date="2026-01-02", series="S", body=FOOTNOTED))
    site.page("about.md", "---\ntitle: About\n---\nAbout.\n")
    return site.post("a.md", post_text(title="A", date="2026-01-05", body=body))


def build_error(site, **options) -> BuildError:
    with pytest.raises(BuildError) as caught:
        site.build(**options)
    return caught.value


@pytest.fixture
def labs(monkeypatch):
    """Lab blocks render as the lab engine renders them (an element with id `lab-<line>`), and
    the engine publishes one figure file."""
    import labnotes.pipeline

    def block(b):
        return RenderedBlock(f'<div class="lab" id="lab-{b.line}"><p><a href="/labs/fig.svg">fig</a></p></div>',
                             "lab")

    stage = LabStage(block, files={"labs/fig.svg": b"<svg/>"})
    monkeypatch.setattr(labnotes.pipeline, "lab_stage", lambda content, config, options, warm_labs=None, protected=(), remember=None: stage)


def test_links_to_every_kind_of_page_file_and_anchor_of_the_site_build(site):
    two_posts(site, "\n".join([
        "Posts [b](/posts/b.html), [relative](b.html), [own site](https://example.org/posts/b.html),",
        "[heading](/posts/b.html#results), [its footnote](/posts/b.html#fn-1), [mirror](/posts/b.html.md).",
        "Pages [about](/about/), [no slash](/about), [home](/), [archive](/archive/), [feed](/feed.xml),",
        "[category](/category/notes/), [series](/series/s/), [month](/2026/01/), [llms](/llms.txt).",
        "Files ![plot](/images/plot.png), [style](/static/style.css).",
        "Same page [up](#main), [note](#fn-2), [top heading](#here).[^2]",
        "Not checked: [elsewhere](https://elsewhere.org/nope.html), [mail](mailto:a@example.org),",
        "`[code](/posts/nope.html)`.",
        "",
        "## Here",
        "",
        "```",
        "[fenced](/posts/nope.html)",
        "```",
        "",
        "[^2]: Note.",
    ]))
    site.page("links.md", "---\ntitle: Links\n---\n[up one](../posts/b.html#set-up) and [home](../).\n")
    site.build()
    assert (site.out / "posts" / "a.html").is_file()


def test_a_link_to_no_page_is_one_line_naming_file_line_and_the_nearest_page(site, capsys, monkeypatch):
    two_posts(site, "Fine.\n")
    site.build()
    before = site.snapshot()
    two_posts(site, "Fine.\n\nSee [the post](/posts/bb.html).\n")
    monkeypatch.chdir(site.root)
    code = cli.main(["build", "--config", "site.toml", "--content", "content", "--out", "output"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == ("content/posts/a.md:8: error: broken link /posts/bb.html: no such page; "
                           "nearest: /posts/b.html")
    assert site.snapshot() == before      # the last good site stays in place


def test_a_missing_anchor_names_the_page_and_its_nearest_ids(site):
    two_posts(site, "One.\n\nTwo, see [results](/posts/b.html#result).\n")
    error = build_error(site)
    assert (error.path.name, error.line) == ("a.md", 8)
    assert error.message == 'broken anchor /posts/b.html#result: posts/b.html has no id "result"; nearest: results'


@pytest.mark.parametrize("link, problem", [
    ("#nowhere", 'broken anchor #nowhere: posts/a.html has no id "nowhere"'),
    ("/images/plots.png", "broken link /images/plots.png: no such file; nearest: /images/plot.png"),
    ("/category/note/", "broken link /category/note/: no such page; nearest: /category/notes/"),
    ("../../b.html", "broken link ../../b.html: it points above the site's root (https://example.org/)"),
    ("https://example.org/posts/c.html", "broken link https://example.org/posts/c.html: no such page"),
    ("/labs/fig.svg", "broken link /labs/fig.svg: no such file"),
])
def test_each_kind_of_broken_link_is_named(site, link, problem):
    two_posts(site, f"See [this]({link}).\n")
    error = build_error(site)
    assert (error.path.name, error.line) == ("a.md", 6) and error.message.startswith(problem)


def test_a_link_written_as_html_or_a_reference_definition_is_checked_at_its_line(site):
    two_posts(site, 'One <a href="/posts/b.html">fine</a>.\n\nSee [b][later].\n\n[later]: /posts/bee.html\n')
    error = build_error(site)
    assert (error.path.name, error.line) == ("a.md", 10) and "broken link /posts/bee.html" in error.message
    two_posts(site, 'One.\n\nTwo <a href="/posts/b.html#nope">b</a>.\n')
    error = build_error(site)
    assert error.line == 8 and 'has no id "nope"' in error.message


def test_a_link_is_reported_at_the_line_of_its_url_not_of_the_same_text_in_prose(site):
    two_posts(site, "[b](/posts/b.html) and, in words, /posts/c.html\n\n"
                    "[b](/posts/b.html) and [c](/posts/c.html).\n")
    assert build_error(site).line == 8


def test_lab_block_anchors_are_lab_and_the_line_of_the_opening_fence(site, labs):
    site.post("b.md", post_text(title="B", date="2026-01-02", body="Text.\n\n```lab\nlabcode.x:f\n```\n"))
    site.post("a.md", post_text(title="A", date="2026-01-05", body="See [the lab](/posts/b.html#lab-8).\n"))
    site.build()
    site.post("a.md", post_text(title="A", date="2026-01-05", body="See [the lab](/posts/b.html#lab-4).\n"))
    error = build_error(site)
    assert error.message == 'broken anchor /posts/b.html#lab-4: posts/b.html has no id "lab-4"; nearest: lab-8'


def test_a_link_to_a_draft_or_held_back_post_says_so(site):
    from datetime import datetime, timezone
    two_posts(site, "See [wip](/posts/wip.html).\n")
    site.post("wip.md", post_text(title="WIP", date="2026-01-03", draft="true"))
    error = build_error(site)
    assert "broken link /posts/wip.html: no such page: " in error.message and "wip.md is a draft" in error.message
    site.build(drafts=True)
    site.post("wip.md", post_text(title="WIP", date="2026-05-03"))
    error = build_error(site, now=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert "wip.md is dated after this build's clock, so it is held back (build with --future)" in error.message


def test_a_page_removed_later_fails_the_next_build_though_the_linking_post_is_not_rendered_again(site):
    two_posts(site, "See [b](/posts/b.html#results).\n")
    site.build()
    site.post("b.md", post_text(title="B", date="2026-01-02", series="S",
                                body=FOOTNOTED.replace("## Results", "## Outcome")))
    error = build_error(site)
    assert (error.path.name, error.line) == ("a.md", 6) and 'has no id "results"' in error.message
    (site.content / "posts" / "b.md").unlink()
    error = build_error(site)
    assert (error.path.name, error.line) == ("a.md", 6)
    assert "broken link /posts/b.html#results: no such page" in error.message


def test_a_site_under_a_path_checks_links_written_from_its_root(site):
    config = site.config.read_text()
    site.config.write_text(config.replace('"https://example.org/"', '"https://example.org/blog/"'))
    two_posts(site, "[b](/posts/b.html#set-up), [own](https://example.org/blog/about/).\n")
    site.build()
    assert site.html("posts/a.html").select_one(".post-body a")["href"] == "/blog/posts/b.html#set-up"
    two_posts(site, "[b](/blog/posts/b.html).\n")   # the path is added by the build: written, it doubles
    assert "broken link /blog/posts/b.html: no such page" in build_error(site).message
