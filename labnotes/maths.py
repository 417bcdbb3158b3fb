"""LaTeX maths in prose: `$...$` inline and `$$...$$` display, to MathML at build time.

The rule for inline maths is pandoc's, so prices stay prose: an opening `$` is followed by a
non-space character, the closing `$` is preceded by a non-space character and not followed by
a digit, and inline maths holds no other unescaped `$` and no blank line. So in
"costs $5 and $10" no pair qualifies. `\\$` is always a literal dollar. Code spans are skipped.
latex2mathml is imported on the first conversion: finding where maths is costs nothing.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .errors import BuildError

DOLLAR_ENTITY = "&#36;"
_UNKNOWN_COMMAND = re.compile(r">(\\[A-Za-z]+|\\[{}|])<")
# latex2mathml writes a sized delimiter (\Big\{, \big\langle...) as its command's text
# (`<mo ...>\{</mo>`): the character each stands for.
_DELIMITERS = {"\\{": "{", "\\}": "}", "\\|": "\u2016", "\\lbrace": "{", "\\rbrace": "}",
               "\\langle": "\u27e8", "\\rangle": "\u27e9", "\\vert": "|", "\\lvert": "|",
               "\\rvert": "|", "\\Vert": "\u2016", "\\lVert": "\u2016", "\\rVert": "\u2016",
               "\\lfloor": "\u230a", "\\rfloor": "\u230b", "\\lceil": "\u2308", "\\rceil": "\u2309"}
_DELIMITER_TEXT = re.compile(r"(<mo[^>]*>)(\\(?:[A-Za-z]+|[{}|]))</mo>")
_BLANK_LINE = re.compile(r"[ \t]*(\n|$)")


@dataclass(frozen=True)
class Maths:
    """One maths span found in Markdown: its LaTeX, whether display, and its MathML."""

    latex: str
    display: bool
    mathml: str


def protect_maths(text: str, placeholder, path, first_line: int) -> tuple[str, list[Maths]]:
    """Replace maths in a prose chunk by `placeholder(i)` and `\\$` by `&#36;`.

    `first_line` is the line of `text`'s first character in `path`, for error messages.
    Returns the new text and the maths found, in order. Invalid maths raises BuildError.
    """
    out: list[str] = []
    found: list[Maths] = []
    i, n = 0, len(text)

    def line_at(offset: int) -> int:
        return first_line + text.count("\n", 0, offset)

    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "\\$":
            out.append(DOLLAR_ENTITY if text[i + 1] == "$" else "\\\\")
            i += 2
        elif ch == "`":
            end = code_span_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("$$", i):
            close = text.find("$$", i + 2)
            if close < 0:
                raise BuildError(path, "display maths `$$` is never closed; close it with `$$` or write `\\$` for a dollar sign", line_at(i))
            latex = text[i + 2:close]
            found.append(to_mathml(latex, True, path, line_at(i)))
            out.append(placeholder(len(found) - 1))
            i = close + 2
        elif ch == "$":
            close = _inline_close(text, i)
            if close is None:
                out.append("$")
                i += 1
            else:
                found.append(to_mathml(text[i + 1:close], False, path, line_at(i)))
                out.append(placeholder(len(found) - 1))
                i = close + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), found


def code_span_end(text: str, start: int) -> int:
    """Offset just past the code span opening at `start` (or past the backtick run if unclosed)."""
    run = start
    while run < len(text) and text[run] == "`":
        run += 1
    ticks = text[start:run]
    search = run
    while True:
        close = text.find(ticks, search)
        if close < 0:
            return run
        after = close + len(ticks)
        if after < len(text) and text[after] == "`":
            search = after
            while search < len(text) and text[search] == "`":
                search += 1
            continue
        return after


def maths_end(text: str, start: int) -> int | None:
    """Offset just past the maths opening with the `$` at `start`, or None when that `$` is prose
    (or opens display maths that is never closed)."""
    if text.startswith("$$", start):
        close = text.find("$$", start + 2)
        return None if close < 0 else close + 2
    close = _inline_close(text, start)
    return None if close is None else close + 1


def _inline_close(text: str, start: int) -> int | None:
    """Offset of the `$` closing inline maths opened at `start`, or None when it is prose."""
    if start + 1 >= len(text) or text[start + 1].isspace():
        return None
    j = start + 1
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "\n" and _BLANK_LINE.match(text, j + 1):
            return None
        if ch == "$":
            if text[j - 1].isspace() or (j + 1 < len(text) and text[j + 1].isdigit()):
                return None
            return j
        j += 1
    return None


def to_mathml(latex: str, display: bool, path, line: int) -> Maths:
    """Convert one maths span, or raise BuildError naming what is wrong with it."""
    shown = latex.strip().replace("\n", " ")
    if not shown:
        raise BuildError(path, "empty maths `$$$$`; write `\\$` for a literal dollar sign", line)
    problem = _structure_problem(latex)
    if problem is None:
        from latex2mathml.converter import convert
        try:
            mathml = convert(latex, display="block" if display else "inline")
        except Exception as exc:  # latex2mathml raises many exception types, all meaning bad LaTeX
            problem = f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}"
        else:
            mathml = _DELIMITER_TEXT.sub(
                lambda m: m.group(1) + html.escape(_DELIMITERS.get(m.group(2), m.group(2))) + "</mo>",
                mathml)
            unknown = _UNKNOWN_COMMAND.search(mathml)
            if unknown:
                problem = f"unknown command {unknown.group(1)}"
    if problem is not None:
        raise BuildError(path, f"invalid maths ${shown}$: {problem}", line)
    alt = html.escape(shown, quote=True)
    mathml = mathml.replace("<math ", f'<math alttext="{alt}" ', 1)
    return Maths(latex, display, mathml)


def _structure_problem(latex: str) -> str | None:
    """Unbalanced braces or environments, which latex2mathml silently accepts."""
    depth = 0
    i = 0
    while i < len(latex):
        ch = latex[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return "unbalanced braces: `}` without `{`"
        i += 1
    if depth:
        return "unbalanced braces: `{` never closed"
    begins = re.findall(r"\\begin\{(\w+\*?)\}", latex)
    ends = re.findall(r"\\end\{(\w+\*?)\}", latex)
    if begins != list(reversed(ends)) and sorted(begins) != sorted(ends):
        return f"\\begin/\\end do not match ({', '.join(begins) or 'none'} vs {', '.join(ends) or 'none'})"
    if latex.count("\\left") != latex.count("\\right"):
        return "\\left and \\right do not pair up"
    return None
