"""Where the prose of a Markdown body is: everything that is not code or maths.

Citations (`{{ train.loss }}`) and the copied-number lint read prose only. Both work on a
*prose view* of a body: the same text with code blocks blanked to spaces, so an offset or a line
number in the view is the same in the body. Inside that view, `inline_spans` marks code spans,
maths and citations, in the order a reader of the line meets them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .fences import find_fences
from .maths import code_span_end, maths_end

_LIST_ITEM = re.compile(r"^ {0,3}(?:[*+-]|\d+[.)])[ \t]+\S")
CITE_OPEN, CITE_CLOSE = "{{", "}}"


@dataclass(frozen=True)
class Span:
    """A stretch of prose that is not plain text: `kind` is "code", "maths" or "cite"."""

    kind: str
    start: int     # offsets into the text the span was found in
    end: int


def code_lines(lines: list[str]) -> set[int]:
    """Indices of the lines that are code: fenced blocks (``` or ~~~, fences included) and
    indented code blocks, found as markdown2 finds them: four spaces (eight inside a list) after
    a blank line or a heading, and the indented lines that continue them."""
    code: set[int] = set()
    for fence in find_fences(lines, "`~"):
        code.update(range(fence.start, fence.end + 1))
    after_block, in_list, in_code = True, False, False
    for i, line in enumerate(lines):
        if i in code:
            after_block, in_code = True, False
            continue
        if not line.strip():
            after_block = True
            continue
        indent = 0 if line[0] not in " \t" else len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip(" "))
        if in_code and indent >= 4 or after_block and indent >= (8 if in_list else 4):
            code.add(i)
            in_code, after_block = True, False
            continue
        in_code = False
        if _LIST_ITEM.match(line):
            in_list = True
        elif indent == 0 and after_block:
            in_list = False
        after_block = line.startswith("#")     # a heading ends its block, as a blank line does
    return code


def prose_view(body: str) -> str:
    """`body` with every code block line replaced by spaces: same length, same lines."""
    lines = body.split("\n")
    code = code_lines(lines)
    if not code:
        return body
    return "\n".join(" " * len(line) if i in code else line for i, line in enumerate(lines))


def inline_spans(text: str) -> list[Span]:
    """Code spans, maths and `{{ ... }}` citations in prose `text`, in order.

    A backslash escapes the next character (`\\{{` is literal braces, `\\$` a dollar, `` \\` `` a
    backtick). A citation ends at the first `}}` of its line; an unclosed one runs to the end of
    its line (and is reported when parsed).
    """
    spans: list[Span] = []
    i, n = 0, len(text)
    while i < n:
        # jump to the next character that can start something; most prose has none
        j = _next_special(text, i)
        if j >= n:
            break
        ch = text[j]
        if ch == "\\":
            i = j + 2
        elif ch == "`":
            end = code_span_end(text, j)
            if end - j > _run(text, j):    # an unclosed backtick run is literal text
                spans.append(Span("code", j, end))
            i = end
        elif ch == "$":
            end = maths_end(text, j)
            if end is None:
                i = j + 1
            else:
                spans.append(Span("maths", j, end))
                i = end
        elif text.startswith(CITE_OPEN, j):
            line_end = text.find("\n", j)
            line_end = n if line_end < 0 else line_end
            close = text.find(CITE_CLOSE, j + 2, line_end)
            end = line_end if close < 0 else close + 2
            spans.append(Span("cite", j, end))
            i = end
        else:
            i = j + 1
    return spans


_SPECIAL = re.compile(r"[\\`$]|\{\{")


def _next_special(text: str, start: int) -> int:
    match = _SPECIAL.search(text, start)
    return match.start() if match else len(text)


def _run(text: str, start: int) -> int:
    end = start
    while end < len(text) and text[end] == text[start]:
        end += 1
    return end - start
