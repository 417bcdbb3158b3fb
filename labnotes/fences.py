"""Find fenced code blocks in Markdown the way markdown2 does (backtick fences; `~~~` on request).

Everything that must not look inside code (maths, the fold marker, image checks, lab
blocks) asks this module where the code is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = {"`": re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$"),
         "~": re.compile(r"^(?P<indent>[ \t]*)(?P<fence>~{3,})(?P<info>.*)$")}
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)


@dataclass(frozen=True)
class Fence:
    """A fenced block: lines `start`..`end` (0-based, inclusive) of the text it came from."""

    start: int      # the opening fence line
    end: int        # the closing fence line, or the last line when unclosed
    info: str       # info string, stripped (e.g. "python", "lab")
    indent: str
    closed: bool

    def inner(self, lines: list[str]) -> str:
        """The text between the fences."""
        last = self.end if self.closed else self.end + 1
        return "\n".join(lines[self.start + 1:last])


def find_fences(lines: list[str], chars: str = "`") -> list[Fence]:
    """All fences in `lines` made of `chars` (backticks; "`~" adds tilde fences, which the
    renderer does not cut out but which are code all the same), in order; an unclosed fence
    runs to the end."""
    fences = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = next((m for m in (_OPEN[c].match(line) for c in chars if c * 3 in line) if m), None)
        if not match:
            i += 1
            continue
        size, char = len(match["fence"]), re.escape(match["fence"][0])
        closing = re.compile(rf"^[ \t]*{char}{{{size},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        closed = j < len(lines)
        fences.append(Fence(i, j if closed else len(lines) - 1, match["info"].strip(), match["indent"], closed))
        i = j + 1
    return fences


def blank_code_spans(text: str) -> str:
    """`text` with every inline code span replaced by spaces of the same length (offsets kept)."""
    return _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)
