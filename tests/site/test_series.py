"""Series: "Part N of M" with the other parts and prev/next on each post, a page per series,
the sidebar, llms.txt, mirrors and the sitemap; bad `part:` values are one-line errors."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from llms_txt import parse_llms_file

import build as cli
from conftest import post_text
from labnotes.errors import BuildError

SERIES = "LLM from scratch"


def three_parts(site, **parts):
    """Posts a (oldest), b, c in one series, plus a post outside it; `parts` pins `part:`."""
    for name, day in (("a", "2026-01-05"), ("b", "2026-01-20"), ("c", "2026-02-03")):
        extra = {"series": SERIES}
        if name in parts:
            extra["part"] = parts[name]
        site.post(f"{name}.md", post_text(title=f"Post {name}", date=day, summary=f'"About {name}."', **extra))
    site.post("other.md", post_text(title="Other", date="2026-01-10"))


def series_box(page):
    box = page.select_one("nav.series-box")
    current = box.select_one("[aria-current=page]")
    return (box.select_one(".series-part").get_text(), box.select_one(".series-title a")["href"],
            [li.get_text(strip=True) for li in box.select("ol li")], current.get_text() if current else None)


def series_links(page):
    nav = page.select_one("nav.series-nav")
    prev, nxt = nav.select_one("a.series-prev"), nav.select_one("a.series-next")
    return (prev["href"] if prev else None, nxt["href"] if nxt else None)


def test_each_part_shows_part_n_of_m_the_other_parts_and_prev_next_in_the_series(site):
    three_parts(site)
    site.build()
    a, b, c = (site.html(f"posts/{n}.html") for n in "abc")
    titles = ["Post a", "Post b", "Post c"]
    assert series_box(a) == ("Part 1 of 3", "/series/llm-from-scratch/", titles, "Post a")
    assert series_box(b) == ("Part 2 of 3", "/series/llm-from-scratch/", titles, "Post b")
    assert series_box(c)[0] == "Part 3 of 3"
    # the current part is marked, not linked; the others are links
    assert [x["href"] for x in b.select("nav.series-box ol a")] == ["/posts/a.html", "/posts/c.html"]
    assert series_links(a) == (None, "/posts/b.html")
    assert series_links(b) == ("/posts/a.html", "/posts/c.html")
    assert series_links(c) == ("/posts/b.html", None)
    # chronological prev/next still runs through every post, the one outside the series too,
    # but a link the series navigation already shows is not repeated
    assert b.select_one(".post-nav a[rel=prev]")["href"] == "/posts/other.html"
    assert b.select_one(".post-nav a[rel=next]") is None
    assert c.select_one(".post-nav") is None
    other = site.html("posts/other.html")
    assert other.select_one("nav.series-box") is None and other.select_one("nav.series-nav") is None


def test_series_page_lists_the_parts_in_reading_order(site):
    three_parts(site)
    site.build()
    page = site.html("series/llm-from-scratch/index.html")
    assert page.h1.get_text() == SERIES
    assert [a.get_text() for a in page.select(".series-list .post-link")] == ["Post a", "Post b", "Post c"]
    assert [p.get_text() for p in page.select(".series-list .series-part")] == ["Part 1", "Part 2", "Part 3"]
    assert page.select(".series-list .summary")[0].get_text() == "About a."
    assert page.find("link", rel="canonical")["href"] == "https://example.org/series/llm-from-scratch/"


def test_part_orders_the_series_over_dates(site):
    three_parts(site, a=3, b=1, c=2)
    site.build()
    page = site.html("series/llm-from-scratch/index.html")
    assert [a.get_text() for a in page.select(".series-list .post-link")] == ["Post b", "Post c", "Post a"]
    assert series_box(site.html("posts/a.html"))[0] == "Part 3 of 3"
    assert series_links(site.html("posts/b.html")) == (None, "/posts/c.html")


def test_posts_without_part_fill_the_free_places_by_date(site):
    three_parts(site, c=1)
    site.build()
    page = site.html("series/llm-from-scratch/index.html")
    assert [a.get_text() for a in page.select(".series-list .post-link")] == ["Post c", "Post a", "Post b"]


def test_a_held_back_part_leaves_no_hole_in_the_numbering(site):
    three_parts(site, a=1, c=3)
    site.post("b.md", post_text(title="Post b", date="2026-01-20", series=SERIES, part=2, draft="true"))
    site.build()
    assert series_box(site.html("posts/c.html"))[0] == "Part 2 of 2"


def test_sidebar_lists_every_series_with_its_count(site):
    three_parts(site)
    site.post("d.md", post_text(title="Post d", date="2026-03-01", series="Maths & me"))
    site.build()
    sidebar = site.html("posts/other.html").select_one("aside.sidebar")
    section = next(s for s in sidebar.select("section") if s.h2.get_text() == "Series")
    assert [(li.a.get_text(), li.a["href"], li.select_one(".count").get_text()) for li in section.select("li")] == [
        (SERIES, "/series/llm-from-scratch/", "3"), ("Maths & me", "/series/maths-me/", "1")]


def test_names_that_share_a_slug_are_one_series(site):
    site.post("a.md", post_text(title="A", date="2026-01-01", series="LLM from scratch"))
    site.post("b.md", post_text(title="B", date="2026-01-02", series="LLM From Scratch"))
    site.build()
    assert series_box(site.html("posts/b.html"))[:2] == ("Part 2 of 2", "/series/llm-from-scratch/")
    assert site.html("series/llm-from-scratch/index.html").h1.get_text() == "LLM from scratch"


def test_series_page_is_in_the_sitemap_llms_txt_and_has_a_markdown_mirror(site):
    three_parts(site)
    site.build()
    locs = [loc.text for loc in ET.parse(site.out / "sitemap.xml").getroot().iter()
            if loc.tag.endswith("loc")]
    assert "https://example.org/series/llm-from-scratch/" in locs
    llms = parse_llms_file((site.out / "llms.txt").read_text(encoding="utf-8"))
    assert list(llms.sections) == ["Posts", "Series", "Optional"]
    (link,) = llms.sections["Series"]
    assert (link.title, link.url) == (SERIES, "https://example.org/series/llm-from-scratch/index.html.md")
    mirror = (site.out / "series/llm-from-scratch/index.html.md").read_text(encoding="utf-8")
    assert mirror.startswith(f"# {SERIES}\n")
    assert [line.split("](")[1].split(")")[0] for line in mirror.splitlines() if line[:1].isdigit()] == [
        f"https://example.org/posts/{n}.html.md" for n in "abc"]
    post_mirror = (site.out / "posts/b.html.md").read_text(encoding="utf-8")
    assert "- Series: [LLM from scratch](https://example.org/series/llm-from-scratch/index.html.md), part 2 of 3" in post_mirror
    assert "Series:" in (site.out / "llms-full.txt").read_text(encoding="utf-8")


def test_a_new_part_updates_every_part_and_equals_a_clean_build(site, tmp_path):
    from test_incremental import clean_build
    three_parts(site)
    site.build()
    site.post("d.md", post_text(title="Post d", date="2026-03-01", series=SERIES))
    site.build()
    assert series_box(site.html("posts/a.html"))[0] == "Part 1 of 4"
    assert "part 1 of 4" in (site.out / "posts/a.html.md").read_text(encoding="utf-8")
    assert site.snapshot() == clean_build(site, tmp_path)


BAD_SERIES = {
    "part_zero": ({"b.md": dict(series=SERIES, part=0)}, "b.md:5: error: `part` must be a positive whole number"),
    "part_negative": ({"b.md": dict(series=SERIES, part=-2)}, "b.md:5: error: `part` must be a positive whole number"),
    "part_word": ({"b.md": dict(series=SERIES, part="two")}, "b.md:5: error: `part` must be a positive whole number"),
    "part_fraction": ({"b.md": dict(series=SERIES, part="1.5")}, "b.md:5: error: `part` must be a positive whole number"),
    "part_without_series": ({"b.md": dict(part=2)}, "b.md:4: error: `part` needs a `series:`"),
    "empty_series": ({"b.md": dict(series='""')}, "b.md:4: error: `series` must be the series' name"),
    "same_part_twice": ({"a.md": dict(series=SERIES, part=2), "b.md": dict(series=SERIES, part=2)},
                        "b.md:5: error: two posts of the series 'LLM from scratch' are `part: 2`"),
}


@pytest.mark.parametrize("case", sorted(BAD_SERIES))
def test_bad_series_input_is_one_line_naming_file_and_line(site, capsys, monkeypatch, case):
    files, expected = BAD_SERIES[case]
    site.post("good.md", post_text(title="Good", date="2026-01-01"))
    for name, extra in files.items():
        # categories: None puts `series` on line 4 and `part` on line 5
        site.post(name, post_text(title=name, date="2026-02-01" if name == "b.md" else "2026-01-15",
                                  categories=None, **extra))
    monkeypatch.chdir(site.root)
    capsys.readouterr()
    code = cli.main(["build", "--config", "site.toml", "--content", "content", "--out", "output"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("content/posts/") and expected in err, err
    assert not site.out.exists()


@pytest.mark.parametrize("slug", ["series", "labs"])
def test_a_page_cannot_take_the_slug_of_a_generated_page(site, slug):
    """The labs page (and lab figures) live in labs/: a page there would lose its HTML."""
    site.page("mine.md", f"---\ntitle: Mine\nslug: {slug}\n---\nx\n")
    with pytest.raises(BuildError, match="collides with a generated folder"):
        site.build()
