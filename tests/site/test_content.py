"""Loading posts and pages: front matter of SPEC 2, drafts, slugs, lab blocks, bad input."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from labnotes.config import load_config
from labnotes.content import load_content
from labnotes.errors import BuildError
from labnotes.model import SiteConfig

from conftest import post_text

PARIS = ZoneInfo("Europe/Paris")


def load(site):
    return load_content(site.content, load_config(site.config))


def test_front_matter_fields_are_read(site):
    site.post("2026-03-01-first.md", post_text(
        title='"Attention: <b> & \\"quotes\\" 🚀"', categories='[LLM from scratch, "a, b"]',
        summary="Short.", updated="2026-03-02T10:00:00+01:00"))
    (post,) = load(site).posts
    assert post.title == 'Attention: <b> & "quotes" 🚀'
    assert post.date == datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    assert post.updated.utcoffset().total_seconds() == 3600
    assert post.categories == ("LLM from scratch", "a, b")
    assert post.slug == "first"
    assert post.summary == "Short."


def test_date_alone_means_midnight_in_the_site_zone(site):
    site.post("a.md", post_text(date="2026-03-01"))
    (post,) = load(site).posts
    assert post.date == datetime(2026, 3, 1, 0, 0, tzinfo=PARIS)


def test_categories_whose_urls_collide_in_one_post_are_an_error_naming_both(site):
    # C++, C# and C all slug to "c": they used to merge silently into /category/c/.
    site.post("a.md", post_text(categories="[C++, C#, C]"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert err.value.line == 4
    assert err.value.message.startswith('category "C#" would have the URL /category/c/ of category "C++" (')
    assert "a.md:4)" in err.value.message and "rename one of them" in err.value.message


def test_categories_or_series_whose_urls_collide_across_posts_are_an_error_naming_both(site):
    site.post("a.md", post_text(categories="[C++]"))
    site.post("b.md", post_text(title="B", categories="[Notes, C#]"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert str(err.value.path).endswith("b.md") and err.value.line == 4
    assert 'category "C#" would have the URL /category/c/ of category "C++" (' in err.value.message
    assert "a.md:4)" in err.value.message
    (site.content / "posts" / "b.md").unlink()
    site.post("c.md", post_text(title="C", series="Café notes"))
    site.post("d.md", post_text(title="D", date="2026-03-02", series="Cafe notes"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert str(err.value.path).endswith("d.md") and err.value.line == 5
    assert 'series "Cafe notes" would have the URL /series/cafe-notes/ of series "Café notes" (' in err.value.message


def test_names_differing_only_in_case_spaces_or_dashes_are_one_category(site):
    site.post("a.md", post_text(categories="[LLM from scratch]"))
    site.post("b.md", post_text(title="B", categories="[LLM-From-Scratch]"))
    assert {p.categories for p in load(site).posts} == {("LLM from scratch",), ("LLM-From-Scratch",)}


def test_block_list_categories_and_explicit_slug(site):
    site.post("a.md", "---\ntitle: T\ndate: 2026-03-01\ncategories:\n  - One\n  - \"Two\"\nslug: chosen\n---\nBody\n")
    (post,) = load(site).posts
    assert post.categories == ("One", "Two") and post.slug == "chosen"


def test_categories_spelled_twice_in_one_post_count_once_as_first_spelled(site):
    """"ML" and "ml" share a category page: listed twice, the post would show up twice on it."""
    site.post("a.md", post_text(categories="[ML, ml, Notes, ML]"))
    site.post("b.md", post_text(title="B", date="2026-03-02", categories="[ml]"))
    a = next(p for p in load(site).posts if p.title != "B")
    assert a.categories == ("ML", "Notes")
    site.build()
    listing = site.html("category/ml/index.html")
    assert len(listing.select(".post-link")) == 2
    assert "ML, ML" not in site.html("posts/" + a.slug + ".html").get_text()


def test_drafts_are_left_out(site):
    site.post("a.md", post_text(draft="true"))
    site.post("b.md", post_text(title="Shown"))
    assert [p.title for p in load(site).posts] == ["Shown"]


def test_posts_are_newest_first_and_pages_need_no_date(site):
    site.post("old.md", post_text(title="Old", date="2025-01-01"))
    site.post("new.md", post_text(title="New", date="2026-01-01"))
    site.page("about.md", "---\ntitle: About\n---\nWho.\n")
    content = load(site)
    assert [p.title for p in content.posts] == ["New", "Old"]
    assert content.pages[0].url == "about/" and content.pages[0].date is None


def write_nested(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_posts_and_pages_in_subfolders_are_read_with_the_slug_of_their_file_name(site):
    site.post("top.md", post_text(title="Top", date="2026-01-01"))
    write_nested(site.content / "posts", "2026/03/2026-03-01-nested.md", post_text(title="Nested", date="2026-03-01"))
    write_nested(site.content / "pages", "people/team.md", "---\ntitle: Team\n---\nWho.\n")
    write_nested(site.content / "posts", ".ipynb_checkpoints/hidden.md", post_text(title="Hidden"))
    content = load(site)
    assert [(p.title, p.slug, p.url) for p in content.posts] == [("Nested", "nested", "posts/nested.html"),
                                                                  ("Top", "top", "posts/top.html")]
    assert [(p.slug, p.url) for p in content.pages] == [("team", "team/")]


def test_two_posts_in_different_subfolders_with_one_slug_are_an_error_naming_both(site):
    first = write_nested(site.content / "posts", "2025/notes.md", post_text(date="2025-01-01"))
    write_nested(site.content / "posts", "2026/notes.md", post_text())
    with pytest.raises(BuildError, match="two posts have the slug `notes`") as err:
        load(site)
    assert err.value.path.parent.name == "2026" and str(first) in err.value.message


def test_lab_blocks_are_recorded_with_their_file_line(site):
    body = "Intro\n\n```lab\nlabcode.attention:demo\nseq_len: 6\n```\n\n```python\nx = 1\n```\n\n```labsource\nlabcode.a:b\n```\n"
    path = site.post("a.md", post_text(body=body))
    (post,) = load(site).posts
    assert [(b.kind, b.line, b.text) for b in post.blocks] == [
        ("lab", 8, "labcode.attention:demo\nseq_len: 6"), ("labsource", 17, "labcode.a:b")]
    assert path.read_text().split("\n")[7] == "```lab"


def test_images_must_exist(site):
    (site.content / "images").mkdir()
    (site.content / "images" / "ok.png").write_bytes(b"png")
    site.post("a.md", post_text(body="![fine](/images/ok.png)\n\n`![not an image](/images/code.png)`\n"))
    assert list(load(site).assets) == ["images/ok.png"]
    site.post("b.md", post_text(title="B", body="Text\n\n![missing](/images/nope.png)\n"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert err.value.one_line().endswith("b.md:8: error: image /images/nope.png does not exist; put it in content/images/ and write ![...](/images/NAME)")


@pytest.mark.parametrize("text, line, words", [
    ("title: T\ndate: 2026-03-01\n---\n", 1, "front matter missing"),
    ("---\ntitle: T\ndate: 2026-03-01\n", 1, "never closed"),
    ("---\ntitle: T\ndate: 2026-03-01\nthis is not yaml\n---\n", 4, "expected `key: value`"),
    ("---\ndate: 2026-03-01\n---\n", 1, "no `title:`"),
    ("---\ntitle: T\n---\n", 1, "no `date:`"),
    ("---\ntitle: T\ndate: 1st of March\n---\n", 3, "cannot read `date: 1st of March`"),
    ("---\ntitle: T\ndate: 2026-03-01\ncategories: ml, nlp\n---\n", 4, "must be a list"),
    ("---\ntitle: T\ndate: 2026-03-01\ncategories: [ml, [a]]\n---\n", 4, "nested lists"),
    ("---\ntitle: T\ndate: 2026-03-01\ncategories: [2024]\n---\n", 4, "must hold names"),
    ("---\ntitle: T\ndate: 2026-03-01\ncategroies: [a]\n---\n", 4, "unknown front matter key `categroies`"),
    ("---\ntitle: T\ndate: 2026-03-01\ndraft: maybe\n---\n", 4, "true or false"),
    ("---\ntitle: \"T\ndate: 2026-03-01\n---\n", 2, "never closed"),
    ("---\ntitle: T\ndate: 2026-03-01\nslug: Not A Slug\n---\n", 4, "slug: not-a-slug"),
])
def test_bad_front_matter_names_file_and_line(site, text, line, words):
    site.post("bad.md", text)
    with pytest.raises(BuildError) as err:
        load(site)
    assert err.value.path.name == "bad.md" and err.value.line == line
    assert words in err.value.message


def test_two_posts_with_one_slug(site):
    site.post("2026-01-01-same.md", post_text())
    site.post("2026-02-01-same.md", post_text())
    with pytest.raises(BuildError, match="two posts have the slug `same`"):
        load(site)


def test_a_slug_clash_names_the_slug_line_when_there_is_one(site):
    site.post("2026-01-01-same.md", post_text())
    site.post("other.md", post_text(title="Other", slug="same"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert err.value.path.name == "other.md" and err.value.line == 5   # ---, title, date, categories, slug


def test_a_relative_image_path_to_a_file_that_is_there_says_how_to_write_it(site):
    (site.content / "images").mkdir()
    (site.content / "images" / "red.png").write_bytes(b"png")
    site.post("a.md", post_text(body="![red](images/red.png)\n"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert "is relative to the page" in err.value.message and "![...](/images/red.png)" in err.value.message
    assert "does not exist" not in err.value.message


def test_non_utf8_file_names_the_line(site):
    site.post("latin.md", post_text(body="fine\ncaf\xe9\n").encode("latin-1"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert err.value.line == 7 and "not UTF-8" in err.value.message


def test_a_control_character_the_feeds_cannot_carry_names_the_line(site):
    site.post("nul.md", post_text(body="fine\nbad \x00 here\n"))
    with pytest.raises(BuildError) as err:
        load(site)
    assert err.value.path.name == "nul.md" and err.value.line == 7 and "U+0000" in err.value.message


def test_config_defaults_and_errors(tmp_path):
    assert load_config(tmp_path / "missing.toml") == SiteConfig(root=tmp_path)
    (tmp_path / "a.toml").write_text('title = "X"\nbase_url = "https://h/blog"\n[labs]\ntimeout = 5\n')
    config = load_config(tmp_path / "a.toml")
    assert config.base_url == "https://h/blog/" and config.labs.timeout == 5.0
    for text, words in [("titel = 'x'", "unknown key 'titel'"), ("posts_per_page = 'many'", "must be an integer"),
                        ("timezone = 'Mars/Olympus'", "unknown timezone"), ("[labs]\ncache = 'x'", r"unknown key \[labs\] 'cache'"),
                        ("title = ", "not valid TOML")]:
        (tmp_path / "b.toml").write_text(text)
        with pytest.raises(BuildError, match=words):
            load_config(tmp_path / "b.toml")


def test_repo_site_toml_loads():
    config = load_config(Path(__file__).parents[2] / "site.toml")
    assert config.title == "Lab Notes" and config.labs.cache_dir == "labcache" and config.blogroll
