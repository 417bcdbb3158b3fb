"""The small dataclasses that pass between the build stages.

Stages: load content -> resolve lab references -> run stale labs -> render Markdown
-> render pages, feeds, llms.txt -> write atomically. Each stage takes and returns
these objects; none of them touches the disk.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from .errors import BuildWarning
from .render_cache import content_key


@dataclass(frozen=True)
class Link:
    """A named link, e.g. one blogroll entry."""

    name: str
    url: str


@dataclass(frozen=True)
class LabSettings:
    """The `[labs]` table of site.toml."""

    timeout: float = 600.0            # seconds per lab unless the lab says `timeout:`
    cache_dir: str = "labcache"       # relative to the project root; safe to commit
    device: str | None = None         # None: CUDA, then MPS, then CPU
    max_output_chars: int = 100_000   # captured stdout/stderr beyond this is cut with a note
    tiktoken_cache_dir: str = ".cache/tiktoken"  # used when TIKTOKEN_CACHE_DIR is unset


@dataclass(frozen=True)
class SiteConfig:
    """Everything site.toml can say; every field has a default that works for a new blog."""

    title: str = "Lab Notes"
    author: str = "Anonymous"
    base_url: str = "http://127.0.0.1:8000/"   # always ends with "/"
    description: str = "Executable lab notes."
    language: str = "en"              # the feeds' <language>
    timezone: str = "UTC"
    posts_per_page: int = 5
    repository: str = ""              # where `git clone` gets the blog's source; "" when not said
    blogroll: tuple[Link, ...] = ()
    labs: LabSettings = field(default_factory=LabSettings)
    root: Path = Path(".")            # folder of site.toml: relative paths resolve here
    source: Path | None = None        # the site.toml read (None: none, the defaults), for errors


@dataclass(frozen=True)
class FencedBlock:
    """A ```lab or ```labsource block, cut out of a document before Markdown rendering."""

    kind: str        # "lab" or "labsource"
    path: Path       # the Markdown file it came from
    line: int        # 1-based line of the opening fence in that file
    text: str        # the lines between the fences, without the fences


@dataclass(frozen=True)
class RenderedBlock:
    """What a fenced block becomes: HTML for pages and feeds, Markdown for mirrors."""

    html: str
    markdown: str


@dataclass(frozen=True)
class SeriesMark:
    """What a post's front matter says about its series: `series:` and maybe `part:`."""

    name: str
    part: int | None     # None: the post takes its place by date
    line: int            # the line of `part:` (or of `series:` without one), for errors


