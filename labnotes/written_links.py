"""Every build checks the links a post or page writes: each internal link leads to a file of
the site, each fragment to an id of its page (SPEC 3, "References to other posts stay right").

    gather_links         a document's links, as rendered, with the source line of each
    page_ids             the ids a rendered body gives its page (headings, footnotes, lab blocks)
    check_written_links  before anything is written: every gathered link resolves in this build

Links and ids are gathered when a document is rendered and kept with its render in the render
cache, so a build checks them against the set of output paths without reading any page again.
`build.py check` still scans the whole built site, links made by templates included (links.py).
"""
from __future__ import annotations

import difflib
import html
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from .errors import BuildError, display_path
from .model import Document, RenderedDocument
from .post_references import SCHEME, PostReference
from .prose import prose_view

# A start tag with a URL attribute; escaped text (`&lt;a href=` in code) is not a tag.
_TAG_WITH_URL = re.compile(r"<[A-Za-z][^<>]*?\s(?:href|src)\s*=[^<>]*>")
_URL_ATTR = re.compile(r"""\s(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
_ID_ATTR = re.compile(r"""<[A-Za-z][^<>]*?\s(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# The footnote links markdown2 writes itself (to `#fn-1` and back): nobody wrote them.
_FOOTNOTE_LINKS = re.compile(r'<sup class="footnote-ref"[^>]*><a href="#fn-[^"]*"'
                             r'|<a href="#fnref-[^"]*" class="footnoteBackLink"')
_NOT_CHECKED = ("mailto:", "tel:", "data:", "javascript:")
_LITERAL_ID = re.compile(r"""\sid\s*=\s*["']([^"'{}]+)["']""")


def gather_links(prose_html: str, body: str, body_line: int,
                 references: Iterable[tuple[PostReference, str]] = ()) -> tuple[tuple[str, int, str], ...]:
    """(URL as written, line, reference as written or "") of every link and image of
    `prose_html`, the body as markdown2 made it (before lab blocks are put in and root-relative
    URLs get the site's path). `body` is the Markdown it was made from, with post references
    already filled in (`(reference, its URL)`); a link's line is where its URL is in `body`.
    """
    prose_html = _FOOTNOTE_LINKS.sub("", prose_html)
    found: list[str] = []
    for tag in _TAG_WITH_URL.finditer(prose_html):
        for attr in _URL_ATTR.finditer(tag.group(0)):
            url = html.unescape(next(v for v in attr.groups() if v is not None)).strip()
            if url and not url.lower().startswith(_NOT_CHECKED):
                found.append(url)
    if not found:
        return ()
    view = prose_view(body)
    written = {(url, ref.line): ref.written for ref, url in references}
    searched_from: dict[str, int] = {}
    links = []
    for url in found:
        at = _target_at(view, url, searched_from.get(url, 0))
        if at >= 0:
            searched_from[url] = at + len(url)
        line = body_line + view.count("\n", 0, at) if at >= 0 else body_line
        links.append((url, line, written.get((url, line), "")))
    return tuple(links)


def _target_at(view: str, url: str, start: int) -> int:
    """Where `url` is written as a link target in `view` (`](url`, `]: url`, `href="url"`) from
    `start` on, else anywhere; else where its text is; -1 when it is nowhere (markdown2 rewrote it)."""
    target = re.compile(r"(?:\]\([ \t]*<?|^[ \t]*\[[^\]\n]+\]:[ \t]*<?|=[ \t]*[\"']?)(" + re.escape(url)
                        + r")(?=[)>\"'\s]|$)", re.MULTILINE)
    match = target.search(view, start) or target.search(view)
    return match.start(1) if match is not None else view.find(url)


def page_ids(body_html: str) -> tuple[str, ...]:
    """Every id (and `<a name>`) of a rendered body, in order."""
    return tuple(dict.fromkeys(next(v for v in m.groups() if v is not None) for m in _ID_ATTR.finditer(body_html)))


def template_ids(folders: Sequence[Path]) -> frozenset[str]:
    """The ids the templates in `folders` write literally (`<main id="main">`): a link may point
    at them on any page."""
    ids: set[str] = set()
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.html")):
                ids.update(_LITERAL_ID.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(ids)


def check_written_links(documents: Sequence[RenderedDocument], paths: Collection[str], base_url: str,
                        left_out: Sequence[Document] = (),
                        more_ids: Callable[[], Collection[str]] = frozenset,
                        only: Collection[str] | None = None) -> None:
    """BuildError, naming the file and line, for the first link of `documents` (by file, then
    line) to a file that is not among `paths` (output-relative), or with a fragment that is no id
    of its page. Fragments are checked on the pages of posts and pages (their bodies' ids, or
    `more_ids()`, the templates'); external links are not checked. `left_out` (drafts, posts
    held back) explains a link to one of them. With `only` (output paths), just the links of
    those documents are checked."""
    ids_of = {r.document.output_path: r.ids for r in documents}
    checked = documents if only is None else [r for r in documents if r.document.output_path in only]
    for rendered in sorted(checked, key=lambda r: str(r.document.source)):
        doc = rendered.document
        for url, line, written in rendered.links:
            problem = link_problem(url, written, doc, paths, base_url, ids_of, left_out, more_ids)
            if problem:
                raise BuildError(doc.source, problem, line)


def link_problem(url: str, written: str, doc: Document, paths: Collection[str], base_url: str,
                 ids_of: dict[str, Sequence[str]], left_out: Sequence[Document] = (),
                 more_ids: Callable[[], Collection[str]] = frozenset) -> str | None:
    """What is wrong with the link `url` written in `doc`, or None when it leads somewhere."""
    shown = f"{written} ({url})" if written else url
    if url.lower().startswith(SCHEME):
        return (f"post reference {url} is not filled in: only a link written inline as [](post:SLUG), "
                "[part](post:SLUG) or [text](post:SLUG#heading), outside code, is")
    target = site_target(url, doc.url, base_url)
    if target is None:
        return None
    path, fragment = target
    if path is None:
        return f"broken link {shown}: it points above the site's root ({base_url})"
    page = existing_path(path, paths)
    if page is None:
        return f"broken link {shown}: {_no_such(path, paths, left_out)}"
    if fragment and page in ids_of and fragment not in ids_of[page] and fragment not in more_ids():
        nearest = closest(fragment, ids_of[page])
        hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
        return f'broken anchor {shown}: {page} has no id "{fragment}"{hint}'
    return None


def site_target(url: str, page_url: str, base_url: str) -> tuple[str | None, str] | None:
    """(output-relative path, fragment) that `url`, written on the page at site-relative
    `page_url`, points at; None for a link out of the site; path None for a relative link that
    climbs above the site's root. A root-relative URL (`/posts/a.html`) is from the site's root."""
    if url.startswith("/") and not url.startswith("//") and "?" not in url and "%" not in url:
        path, _, fragment = url[1:].partition("#")   # the usual link: read without urlsplit
        if "/." not in path:
            return path, fragment
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        absolute = urljoin(base_url, url)
        if not absolute.startswith(base_url):
            return None
        parts = urlsplit(absolute[len(base_url):])
        path = parts.path
    elif url.startswith("/"):
        path = parts.path[1:]
    else:
        joined = posixpath.normpath(posixpath.join("/" + posixpath.dirname(page_url), parts.path)) \
            if parts.path else "/" + page_url
        if parts.path.endswith("/") and not joined.endswith("/"):
            joined += "/"
        if _climbs_above(page_url, parts.path):
            return None, ""
        path = joined[1:]
    return unquote(path), unquote(parts.fragment)


def _climbs_above(page_url: str, relative: str) -> bool:
    depth = page_url.count("/")
    for segment in relative.split("/"):
        depth += -1 if segment == ".." else (0 if segment in ("", ".") else 1)
        if depth < 0:
            return True
    return False


def existing_path(path: str, paths: Collection[str]) -> str | None:
    """The output file a server gives for `path`: itself, or `index.html` of a folder."""
    if path == "" or path.endswith("/"):
        candidates = [path + "index.html"]
    else:
        candidates = [path, path + "/index.html"]
    return next((c for c in candidates if c in paths), None)


def _no_such(path: str, paths: Collection[str], left_out: Sequence[Document]) -> str:
    what = "no such page" if path.endswith((".html", "/")) or "." not in posixpath.basename(path) else "no such file"
    for doc in left_out:
        if existing_path(path, {doc.output_path}) is not None:
            why = "a draft, which this build does not publish" if doc.draft else \
                "dated after this build's clock, so it is held back (build with --future)"
            return f"{what}: {display_path(doc.source)} is {why}"
    urls = {_url_of(p): p for p in paths if p != "404.html"}
    wanted = _url_of(path + "index.html" if path.endswith("/") or not path else path)
    suffix = posixpath.splitext(wanted.rstrip("/"))[1]
    alike = [u for u in urls if posixpath.splitext(u.rstrip("/"))[1] == suffix]
    nearest = closest(wanted, alike)
    return what + (f"; nearest: {', '.join(nearest)}" if nearest else "")


def _url_of(path: str) -> str:
    """`/posts/a.html`, `/about/`: an output path as a post links it."""
    return "/" + (path[: -len("index.html")] if path.endswith("index.html") else path)


def closest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` of `candidates` most like `word`: difflib's best, and those nearly as close."""
    matcher, scored = difflib.SequenceMatcher(), []
    matcher.set_seq2(word)
    for candidate in candidates:
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6 and matcher.ratio() >= 0.6:
            scored.append((-matcher.ratio(), candidate))
    scored.sort()
    return [c for score, c in scored[:n] if score <= scored[0][0] + 0.05]
