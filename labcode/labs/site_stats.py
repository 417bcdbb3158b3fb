"""Counting the blog itself: how many labs its posts run and how often their prose cites them.

A post is Markdown. Its labs are fenced blocks whose info string is `lab` (they run) or
`labsource` (they show a function's source without running it), and its prose cites what a
named lab returned as `{{ name.key:format }}`. This module reads posts as plain text and
counts those three things the way a reader would spot them: fenced code, code spans and
maths are not prose, and `\\{{` is a literal brace, not a citation.

It reads the posts as plain files and imports nothing but the standard library, so the build
runs it without starting torch (a prose edit reruns it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_DISPLAY_MATHS = re.compile(r"\$\$.+?\$\$", re.DOTALL)
_INLINE_MATHS = re.compile(r"(?<![\\$])\$(?![\s$\d])[^$\n]+?(?<![\s\\])\$")
_CITATION = re.compile(r"(?<!\\)\{\{\s*([A-Za-z_][A-Za-z0-9_]*)[^{}]*?\}\}")


@dataclass
class PostCounts:
    """What one post runs, shows and cites."""

    slug: str
    title: str
    series: str | None
    draft: bool        # drafts are not published, so they are not counted
    date: str          # as written in the front matter ("2026-09-07" or with a time)
    part: int | None   # `part:` pins the post's place in its series
    labs: int          # ```lab blocks: code that runs at build time
    sources: int       # ```labsource blocks: code shown, not run
    named: int         # lab blocks with a `name:`, so prose can cite them
    citations: int     # {{ name.path }} in the prose


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """The `key: value` lines between the opening `---` lines, and the body after them."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            meta = {}
            for line in lines[1:end]:
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "-")):
                    meta[key.strip()] = value.strip().strip("\"'")
            return meta, "\n".join(lines[end + 1:])
    return {}, text


def count_post(text: str, slug: str) -> PostCounts:
    """Count the lab blocks, source blocks, named labs and citations of one post."""
    meta, body = split_front_matter(text)
    labs = sources = named = 0
    prose: list[str] = []
    fence = None                                 # the open fence's marker, e.g. "```"
    info = ""
    for line in body.split("\n"):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, info = match.group(1), match.group(2)
                labs += info == "lab"
                sources += info == "labsource"
                prose.append("")                 # a fence ends the paragraph before it
            else:
                prose.append(line)
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                and not match.group(2):
            fence = None                         # the closing fence
        elif info == "lab" and re.match(r"\s*name\s*:", line):
            named += 1
    text = "\n".join(prose)
    text = _CODE_SPAN.sub(" ", text)             # code spans first: `$` inside them is code
    text = _DISPLAY_MATHS.sub(" ", text)
    text = _INLINE_MATHS.sub(" ", text)
    citations = len(_CITATION.findall(text))
    part = meta.get("part", "")
    return PostCounts(slug, meta.get("title", slug), meta.get("series"),
                      meta.get("draft") == "true", meta.get("date", ""),
                      int(part) if part.isdigit() else None, labs, sources, named, citations)


def reading_order(posts: list[PostCounts]) -> list[PostCounts]:
    """A series' posts as the site numbers them: a post with `part: N` at place N, the others
    filling the free places oldest first."""
    pinned = {c.part: c for c in posts if c.part is not None}
    by_date = iter(sorted((c for c in posts if c.part is None), key=lambda c: (c.date, c.slug)))
    places, number = list(pinned.items()), 1
    for c in by_date:
        while number in pinned:
            number += 1
        places.append((number, c))
        number += 1
    return [c for _, c in sorted(places, key=lambda place: place[0])]


def post_slug(path: Path) -> str:
    """content/posts/2026-09-07-tokens-from-text-to-ids.md -> tokens-from-text-to-ids."""
    return re.sub(r"^\d{4}-\d{2}-\d{2}-", "", path.stem)


def series_counts(posts: str = "content/posts", series: str = "LLM from scratch",
                  through: str = "") -> dict:
    """Count the labs, source blocks and citations of every post in `series` dated no later
    than `through` (a date, "YYYY-MM-DD"; empty: every post), in the site's reading order.

    A lab has no clock, so it cannot tell which posts the build holds back as future ones:
    `through` says how far "the series so far" goes. The build records every post file this
    lab reads as one of its inputs, and reruns it when any of them changes.
    """
    files = [path for path in Path(posts).rglob("*.md")   # subfolders too, as the build reads them
             if not any(part.startswith(".") for part in path.relative_to(posts).parts)]
    counted = [count_post(path.read_text(encoding="utf-8"), post_slug(path)) for path in sorted(files)]
    rows = reading_order([c for c in counted if c.series == series and not c.draft
                          and (not through or c.date[:10] <= through)])
    # the counts first and the post's slug last, so a narrow screen shows the counts
    print(f"{'part':>4} {'labs':>5} {'source':>7} {'cites':>6}  post")
    for part, c in enumerate(rows, start=1):
        print(f"{part:>4} {c.labs:>5} {c.sources:>7} {c.citations:>6}  {c.slug}")
    total = {key: sum(getattr(c, key) for c in rows)
             for key in ("labs", "sources", "named", "citations")}
    print(f"{'':>4} {total['labs']:>5} {total['sources']:>7} {total['citations']:>6}  "
          f"all {len(rows)} posts")
    most = max(rows, key=lambda c: c.citations)
    return {
        "posts": len(rows),
        "lab_blocks": total["labs"],
        "source_blocks": total["sources"],
        "named_labs": total["named"],
        "citations": total["citations"],
        "citations_per_post": total["citations"] / len(rows),
        "posts_without_labs": sum(c.labs == 0 for c in rows),
        "most_cited": most.slug,
        "most_cited_title": most.title,
        "most_cited_citations": most.citations,
        "files_read": len(counted),
        "table": [vars(c) for c in rows],
    }
