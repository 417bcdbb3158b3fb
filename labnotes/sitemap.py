"""`sitemap.xml` in the sitemaps.org format: every page's absolute URL and when it last changed."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone

from .feeds import absolute_url
from .model import SiteConfig

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def render_sitemap(config: SiteConfig, urls: Sequence[tuple[str, datetime | None]]) -> bytes:
    """The sitemap of site-relative `urls`, sorted, each with `<lastmod>` when its date is known.

    A URL given twice keeps its latest date; naive datetimes are taken as UTC.
    """
    latest: dict[str, datetime | None] = {}
    for url, changed in urls:
        loc = url if "://" in url else absolute_url(config, url)
        changed = _aware(changed)
        if loc not in latest or (changed is not None and (latest[loc] is None or changed > latest[loc])):
            latest[loc] = changed
    root = ET.Element("urlset", xmlns=SITEMAP_NS)
    for loc in sorted(latest):
        entry = ET.SubElement(root, "url")
        ET.SubElement(entry, "loc").text = loc
        if latest[loc] is not None:
            ET.SubElement(entry, "lastmod").text = latest[loc].isoformat(timespec="seconds")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)
