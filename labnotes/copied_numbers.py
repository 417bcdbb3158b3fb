"""The copied-number lint: prose that repeats a number a lab shows instead of citing it.

A number typed into prose goes stale the day its lab reruns; a citation cannot. This lint
compares every number in the prose of the site with every number its labs show (printed
output, value as shown, value as data) and lists the ones that repeat a lab's number.

Its rules keep false alarms rare on real prose:
- Only prose counts: not code (fenced, indented, spans), lab blocks, maths, citations, link
  URLs, HTML tags and comments, footnote markers, dates, times or versions (2.13.0). Headings,
  tables and footnote texts are prose: a result copied there goes stale the same way.
- A number glued to a word is a name, not a quantity: GPT-2, r50k_base, 124M, fp32, H100, $5.
- It must look like a result: a decimal point, a thousands separator or an exponent, or an
  integer of at least 100 that is not a year (1900 to 2100), a round hundred (300 steps) or a
  power of two (a 512-token vocabulary): those are settings. An integral value under 100 with
  fewer than three significant digits (1.0, 4.0) is too common to mean anything.
- It repeats a lab's number when it equals it, or, written with three or more significant
  digits, when the lab's number rounds to it: 3.75 repeats 3.7512, 20,758 repeats 20758, and
  12.5% repeats 0.125. As `check` compares reruns, the lab's declared precision (`tolerance:`)
  widens the match: 5.4e-07 typed from another CPU's run repeats 3.5e-08 when the lab says its
  differences are known to 1e-6.
"""
from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .citations import format_value, path_text
from .errors import BuildWarning, display_path
from .model import Document, PublishedLab
from .prose import inline_spans, prose_view

# Stretches of prose whose digits are not quantities; each is blanked before numbers are read.
# Every pattern starts with a literal character or a digit, so the regex engine skips to the
# candidates instead of trying every position: the lint reads a long post in about a millisecond.
_NOT_QUANTITIES = re.compile(
    r"<!--.*?-->"                                   # HTML comments (the fold marker)
    r"|<[A-Za-z/!][^<>]*>"                          # HTML tags and autolinks
    r"|\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*"       # a link's or image's URL
    r"|\[\^[^\]\n]*\]"                              # footnote markers
    r"|https?://[^\s<>)]*|www\.[^\s<>)]*"           # bare URLs
    # a book's or paper's sections and chapters: "section 4.5", "sections 2.2 to 2.6", "chapter 3"
    r"|[SsCc](?:ection|hapter)s?\s+\d[\d.]*(?:(?:,\s*|\s+(?:to|and|or)\s+|\s*[-–]\s*)\d[\d.]*)*"
    # a heading numbered as the book's section it covers: "## 7.2 Data I can make"
    r"|(?m:^)#{1,6}[ \t]+\d[\d.]*",
    re.DOTALL)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[(?!\^)[^\]\n]+\]:[^\n]*", re.MULTILINE)
_NOT_QUANTITY_DIGITS = re.compile(
    r"\d(?<![\w.]\d)(?:"
    r"\d{3}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)?"    # dates
    r"|\d?:\d{2}(?::\d{2})?"                                                     # times
    r"|\d*(?:\.\d+){2,})(?![\w.]\d|\w)")                                          # versions: 2.13.0
# A number in prose, not glued to a word (GPT-2, r50k, 124M), a path, a marker or a price (the
# look-behinds follow the first digit, so that the pattern starts with one).
_PROSE_NUMBER = re.compile(
    r"(?P<digits>\d(?<![\w.$/^#@\\]\d)(?<![A-Za-z]-\d)(?<!\d,\d)"
    r"(?:\d{0,2}(?:,\d{3})+(?:\.\d+)?|\d*(?:\.\d+)?))(?P<exponent>[eE][-+]?\d+)?(?P<percent>%)?"
    r"(?![A-Za-wyz_\d]|x\w|[.,:/]\d)")
