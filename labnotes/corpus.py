"""The training corpus: the published posts' prose as plain text, and the record of that snapshot.

`build.py corpus` writes `data/corpus.txt` (inside the content folder) from the posts, oldest
first, and `data/corpus.toml` beside it: the day it was taken, the posts it took and a digest
of the text. The labs that train on the corpus return that record, so prose can say which
snapshot a model learnt from. Regenerating is deliberate: it changes the training data, so every
lab that reads the corpus reruns on the next build.

What counts as prose: paragraphs, headings, list items, quotes and footnotes. Left out: front
matter, code blocks (lab blocks included), tables, display maths, HTML, citations (their values
depend on the corpus, so they are dropped rather than frozen), images and link targets. Code
spans and inline maths keep their text, since sentences are built around them.
"""
from __future__ import annotations

import difflib
import hashlib
import html
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .model import Document
from .post_references import PostLink, PostReference
from .prose import code_lines, inline_spans

CORPUS_FILE = Path("data") / "corpus.txt"     # inside the content folder
RECORD_FILE = Path("data") / "corpus.toml"

_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[*+-]|\d+[.)])\s+(.*)$")
_QUOTE = re.compile(r"^\s*>\s?")
_FOOTNOTE = re.compile(r"^\[\^[^\]]+\]:\s*(.*)$")
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]^][^\]]*\]:\s*\S+")
_TABLE_ROW = re.compile(r"^\s*\|")
_LINKS = [                                            # applied to a whole line first
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),        # images
    (re.compile(r"\[\^[^\]]+\]"), ""),                # footnote markers
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),    # [text](url), maths in the text included
    (re.compile(r"\[([^\]]*)\]\[[^\]]*\]"), r"\1"),   # [text][ref]
]
_INLINE = [                                           # applied in order to plain text
    (re.compile(r"<!--.*?-->", re.S), ""),            # HTML comments (the fold marker)
    (re.compile(r"</?[A-Za-z][^<>]*>"), ""),          # HTML tags
    (re.compile(r"\*\*|__|~~"), ""),                  # strong, strike-through
    (re.compile(r"(?<![\w*])[*_](?=[^\s*_])|(?<=[^\s*_])[*_](?![\w*])"), ""),   # emphasis
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!$|<>~])"), r"\1"),                     # escapes
]


@dataclass(frozen=True)
class CorpusSnapshot:
    """The corpus text and what it was made of."""

    text: str
    posts: tuple[tuple[str, str, str], ...]    # (date, slug, title), oldest first

    @property
    def digest(self) -> str:
        """The text's digest, as the record and the labs name it."""
        return text_digest(self.text)

    @property
    def size(self) -> int:
        """The text's size in bytes (UTF-8)."""
        return len(self.text.encode("utf-8"))


def text_digest(text: str) -> str:
    """`sha256:` and the first 16 hex digits of the SHA-256 of the UTF-8 text (labcode computes
    the same to check that the corpus it reads is the recorded one)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def make_corpus(posts: Sequence[Document],
                links: Mapping[Path, Mapping[PostReference, PostLink]] | None = None) -> CorpusSnapshot:
    """The prose of `posts`, oldest first (ties by slug), one post after another. `links` are
    what each post reference shows (`resolve_references`), so that `[](post:x)` reads as x's
    title and `[part](post:x)` as "part N", as on the page."""
    ordered = sorted(posts, key=lambda doc: (doc.date, doc.slug))
    links = links or {}
    text = "\n\n".join(post_prose(doc, links.get(doc.source, {})) for doc in ordered)
    return CorpusSnapshot(text + "\n", tuple((doc.date.date().isoformat(), doc.slug, doc.title)
                                             for doc in ordered))


def post_prose(doc: Document, links: Mapping[PostReference, PostLink] | None = None) -> str:
    """A post as plain text: its title, then one paragraph per line, separated by blank lines."""
    paragraphs = [doc.title]
    for block in _prose_blocks(_references_as_text(doc.body, links or {})):
        text = _plain(block)
        if text:
            paragraphs.append(text)
    return "\n\n".join(paragraphs)


def _references_as_text(body: str, links: Mapping[PostReference, PostLink]) -> str:
    """`body` with each post reference replaced by the text its page shows (the written text
    when the build keeps it); the `[`, `](`, URL and `)` go, and the lines stay where they were."""
    for ref, link in sorted(links.items(), key=lambda item: -item[0].text_span[0]):
        start, end = ref.text_span[0] - 1, body.index(")", ref.url_span[1]) + 1
        body = body[:start] + (ref.text if link.text is None else link.text) + body[end:]
    return body


def _prose_blocks(body: str) -> list[str]:
    """The body's paragraphs, headings, list items and footnotes, each as one line of Markdown."""
    lines = body.split("\n")
    code = code_lines(lines)
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for i, line in enumerate(lines):
        if i in code or not line.strip() or _TABLE_ROW.match(line) or _LINK_DEFINITION.match(line):
            current = None
            continue
        line = _QUOTE.sub("", line)
        for pattern in (_HEADING, _FOOTNOTE, _LIST_ITEM):
            match = pattern.match(line)
            if match:                  # starts a block of its own
                current = [match.group(1)]
                blocks.append(current)
                if pattern is _HEADING:
                    current = None
                break
        else:
            if current is None:
                current = []
                blocks.append(current)
            current.append(line.strip())
    return [" ".join(block) for block in blocks]


