"""Render stage for HTML: posts, pages, paginated index, categories, months, series, archive, 404.

Pure: rendered documents in, `{output path: OutputFile}` out (each page keyed on what it
shows, rendered only when asked). All HTML lives in templates/.
"""
from __future__ import annotations

import functools
import html
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import markupsafe

from .model import Document, LabRecord, RenderedDocument, SiteConfig
from .notebooks import has_notebook, notebook_path
from .output import OutputFile
from .render_cache import config_key, content_key, text_digest
from .series import group_series
from .slugs import slugify
from .template_errors import template_errors

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Entry(NamedTuple):
    """A rendered post or page with its URL as a reader's browser needs it (a named tuple: a
    build makes one per post several times over)."""

    rendered: RenderedDocument
    url: str

    @property
    def document(self) -> Document:
        return self.rendered.document

    @property
    def html(self) -> str:
        return self.rendered.html

    @property
    def intro_html(self) -> str:
        return self.rendered.intro_html

    @property
    def has_more(self) -> bool:
        return self.rendered.has_more


@dataclass(frozen=True)
class Group:
    """A category or a month: its name, listing URL, output folder and posts (newest first)."""

    name: str
    path: str           # site-relative folder, e.g. "category/attention/" or "2026/03/"
    url: str
    entries: tuple[Entry, ...]

    @property
    def count(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class SeriesPlace:
    """Where a post stands in its series: the series (a Group in reading order) and its part."""

    group: Group
    number: int          # 1-based

    @property
    def previous(self) -> Entry | None:
        return self.group.entries[self.number - 2] if self.number > 1 else None

    @property
    def next(self) -> Entry | None:
        return self.group.entries[self.number] if self.number < self.group.count else None


@dataclass(frozen=True)
class Sidebar:
    months: tuple[Group, ...]
    categories: tuple[Group, ...]
    series: tuple[Group, ...] = ()


def base_path(config: SiteConfig) -> str:
    """The path part of base_url: "/" or e.g. "/blog/"."""
    path = urlsplit(config.base_url).path or "/"
    return path if path.endswith("/") else path + "/"


@functools.lru_cache(maxsize=4096)   # asked for each category of each post, several times a build
def category_path(name: str) -> str:
    """Site-relative folder of a category's listing (its feed is `feed.xml` inside it)."""
    return f"category/{slugify(name)}/"


def group_categories(posts: Sequence[Entry], root: str) -> tuple[Group, ...]:
    """One group per category slug, sorted by name; names sharing a slug ("ML", "ml") share
    one group, shown as the oldest post spelled it."""
    entry_of = {id(entry.rendered): entry for entry in posts}
    return tuple(Group(name, path, root + path, tuple(entry_of[id(post)] for post in members))
                 for name, path, members in category_members([entry.rendered for entry in posts]))


def category_members(posts: Sequence[RenderedDocument]) -> list[tuple[str, str, list[RenderedDocument]]]:
    """(name, folder, posts newest first) of each category of `posts` (newest first), sorted
    by name, as `group_categories` groups them."""
    groups: dict[str, tuple[str, list[RenderedDocument]]] = {}
    for post in reversed(posts):
        for name in post.document.categories:
            path = category_path(name)
            groups.setdefault(path, (name, []))[1].append(post)
    return sorted(((name, path, members[::-1]) for path, (name, members) in groups.items()),
                  key=lambda group: (group[0].casefold(), group[1]))


def group_months(posts: Sequence[Entry], root: str, zone: ZoneInfo) -> tuple[Group, ...]:
    """One group per month of publication in the site's zone, newest first."""
    groups: dict[str, tuple[str, list[Entry]]] = {}
    for entry in posts:
        local = entry.rendered.document.date.astimezone(zone)
        path = f"{local.year:04d}/{local.month:02d}/"
        if path not in groups:
            groups[path] = (f"{local:%B} {local.year}", [])
        groups[path][1].append(entry)
    return tuple(Group(name, path, root + path, tuple(entries))
                 for path, (name, entries) in sorted(groups.items(), reverse=True))


def group_series_entries(posts: Sequence[Entry], root: str) -> tuple[Group, ...]:
    """One group per series (see labnotes.series), its entries in reading order."""
    by_path = {entry.document.output_path: entry for entry in posts}
    return tuple(Group(s.name, s.url, root + s.url, tuple(by_path[d.output_path] for d in s.posts))
                 for s in group_series([entry.document for entry in posts]))


def render_site_pages(config: SiteConfig, posts: Sequence[RenderedDocument], pages: Sequence[RenderedDocument]) -> dict[str, bytes]:
    """Every HTML page of the site, rendered; `posts` newest first."""
    return {path: page.make() for path, page in site_pages(config, posts, pages).items()}


def site_pages(config: SiteConfig, posts: Sequence[RenderedDocument], pages: Sequence[RenderedDocument],
               version: str = "", labs: Sequence[LabRecord] = (),
               only: Collection[str] | None = None) -> dict[str, OutputFile]:
    """Every HTML page of the site, each keyed on exactly what it shows and rendered on demand;
    with `only` (output paths), just those of them.

    `version` names the generator (code and templates) and goes into every key; `posts`
    newest first. A page's key changes only when something visible on it does: editing the
    prose of one post changes its own page and the index page showing its intro, not the
    listings that show its title and summary.
    """
    root = base_path(config)
    zone = ZoneInfo(config.timezone)
    post_entries = [Entry(p, root + p.document.url) for p in posts]
    page_entries = [Entry(p, root + p.document.url) for p in pages]
    categories = group_categories(post_entries, root)
    months = group_months(post_entries, root, zone)
    series = group_series_entries(post_entries, root)
    place_of = {entry.url: SeriesPlace(group, number) for group in series
                for number, entry in enumerate(group.entries, start=1)}
    category_by_path = {g.path: g for g in categories}
    templates = _Templates(config, zone, root, category_by_path)
    common = {
        "site": config,
        "root": root,
        "nav_pages": [{"title": e.document.title, "url": e.url} for e in page_entries],
        "sidebar": Sidebar(months, categories, series),
        "page_title": None,
        "description": None,
        "category_feed": None,
        "series": None,
        "has_labs": bool(labs),
    }
    common_key = content_key(
        version, config_key(config), root, [(e.document.title, e.url) for e in page_entries],
        [(g.name, g.url, g.count) for g in months], [(g.name, g.url, g.count) for g in categories],
        [(g.name, g.url, g.count) for g in series], bool(labs))

    def meta(entry: Entry) -> str:
        # Its own category names: the name and URL each shows as are in `common_key`; its URL
        # without `root`, which is there too.
        return entry.rendered.document.shown_key

    def listed(entry: Entry) -> str:
        return entry.rendered.document.listed_key

    def link(entry: Entry | None) -> tuple | None:
        return (entry.url, entry.rendered.document.title) if entry is not None else None

    def series_shown(place: SeriesPlace | None) -> tuple | None:
        if place is None:
            return None
        return (place.group.name, place.group.url, place.number, [link(e) for e in place.group.entries])

    out: dict[str, OutputFile] = {}
    wanted = (lambda path: True) if only is None else only.__contains__

    def page(path: str, template: str, shown: tuple, **context) -> None:
        folder = path[: -len("index.html")] if path.endswith("index.html") else path
        context.setdefault("canonical", config.base_url + folder)
        key = content_key(common_key, path, template, context["canonical"], shown)
        out[path] = OutputFile(key, lambda: templates.render(template, common, context))

    links = [link(entry) for entry in post_entries] + [None]   # a post's link shows on its two neighbours
    for i, entry in enumerate(post_entries):
        if not wanted(entry.rendered.document.output_path):
            continue
        newer = post_entries[i - 1] if i > 0 else None
        older = post_entries[i + 1] if i + 1 < len(post_entries) else None
        doc = entry.rendered.document
        place = place_of.get(entry.url)
        notebook = root + notebook_path(doc) if has_notebook(doc) else None
        page(doc.output_path, "post.html",
             (doc.shown_key, doc.summary, _body_key(entry), links[i - 1] if i > 0 else None, links[i + 1],
              series_shown(place), notebook),
             entry=entry, newer=newer, older=older, series=place, page_title=doc.title, description=doc.summary,
             notebook=notebook)
    for entry in (entry for entry in page_entries if wanted(entry.document.output_path)):
        doc = entry.document
        page(doc.output_path, "page.html", (meta(entry), doc.summary, _body_key(entry)),
             entry=entry, page_title=doc.title, description=doc.summary)

    size = config.posts_per_page
    chunks = [post_entries[i:i + size] for i in range(0, len(post_entries), size)] or [[]]
    for n, chunk in enumerate(chunks, start=1):
        if not wanted(index_folder(n) + "index.html"):
            continue
        shown = (n, len(chunks), [(meta(e), e.rendered.intro_key or text_digest(e.intro_html), e.has_more) for e in chunk])
        page(index_folder(n) + "index.html", "index.html", shown, entries=chunk, page_number=n, page_count=len(chunks),
             page_title=None if n == 1 else f"Page {n}",
             newer_page=root + index_folder(n - 1) if n > 1 else None,
             older_page=root + index_folder(n + 1) if n < len(chunks) else None)
    for group in (group for group in categories if wanted(group.path + "index.html")):
        feed = {"name": group.name, "url": group.url + "feed.xml"}
        page(group.path + "index.html", "listing.html", (group.name, [listed(e) for e in group.entries]),
             entries=group.entries, heading=group.name, kicker="Category", page_title=group.name,
             category_feed=feed)
    for group in (group for group in series if wanted(group.path + "index.html")):
        page(group.path + "index.html", "series.html", (group.name, [listed(e) for e in group.entries]),
             series=group, page_title=group.name,
             description=f"{group.name}: a series of {group.count} post{'' if group.count == 1 else 's'}, in reading order.")
    for group in (group for group in months if wanted(group.path + "index.html")):
        page(group.path + "index.html", "listing.html", (group.name, [listed(e) for e in group.entries]),
             entries=group.entries, heading=group.name, kicker="Month", page_title=group.name)
    if wanted("archive/index.html"):
        page("archive/index.html", "archive.html", [(g.name, g.url, [listed(e) for e in g.entries]) for g in months],
             months=months, post_count=len(post_entries), page_title="Archive")
    if labs and wanted("labs/index.html"):
        rows = lab_rows(labs, post_entries + page_entries)
        page("labs/index.html", "labs.html", rows, rows=rows, page_title="Labs",
             description=f"Every lab of {config.title}: the post that runs it, where and how it ran, "
                         "and the command that reruns it.")
    if wanted("404.html"):
        page("404.html", "404.html", (), page_title="Page not found")
    return out


def index_folder(n: int) -> str:
    """The site-relative folder of page `n` (from 1) of the index, newest posts on page 1."""
    return "" if n == 1 else f"page/{n}/"


def lab_rows(labs: Sequence[LabRecord], entries: Sequence[Entry]) -> list[tuple]:
    """(post title, lab URL, ref, args, device, torch, wall time, status, command) per lab block
    of a published document, in site order."""
    by_source = {e.document.source: e for e in entries}
    return [(by_source[r.path].document.title, f"{by_source[r.path].url}#{r.anchor}", r.ref, r.args,
             r.device_name, r.torch_version, r.wall, r.status, r.command)
            for r in labs if r.path in by_source]


@dataclass(frozen=True)
class Figure:
    """An image of a page as OpenGraph names it: absolute URL and alt text."""

    url: str
    alt: str


_RASTER = (".png", ".jpg", ".jpeg", ".gif", ".webp")
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_IMG_ATTR = re.compile(r"""\s(?P<name>src|alt|data-preview)\s*=\s*(?P<quote>["'])(?P<value>.*?)(?P=quote)""", re.IGNORECASE | re.DOTALL)


def first_figure(body_html: str, page_url: str) -> Figure | None:
    """The image a link preview should show for a page, as an absolute URL: its first raster
    image, where a lab plot counts by its PNG `data-preview` (preview cards of the big sites do
    not show SVG); else its first image."""
    from .feeds import resolve_url

    images, raster = [], []
    for tag in _IMG_TAG.finditer(body_html):   # code shows `<img` escaped: only real tags match
        attrs = {m["name"].lower(): html.unescape(m["value"]) for m in _IMG_ATTR.finditer(tag.group(0))}
        src = attrs.get("src", "").strip()
        if not src:
            continue
        images.append(Figure(resolve_url(page_url, src), attrs.get("alt", "")))
        if urlsplit(src).path.lower().endswith(_RASTER):
            raster.append(images[-1])
        elif attrs.get("data-preview", "").strip():
            raster.append(Figure(resolve_url(page_url, attrs["data-preview"].strip()), images[-1].alt))
    return (raster or images or [None])[0]


def _body_key(entry: Entry) -> str:
    # The render key names the body's bytes already: no need to hash kilobytes of HTML again.
    return entry.rendered.key or text_digest(entry.html)


TEMPLATE_CACHE_DIR = ".cache/templates"   # compiled Jinja templates


class _Templates:
    """The Jinja environment, made (and the sidebar rendered) only when a page is rendered."""

    def __init__(self, config: SiteConfig, zone: ZoneInfo, root: str, category_by_path: dict[str, Group]):
        self._args = (config, zone, root, category_by_path)
        self._env = None
        self._sidebar: markupsafe.Markup | None = None

    def render(self, template: str, common: dict, context: dict) -> bytes:
        """`template` rendered; a mistake in a template is a BuildError naming its file and line."""
        config, zone, root, category_by_path = self._args
        with template_errors([config.root / "templates", BUILTIN_TEMPLATES]):
            if self._env is None:
                self._env = _environment(config, zone, root)
                self._env.globals["categories_of"] = lambda doc: [category_by_path[category_path(n)] for n in doc.categories]
            if self._sidebar is None:
                # The sidebar is the same on every page: render it once, not 1,000 times.
                self._sidebar = markupsafe.Markup(self._env.get_template("_sidebar.html").render(common))
            return self._env.get_template(template).render(
                {**common, **context, "sidebar_html": self._sidebar}).encode("utf-8")


def _environment(config: SiteConfig, zone: ZoneInfo, root: str):
    import jinja2   # a rebuild that renders no page never needs it

    loaders = [jinja2.FileSystemLoader(str(config.root / "templates")), jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES))]
    # Compiled templates are kept on disk (Jinja checks each against its source): compiling
    # them costs more than rendering the few pages a one-post edit changes.
    folder = config.root / TEMPLATE_CACHE_DIR
    compiled = jinja2.FileSystemBytecodeCache(str(folder)) if _writable_folder(folder) else None
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True, keep_trailing_newline=True,
                             trim_blocks=False, undefined=jinja2.StrictUndefined, bytecode_cache=compiled)

    def date_text(moment: datetime) -> str:
        local = moment.astimezone(zone)
        return f"{local.day} {local:%B} {local.year}"

    env.globals["date_text"] = date_text
    env.globals["first_figure"] = first_figure
    return env


def _writable_folder(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)