@dataclass
class Document:
    """A post (content/posts) or a page (content/pages), as read from disk."""

    kind: str                          # "post" or "page"
    source: Path
    title: str
    slug: str
    body: str                          # Markdown after the front matter
    body_line: int                     # 1-based line in `source` where `body` starts
    date: datetime | None = None       # timezone-aware; None only for pages
    updated: datetime | None = None
    categories: tuple[str, ...] = ()
    summary: str = ""
    draft: bool = False
    series: SeriesMark | None = None
    blocks: tuple[FencedBlock, ...] = ()

    # Cached: pages and keys ask for them tens of thousands of times in a build of 1,000 posts.
    @functools.cached_property
    def url(self) -> str:
        """Site-relative URL of the HTML page (no leading slash)."""
        if self.kind == "page":
            return f"{self.slug}/"
        return f"posts/{self.slug}.html"

    @functools.cached_property
    def output_path(self) -> str:
        """Path of the HTML file inside the output folder."""
        return self.url + "index.html" if self.url.endswith("/") else self.url

    @functools.cached_property
    def body_digest(self) -> str:
        """A digest of `body`, for render keys: computed once per parse and kept with the
        parsed document, so a rebuild does not hash every unchanged post's text again."""
        return hashlib.blake2b(self.body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    # The keys below are kept with the parsed document (parsed_cache.py): the keys of pages,
    # listings and feeds ask for them several times per post and build.
    @functools.cached_property
    def dates_key(self) -> tuple[str, str]:
        """`repr` of `date` and `updated`, for keys."""
        return repr(self.date), repr(self.updated)

    @functools.cached_property
    def source_key(self) -> str:
        """A digest of the path of its file."""
        return content_key(str(self.source))

    @functools.cached_property
    def shown_key(self) -> str:
        """A digest of what a page shows of the document above its body: URL, title, dates,
        categories (as it spells them) and whether it is a draft."""
        return content_key(self.url, self.title, self.dates_key, self.categories, self.draft)

    @functools.cached_property
    def listed_key(self) -> str:
        """A digest of what a listing shows of the document: URL, title, date and summary."""
        return content_key(self.url, self.title, self.dates_key[0], self.summary)

    @functools.cached_property
    def references(self) -> tuple:
        """The post references of the prose (`[](post:slug)`, post_references.PostReference), found
        once per parse and kept with the parsed document: a build does not read every post's
        prose again to resolve them. BuildError for one that cannot be read."""
        from .post_references import find_references   # that module builds on this one
        return tuple(find_references(self))


class RenderedDocument:
    """A document after Markdown rendering, ready for templates, feeds and mirrors.

    Its texts (`html`, `intro_html`, `markdown`) may be `deferred`: read (or rendered) the
    first time one is asked for, so that a rebuild holds in memory only the texts of the
    documents whose pages it writes.
    """

    __slots__ = ("document", "has_more", "key", "links", "ids", "intro_key", "_texts")

    def __init__(self, document: Document, html: str, intro_html: str, has_more: bool, markdown: str,
                 key: str = "", links: tuple[tuple[str, int, str], ...] = (), ids: tuple[str, ...] = ()):
        self.document = document
        self.has_more = has_more      # True when the body has a fold
        self.key = key                # names the texts and `has_more` (equal key, equal text); "" when unknown
        # The links the prose writes, as (URL as written in the HTML, source line, the reference as
        # written when the build filled the URL in, else ""), and the ids the body gives its page:
        # every build checks the one against the others (labnotes/written_links.py).
        self.links = links
        self.ids = ids
        self.intro_key = ""           # a digest of `intro_html` (render_cache.text_digest); "" when unknown
        self._texts: tuple[str, str, str] | Callable[[], tuple[str, str, str]] = (html, intro_html, markdown)

    @classmethod
    def deferred(cls, document: Document, has_more: bool, key: str, links: tuple, ids: tuple,
                 texts: Callable[[], tuple[str, str, str]], intro_key: str) -> "RenderedDocument":
        """A rendered document whose (html, intro_html, markdown) `texts()` gives when first
        needed; `intro_key` is the digest of its intro_html."""
        rendered = cls(document, "", "", has_more, "", key, links, ids)
        rendered._texts, rendered.intro_key = texts, intro_key
        return rendered

    def _text(self, index: int) -> str:
        if callable(self._texts):
            self._texts = tuple(self._texts())
        return self._texts[index]

    @property
    def html(self) -> str:
        """The whole body as HTML (lab blocks included)."""
        return self._text(0)

    @property
    def intro_html(self) -> str:
        """The body above the <!--more--> fold; equals `html` when there is no fold."""
        return self._text(1)

    @property
    def markdown(self) -> str:
        """The body as Markdown for mirrors, lab blocks rendered as text."""
        return self._text(2)

    def _fields(self) -> tuple:
        return (self.document, self.html, self.intro_html, self.has_more, self.markdown, self.key, self.links, self.ids)

    def __eq__(self, other: object) -> bool:
        return self._fields() == other._fields() if isinstance(other, RenderedDocument) else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"RenderedDocument({self.document.source}, key={self.key!r})"


@dataclass(frozen=True)
class Series:
    """The published posts of one series, in reading order (part 1 first)."""

    name: str            # as the oldest post spells it
    slug: str
    posts: tuple[Document, ...]

    @property
    def url(self) -> str:
        """Site-relative URL of the series page (no leading slash)."""
        return f"series/{self.slug}/"

    @property
    def output_path(self) -> str:
        return self.url + "index.html"

    def part_of(self, doc: Document) -> int:
        """The 1-based part number of `doc` in this series."""
        return next(n for n, post in enumerate(self.posts, start=1) if post.source == doc.source)


@dataclass(frozen=True)
class Content:
    """Everything the load stage found: posts newest first, pages by slug, files to copy."""

    posts: tuple[Document, ...] = ()
    pages: tuple[Document, ...] = ()
    assets: dict[str, Path] = field(default_factory=dict)   # output-relative path -> source file
    series: tuple[Series, ...] = ()    # by name
    held_back: tuple[Document, ...] = ()   # dated after the build's clock (no --future): not published
    drafts: tuple[Document, ...] = ()      # drafts this build leaves out (none with --drafts)

    @property
    def documents(self) -> tuple[Document, ...]:
        """Posts then pages."""
        return self.posts + self.pages


@dataclass(frozen=True)
class BuildOptions:
    """Command-line choices for one build; device, keep_going, why and jobs are for the labs."""

    device: str | None = None        # "cpu", "cuda", "mps"; None: auto
    keep_going: bool = False         # a failed lab renders an error box instead of stopping
    why: bool = False                # say which input made each lab rerun
    jobs: int = 1
    quick: bool = False              # labs that take `quick` shrink their work (test builds)
    future: bool = False             # publish posts dated after `now` too
    drafts: bool = False             # publish drafts too (`serve --drafts` previews them)
    now: datetime | None = None      # the build's clock; None: the time the build starts


@dataclass(frozen=True)
class LabCounts:
    """How many labs a build ran, took from the cache, and saw fail."""

    run: int = 0
    cached: int = 0
    failed: int = 0
    false_claims: int = 0     # `expect:` lines that do not hold (shown as errors with --keep-going)


@dataclass(frozen=True)
class LabValue:
    """What a named lab returned, as prose cites it (`{{ train.val_loss:.2f }}`)."""

    name: str                 # the block's `name:`
    ref: str                  # "labcode.labs.tiny_gpt:train_on_blog"
    data: object              # the returned value as JSON: dicts, lists, str, int, float, bool, None
    device_name: str          # "CPU", "NVIDIA H100 80GB HBM3"
    torch_version: str
    path: Path                # the post whose block names it, and the block's line
    line: int


@dataclass(frozen=True)
class PublishedLab:
    """What one lab showed readers, as the copied-number lint compares prose with it."""

    ref: str                  # "labcode.labs.tiny_gpt:train_on_blog"
    name: str | None          # the block's `name:`, None when it has none
    output: str               # what it printed, as published
    value_text: str           # its return value as the page shows it (table, tensor, text), "" if hidden
    data: object              # the return value as JSON (as LabValue.data), None if there is none
    path: Path                # the post of the (first) block that runs it, and the block's line
    line: int
    tolerance: object = None  # its `tolerance:` (labs.precision.Tolerance): how far its numbers may move


@dataclass(frozen=True)
class LabRecord:
    """One lab block as the labs page lists it: where it runs and how its result was made."""

    ref: str
    args: str                 # "seq_len=6, text='...'"
    path: Path                # the post or page holding the block, and the block's line
    line: int
    anchor: str               # the block's id on its page
    device_name: str
    torch_version: str
    wall: str                 # "250 ms", "57.8 s"
    status: str               # "ran" (this build), "cached" (reused) or "failed"
    command: str              # the command that reruns it


@dataclass(frozen=True)
class NotebookLab:
    """A lab block as its post's notebook shows it: the call, what the build filled in, and
    what it published."""

    result: object            # labnotes.labs.render.LabResult of this block (its own call)
    fills: tuple[str, ...]    # parameters the build filled in besides the block's: "device", "quick"
    figures: tuple[bytes, ...]   # the bytes of result.figures, in order
    post_title: str           # the post holding the block, and its site-relative URL
    post_url: str
    upstream: NotebookLab | None = None   # the lab it runs `after:`


@dataclass(frozen=True)
class LabStage:
    """What the lab stage hands the render stage."""

    block_renderer: Callable[[FencedBlock], RenderedBlock]
    files: dict[str, bytes] = field(default_factory=dict)   # output-relative path -> bytes
    counts: LabCounts = field(default_factory=LabCounts)
    values: dict[str, LabValue] = field(default_factory=dict)   # by lab name
    records: tuple[LabRecord, ...] = ()     # every lab block, in site order
    published: tuple[PublishedLab, ...] = ()                    # every lab of the site, in run order
    notebook_lab: Callable[[FencedBlock], NotebookLab] | None = None   # a ```lab block for notebooks
    inputs: tuple[str, ...] = ()   # project-relative files besides labcode/ whose change may rerun a lab


@dataclass(frozen=True)
class BuildReport:
    """What one build did: the closing line of `build.py` is made from it."""

    pages: int            # HTML pages in the site
    files: int            # all files in the output folder
    changed: int          # files whose bytes changed
    seconds: float
    labs: LabCounts
    rendered: tuple[str, ...] = ()   # output files made this build (the rest were reused as they were)
    documents_rendered: int = 0      # posts and pages whose Markdown was rendered (not from the cache)
    warnings: tuple[BuildWarning, ...] = ()   # e.g. prose that copies a lab's number instead of citing it
    held_back: tuple[Document, ...] = ()   # dated in the future, not published (no --future)
    stages: tuple[tuple[str, float], ...] = ()   # (stage, wall-clock seconds) in build order
    patched: bool = False            # an edit of prose patched into the last site (labnotes/patch.py)

    def summary(self) -> str:
        """`built P pages in S s; labs: R run, C cached, F failed` (`, K claims false` when any is)."""
        false = f", {self.labs.false_claims} claims false" if self.labs.false_claims else ""
        return (f"built {self.pages} pages in {self.seconds:.2f} s; "
                f"labs: {self.labs.run} run, {self.labs.cached} cached, {self.labs.failed} failed{false}")

    def held_back_note(self) -> str:
        """`held back 2 future posts (publish them with --future)`, or "" when none was."""
        if not self.held_back:
            return ""
        counts = [(sum(d.kind == kind for d in self.held_back), kind) for kind in ("post", "page")]
        what = " and ".join(f"{n} future {kind}{'' if n == 1 else 's'}" for n, kind in counts if n)
        return f"held back {what} (publish {'it' if len(self.held_back) == 1 else 'them'} with --future)"