def _plain(markdown: str) -> str:
    """One line of Markdown as plain text (see the module docstring for what is kept)."""
    for pattern, replacement in _LINKS:
        markdown = pattern.sub(replacement, markdown)
    out, cursor = [], 0
    for span in inline_spans(markdown):
        out.append(_plain_text(markdown[cursor:span.start]))
        source = markdown[span.start:span.end]
        if span.kind == "code":
            out.append(source.strip("`").strip())
        elif span.kind == "maths" and not source.startswith("$$"):
            out.append(source[1:-1])
        cursor = span.end
    out.append(_plain_text(markdown[cursor:]))
    text = re.sub(r"\s+", " ", "".join(out))
    return re.sub(r" (?=[,.;:)])", "", text).strip()    # a dropped citation leaves no gap


def _plain_text(text: str) -> str:
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return html.unescape(text)


# -- the record beside the corpus ---------------------------------------------------

def record_text(snapshot: CorpusSnapshot, taken: date) -> str:
    """corpus.toml: the day the snapshot was taken, its digest and size, and the posts it took
    (date, slug, title); JSON's string escapes are TOML's."""
    posts = "".join(f'    {{ date = "{day}", slug = {json.dumps(slug)}, title = {json.dumps(title)} }},\n'
                    for day, slug, title in snapshot.posts)
    return ("# The snapshot in corpus.txt: the prose of the posts below, oldest first, written by\n"
            "# `python build.py corpus --yes`. Regenerating it changes the training data, so every\n"
            "# lab that reads corpus.txt reruns on the next build.\n"
            f'taken = "{taken.isoformat()}"\n'
            f'digest = "{snapshot.digest}"\n'
            f"bytes = {snapshot.size}\n"
            f"posts = [\n{posts}]\n")


def read_record(path: Path) -> dict:
    """The record at `path`, or {} when there is none."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def compare_with_disk(content_dir: Path, new: CorpusSnapshot) -> tuple[bool, list[str]]:
    """Whether the corpus and record in `content_dir` already hold `new`, and lines saying how
    `new` differs from them."""
    corpus = content_dir / CORPUS_FILE
    old_text = corpus.read_text(encoding="utf-8") if corpus.is_file() else None
    old_record = read_record(content_dir / RECORD_FILE)
    if old_text == new.text and old_record.get("digest") == new.digest:
        return True, [f"{corpus} is up to date (snapshot taken {old_record.get('taken', '?')})"]
    return False, describe_change(old_text, old_record, new)


def describe_change(old_text: str | None, old_record: dict, new: CorpusSnapshot) -> list[str]:
    """Lines saying how `new` differs from the corpus on disk: size, posts, paragraphs."""
    if old_text is None:
        return ["no corpus yet"]
    lines = [f"was {len(old_text.encode('utf-8')):,} bytes, {text_digest(old_text)}"
             + (f" (snapshot taken {old_record['taken']})" if "taken" in old_record else
                " (no record of its snapshot)")]
    if old_record.get("digest") not in (None, text_digest(old_text)):
        lines.append("the corpus on disk no longer matches its record: it was edited by hand")
    if old_record:
        old_posts = {post["slug"] for post in old_record.get("posts", [])}
        new_posts = {slug for _, slug, _ in new.posts}
        for label, slugs in (("posts added", new_posts - old_posts), ("posts dropped", old_posts - new_posts)):
            if slugs:
                lines.append(f"{label}: {', '.join(sorted(slugs))}")
    before, after = old_text.rstrip("\n").split("\n\n"), new.text.rstrip("\n").split("\n\n")
    kept = sum(block.size for block in difflib.SequenceMatcher(None, before, after, autojunk=False)
               .get_matching_blocks())
    lines.append(f"paragraphs: {kept:,} kept, {len(after) - kept:,} new or changed, "
                 f"{len(before) - kept:,} gone")
    return lines


def write_corpus(content_dir: Path, snapshot: CorpusSnapshot, taken: date) -> tuple[Path, Path]:
    """Write corpus.txt and its record into `content_dir`; returns both paths."""
    corpus, record = content_dir / CORPUS_FILE, content_dir / RECORD_FILE
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text(snapshot.text, encoding="utf-8")
    record.write_text(record_text(snapshot, taken), encoding="utf-8")
    return corpus, record
