"""Prose refers to another post by its slug; the build fills in its title, part and link (SPEC 3).

    [](post:attention-step-by-step)          a link whose text is the post's current title
    [part](post:attention-step-by-step)      `part 2`: its place in its series (`[Part]` gives `Part 2`)
    [the fix](post:kv-cache#the-fix)         any other text is kept; only the URL is filled in

    find_references     where a document's prose refers to posts, parsed
    resolve_references  before any lab runs: what each reference of the site shows, or a
                        BuildError naming the file, the line and what to do

Code (fenced, indented, spans), maths and citations are never references (see prose.py). A
fragment (`#the-fix`) is kept; the link check of every build checks it like any other anchor.
What a reference shows (its text and URL) goes into the referring document's render key, so
the document is rendered again exactly when the title, URL or part it shows changes.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError, display_path
from .model import Content, Document
from .prose import inline_spans, prose_view

SCHEME = "post:"
# `[text](post:slug#fragment)`: the link text may run over several lines of a paragraph.
_REFERENCE = re.compile(r"\[(?P<text>(?:[^\[\]\n]|\n(?![ \t]*\n))*)\]"
                        r"\([ \t]*(?P<url>post:(?P<target>[^\s()]*))[ \t]*\)")
_OPENING = re.compile(r"\]\([ \t]*post:")
_FORMS = "write [](post:SLUG) for its title, [part](post:SLUG) for `part N`, or [any text](post:SLUG#heading)"
_PART_TEXTS = ("part", "Part")


@dataclass(frozen=True)
class PostReference:
    """One `[text](post:slug#fragment)` in a document's prose."""

    slug: str
    fragment: str                 # the id after `#`, "" when there is none
    text: str                     # the link text as written
    path: Path                    # the document, and the line of `post:` in it
    line: int
    text_span: tuple[int, int]    # where the link text and the URL are in the document's body
    url_span: tuple[int, int]

    @property
    def written(self) -> str:
        """`post:slug#fragment`, as the prose writes the URL."""
        return SCHEME + self.slug + (f"#{self.fragment}" if self.fragment else "")

    @property
    def fills(self) -> str | None:
        """What the build writes as the link text: "title", "part" or "Part"; None keeps the text."""
        if not self.text.strip():
            return "title"
        return self.text if self.text in _PART_TEXTS else None


@dataclass(frozen=True)
class PostLink:
    """What a reference shows: its text (None: the text as written) and the post's URL from the
    site's root (`/posts/slug.html#fragment`)."""

    text: str | None
    url: str


def find_references(doc: Document) -> list[PostReference]:
    """Every post reference in `doc`'s prose, in order; BuildError for one that cannot be read."""
    body = doc.body
    if SCHEME not in body:
        return []
    view = _prose_only(body)
    found, covered = [], set()
    for match in _REFERENCE.finditer(view):
        covered.add(match.end("text"))
        if match.start() > 0 and view[match.start() - 1] in "!\\":
            continue    # an image, or an escaped bracket: no link (the link check refuses `post:` left over)
        line = doc.body_line + body.count("\n", 0, match.start("url"))
        target = body[match.start("target"):match.end("target")]
        slug, hash_sign, fragment = target.partition("#")
        source = body[match.start():match.end()]
        if not slug:
            raise BuildError(doc.source, f"post reference {source} names no post; {_FORMS}", line)
        if hash_sign and not fragment:
            raise BuildError(doc.source, f"post reference {source} has an empty #fragment; write "
                             f"{SCHEME}{slug}#an-id or leave the # out", line)
        found.append(PostReference(slug, fragment, body[match.start("text"):match.end("text")], doc.source, line,
                                   match.span("text"), match.span("url")))
    for stray in _OPENING.finditer(view):
        if stray.start() not in covered:
            line = doc.body_line + body.count("\n", 0, stray.start())
            written = body[stray.start() + 2:].split("\n", 1)[0].split(")", 1)[0].strip()
            raise BuildError(doc.source, f"cannot read post reference ({written}): its link text may not hold "
                             f"brackets, and nothing may follow post:SLUG#fragment; {_FORMS}", line)
    return found


def _prose_only(body: str) -> str:
    """`body` with code, maths and citations blanked (offsets and lines kept)."""
    view = prose_view(body)
    spans = inline_spans(view)
    if not spans:
        return view
    parts, last = [], 0
    for span in spans:
        parts += [view[last:span.start], re.sub(r"[^\n]", " ", view[span.start:span.end])]
        last = span.end
    parts.append(view[last:])
    return "".join(parts)


