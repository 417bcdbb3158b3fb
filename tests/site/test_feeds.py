"""The RSS feeds as a feed reader sees them: parsed with feedparser, content with BeautifulSoup."""
from __future__ import annotations

import email.utils
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import feedparser
from bs4 import BeautifulSoup

from labnotes.feeds import absolutize_html, render_rss
from labnotes.model import Document, RenderedDocument, SiteConfig

CONFIG = SiteConfig(title="Lab Notes", author="Ada Lovelace", base_url="https://example.org/blog/",
                    description="Executable lab notes.")
PARIS = timezone(timedelta(hours=2))

# As the Markdown stage renders it for a site under /blog/: root-relative links carry the prefix.
BODY = """<p>Intro with <a href="/blog/posts/other.html">a root link</a>, <a href="other.html">a relative one</a>,
<a href="#fn1">a footnote</a>, <a href="mailto:ada@example.org">mail</a> and
<a href="https://elsewhere.net/x">an outside link</a>.</p>
<p><img src="/blog/figures/loss.png" alt="loss"> <img src='../figures/attn.png' alt="attn">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline"></p>
<pre><code>&lt;a href="/not/a/link"&gt;</code></pre>
<p><math xmlns="http://www.w3.org/1998/Math/MathML"><mrow><msup><mi>e</mi><mrow><mi>i</mi><mi>π</mi></mrow></msup><mo>+</mo><mn>1</mn><mo>=</mo><mn>0</mn></mrow></math></p>
<div class="footnotes"><ol><li id="fn1"><p>Note. <a href="#fnref1">↩</a></p></li></ol></div>
"""


def post(slug: str, title: str, day: int, categories=("Notes",), summary="A summary.",
         body=BODY, updated=None) -> RenderedDocument:
    doc = Document(kind="post", source=Path(f"content/posts/{slug}.md"), title=title, slug=slug,
                   body="", body_line=1, date=datetime(2024, 5, day, 9, 30, tzinfo=PARIS),
                   updated=updated, categories=tuple(categories), summary=summary)
    return RenderedDocument(document=doc, html=body, intro_html=body, has_more=False, markdown="")


def parse(data: bytes):
    feed = feedparser.parse(data)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def test_feed_channel_describes_the_site():
    feed = parse(render_rss(CONFIG, [post("a", "A", 1)]))
    assert feed.version == "rss20"
    assert feed.feed.title == "Lab Notes"
    assert feed.feed.link == "https://example.org/blog/"
    assert feed.feed.subtitle == "Executable lab notes."
    assert feed.feed.language == "en"
    self_links = [l.href for l in feed.feed.links if l.rel == "self"]
    assert self_links == ["https://example.org/blog/feed.xml"]


def test_feed_items_are_newest_first_with_permalinks_and_summary():
    feed = parse(render_rss(CONFIG, [post("old", "Old", 1), post("new", "New", 9), post("mid", "Mid", 5)]))
    assert [e.title for e in feed.entries] == ["New", "Mid", "Old"]
    first = feed.entries[0]
    assert first.link == "https://example.org/blog/posts/new.html"
    assert first.id == "https://example.org/blog/posts/new.html"
    guid = ET.fromstring(render_rss(CONFIG, [post("new", "New", 9)])).find("channel/item/guid")
    assert guid.get("isPermaLink") == "true"
    assert first.summary == "A summary."
    assert first.author == "Ada Lovelace"


def test_feed_dates_are_rfc2822_with_zone():
    data = render_rss(CONFIG, [post("a", "A", 3)])
    pub = ET.fromstring(data).find("channel/item/pubDate").text
    parsed = email.utils.parsedate_to_datetime(pub)
    assert parsed == datetime(2024, 5, 3, 9, 30, tzinfo=PARIS)
    assert pub.endswith("+0200")