# A number in a lab's output: read liberally (0.93M is 0.93), since only prose decides what counts.
_LAB_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class CopiedNumber:
    """A number in prose that repeats one a lab shows."""

    path: Path
    line: int
    number: str               # as written: "20,758", "3.75", "12.5%"
    lab: PublishedLab         # the lab that shows it
    citation: str             # what to write instead: "{{ train.val_loss:.2f }}"

    @property
    def message(self) -> str:
        """`3.75 repeats a result of lab train (labcode...); cite it as {{ train.val_loss:.2f }}`."""
        if self.lab.name:
            return f"{self.number} repeats a result of lab {self.lab.name} ({self.lab.ref}); cite it as {self.citation}"
        return (f"{self.number} repeats a result of lab {self.lab.ref} ({display_path(self.lab.path)}:"
                f"{self.lab.line}); give that lab a `name:` and cite it as {self.citation}")

    def warning(self) -> BuildWarning:
        return BuildWarning(self.path, self.message, self.line)


@dataclass(frozen=True)
class _Shown:
    """One number a lab shows, and where it sits in the lab's value when it is data."""

    value: Decimal
    lab: int                                  # index into the published labs
    keys: tuple[str | int, ...] | None        # path into the data, None for printed text
    data: object = None                       # the number itself, for formatting a suggestion
    bound: object = None                      # its precision.Bound when the lab declared one


def copied_number_warnings(documents: Sequence[Document], published: Sequence[PublishedLab]) -> tuple[BuildWarning, ...]:
    """`find_copied_numbers` as build warnings, one line each."""
    return tuple(found.warning() for found in find_copied_numbers(documents, published))


def find_copied_numbers(documents: Sequence[Document], published: Sequence[PublishedLab]) -> list[CopiedNumber]:
    """Every number in the prose of `documents` that repeats a number one of `published` shows,
    in document order. Each names one lab that shows it: a named lab whose value holds it if
    there is one (its suggested citation is then exact), else the first in `published`."""
    if not published:
        return []
    index = _ShownIndex(published)
    found = []
    for doc in documents:
        for offset, match in _prose_numbers(doc.body):
            best = index.best(match)
            if best is not None:
                shown, target = best
                lab = published[shown.lab]
                line = doc.body_line + doc.body.count("\n", 0, offset)
                found.append(CopiedNumber(doc.source, line, match.group(0), lab, _suggest(lab, shown, target)))
    return found


def _prose_numbers(body: str) -> Iterator[tuple[int, re.Match]]:
    """(offset, match) of each number in the prose of `body` that looks like a result."""
    view = prose_view(body)
    spans = inline_spans(view)
    if spans:
        chars = list(view)
        for span in spans:
            chars[span.start:span.end] = _blank(view[span.start:span.end])
        view = "".join(chars)
    for pattern in (_NOT_QUANTITIES, _REFERENCE_DEFINITION, _NOT_QUANTITY_DIGITS):
        view = pattern.sub(lambda m: _blank(m.group(0)), view)
    for match in _PROSE_NUMBER.finditer(view):
        if _looks_like_a_result(match):
            yield match.start(), match


def _blank(text: str) -> str:
    """Spaces in place of `text`, its line breaks kept."""
    return " " * len(text) if "\n" not in text else re.sub(r"[^\n]", " ", text)


def _looks_like_a_result(match: re.Match) -> bool:
    digits, exponent = match["digits"], match["exponent"]
    value = _decimal(match)
    if "." not in digits and "," not in digits and not exponent:
        number = int(value)
        setting = number % 100 == 0 or number & (number - 1) == 0 or 1900 <= number <= 2100
        return number >= 100 and not setting
    return not (value == value.to_integral_value() and value < 100 and _significant(match) < 3)


def _decimal(match: re.Match) -> Decimal:
    return Decimal(match["digits"].replace(",", "") + (match["exponent"] or ""))


def _significant(match: re.Match) -> int:
    return len(match["digits"].replace(",", "").replace(".", "").lstrip("0"))