class PostTargets:
    """The posts a reference may name: the published ones with their title, URL and series part,
    and the ones this build leaves out (drafts, posts held back), to say why."""

    def __init__(self, content: Content):
        self.published = {doc.slug: doc for doc in content.posts}
        self.parts = {doc.slug: number for series in content.series
                      for number, doc in enumerate(series.posts, start=1)}
        self.drafts = {doc.slug: doc for doc in content.drafts if doc.kind == "post"}
        self.held_back = {doc.slug: doc for doc in content.held_back if doc.kind == "post"}
        self.pages = {doc.slug: doc for doc in (*content.pages, *content.drafts, *content.held_back)
                      if doc.kind == "page"}

    def link(self, ref: PostReference) -> PostLink:
        """What `ref` shows; BuildError when this build does not publish the post it names."""
        doc = self.published.get(ref.slug)
        if doc is None:
            raise BuildError(ref.path, f"post reference {ref.written}: {self._missing(ref)}", ref.line)
        url = "/" + doc.url + (f"#{ref.fragment}" if ref.fragment else "")
        fills = ref.fills
        if fills == "title":
            return PostLink(doc.title, url)
        if fills is None:
            return PostLink(None, url)
        if ref.slug not in self.parts:
            raise BuildError(ref.path, f"post reference [{ref.text}]({ref.written}): {ref.slug} is in no "
                             f"series, so it has no part number; write []({ref.written}) for its title, "
                             f"or give it `series:` in its front matter", ref.line)
        return PostLink(f"{fills} {self.parts[ref.slug]}", url)

    def check_exists(self, ref: PostReference) -> None:
        """For a document this build does not publish: `ref` names a post of the site, published or not."""
        if ref.slug not in self.published and ref.slug not in self.drafts and ref.slug not in self.held_back:
            raise BuildError(ref.path, f"post reference {ref.written}: {self._missing(ref)}", ref.line)

    def _missing(self, ref: PostReference) -> str:
        draft, later = self.drafts.get(ref.slug), self.held_back.get(ref.slug)
        if draft is not None:
            return (f"{display_path(draft.source)} is a draft, which this build does not publish; publish it "
                    "(take out `draft: true`) or take the reference out (`serve --drafts` previews both)")
        if later is not None:
            return (f"{display_path(later.source)} is dated {later.date.date().isoformat()}, after this build's "
                    "clock, so it is held back; build with --future, or refer to it once it is out")
        page = self.pages.get(ref.slug)
        also = f" ({ref.slug} is a page: link it as [{page.title}](/{page.url}))" if page is not None else ""
        known = sorted({*self.published, *self.drafts, *self.held_back})
        nearest = nearest_slugs(ref.slug, known)
        hint = f"; nearest: {', '.join(nearest)}" if nearest else ("; this site has no post yet" if not known else "")
        return f"no post has this slug{also}{hint}"


def nearest_slugs(slug: str, slugs: Iterable[str], n: int = 3) -> list[str]:
    """The slugs most like `slug`: those that hold all its words first (`tiny-gpt` finds
    `training-a-tiny-gpt-on-this-blog`), then difflib's closest."""
    slugs = list(slugs)
    words = set(slug.split("-")) - {""}
    holding = sorted((s for s in slugs if words and words <= set(s.split("-"))),
                     key=lambda s: -difflib.SequenceMatcher(None, slug, s).ratio())
    return list(dict.fromkeys(holding + difflib.get_close_matches(slug, slugs, n=n)))[:n]


def resolve_references(content: Content) -> dict[Path, dict[PostReference, PostLink]]:
    """What every post reference of the published documents shows, by document source; the
    references of drafts and posts held back must name a post of the site. BuildError otherwise.
    (`Document.references` is found once per parse: a rebuild reads no unchanged prose.)"""
    links: dict[Path, dict[PostReference, PostLink]] = {}
    referring = [(doc, doc.references) for doc in content.documents if doc.references]
    unpublished = [ref for doc in (*content.drafts, *content.held_back) for ref in doc.references]
    if not referring and not unpublished:
        return links
    targets = PostTargets(content)
    for doc, refs in referring:
        links[doc.source] = {ref: targets.link(ref) for ref in refs}
    for ref in unpublished:
        targets.check_exists(ref)
    return links


def refer_from(links: Mapping[Path, Mapping[PostReference, PostLink]]):
    """`refer(document)`: the links of one document's references (empty when it has none)."""
    return lambda doc: links.get(doc.source, {})
