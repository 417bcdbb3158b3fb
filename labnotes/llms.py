"""What a language model reads: `/llms.txt`, a Markdown mirror of every page, `/llms-full.txt`.

`llms.txt` follows the llms.txt proposal (https://llmstxt.org): an H1, a `>` summary, a
paragraph, then `##` sections holding only `- [Title](URL): note` lines, `## Optional` last.
Parsers of that format read link text up to the first `]` and URLs up to the first `)`, and
take one line per link, so titles and URLs are made safe for that before they are written.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import quote

from .feeds import absolute_url, absolutize_html, resolve_url
from .model import Document, RenderedDocument, Series, SiteConfig

# Raw `<` starts HTML in Markdown only before a letter, `/`, `!` or `?`; `&` only as an entity.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY_START = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def mirror_path(doc: Document) -> str:
    """Where the Markdown mirror of `doc` is written: its HTML file plus `.md`."""
    return doc.output_path + ".md"


def mirror_url(config: SiteConfig, doc: Document) -> str:
    """Absolute URL of the Markdown mirror: `…/posts/a.html.md`, `…/about/index.html.md`."""
    return absolute_url(config, mirror_path(doc))


def series_mirror_path(series: Series) -> str:
    """Where the Markdown version of a series page is written: `series/<slug>/index.html.md`."""
    return series.output_path + ".md"


def render_llms_txt(config: SiteConfig, posts: Sequence[RenderedDocument],
                    pages: Sequence[RenderedDocument], series: Sequence[Series] = (),
                    labs_page: bool = False) -> str:
    """The site's `/llms.txt`: posts newest first, the series (if any), then pages and the
    full text as optional."""
    series_lines = [
        "## Series",
        "",
        *(_link_line(s.name, absolute_url(config, series_mirror_path(s)),
                     f"{_parts(len(s.posts))} in reading order") for s in series),
        "",
    ] if series else []
    lines = [
        f"# {inline_text(config.title)}",
        "",
        f"> {inline_text(config.description or config.title)}",
        "",
        inline_text(f"{config.title} is a blog by {config.author} whose posts run their own PyTorch "
                f"code; what each lab computed is shown in the post. Every link below is the "
                f"Markdown version of a page: drop the final `.md` for its HTML. The RSS feed is "
                f"at {absolute_url(config, 'feed.xml')}."),
        "",
        "## Posts",
        "",
        *(_link_line(d.title, mirror_url(config, d), _post_note(d)) for d in _docs(_newest_first(posts))),
        "",
        *series_lines,
        "## Optional",
        "",
        *(_link_line(d.title, mirror_url(config, d), d.summary) for d in _docs(_by_title(pages))),
        *([_link_line("Labs", absolute_url(config, "labs/index.html.md"),
                      "every lab of the site: its post, device, torch version, wall time and "
                      "rerun command")] if labs_page else []),
        _link_line("Full text of every post and page", absolute_url(config, "llms-full.txt"),
                   "all of the above in one Markdown file"),
    ]
    return "\n".join(lines) + "\n"


def render_labs_mirror(config: SiteConfig, rows: Sequence[tuple]) -> str:
    """The labs page as Markdown: one table row per lab block."""
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Labs",
        "",
        f"- HTML version: <{markdown_url(absolute_url(config, 'labs/'))}>",
        "",
        inline_text(f"Every lab of {config.title}, newest post first: where it ran, with which torch, how "
                "long it took, whether this build ran it or reused its cached result, and the "
                "command that reruns it")
        + (f" in a clone of the blog's repository (`git clone {config.repository}`, then `make setup`)."
           if config.repository else "."),
        "",
        "| post | lab | device | torch | wall time | this build | rerun |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for title, url, ref, args, device, torch, wall, status, command in rows:
        lab = f"`{ref}`" + (f" ({cell(args)})" if args else "")
        lines.append(f"| [{link_text(title)}]({markdown_url(absolute_url(config, url))}) | "
                     f"{lab} | {cell(device)} | {cell(torch)} | {cell(wall)} | {STATUS[status]} | "
                     f"`{cell(command)}` |")
    return "\n".join(lines) + "\n"


STATUS = {"ran": "ran", "cached": "reused", "failed": "failed"}


def render_series_mirror(config: SiteConfig, series: Series) -> str:
    """A series page as Markdown: its name, its HTML URL, then its parts in reading order."""
    lines = [
        f"# {inline_text(series.name)}",
        "",
        f"- HTML version: <{markdown_url(absolute_url(config, series.url))}>",
        "",
        inline_text(f"A series of {len(series.posts)} post{'' if len(series.posts) == 1 else 's'} on {config.title}, in reading order; "
                f"each link is the Markdown version of a post."),
        "",
        *(f"{number}. [{link_text(d.title)}]({markdown_url(mirror_url(config, d))})"
          + (f": {inline_text(note)}" if (note := _post_note(d)) else "")
          for number, d in enumerate(series.posts, start=1)),
    ]
    return "\n".join(lines) + "\n"


def render_markdown_mirror(config: SiteConfig, doc: RenderedDocument, series: Series | None = None) -> str:
    """`doc` as a clean Markdown file: title, date, categories and series, canonical URL, then
    the body."""
    d = doc.document
    page_url = absolute_url(config, d.url)
    meta = []
    if d.date is not None:
        meta.append(f"- Published: {d.date.date().isoformat()}")
    if d.updated is not None:
        meta.append(f"- Updated: {d.updated.date().isoformat()}")
    if d.categories:
        meta.append(f"- Categories: {', '.join(inline_text(c) for c in d.categories)}")
    if series is not None:
        meta.append(f"- Series: [{link_text(series.name)}]({markdown_url(absolute_url(config, series_mirror_path(series)))}), "
                    f"part {series.part_of(d)} of {len(series.posts)}")
    meta.append(f"- HTML version: <{markdown_url(page_url)}>")
    from .notebooks import has_notebook, notebook_path   # notebooks.py builds on this module
    if has_notebook(d):
        meta.append(f"- Jupyter notebook (each lab a code cell to rerun): <{markdown_url(absolute_url(config, notebook_path(d)))}>")
    parts = [f"# {inline_text(d.title)}", "\n".join(meta)]
    if d.summary:
        parts.append(f"> {inline_text(d.summary)}")
    parts.append(absolutize_markdown(doc.markdown, page_url, config.base_url).strip())
    return "\n\n".join(p for p in parts if p) + "\n"


def render_llms_full(config: SiteConfig, posts: Sequence[RenderedDocument],
                     pages: Sequence[RenderedDocument],
                     mirror_of: Callable[[RenderedDocument], str] | None = None) -> str:
    """`/llms-full.txt`: every post (newest first), then every page, in full Markdown.

    `mirror_of` gives a document's `render_markdown_mirror` text, e.g. from a cache.
    """
    mirror_of = mirror_of or (lambda rendered: render_markdown_mirror(config, rendered))
    docs = llms_full_order(posts, pages)
    return "".join([llms_full_head(config), *(llms_full_part(mirror_of(r)) for r in docs), "\n"])


def llms_full_order(posts: Sequence[RenderedDocument], pages: Sequence[RenderedDocument]) -> list[RenderedDocument]:
    """The documents of llms-full.txt in its order: posts newest first, then pages by title."""
    return [*_newest_first(posts), *_by_title(pages)]


def llms_full_head(config: SiteConfig) -> str:
    """What llms-full.txt says before its documents; then comes one `llms_full_part` per
    document, then a newline."""
    return "\n".join([
        f"# {inline_text(config.title)}",
        "",
        f"> {inline_text(config.description or config.title)}",
        "",
        inline_text(f"Every post of {config.title} (newest first), then every page, in full Markdown. "
                f"Each starts with its title as a level-one heading and its HTML URL; "
                f"a horizontal rule separates them."),
    ])


def llms_full_part(mirror: str) -> str:
    """One document of llms-full.txt, given its Markdown mirror: a rule, then the mirror."""
    return "\n\n---\n\n" + mirror.strip()


def absolutize_markdown(markdown: str, page_url: str, site_url: str) -> str:
    """`markdown` with link and image targets (inline, reference, raw HTML) made absolute.

    Code (fenced blocks and inline spans) is left exactly as written.
    """
    def fix_prose(text: str) -> str:
        text = _INLINE_TARGET.sub(lambda m: m["open"] + _fix_target(m["url"]), text)
        text = _REFERENCE_DEF.sub(lambda m: m["head"] + _fix_target(m["url"]), text)
        return absolutize_html(text, page_url, site_url)

    def _fix_target(url: str) -> str:
        if url.startswith("<") and url.endswith(">"):
            return "<" + resolve_url(page_url, url[1:-1], site_url) + ">"
        return resolve_url(page_url, url, site_url) if url else url

    out = []
    for is_code, chunk in split_fenced_code(markdown):
        if is_code:
            out.append(chunk)
        else:
            out.append(_map_outside_spans(chunk, fix_prose))
    return "".join(out)


# `](url` or `](<url>` of an inline link or image; one level of balanced parentheses in a URL.
_INLINE_TARGET = re.compile(r"(?P<open>\]\(\s*)(?P<url><[^>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()]*)*)")
# a link reference definition `[name]: url`, not a footnote definition `[^1]: text`
_REFERENCE_DEF = re.compile(r"^(?P<head> {0,3}\[(?!\^)[^\]\n]+\]:[ \t]*)(?P<url><[^>\n]*>|\S+)", re.MULTILINE)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).|\n)*?\1(?!`)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _map_outside_spans(text: str, fix) -> str:
    out, last = [], 0
    for span in _CODE_SPAN.finditer(text):
        out.append(fix(text[last:span.start()]))
        out.append(span.group(0))
        last = span.end()
    out.append(fix(text[last:]))
    return "".join(out)


def split_fenced_code(markdown: str) -> list[tuple[bool, str]]:
    """Cut `markdown` into (is_fenced_code, text) chunks that join back to the input."""
    chunks: list[tuple[bool, str]] = []
    buf: list[str] = []
    fence = None
    for line in markdown.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence is None and match:
            chunks.append((False, "".join(buf)))
            buf, fence = [line], match.group(1)
        elif fence is not None:
            buf.append(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip().lstrip(fence[0]):
                chunks.append((True, "".join(buf)))
                buf, fence = [], None
        else:
            buf.append(line)
    chunks.append((fence is not None, "".join(buf)))
    return [c for c in chunks if c[1]]


def _link_line(title: str, url: str, note: str = "") -> str:
    line = f"- [{link_text(title)}]({markdown_url(url)})"
    note = inline_text(note)
    return f"{line}: {note}" if note else line


def link_text(title: str) -> str:
    """`title` as Markdown link text that llms.txt parsers read whole: a `]` ends link text
    for them even escaped, so brackets become parentheses, which read the same."""
    return inline_text(title.replace("[", "(").replace("]", ")")) or "Untitled"


def inline_text(text: str) -> str:
    """`text` on one line, with `<` and `&` that Markdown would read as HTML escaped."""
    text = " ".join(text.split())
    return _ENTITY_START.sub(r"\\&", _HTML_START.sub(r"\\<", text))


def markdown_url(url: str) -> str:
    """`url` percent-escaped where `(`, `)`, spaces and `<`/`>` would end or break a Markdown
    link target."""
    return quote(url, safe=":/?#[]@!$&'*+,;=%~")


def _parts(count: int) -> str:
    return f"{count} part{'' if count == 1 else 's'}"


def _post_note(doc: Document) -> str:
    when = doc.date.date().isoformat() if doc.date else ""
    return " · ".join(x for x in (when, doc.summary) if x)


def _newest_first(items: Sequence[RenderedDocument]) -> list[RenderedDocument]:
    return sorted(items, key=lambda r: (r.document.date, r.document.slug), reverse=True)


def _by_title(items: Sequence[RenderedDocument]) -> list[RenderedDocument]:
    return sorted(items, key=lambda r: (r.document.title.casefold(), r.document.slug))


def _docs(items: Sequence[RenderedDocument]) -> list[Document]:
    return [r.document for r in items]