class _ShownIndex:
    """Every number the labs show, sorted, for matching prose numbers against in log time."""

    def __init__(self, published: Sequence[PublishedLab]):
        shown: list[_Shown] = []
        for number, lab in enumerate(published):
            tolerance = lab.tolerance
            for text in (lab.output, lab.value_text):
                bound = tolerance.output_bound() if tolerance is not None and tolerance.declared else None
                shown += [_Shown(d, number, None, bound=bound) for d in _numbers_in_text(text or "")]
            shown += [_Shown(s.value, s.lab, s.keys, s.data, _declared(tolerance, s.keys))
                      for s in _numbers_in_data(lab.data, number, ())]
        shown.sort(key=lambda s: s.value)
        self.named = [lab.name is not None for lab in published]
        self.shown = shown
        self.values = [s.value for s in shown]
        declared = [s.bound for s in shown if s.bound is not None]
        self.widest = (Decimal(repr(max((b.absolute for b in declared), default=0.0))),
                       Decimal(repr(max((b.relative for b in declared), default=0.0))))

    def best(self, match: re.Match) -> tuple[_Shown, str] | None:
        """The lab number the prose number `match` repeats, if any, with the text a citation of
        it must show to read as written (with the percent sign when the lab's number is a
        fraction). Named labs' data come first: their suggestion is an exact citation."""
        value = _decimal(match)
        exact = _significant(match) < 3
        candidates = [(value, match["digits"] + (match["exponent"] or ""))]
        if match["percent"]:
            candidates.append((value / 100, match.group(0)))
        # a short number (5.4) is too common to match by rounding, but one written with an
        # exponent (5.4e-07) is a result: it matches within the lab's declared precision
        tolerant = not exact or bool(match["exponent"])
        found = []
        for candidate, target in candidates:
            half = Decimal(0) if exact else Decimal(5).scaleb(-_precision(candidate) - 1)
            widest = Decimal(0) if not tolerant else self.widest[0] + self.widest[1] * 2 * abs(candidate)
            low = bisect.bisect_left(self.values, candidate - half - widest)
            high = bisect.bisect_right(self.values, candidate + half + widest)
            found += [(shown, target) for shown in self.shown[low:high]
                      if abs(shown.value - candidate) <= half or
                      tolerant and _within(shown, candidate, half)]
        return min(found, key=lambda pair: (not self.named[pair[0].lab], pair[0].keys is None, pair[0].lab),
                   default=None)


def _declared(tolerance, keys) -> object:
    """The bound a lab declared for the number at `keys`, None when it declared none."""
    if tolerance is None or not tolerance.declared:
        return None
    bound = tolerance.bound_for(tuple(keys or ()))
    return bound if bound.declared else None


def _within(shown: _Shown, candidate: Decimal, half: Decimal) -> bool:
    """The prose number, read with its rounding, within the lab's declared bound of its number."""
    if shown.bound is None:
        return False
    return shown.bound.allows(float(shown.value), float(candidate), float(half))


def _precision(value: Decimal) -> int:
    """Decimal places of `value` as written (0 for 300, 2 for 3.75, 4 for 6e-4)."""
    return max(-value.as_tuple().exponent, 0)


def _numbers_in_text(text: str) -> list[Decimal]:
    return [Decimal(m.group(0).replace(",", "")) for m in _LAB_NUMBER.finditer(text)]


def _numbers_in_data(data: object, lab: int, keys: tuple) -> list[_Shown]:
    if isinstance(data, bool) or data is None:
        return []
    if isinstance(data, (int, float)):
        if isinstance(data, float) and not math.isfinite(data):
            return []
        return [_Shown(abs(Decimal(repr(data))), lab, keys, data)]
    if isinstance(data, str):
        return [_Shown(d, lab, None) for d in _numbers_in_text(data)]
    if isinstance(data, dict):
        return [s for key, item in data.items() for s in _numbers_in_data(item, lab, keys + (str(key),))]
    if isinstance(data, list):
        last = len(data) - 1
        return [s for i, item in enumerate(data) for s in _numbers_in_data(item, lab, keys + (-1 if i == last and i else i,))]
    return []


def _suggest(lab: PublishedLab, shown: _Shown, target: str) -> str:
    """The citation that shows the lab's number as the prose wrote it, as near as can be said."""
    name = lab.name or "NAME"
    if shown.keys is None:
        return f"{{{{ {name}.<key> }}}}"
    decimals = len(target.rstrip("%").partition(".")[2])
    # decimals written in prose are kept by a fixed-point spec, whatever the value becomes
    specs = ([f".{decimals}%", f",.{decimals}%"] if target.endswith("%") else
             [f".{decimals}f", f",.{decimals}f"] if decimals else [None, ","])
    spec = next((s for s in specs if _formats_as(shown.data, s, target)), None)
    return f"{{{{ {name}{path_text(shown.keys)}{':' + spec if spec else ''} }}}}"


def _formats_as(value: object, spec: str | None, target: str) -> bool:
    try:
        return format_value(value, spec) == target
    except (ValueError, TypeError):
        return False
