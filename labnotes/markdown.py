"""Render a Document's Markdown body to HTML (pages, feeds) and Markdown (mirrors).

The lab seams: every ```lab / ```labsource block is cut out before markdown2 runs and
replaced afterwards by what `block_renderer` makes of it, and every `{{ name.key }}` citation
by what `cite` makes of it, so the lab engine never has to know about Markdown and this
module never has to know about labs. Post references (`[](post:slug)`) get their URL and
text from `refer` the same way.

markdown2, Pygments and the maths converter are imported when first used: a rebuild that
finds every document in the render cache never needs them.
"""
from __future__ import annotations

import dataclasses
import functools
import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

from .citations import Citation, CitedValue, find_citations
from .citations import cite as cite_from_values
from .errors import BuildError
from .fences import find_fences
from .model import Document, FencedBlock, RenderedBlock, RenderedDocument
from .post_references import PostLink, PostReference
from .slugs import slugify
from .written_links import gather_links, page_ids

BlockRenderer = Callable[[FencedBlock], RenderedBlock]
Cite = Callable[[Citation], CitedValue]
Refer = Callable[[PostReference], PostLink]

LAB_KINDS = ("lab", "labsource")
FOLD_MARKER = "<!--more-->"
CODE_CSS_CLASS = "codehilite"
SUMMARY_CHARS = 280

_EXTRAS = {
    "footnotes": None,
    "tables": None,
    "smarty-pants": None,
    "strike": None,
}
# Placeholders are plain words so markdown2 (emphasis, smarty-pants) leaves them alone.
_FOLD = "LabNotesFoldMarker"
_MATH = re.compile(r"LabNotesMath(\d+)x")
_BLOCK = re.compile(r"(<p>|<pre><code>)?LabNotesBlock(\d+)x\n?(</p>|</code></pre>)?")
_CITE = re.compile(r"LabNotesCite(\d+)x")
_REF = re.compile(r"LabNotesRef(\d+)x")
_TAG = re.compile(r"<[^<>]*>")
# Characters that would read as Markdown (or HTML) if a cited text held them.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|$&])")
CITE_HTML = '<span class="lab-cite" title="{title}">{text}</span>'
# Inline maths and the punctuation right after it: kept on one line (a browser may break between
# a formula and its comma, leaving the comma to start the next line).
_MATH_PUNCTUATION = re.compile(r"LabNotesMath(\d+)x([,.;:!?)\]\u2019\u201d]+)")
_DISPLAY_MATH_PARAGRAPH = re.compile(r"<p>(LabNotesMath\d+x)</p>")
_HEADING = re.compile(r"<h([1-6])>(.*?)</h\1>", re.S)
_ROOT_RELATIVE = re.compile(r"""(\s(?:href|src|data-preview)=)(["'])/(?!/)""")
_FRAGMENT_LINK = re.compile(r"""(\shref=)(["'])#""")


