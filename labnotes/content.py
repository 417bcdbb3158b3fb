"""Load stage: content/posts/**/*.md and content/pages/**/*.md into Documents, checking SPEC 9 input."""
from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from .errors import BuildError, display_path
from .fences import blank_code_spans, find_fences
from .frontmatter import Field, split_front_matter
from .markdown import LAB_KINDS
from .model import Content, Document, FencedBlock, SeriesMark, SiteConfig
from .series import group_series
from .slugs import slugify

POST_KEYS = ("title", "date", "categories", "slug", "summary", "draft", "updated", "series", "part")
PAGE_KEYS = ("title", "date", "slug", "summary", "draft", "updated")
IMAGES_DIR = "images"
# Output folders a page slug would collide with.
RESERVED_SLUGS = {"posts", "page", "category", "series", "archive", "images", "static", "labs", "404", "feed.xml",
                  "llms.txt"}

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
_IMAGE_MD = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
_IMAGE_HTML = re.compile(r"<img\b[^>]*?\ssrc\s*=\s*[\"']([^\"']+)[\"']", re.I)
# Characters XML 1.0 (the feeds) refuses, which an editor may leave in a file unseen.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def load_content(content_dir: Path, config: SiteConfig, *, drafts: bool = False,
                 until: datetime | None = None, load: Callable[..., Document] | None = None) -> Content:
    """Read every post and page and list the images to publish.

    Drafts are left out unless `drafts`; documents dated after `until` are held back (and
    listed in `Content.held_back`) unless `until` is None. `load` stands in for
    `load_document` (a cache of parsed documents does).
    """
    content_dir = Path(content_dir)
    zone = ZoneInfo(config.timezone)
    images = _images(content_dir)
    load = load or load_document
    posts = [load(p, "post", zone, images) for p in _markdown_files(content_dir / "posts")]
    pages = [load(p, "page", zone, images) for p in _markdown_files(content_dir / "pages")]
    # Drafts and posts held back are checked like the others, so a build (or `serve
    # --drafts`) does not start failing the day one of them comes out.
    _check_unique_slugs(posts, "post")
    _check_unique_slugs(pages, "page")
    _check_name_urls(posts)
    group_series(posts)
    left_out = tuple(d for d in posts + pages if d.draft and not drafts)
    posts = [d for d in posts if drafts or not d.draft]
    pages = [d for d in pages if drafts or not d.draft]

    def published(doc: Document) -> bool:
        return until is None or not is_future(doc, until)

    held_back = tuple(d for d in posts + pages if not published(d))
    posts = [d for d in posts if published(d)]
    pages = [d for d in pages if published(d)]
    posts.sort(key=lambda d: (d.date, d.slug), reverse=True)
    pages.sort(key=lambda d: d.slug)
    return Content(posts=tuple(posts), pages=tuple(pages), assets=images, series=group_series(posts),
                   held_back=held_back, drafts=left_out)


def is_future(doc: Document, now: datetime) -> bool:
    """True when `doc` is dated after `now` (a page without a date never is)."""
    return doc.date is not None and doc.date > now


def load_document(path: Path, kind: str, zone: ZoneInfo, images: dict[str, Path] | None = None) -> Document:
    """Parse one Markdown file; `images` (output path -> file) is used to check image links."""
    text = _read_utf8(path)
    fields, body, body_line = split_front_matter(text, path)
    allowed = POST_KEYS if kind == "post" else PAGE_KEYS
    for name, field in fields.items():
        if name not in allowed:
            raise BuildError(path, f"unknown front matter key `{name}`; a {kind} may have: {', '.join(allowed)}", field.line)
    title = _title(fields, path)
    when = _date(fields.get("date"), path, zone, "date")
    if kind == "post" and when is None:
        raise BuildError(path, "front matter has no `date:`; add e.g. `date: 2026-03-01` or `date: 2026-03-01T09:30:00+00:00`", 1)
    doc = Document(
        kind=kind,
        source=path,
        title=title,
        slug=_slug(fields.get("slug"), path),
        body=body,
        body_line=body_line,
        date=when,
        updated=_date(fields.get("updated"), path, zone, "updated"),
        categories=_categories(fields.get("categories"), path),
        summary=_string(fields.get("summary"), path, "summary"),
        draft=_flag(fields.get("draft"), path, "draft"),
        series=_series(fields.get("series"), fields.get("part"), path),
    )
    doc.blocks = _blocks_and_image_check(doc, images)
    return doc


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BuildError(path, f"not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8", line) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    control = _NOT_IN_XML.search(text)
    if control:
        raise BuildError(path, f"holds the control character U+{ord(control.group()):04X}, which HTML, the feeds "
                               "and llms.txt cannot carry: delete it", text.count("\n", 0, control.start()) + 1)
    return text


