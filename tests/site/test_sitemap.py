"""sitemap.xml read back with xml.etree, as a crawler would."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from labnotes.model import SiteConfig
from labnotes.sitemap import SITEMAP_NS, render_sitemap

CONFIG = SiteConfig(base_url="https://example.org/blog/")
NS = {"s": SITEMAP_NS}


def entries(data: bytes) -> list[tuple[str, str | None]]:
    root = ET.fromstring(data)
    assert root.tag == f"{{{SITEMAP_NS}}}urlset"
    return [(u.findtext("s:loc", namespaces=NS), u.findtext("s:lastmod", namespaces=NS))
            for u in root.findall("s:url", NS)]


def test_sitemap_lists_absolute_sorted_urls_with_lastmod_where_known():
    data = render_sitemap(CONFIG, [
        ("posts/b.html", datetime(2024, 5, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))),
        ("", None),
        ("about/", None),
        ("posts/a.html", datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)),
    ])
    assert entries(data) == [
        ("https://example.org/blog/", None),
        ("https://example.org/blog/about/", None),
        ("https://example.org/blog/posts/a.html", "2024-05-01T08:00:00+00:00"),
        ("https://example.org/blog/posts/b.html", "2024-05-02T09:30:00+02:00"),
    ]


def test_sitemap_lastmod_is_w3c_datetime():
    data = render_sitemap(CONFIG, [("posts/a.html", datetime(2024, 5, 1, 8, 0))])
    (_, lastmod), = entries(data)
    assert datetime.fromisoformat(lastmod) == datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def test_sitemap_keeps_one_entry_per_url_with_its_latest_date():
    early, late = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 2, 1, tzinfo=timezone.utc)
    data = render_sitemap(CONFIG, [("category/x/", early), ("category/x/", late), ("category/x/", None)])
    assert entries(data) == [("https://example.org/blog/category/x/", "2024-02-01T00:00:00+00:00")]


def test_sitemap_is_deterministic_and_escapes_ampersands():
    urls = [("search?q=a&b=c", None), ("posts/z.html", None)]
    data = render_sitemap(CONFIG, urls)
    assert data == render_sitemap(CONFIG, urls[::-1])
    assert b"&amp;" in data
    assert entries(data)[1][0] == "https://example.org/blog/search?q=a&b=c"