def render_document(doc: Document, block_renderer: BlockRenderer, base_path: str = "/",
                    cite: Cite | None = None,
                    highlight: Callable[[str, str], str] | None = None,
                    refer: Refer | None = None) -> RenderedDocument:
    """Render `doc` to HTML and mirror Markdown; raises BuildError for invalid maths.

    `base_path` is the path part of the site's base URL ("/" or "/blog/"): root-relative
    links in the body get it as a prefix so a site served under a sub-path works.
    `cite` gives each citation's text and provenance; without it, no lab has a value and a
    citation is an error. `highlight(code, info)` stands in for `highlight_code` (a cache of
    code highlighted before does). `refer` gives each post reference its URL and text; without
    it a post reference is an error. The links the prose writes and the ids of the body come
    with the result, for the link check (written_links.py).
    """
    highlight = highlight or highlight_code
    body, cited, referred = _mark_prose(doc, cite, refer)
    lines = body.split("\n")
    fences = find_fences(lines)
    md_parts: list[str] = []        # what markdown2 sees
    maths = []
    blocks: list[FencedBlock] = []
    code_blocks: list[RenderedBlock | None] = []   # None: a lab block, rendered below
    has_more = False

    def math_placeholder(i: int) -> str:
        return f"LabNotesMath{len(maths) + i}x"

    cursor = 0
    for fence in fences + [None]:
        prose_end = fence.start if fence else len(lines)
        if cursor < prose_end:
            prose_lines = lines[cursor:prose_end]
            kept = []
            for line in prose_lines:
                if line.strip() == FOLD_MARKER:
                    if not has_more:
                        kept.append(f"\n{_FOLD}\n")
                        has_more = True
                    else:
                        kept.append("")
                else:
                    kept.append(line)
            text = "\n".join(kept)
            if "$" in text:   # no dollar, no maths: the converter need not even be loaded
                from .maths import protect_maths
                text, found = protect_maths(text, math_placeholder, doc.source, doc.body_line + cursor)
                maths.extend(found)
            md_parts.append(text)
        if fence is None:
            break
        # Every fence is cut out and highlighted here: markdown2 never sees code, so nothing
        # (maths, smart quotes, placeholders) can leak into it, and one formatter serves all.
        indent = fence.indent if len(fence.indent.expandtabs(4)) < 4 else fence.indent[:4]
        if fence.info in LAB_KINDS:
            blocks.append(FencedBlock(fence.info, doc.source, doc.body_line + fence.start, fence.inner(lines)))
            rendered = None
        else:
            rendered = RenderedBlock(highlight(_dedent(fence.inner(lines), fence.indent), fence.info), "")
        code_blocks.append(rendered)
        md_parts.append(f"\n{indent}LabNotesBlock{len(code_blocks) - 1}x\n")
        cursor = fence.end + 1

    body_html = _markdown().convert("\n".join(md_parts))
    links = gather_links(body_html, body, doc.body_line, [(ref, link.url) for ref, link in referred])
    lab_rendered = [block_renderer(block) for block in blocks]
    lab_blocks = iter(lab_rendered)
    rendered_blocks = [code if code is not None else next(lab_blocks) for code in code_blocks]
    body_html = _DISPLAY_MATH_PARAGRAPH.sub(r"\1", body_html)
    body_html = _MATH_PUNCTUATION.sub(
        lambda m: m.group(0) if maths[int(m.group(1))].display else
        f'<span class="math-nowrap">LabNotesMath{m.group(1)}x{m.group(2)}</span>', body_html)
    body_html = _MATH.sub(lambda m: maths[int(m.group(1))].mathml, body_html)
    body_html = _BLOCK.sub(lambda m: rendered_blocks[int(m.group(2))].html, body_html)
    if cited:
        body_html = _cited_html(body_html, cited)
        links = tuple((_CITE.sub(lambda m: cited[int(m.group(1))].text, url), line, written)
                      for url, line, written in links)
    texts = [link.text for _, link in referred if link.text is not None]
    if texts:
        body_html = _REF.sub(lambda m: html.escape(texts[int(m.group(1))], quote=True), body_html)
    body_html = add_heading_ids(body_html)
    body_html = prefix_root_relative(body_html, base_path)

    if has_more:
        intro_html, _, rest = body_html.partition(f"<p>{_FOLD}</p>")
        body_html = intro_html.rstrip() + "\n" + rest.lstrip()
        intro_html = point_fragments_at(intro_html.rstrip() + "\n", base_path + doc.url)
    else:
        intro_html = body_html

    shown = {(block.path, block.line): rendered for block, rendered in zip(blocks, lab_rendered)}
    mirror = "\n".join(piece if isinstance(piece, str) else shown[(piece.path, piece.line)].markdown
                       for piece in _mirror_pieces(doc, lines, fences, cited, referred))
    document = doc if doc.summary else dataclasses.replace(doc, summary=summarise(intro_html))
    return RenderedDocument(document, body_html, intro_html, has_more, mirror.strip("\n") + "\n",
                            links=links, ids=page_ids(body_html))


def mirror_pieces(doc: Document, cite: Cite | None = None, refer: Refer | None = None) -> list[str | FencedBlock]:
    """The body as its Markdown mirror reads, cut at its ```lab and ```labsource blocks: prose
    (fold marker dropped, citations as plain text, post references filled in, other fenced code
    as written) and the blocks between. A notebook makes its Markdown cells from the prose."""
    body, cited, referred = _mark_prose(doc, cite, refer)
    lines = body.split("\n")
    return _mirror_pieces(doc, lines, find_fences(lines), cited, referred)