def _markdown_files(folder: Path) -> list[Path]:
    """Every `*.md` under `folder`, in subfolders too (`posts/2026/x.md`), by path; hidden files
    and folders (`.ipynb_checkpoints/`, an editor's `.#x.md`) are left out."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [os.path.join(current, name) for name in files if name.endswith(".md") and not name.startswith(".")]
    return [Path(path) for path in sorted(found)]


def _images(content_dir: Path) -> dict[str, Path]:
    folder = content_dir / IMAGES_DIR
    if not folder.is_dir():
        return {}
    return {
        f"{IMAGES_DIR}/{p.relative_to(folder).as_posix()}": p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _title(fields: dict[str, Field], path: Path) -> str:
    field = fields.get("title")
    if field is None:
        raise BuildError(path, "front matter has no `title:`; add e.g. `title: \"My post\"`", 1)
    if isinstance(field.value, (list, bool)) or not str(field.value).strip():
        raise BuildError(path, "`title` must be non-empty text", field.line)
    return str(field.value).strip()


def _date(field: Field | None, path: Path, zone: ZoneInfo, name: str) -> datetime | None:
    if field is None:
        return None
    value = field.value
    if not isinstance(value, str):
        raise BuildError(path, f"`{name}` must be an ISO 8601 date such as 2026-03-01 or 2026-03-01T09:30:00+00:00, not {value!r}", field.line)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BuildError(path, f"cannot read `{name}: {value}`; use ISO 8601 such as 2026-03-01 or 2026-03-01T09:30:00+00:00", field.line) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _categories(field: Field | None, path: Path) -> tuple[str, ...]:
    if field is None:
        return ()
    if not isinstance(field.value, list):
        raise BuildError(path, f"`categories` must be a list such as [LLM from scratch, PyTorch], not {field.value!r}", field.line)
    names: dict[str, str] = {}   # slug -> the first spelling: "ML" and "ml" are one category
    for item in field.value:
        if not isinstance(item, str) or not item.strip():
            raise BuildError(path, f"`categories` must hold names (text), not {item!r}; quote it if it is a number", field.line)
        first = names.setdefault(slugify(item.strip()), item.strip())
        if not same_name(first, item.strip()):
            raise BuildError(path, _url_collision("category", item.strip(), first, path, field.line), field.line)
    return tuple(names.values())


def same_name(a: str, b: str) -> bool:
    """Whether two category or series names are one name, spelled in another case or with other
    spaces and dashes ("LLM from scratch", "LLM-From-Scratch"); "C++" and "C#" are not, though
    their URLs would be the same."""
    def norm(text: str) -> str:
        return " ".join(re.split(r"[\s_-]+", text.casefold())).strip()
    return norm(a) == norm(b)


def _url_collision(kind: str, name: str, other: str, other_path: Path, other_line: int | None) -> str:
    folder = "category" if kind == "category" else "series"
    where = f"{display_path(other_path)}:{other_line}" if other_line else str(display_path(other_path))
    return (f'{kind} "{name}" would have the URL /{folder}/{slugify(name)}/ of {kind} "{other}" ({where}), '
            f"and one would hide the other: rename one of them (URLs keep only letters and digits)")


def _check_name_urls(posts: list[Document]) -> None:
    """Two categories (or series) whose names differ but whose URLs are one: an error naming both."""
    for kind in ("category", "series"):
        seen: dict[str, tuple[str, Document]] = {}
        for doc in sorted(posts, key=lambda d: str(d.source)):
            names = doc.categories if kind == "category" else ((doc.series.name,) if doc.series else ())
            for name in names:
                first = seen.setdefault(slugify(name), (name, doc))
                if first[0] != name and not same_name(first[0], name):
                    key = "categories" if kind == "category" else "series"
                    raise BuildError(doc.source, _url_collision(kind, name, first[0], first[1].source,
                                                                _key_line(first[1], key)), _key_line(doc, key))


def _series(name: Field | None, part: Field | None, path: Path) -> SeriesMark | None:
    if name is None:
        if part is not None:
            raise BuildError(path, "`part` needs a `series:` naming the series it is a part of", part.line)
        return None
    if isinstance(name.value, (list, bool)) or not str(name.value).strip():
        raise BuildError(path, "`series` must be the series' name, e.g. `series: LLM from scratch`", name.line)
    if part is None:
        return SeriesMark(str(name.value).strip(), None, name.line)
    if isinstance(part.value, bool) or not isinstance(part.value, int) or part.value < 1:
        raise BuildError(path, f"`part` must be a positive whole number such as `part: 2`, not {part.value!r}", part.line)
    return SeriesMark(str(name.value).strip(), part.value, part.line)


def _slug(field: Field | None, path: Path) -> str:
    if field is None:
        return slugify(_DATE_PREFIX.sub("", path.stem))
    value = str(field.value) if isinstance(field.value, (str, int)) and not isinstance(field.value, bool) else None
    if value is None or slugify(value) != value:
        suggestion = slugify(str(field.value))
        raise BuildError(path, f"`slug` must be lower-case letters, digits and `-`, e.g. `slug: {suggestion}`", field.line)
    return value


def _string(field: Field | None, path: Path, name: str) -> str:
    if field is None:
        return ""
    if isinstance(field.value, (list, bool)):
        raise BuildError(path, f"`{name}` must be text", field.line)
    return str(field.value).strip()


def _flag(field: Field | None, path: Path, name: str) -> bool:
    if field is None:
        return False
    if not isinstance(field.value, bool):
        raise BuildError(path, f"`{name}` must be true or false, not {field.value!r}", field.line)
    return field.value


def _check_unique_slugs(docs: list[Document], kind: str) -> None:
    seen: dict[str, Document] = {}
    for doc in docs:
        if kind == "page" and (doc.slug in RESERVED_SLUGS or re.fullmatch(r"\d{4}", doc.slug)):
            raise BuildError(doc.source, f"page slug `{doc.slug}` collides with a generated folder; set another `slug:`",
                             _slug_line(doc))
        if doc.slug in seen:
            first = seen[doc.slug].source
            raise BuildError(doc.source, f"two {kind}s have the slug `{doc.slug}` (also {first}); set `slug:` in one of them",
                             _slug_line(doc))
        seen[doc.slug] = doc


def _slug_line(doc: Document) -> int:
    """The line of the `slug:` key in `doc`'s front matter, else 1 (the slug came from the file name)."""
    return _key_line(doc, "slug")