def test_feed_last_build_date_is_newest_post_not_the_clock():
    entries = [post("a", "A", 1), post("b", "B", 4, updated=datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc))]
    data = render_rss(CONFIG, entries)
    last = ET.fromstring(data).find("channel/lastBuildDate").text
    assert email.utils.parsedate_to_datetime(last) == datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_two_renders_of_the_same_posts_are_byte_identical():
    entries = [post("a", "A", 1), post("b", "B", 2)]
    assert render_rss(CONFIG, entries) == render_rss(CONFIG, list(reversed(entries)))


def test_feed_content_has_only_absolute_urls():
    feed = parse(render_rss(CONFIG, [post("a", "A", 1)]))
    soup = BeautifulSoup(feed.entries[0].content[0].value, "html.parser")
    hrefs = [a["href"] for a in soup.find_all("a")]
    srcs = [img["src"] for img in soup.find_all("img")]
    assert hrefs == [
        "https://example.org/blog/posts/other.html",
        "https://example.org/blog/posts/other.html",
        "https://example.org/blog/posts/a.html#fn1",
        "mailto:ada@example.org",
        "https://elsewhere.net/x",
        "https://example.org/blog/posts/a.html#fnref1",
    ]
    assert srcs[:2] == ["https://example.org/blog/figures/loss.png", "https://example.org/blog/figures/attn.png"]
    assert srcs[2].startswith("data:image/png")
    # Escaped markup in a code block is text, not a link, and stays as written.
    assert soup.find("code").get_text() == '<a href="/not/a/link">'


def test_feed_content_keeps_mathml():
    feed = parse(render_rss(CONFIG, [post("a", "A", 1)]))
    soup = BeautifulSoup(feed.entries[0].content[0].value, "html.parser")
    math = soup.find("math")
    assert math is not None and math["xmlns"] == "http://www.w3.org/1998/Math/MathML"
    assert [mi.get_text() for mi in math.find_all("mi")] == ["e", "i", "π"]


def test_feed_has_a_category_per_category():
    feed = parse(render_rss(CONFIG, [post("a", "A", 1, categories=("GPT-2", "Attention"))]))
    assert [t.term for t in feed.entries[0].tags] == ["GPT-2", "Attention"]
    domains = [c.get("domain") for c in ET.fromstring(render_rss(CONFIG, [post("a", "A", 1, categories=("GPT-2",))])).iter("category")]
    assert domains == ["https://example.org/blog/category/gpt-2/"]


def test_category_feed_has_its_own_self_link_and_title():
    data = render_rss(CONFIG, [post("a", "A", 1, categories=("Attention",))],
                      path="category/attention/feed.xml", title="Lab Notes: Attention")
    feed = parse(data)
    assert feed.feed.title == "Lab Notes: Attention"
    assert [l.href for l in feed.feed.links if l.rel == "self"] == ["https://example.org/blog/category/attention/feed.xml"]
    assert [e.title for e in feed.entries] == ["A"]


def test_feed_escapes_markup_ampersands_quotes_and_emoji_in_titles_and_categories():
    title = 'Why <b> & "quotes" & \'apostrophes\' 🚀 matter'
    category = "<script>alert(1)</script> & Q&A 🤖"
    feed = parse(render_rss(CONFIG, [post("a", title, 1, categories=(category,), summary="x < y & z")]))
    entry = feed.entries[0]
    assert entry.title == title
    assert entry.tags[0].term == category
    assert entry.summary == "x < y & z"


def test_empty_feed_is_valid_and_stable():
    data = render_rss(CONFIG, [])
    parse(data)
    assert data == render_rss(CONFIG, [])


def test_absolutize_html_leaves_other_attributes_and_text_alone():
    fragment = '<p title="href=/x">see <a class="c" href="/a?x=1&amp;y=2">/a</a></p>'
    out = absolutize_html(fragment, "https://example.org/blog/posts/p.html")
    soup = BeautifulSoup(out, "html.parser")
    assert soup.p["title"] == "href=/x"
    assert soup.a["href"] == "https://example.org/a?x=1&y=2"
    assert soup.a.get_text() == "/a"
