"""RSS 2.0 feeds: the whole site's and one per category, as bytes ready to write.

A feed reader shows a post away from the site, so every link in the full text must be
absolute, and two builds of the same posts must give the same bytes (no clock anywhere).
"""
from __future__ import annotations

import functools
import html
import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from urllib.parse import urljoin

from .model import RenderedDocument, SiteConfig
from .slugs import slugify

# A start tag, and one attribute of it at a time so that a quoted value is consumed whole
# (`title="href=/x"` is not a link). Escaped text (`&lt;a href=` in code) is not a tag.
# Only tags that mention href/src are looked at: most tags of a post are Pygments' <span>s.
_START_TAG = re.compile(r"<[A-Za-z][^\s<>/]*(?P<attrs>\s[^<>]*(?:href|src)[^<>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"""(?P<lead>\s+)(?P<name>[^\s"'<>/=]+)(?:(?P<eq>\s*=\s*)(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'=<>`]+)))?""")
_URL_ATTRS = {"href", "src"}
# Links that must not be resolved against the page: they already say where they go.
_KEEP_SCHEMES = ("mailto:", "data:", "tel:", "javascript:")


def absolute_url(config: SiteConfig, url: str) -> str:
    """The site-relative `url` ("posts/a.html", "" for the home page) as an absolute URL."""
    return config.base_url + url.lstrip("/")


def resolve_url(page_url: str, url: str, site_url: str | None = None) -> str:
    """`url` as written on the page at `page_url`, made absolute.

    Relative URLs and `#fragments` resolve against the page, root-relative ones (`/img/x.png`)
    against the host as a browser would, or against `site_url` when given: author-written
    Markdown means the site root by `/`, which differs from the host root for a site under
    `https://host/blog/` (rendered HTML already carries that prefix). `mailto:`, `data:` and
    absolute URLs are kept as they are.
    """
    if url.lower().startswith(_KEEP_SCHEMES):
        return url
    if site_url is not None and url.startswith("/") and not url.startswith("//"):
        return site_url + url[1:]
    return urljoin(page_url, url)


def absolutize_html(fragment: str, page_url: str, site_url: str | None = None) -> str:
    """`fragment` with every href/src made absolute by `resolve_url`.

    Only those attribute values change: the rest of the markup (MathML, escaped code) is kept
    byte for byte.
    """
    def fix_attr(match: re.Match) -> str:
        raw = next((v for v in (match["dq"], match["sq"], match["bare"]) if v is not None), None)
        if raw is None or match["name"].lower() not in _URL_ATTRS:
            return match.group(0)
        url = resolve_url(page_url, html.unescape(raw).strip(), site_url)
        return f'{match["lead"]}{match["name"]}{match["eq"]}"{html.escape(url, quote=True)}"'

    def fix_tag(tag: re.Match) -> str:
        start, end = tag.span("attrs")
        text = tag.group(0)
        offset = tag.start()
        return text[:start - offset] + _ATTR.sub(fix_attr, tag["attrs"]) + text[end - offset:]

    return _START_TAG.sub(fix_tag, fragment)


# How feedgen lays out a feed: the channel, then one indented <item> after another. Item text is
# escaped, so these markers cannot occur inside an item.
_ITEM_START = b"    <item>\n"
FEED_END = b"  </channel>\n</rss>\n"


def render_rss(config: SiteConfig, entries: Sequence[RenderedDocument], *,
               path: str = "feed.xml", title: str | None = None,
               items_of: Callable[[list[RenderedDocument]], list[bytes]] | None = None) -> bytes:
    """An RSS 2.0 feed of `entries` (newest first) published at the site-relative `path`.

    The feed is its channel followed by one `<item>` per entry; `items_of` (default
    `rss_items`) makes those, so a caller may take them from a cache: an item depends only
    on its entry, the site's base URL and author.
    """
    posts = feed_order(entries)
    items = items_of(posts) if items_of is not None else rss_items(config, posts)
    return rss_channel(config, posts, path, title) + b"".join(items) + FEED_END


def feed_order(entries: Sequence[RenderedDocument]) -> list[RenderedDocument]:
    """`entries` in the order of a feed's items: newest first."""
    return sorted(entries, key=_DATE_AND_SLUG, reverse=True)


_DATE_AND_SLUG = operator.attrgetter("document.date", "document.slug")


def rss_items(config: SiteConfig, entries: Sequence[RenderedDocument]) -> list[bytes]:
    """The `<item>` element of each entry, byte for byte as a feed holding it shows it."""
    if not entries:
        return []
    fg = _generator(config, "feed.xml", None, datetime(1970, 1, 1, tzinfo=timezone.utc))
    for rendered in entries:
        _fill_entry(fg.add_entry(order="append"), config, rendered)
    data = fg.rss_str(pretty=True)
    items = data[data.index(_ITEM_START):len(data) - len(FEED_END)].split(_ITEM_START)[1:]
    if len(items) != len(entries) or not data.endswith(FEED_END):
        raise RuntimeError("feedgen laid out the feed in an unexpected way")
    return [_ITEM_START + item for item in items]


def rss_channel(config: SiteConfig, posts: Sequence[RenderedDocument], path: str, title: str | None) -> bytes:
    """The feed of `posts` up to its first item: `render_rss` is this, the items, `FEED_END`."""
    # feedgen stamps lastBuildDate with the clock unless told otherwise; the newest change
    # to a post is what a reader needs, and it keeps the bytes stable between builds.
    data = _generator(config, path, title, newest_change(posts)).rss_str(pretty=True)
    if not data.endswith(FEED_END):
        raise RuntimeError("feedgen laid out the feed in an unexpected way")
    return data[:-len(FEED_END)]


def _generator(config: SiteConfig, path: str, title: str | None, last_build: datetime):
    from feedgen.feed import FeedGenerator   # only a build that writes a feed pays for it

    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.title(title or config.title)
    # feedgen uses the last link given as the channel <link>: the site, after the self link.
    fg.link(href=absolute_url(config, path), rel="self", type="application/rss+xml")
    fg.link(href=config.base_url, rel="alternate")
    fg.description(config.description or config.title)
    fg.language(config.language)
    fg.lastBuildDate(last_build)
    return fg


def _fill_entry(entry, config: SiteConfig, rendered: RenderedDocument) -> None:
    doc = rendered.document
    url = absolute_url(config, doc.url)
    entry.title(_one_line(doc.title))
    entry.link(href=url)
    entry.guid(url, permalink=True)
    entry.description(doc.summary or _one_line(_text_of(rendered.intro_html)) or _one_line(doc.title))
    entry.content(_absolute_content(rendered.html, url))
    entry.pubDate(doc.date)
    for category in doc.categories:
        entry.category(term=category,
                       scheme=absolute_url(config, f"category/{slugify(category)}/"))
    if config.author:
        # RSS <author> must be an email address; dc:creator takes a plain name.
        entry.dc.dc_creator(config.author)


@functools.lru_cache(maxsize=4096)
def _absolute_content(body_html: str, page_url: str) -> str:
    # A post is in the site feed and in one feed per category: resolve its links once.
    return absolutize_html(body_html, page_url)


def newest_change(posts: Sequence[RenderedDocument]) -> datetime:
    stamps = [d for p in posts for d in (p.document.date, p.document.updated) if d is not None]
    return max(stamps) if stamps else datetime(1970, 1, 1, tzinfo=timezone.utc)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", " ", fragment))
