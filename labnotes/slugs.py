"""URL slugs shared by every output (pages, feeds, sitemap) so category URLs agree."""
from __future__ import annotations

import functools
import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)   # a site slugs the same few category names thousands of times
def slugify(text: str) -> str:
    """`"LLM from Scratch!"` -> `"llm-from-scratch"`: ASCII lower case, words joined by `-`.

    Accents are folded (`"Café"` -> `"cafe"`); text with no ASCII letters or digits at all
    (emoji, CJK) falls back to its code points so distinct names keep distinct URLs.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_WORD.sub("-", folded.lower()).strip("-")
    if slug:
        return slug
    return "-".join(f"u{ord(ch):x}" for ch in text if not ch.isspace()) or "untitled"