def _mirror_pieces(doc: Document, lines: list[str], fences, cited: list[CitedValue],
                   referred: list[tuple[PostReference, PostLink]] = ()) -> list[str | FencedBlock]:
    pieces: list[str | FencedBlock] = []
    texts = [link.text for _, link in referred if link.text is not None]
    cursor = 0
    for fence in fences + [None]:
        prose_end = fence.start if fence else len(lines)
        if cursor < prose_end:
            prose = _without_fold(lines[cursor:prose_end])
            if cited:
                prose = _CITE.sub(lambda m: _MARKDOWN_SPECIAL.sub(r"\\\1", cited[int(m.group(1))].text), prose)
            if texts:
                prose = _REF.sub(lambda m: _MARKDOWN_SPECIAL.sub(r"\\\1", texts[int(m.group(1))]), prose)
            pieces.append(prose)
        if fence is None:
            break
        if fence.info in LAB_KINDS:
            pieces.append(FencedBlock(fence.info, doc.source, doc.body_line + fence.start, fence.inner(lines)))
        else:
            pieces.append("\n".join(lines[fence.start:fence.end + 1]))
        cursor = fence.end + 1
    return pieces


def _mark_prose(doc: Document, cite: Cite | None,
                refer: Refer | None) -> tuple[str, list[CitedValue], list[tuple[PostReference, PostLink]]]:
    """`doc.body` with each citation replaced by a placeholder word, and each post reference's
    URL by the post's and the text the build fills in by a placeholder word; what each citation
    shows, and each reference with its link. Lines stay where they were."""
    cite = cite or (lambda citation: cite_from_values(citation, {}))
    citations = find_citations(doc)
    references = doc.references
    if not citations and not references:
        return doc.body, [], []
    cited = [cite(citation) for citation in citations]
    referred = [(ref, (refer or _no_posts)(ref)) for ref in references]
    edits = [(c.offset, c.offset + len(c.source), f"LabNotesCite{n}x") for n, c in enumerate(citations)]
    filled = 0
    for ref, link in referred:
        if link.text is not None:
            edits.append((*ref.text_span, f"LabNotesRef{filled}x"))
            filled += 1
        edits.append((*ref.url_span, link.url))
    parts, last = [], 0
    for start, end, replacement in sorted(edits):
        parts += [doc.body[last:start], replacement]
        last = end
    parts.append(doc.body[last:])
    return "".join(parts), cited, referred


def _no_posts(ref: PostReference) -> PostLink:
    raise BuildError(ref.path, f"post reference {ref.written}: this render has no posts to refer to", ref.line)


def _cited_html(body_html: str, cited: list[CitedValue]) -> str:
    """Placeholders become `lab-cite` spans; inside a tag (a link's URL, an image's alt) plain text."""
    def plain(match: re.Match) -> str:
        return html.escape(cited[int(match.group(1))].text, quote=True)

    def span(match: re.Match) -> str:
        value = cited[int(match.group(1))]
        return CITE_HTML.format(title=html.escape(value.title, quote=True), text=html.escape(value.text, quote=False))

    body_html = _TAG.sub(lambda tag: _CITE.sub(plain, tag.group(0)), body_html)
    return _CITE.sub(span, body_html)


def _without_fold(lines: list[str]) -> str:
    """Prose lines for the mirror: the fold marker and the blank line it leaves are dropped."""
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() == FOLD_MARKER:
            if kept and not kept[-1].strip() and i + 1 < len(lines) and not lines[i + 1].strip():
                kept.pop()
            continue
        kept.append(line)
    return "\n".join(kept)


def render_code_block(block: FencedBlock) -> RenderedBlock:
    """The block renderer used until labs run: the block shown as a plain code block."""
    code = highlight_code(block.text, "yaml" if block.kind == "lab" else "text")
    fence = "```"
    return RenderedBlock(html=code, markdown=f"{fence}{block.kind}\n{block.text}\n{fence}")


def highlight_code(code: str, info: str) -> str:
    """A fenced block's HTML: Pygments-highlighted when its info string names a language."""
    lexer = _lexer(info.split()[0] if info.split() else "")
    if lexer is None:
        return f"<pre><code>{html.escape(code, quote=False)}\n</code></pre>\n"
    from .lexing import highlight
    return highlight(code + "\n", lexer, _formatter())


@functools.lru_cache(maxsize=None)
def _lexer(name: str):
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
    try:
        return get_lexer_by_name(name) if name else None
    except ClassNotFound:
        return None


@functools.lru_cache(maxsize=1)
def _formatter():
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter(cssclass=CODE_CSS_CLASS, wrapcode=True)