def _key_line(doc: Document, key: str) -> int:
    """The line of `key:` in `doc`'s front matter, else 1."""
    try:
        lines = doc.source.read_text(encoding="utf-8").split("\n")[:doc.body_line]
    except OSError:
        return 1
    return next((n for n, line in enumerate(lines, start=1) if line.startswith(f"{key}:")), 1)


def _blocks_and_image_check(doc: Document, images: dict[str, Path] | None) -> tuple[FencedBlock, ...]:
    """Record ```lab blocks and check that every image the prose shows exists."""
    lines = doc.body.split("\n")
    fences = find_fences(lines)
    in_code = set()
    blocks = []
    for fence in fences:
        in_code.update(range(fence.start, fence.end + 1))
        if fence.info in LAB_KINDS:
            if not fence.closed:
                raise BuildError(doc.source, f"```{fence.info} block is never closed with ```", doc.body_line + fence.start)
            blocks.append(FencedBlock(fence.info, doc.source, doc.body_line + fence.start, fence.inner(lines)))
    if images is not None and ("![" in doc.body or "<img" in doc.body.lower()):
        for index, line in enumerate(lines):
            if index in in_code:
                continue
            prose = blank_code_spans(line)
            for match in list(_IMAGE_MD.finditer(prose)) + list(_IMAGE_HTML.finditer(prose)):
                _check_image(match.group(1), doc, images, doc.body_line + index)
    return tuple(blocks)


def _check_image(src: str, doc: Document, images: dict[str, Path], line: int) -> None:
    if _URL_SCHEME.match(src):
        return
    target = src.split("#", 1)[0].split("?", 1)[0]
    if target.startswith("/"):
        resolved = posixpath.normpath(target).lstrip("/")
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(doc.url), target))
    if resolved not in images:
        if not target.startswith("/") and posixpath.normpath(target) in images:
            # The file is there, but a relative path resolves against the page (posts/...).
            raise BuildError(doc.source, f"image {src} is relative to the page ({doc.url}), so it points at "
                                         f"{resolved}; write it from the site root: ![...](/{posixpath.normpath(target)})", line)
        raise BuildError(doc.source, f"image {src} does not exist; put it in content/{IMAGES_DIR}/ and write ![...](/{IMAGES_DIR}/NAME)", line)
