"""The built site as a reader sees it: pages parsed with html5lib."""
from __future__ import annotations

import pytest

from conftest import post_text


def four_posts(site):
    site.post("2026-01-05-one.md", post_text(title="One", date="2026-01-05", categories="[Alpha]", body="Intro one.\n\n<!--more-->\n\nRest one."))
    site.post("2026-01-20-two.md", post_text(title="Two", date="2026-01-20", categories="[Alpha, Beta]", body="Two whole."))
    site.post("2026-02-03-three.md", post_text(title="Three", date="2026-02-03", categories="[Beta]"))
    site.post("2026-03-01-four.md", post_text(title="Four", date="2026-03-01T23:30:00+00:00", categories="[alpha]"))
    site.page("about.md", "---\ntitle: About\n---\nWho we are.\n")


def test_index_is_paginated_newest_first_with_intros_and_read_more(site):
    four_posts(site)
    site.build()
    first, second = site.html("index.html"), site.html("page/2/index.html")
    assert [h.get_text() for h in first.select("article h2")] == ["Four", "Three"]
    assert [h.get_text() for h in second.select("article h2")] == ["Two", "One"]
    assert first.select_one(".pagination a[rel=next]")["href"] == "/page/2/"
    assert second.select_one(".pagination a[rel=prev]")["href"] == "/"
    one = second.select("article")[1]
    assert "Intro one." in one.get_text() and "Rest one." not in one.get_text()
    assert one.select_one(".read-more a")["href"] == "/posts/one.html"
    assert second.select("article")[0].select_one(".read-more") is None   # no fold: shown whole


def test_post_pages_have_previous_next_and_category_links(site):
    four_posts(site)
    site.build()
    two = site.html("posts/two.html")
    assert two.select_one("a[rel=prev]")["href"] == "/posts/one.html"
    assert two.select_one("a[rel=next]")["href"] == "/posts/three.html"
    assert [(a.get_text(), a["href"]) for a in two.select(".byline a.category")] == [
        ("Alpha", "/category/alpha/"), ("Beta", "/category/beta/")]
    assert "Rest one." in site.html("posts/one.html").get_text()
    assert site.html("posts/one.html").select_one("a[rel=prev]") is None


def test_category_month_and_archive_pages(site):
    four_posts(site)
    site.build()
    alpha = site.html("category/alpha/index.html")
    assert [a.get_text() for a in alpha.select(".post-list .post-link")] == ["Four", "Two", "One"]
    assert alpha.find("link", type="application/rss+xml", href="/category/alpha/feed.xml")
    assert (site.out / "category/alpha/feed.xml").exists()
    # 2026-03-01T23:30Z is 2 March in Paris, the site's zone
    assert [a.get_text() for a in site.html("2026/03/index.html").select(".post-link")] == ["Four"]
    assert [a.get_text() for a in site.html("2026/01/index.html").select(".post-link")] == ["Two", "One"]
    archive = site.html("archive/index.html")
    assert [h.get_text() for h in archive.select(".archive-month h2")] == ["March 2026", "February 2026", "January 2026"]


def test_sidebar_counts_months_categories_and_blogroll(site):
    four_posts(site)
    site.build()
    sidebar = site.html("about/index.html").select_one("aside.sidebar")
    sections = {s.h2.get_text(): [(li.a.get_text(), li.select_one(".count").get_text() if li.select_one(".count") else None)
                                  for li in s.select("li")] for s in sidebar.select("section")}
    assert sections["Months"] == [("March 2026", "1"), ("February 2026", "1"), ("January 2026", "2")]
    assert sections["Categories"] == [("Alpha", "3"), ("Beta", "2")]
    assert sections["Blogroll"] == [("Distill", None)]


def test_every_page_links_feed_llms_txt_viewport_and_title(site):
    four_posts(site)
    site.build()
    for path in sorted(p.relative_to(site.out).as_posix() for p in site.out.rglob("*.html")):
        page = site.html(path)
        assert page.find("link", rel="alternate", type="application/rss+xml", href="/feed.xml"), path
        assert page.find("link", rel="alternate", type="text/markdown", href="/llms.txt"), path
        assert "width=device-width" in page.find("meta", attrs={"name": "viewport"})["content"]
        assert page.title.get_text().endswith("Test Notes")
    assert site.html("posts/two.html").title.get_text() == "Two · Test Notes"
    assert site.html("404.html").h1.get_text() == "Page not found"


def test_pages_live_at_their_slug(site):
    four_posts(site)
    site.build()
    about = site.html("about/index.html")
    assert about.h1.get_text() == "About" and "Who we are." in about.get_text()
    assert site.html("index.html").select_one(".site-nav a[href='/about/']").get_text() == "About"


@pytest.mark.parametrize("title", ['Less <than> & "quoted" \'single\' 🚀'])
def test_titles_and_categories_are_escaped_in_html(site, title):
    quoted = '"' + title.replace('"', '\\"') + '"'
    site.post("a.md", post_text(title=quoted, categories='["R&D <lab>", "🚀 launch"]'))
    site.build()
    page = site.html("posts/a.html")
    assert page.h1.get_text() == title
    assert page.title.get_text() == f"{title} · Test Notes"
    assert [a.get_text() for a in page.select(".byline a.category")] == ["R&D <lab>", "🚀 launch"]
    raw = (site.out / "posts/a.html").read_text()
    assert "<than>" not in raw and "<lab>" not in raw
    assert site.html("category/r-d-lab/index.html").h1.get_text() == "R&D <lab>"


def test_site_under_a_sub_path_prefixes_every_link(site):
    site.config.write_text(site.config.read_text().replace("https://example.org/", "https://example.org/blog/"))
    (site.content / "images").mkdir()
    (site.content / "images" / "a.png").write_bytes(b"\x89PNG")
    site.post("a.md", post_text(body="![a](/images/a.png) and [b](/posts/a.html)"))
    site.build()
    page = site.html("posts/a.html")
    assert page.find("link", type="text/markdown")["href"] == "/blog/llms.txt"
    assert page.select_one(".post-body img")["src"] == "/blog/images/a.png"
    assert (site.out / "images/a.png").read_bytes() == b"\x89PNG"
    assert page.find("link", rel="stylesheet")["href"] == "/blog/static/style.css"