@functools.lru_cache(maxsize=1)
def _markdown():
    import markdown2
    return markdown2.Markdown(extras=_EXTRAS)


def _dedent(text: str, indent: str) -> str:
    """Remove a fence's own indentation from its lines."""
    if not indent:
        return text
    return "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in text.split("\n"))


# Fenced code is `.codehilite`; the lab engine highlights the source of labs as `.highlight`.
HIGHLIGHT_SELECTORS = (f".{CODE_CSS_CLASS}", ".highlight")
# Styles whose every colour reads at WCAG AA contrast (4.5:1) on static/style.css's code
# backgrounds, light and dark (tests/site/test_style.py checks).
LIGHT_CODE_STYLE, DARK_CODE_STYLE = "xcode", "monokai"


def pygments_css() -> str:
    """The highlighting stylesheet written to static/pygments.css (light, and dark by media query)."""
    from pygments.formatters import HtmlFormatter
    light = HtmlFormatter(style=LIGHT_CODE_STYLE).get_style_defs(list(HIGHLIGHT_SELECTORS))
    dark = HtmlFormatter(style=DARK_CODE_STYLE).get_style_defs(list(HIGHLIGHT_SELECTORS))
    dark = "\n".join("  " + line for line in dark.splitlines())
    return (
        "/* Generated by labnotes.markdown.pygments_css(); do not edit by hand. */\n"
        f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
    )


def add_heading_ids(body_html: str) -> str:
    """Give every <h1>..<h6> an id from its text (maths by its LaTeX), unique in the page."""
    seen: dict[str, int] = {}

    def with_id(match: re.Match) -> str:
        level, inner = match.group(1), match.group(2)
        base = slugify(_text_of(inner)) or "section"
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        return f'<h{level} id="{anchor}">{inner}</h{level}>'

    return _HEADING.sub(with_id, body_html)


def prefix_root_relative(body_html: str, base_path: str) -> str:
    """`href="/x"` -> `href="/blog/x"` when the site lives under /blog/."""
    if base_path == "/":
        return body_html
    return _ROOT_RELATIVE.sub(lambda m: f"{m.group(1)}{m.group(2)}{base_path}", body_html)


def point_fragments_at(fragment_html: str, page_url: str) -> str:
    """`href="#fn-1"` -> `href="/posts/x.html#fn-1"`: intros are shown away from their page."""
    return _FRAGMENT_LINK.sub(lambda m: f"{m.group(1)}{m.group(2)}{page_url}#", fragment_html)


def summarise(fragment_html: str, limit: int = SUMMARY_CHARS) -> str:
    """Plain text of the first paragraphs of `fragment_html`, cut at a word near `limit`."""
    collector = _ParagraphText()
    collector.feed(fragment_html)
    text = " ".join(" ".join(collector.paragraphs).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.")
    return cut + "…"


def _text_of(fragment_html: str) -> str:
    collector = _ParagraphText(all_text=True)
    collector.feed(fragment_html)
    return " ".join(collector.paragraphs)


class _ParagraphText(HTMLParser):
    """Text of top-level <p> elements (or of everything), maths replaced by its LaTeX."""

    def __init__(self, all_text: bool = False):
        super().__init__(convert_charrefs=True)
        self.all_text = all_text
        self.paragraphs: list[str] = []
        self._in_p = 0
        self._skipping: list[str] = []   # open <math> / footnote <sup> whose text is left out
        self._current: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "math":
            if self._collecting() and not self._skipping:
                self._current.append(f"${attrs.get('alttext', '')}$")
            self._skipping.append(tag)
        elif tag == "sup" and "footnote-ref" in (attrs.get("class") or ""):
            self._skipping.append(tag)
        elif tag == "p":
            self._in_p += 1

    def handle_endtag(self, tag):
        if self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif tag == "p" and self._in_p:
            self._in_p -= 1
            if not self.all_text and not self._in_p:
                self._flush()

    def handle_data(self, data):
        if self._collecting() and not self._skipping:
            self._current.append(data)

    def close(self):
        super().close()
        self._flush()

    def _collecting(self) -> bool:
        return self.all_text or self._in_p > 0

    def _flush(self):
        text = "".join(self._current).strip()
        if text:
            self.paragraphs.append(text)
        self._current = []

    def feed(self, data):
        super().feed(data)
        self.close()
