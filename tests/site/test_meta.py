"""What a link preview, a search engine and a browser tab read from every page's <head>:
description, canonical link, OpenGraph and Twitter card tags, and the site icon."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import post_text

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4f30000000049454e44ae426082")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>'


def a_site(site, base_url=None):
    if base_url:
        site.config.write_text(site.config.read_text().replace("https://example.org/", base_url))
    images = site.content / "images"
    images.mkdir()
    (images / "plot.svg").write_bytes(SVG)
    (images / "map.png").write_bytes(PNG)
    site.post("figs.md", post_text(title='Figures & "quotes"', date="2026-01-02", summary='"Two figures."',
                                   categories="[Plots]",
                                   body="Text.\n\n![A line plot](/images/plot.svg)\n\n![A heat map](/images/map.png)\n"))
    site.post("svg.md", post_text(title="Only SVG", date="2026-01-03", body="![Curve](/images/plot.svg)\n"))
    site.post("plain.md", post_text(title="Plain", date="2026-01-04", body="First sentence. Second one.",
                                    series="S"))
    site.page("about.md", "---\ntitle: About\nsummary: Who we are.\n---\nWe write.\n")
    site.build()


def head(page) -> dict[str, str]:
    """`og:…`, `twitter:…`, `description` and `canonical` of a parsed page."""
    tags = {m.get("property") or m.get("name"): m["content"] for m in page.find_all("meta") if m.get("content")}
    canonical = page.find("link", rel="canonical")
    if canonical is not None:
        tags["canonical"] = canonical["href"]
    return tags


def html_pages(site) -> list[str]:
    return sorted(p.relative_to(site.out).as_posix() for p in site.out.rglob("*.html"))


def test_every_page_has_description_canonical_opengraph_and_twitter_tags(site):
    a_site(site)
    pages = html_pages(site)
    assert {"index.html", "404.html", "archive/index.html", "series/s/index.html", "category/plots/index.html"} <= set(pages)
    for path in pages:
        tags = head(site.html(path))
        for name in ("description", "canonical", "og:title", "og:description", "og:type", "og:url", "og:site_name",
                     "twitter:card", "twitter:title", "twitter:description"):
            assert tags.get(name, "").strip(), (path, name)
        assert tags["canonical"].startswith("https://example.org/"), path
        assert tags["og:url"] == tags["canonical"], path
        assert tags["og:type"] == ("article" if path.startswith("posts/") else "website"), path
        for name in ("og:image", "twitter:image"):
            assert tags.get(name, "https://example.org/").startswith("https://example.org/"), (path, name)


def test_canonical_is_the_pages_own_absolute_url(site):
    a_site(site)
    assert head(site.html("posts/plain.html"))["canonical"] == "https://example.org/posts/plain.html"
    assert head(site.html("index.html"))["canonical"] == "https://example.org/"
    assert head(site.html("about/index.html"))["canonical"] == "https://example.org/about/"


def test_description_is_the_summary_or_the_site_description(site):
    a_site(site)
    assert head(site.html("posts/figs.html"))["description"] == "Two figures."
    assert head(site.html("about/index.html"))["og:description"] == "Who we are."
    assert head(site.html("posts/plain.html"))["description"].startswith("First sentence.")
    site_description = head(site.html("index.html"))["description"]
    assert site_description == head(site.html("archive/index.html"))["twitter:description"]


def test_og_image_is_the_posts_first_figure_preferring_one_cards_can_show(site):
    a_site(site)
    figs = head(site.html("posts/figs.html"))
    assert figs["og:image"] == figs["twitter:image"] == "https://example.org/images/map.png"
    assert figs["og:image:alt"] == "A heat map" and figs["twitter:card"] == "summary_large_image"
    assert head(site.html("posts/svg.html"))["og:image"] == "https://example.org/images/plot.svg"
    plain = head(site.html("posts/plain.html"))
    assert "og:image" not in plain and "twitter:image" not in plain and plain["twitter:card"] == "summary"


def test_meta_tags_under_a_sub_path_and_with_markup_in_titles(site):
    a_site(site, base_url="https://example.org/blog/")
    figs = head(site.html("posts/figs.html"))
    assert figs["og:image"] == "https://example.org/blog/images/map.png"
    assert figs["canonical"] == "https://example.org/blog/posts/figs.html"
    assert figs["og:title"] == figs["twitter:title"] == 'Figures & "quotes"'
    assert figs["article:published_time"].startswith("2026-01-02T00:00:00")
    assert figs["article:tag"] == "Plots"


def test_every_page_links_the_svg_icon_which_is_shipped(site):
    a_site(site)
    for path in html_pages(site):
        icon = site.html(path).find("link", rel="icon")
        assert icon is not None and icon["href"] == "/static/favicon.svg" and icon["type"] == "image/svg+xml", path
    root = ET.parse(site.out / "static/favicon.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox")
