"""Series: posts that read in order ("LLM from scratch"), grouped and numbered from front matter.

A post joins a series with `series: NAME` and may pin its place with `part: N`. The posts that
pin a part take that place; the others fill the free places in date order. Numbers shown to a
reader are positions among the published parts (1..M), so a held-back draft leaves no hole.
"""
from __future__ import annotations

from collections.abc import Sequence

from .errors import BuildError
from .model import Document, Series
from .slugs import slugify


def group_series(posts: Sequence[Document]) -> tuple[Series, ...]:
    """Every series of `posts`, sorted by name, each with its posts in reading order.

    Names that share a slug ("LLM from scratch", "LLM From Scratch") are one series, named as
    its oldest post spells it. Two posts of one series pinning the same part is a BuildError
    naming the second one's `part:` line.
    """
    members: dict[str, list[Document]] = {}
    for doc in sorted((doc for doc in posts if doc.series is not None), key=_by_date):
        members.setdefault(slugify(doc.series.name), []).append(doc)
    series = [Series(docs[0].series.name, slug, _reading_order(docs)) for slug, docs in members.items()]
    return tuple(sorted(series, key=lambda s: (s.name.casefold(), s.slug)))


def _reading_order(docs: list[Document]) -> tuple[Document, ...]:
    """`docs` (oldest first) in reading order: pinned parts at their place, the rest by date."""
    pinned: dict[int, Document] = {}
    for doc in docs:
        part = doc.series.part
        if part is None:
            continue
        if part in pinned:
            first = pinned[part].source
            raise BuildError(doc.source, f"two posts of the series {doc.series.name!r} are `part: {part}` "
                                         f"(also {first}); give each part its own number", doc.series.line)
        pinned[part] = doc
    by_date = iter(doc for doc in docs if doc.series.part is None)
    places: list[tuple[int, Document]] = list(pinned.items())
    number = 1
    for doc in by_date:
        while number in pinned:
            number += 1
        places.append((number, doc))
        number += 1
    return tuple(doc for _, doc in sorted(places, key=lambda place: place[0]))


def _by_date(doc: Document) -> tuple:
    return (doc.date, doc.slug)
