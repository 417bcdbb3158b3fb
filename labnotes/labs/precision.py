"""How precise a lab's numbers are, and whether a rerun reproduced them (SPEC 3, `tolerance:`).

Floating-point results differ in their last digits between CPUs (AVX2 and AVX-512 kernels sum
in another order), thread counts and GPUs. A lab block declares how far its numbers may move
and still count as the same result:

    tolerance: 1e-6                          every number: absolute bound
    tolerance: 0.1%                          relative bound (of the larger magnitude)
    tolerance: 1e-6 + 0.1%                   both, as numpy.isclose adds them
    tolerance: 1e-4, loss=1%, figures=1px    a bound for the whole result, one per key or column

Without a declaration, numbers written as floats may move by `DEFAULT` (a relative 1e-5,
about a hundred float32 roundings) and integers must be equal. Numbers read back from printed
text are compared allowing for the rounding of the digits they were printed with, so that
3.7512 printed as 3.751 and 3.7516 printed as 3.752 still compare by their values.
Everything here is pure: text and JSON trees in, verdicts out.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
                     r"(?![\w]|\.\d)")
_TERM = re.compile(r"^\s*(?P<number>[0-9.]+(?:[eE][-+]?\d+)?)\s*(?P<unit>%|px)?\s*$")
_KEYED = re.compile(r"""^\s*(?P<key>"[^"]+"|'[^']+'|[A-Za-z_][\w.]*)\s*=\s*(?P<bound>.+)$""")
_SPACES = re.compile(r"[ \t]+")
FIGURES = "figures"            # the pseudo key whose bound is in pixels
OUTPUT = "output"              # the pseudo key for printed output (else the whole-result bound)


class ToleranceError(ValueError):
    """A `tolerance:` line that cannot be read (the message says what to write)."""


@dataclass(frozen=True)
class Bound:
    """|a - b| <= absolute + relative * max(|a|, |b|)."""

    absolute: float = 0.0
    relative: float = 0.0
    declared: bool = True        # False for the default, which spares integers

    def allows(self, a: float, b: float, slack: float = 0.0) -> bool:
        """Whether `b` reproduces `a`; `slack` adds what printing rounded away."""
        if a == b or (math.isnan(a) and math.isnan(b)):
            return True
        if not (math.isfinite(a) and math.isfinite(b)):
            return False
        return abs(a - b) <= self.absolute + self.relative * max(abs(a), abs(b)) + slack

    def __str__(self) -> str:
        parts = []
        if self.absolute:
            parts.append(f"{self.absolute:g}")
        if self.relative:
            parts.append(f"{self.relative * 100:g}%")
        return " + ".join(parts) or "0 (exact)"


DEFAULT = Bound(relative=1e-5, declared=False)
EXACT = Bound()
SUBPIXEL = 0.1                 # SVG coordinates: a reader cannot see a tenth of a pixel
DEFAULT_FIGURE_PX = SUBPIXEL


@dataclass(frozen=True)
class Tolerance:
    """A lab's declared precision: one bound for the whole result, one per key or column."""

    whole: Bound | None = None
    keys: tuple[tuple[tuple[str, ...], Bound], ...] = ()
    figure_px: float | None = None
    text: str = ""              # as written in the block, for messages

    @property
    def declared(self) -> bool:
        return bool(self.text)

    def bound_for(self, path: tuple) -> Bound:
        """The bound for a number at `path` (keys and indices into the result): the declared
        key that matches deepest (a name matches a dict key anywhere along the path; `a.b`
        matches `a` then `b`), else the whole-result bound, else the default."""
        names = [str(k) for k in path if isinstance(k, str)]
        best, depth = None, -1
        for key, bound in self.keys:
            for end in range(len(key), len(names) + 1):
                if tuple(names[end - len(key):end]) == key and end > depth:
                    best, depth = bound, end
        if best is not None:
            return best
        return self.whole or DEFAULT

    def output_bound(self) -> Bound:
        """The bound for printed output: `output=`, else the whole result's, else the default."""
        return self.bound_for((OUTPUT,)) if any(k == (OUTPUT,) for k, _ in self.keys) \
            else self.whole or DEFAULT

    @property
    def figure_bound_px(self) -> float:
        return self.figure_px if self.figure_px is not None else DEFAULT_FIGURE_PX


def parse_tolerance(text: str) -> Tolerance:
    """`1e-6, loss=1%, figures=1px` as a Tolerance; ToleranceError says what is wrong."""
    whole, keys, figure_px = None, [], None
    for item in _split(text):
        keyed = _KEYED.match(item)
        if keyed:
            key = keyed["key"].strip("\"'")
            if key == FIGURES:
                figure_px = _pixels(keyed["bound"], item)
            else:
                keys.append((tuple(key.split(".")) if keyed["key"][0] not in "\"'" else (key,),
                             _bound(keyed["bound"], item)))
        else:
            if whole is not None:
                raise ToleranceError(f"{item!r}: the whole result's bound is given twice; name "
                                     "the key for a second one (loss=1%)")
            whole = _bound(item, item)
    if whole is None and not keys and figure_px is None:
        raise ToleranceError("it is empty: write a bound such as 1e-6, 0.1% or loss=1%")
    return Tolerance(whole, tuple(keys), figure_px, text.strip())


def _split(text: str) -> list[str]:
    items, current, quote = [], "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ",":
            items.append(current)
            current = ""
            continue
        current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def _bound(text: str, item: str) -> Bound:
    absolute = relative = 0.0
    for term in text.split("+"):
        match = _TERM.match(term)
        number = _float(match["number"]) if match else None
        if match is None or number is None or match["unit"] == "px" or number < 0:
            raise ToleranceError(f"{item!r}: a bound is a number (absolute, 1e-6), a percentage "
                                 "(relative, 0.1%) or both (1e-6 + 0.1%)")
        if match["unit"] == "%":
            relative += number / 100
        else:
            absolute += number
    return Bound(absolute, relative)


def _pixels(text: str, item: str) -> float:
    match = _TERM.match(text)
    number = _float(match["number"]) if match else None
    if match is None or number is None or match["unit"] != "px":
        raise ToleranceError(f"{item!r}: figures take a bound in pixels, e.g. figures=1px")
    return number


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# ---- numbers in printed text ----------------------------------------------------------------

@dataclass(frozen=True)
class Printed:
    """A number as printed: its value and the rounding its digits allow."""

    text: str
    value: float
    quantum: float              # one unit in the last printed digit (0 for an exact zero)
    integer: bool


def read_number(text: str) -> Printed:
    """`3.751`, `1,234`, `1.2e-07` as a Printed number."""
    plain = text.replace(",", "")
    mantissa, _, exponent = plain.lower().partition("e")
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    value = float(plain)
    integer = "." not in mantissa and not exponent
    if value == 0 and exponent:
        quantum = 0.0           # 0.0e+00 is printed only for an exact zero
    else:
        quantum = 10.0 ** (int(exponent or 0) - decimals)
    return Printed(text, value, quantum, integer)


def split_numbers(text: str) -> tuple[list[str], list[Printed]]:
    """The text between numbers (len(numbers) + 1 pieces) and the numbers."""
    pieces, numbers, last = [], [], 0
    for match in _NUMBER.finditer(text):
        pieces.append(text[last:match.start()])
        numbers.append(read_number(match.group()))
        last = match.end()
    pieces.append(text[last:])
    return pieces, numbers


@dataclass(frozen=True)
class Comparison:
    """How a rerun's text or value compares with the published one."""

    same: bool                  # identical
    reproduced: bool            # identical, or every number within its bound
    detail: str = ""            # the first difference, for a report

    @property
    def within(self) -> bool:
        """Moved, but within its declared precision."""
        return self.reproduced and not self.same


SAME = Comparison(True, True)


def numbers_agree(old: Printed, new: Printed, bound: Bound) -> bool:
    """Two printed numbers within `bound`, allowing for their printed rounding. Integers
    spared by the default bound must be equal."""
    if old.integer and new.integer and not bound.declared:
        return old.value == new.value
    return bound.allows(old.value, new.value, (old.quantum + new.quantum) / 2)


def compare_text(old: str, new: str, bound: Bound, bound_of=None) -> Comparison:
    """Printed text: every number within `bound` (or `bound_of(old number, new number)`, see
    `printed_bounds`), the rest equal (runs of spaces, which aligned columns widen and narrow,
    count as one)."""
    if old == new:
        return SAME
    old_pieces, old_numbers = split_numbers(old)
    new_pieces, new_numbers = split_numbers(new)
    if len(old_numbers) != len(new_numbers) or \
            [_SPACES.sub(" ", p) for p in old_pieces] != [_SPACES.sub(" ", p) for p in new_pieces]:
        return Comparison(False, False, _first_line_difference(old, new))
    for a, b in zip(old_numbers, new_numbers):
        limit = bound_of(a, b) if bound_of is not None and a.text != b.text else bound
        if not numbers_agree(a, b, limit):
            return Comparison(False, False, f"{a.text} -> {b.text} (beyond {limit})")
    moved = [(a, b) for a, b in zip(old_numbers, new_numbers) if a.text != b.text]
    first = f"{moved[0][0].text} -> {moved[0][1].text}" if moved else "spacing"
    return Comparison(False, True, f"{first}, within {bound}")


def printed_bounds(tolerance: Tolerance, old_data, new_data, fallback: Bound):
    """For printed output, whose numbers carry no key: a number that prints a value of the
    result (the same path in the published and in the new result) takes that key's bound;
    any other number takes `fallback`. So `loss=1%` also covers "loss 3.2512" printed."""
    if not tolerance.keys:
        return None
    old_leaves, new_leaves = _leaves(old_data), _leaves(new_data)

    def bound_of(a: Printed, b: Printed) -> Bound:
        old_paths = {path for path, value in old_leaves if _prints_as(value, a)}
        for path, value in new_leaves:
            if path in old_paths and _prints_as(value, b):
                return tolerance.bound_for(path)
        return fallback
    return bound_of


def _leaves(data, path: tuple = ()) -> list[tuple[tuple, float]]:
    if is_number(data):
        return [(path, float(data))]
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in _leaves(value, path + (key,))]
    if isinstance(data, list):
        return [leaf for i, value in enumerate(data) for leaf in _leaves(value, path + (i,))]
    return []


def _prints_as(value: float, printed: Printed) -> bool:
    """`value` printed with `printed`'s digits gives it (a rounding apart, or a percentage)."""
    slack = printed.quantum / 2 + 1e-12 * abs(printed.value)
    return abs(value - printed.value) <= slack or abs(100 * value - printed.value) <= slack


def _first_line_difference(old: str, new: str) -> str:
    a_lines, b_lines = old.splitlines(), new.splitlines()
    for a, b in zip(a_lines + [""] * len(b_lines), b_lines + [""] * len(a_lines)):
        if a != b:
            return f"{a.strip()[:70]!r} -> {b.strip()[:70]!r}"
    return "line breaks"


def compare_data(old, new, tolerance: Tolerance, path: tuple = ()) -> Comparison:
    """Two JSON trees: the same shape and keys, text equal, every number within the bound for
    its path (`Tolerance.bound_for`)."""
    if old == new and type(old) is type(new):
        return SAME
    where = path_text(path)
    if is_number(old) and is_number(new):
        bound = tolerance.bound_for(path)
        exact_ints = isinstance(old, int) and isinstance(new, int) and not bound.declared
        if (old == new) if exact_ints else bound.allows(float(old), float(new)):
            return Comparison(False, True, f"{where}: {_short(old)} -> {_short(new)}, within {bound}")
        return Comparison(False, False, f"{where}: {_short(old)} -> {_short(new)} (beyond {bound})")
    if isinstance(old, dict) and isinstance(new, dict):
        if list(old) != list(new):
            return Comparison(False, False, f"{where or 'the result'}: keys {list(old)} -> {list(new)}")
        parts = [compare_data(old[k], new[k], tolerance, path + (k,)) for k in old]
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return Comparison(False, False, f"{where or 'the result'}: {len(old)} items -> {len(new)}")
        parts = [compare_data(a, b, tolerance, path + (i,)) for i, (a, b) in enumerate(zip(old, new))]
    else:
        return Comparison(False, False, f"{where or 'the result'}: {_short(old)} -> {_short(new)}")
    return combine(parts)


def combine(parts: list[Comparison]) -> Comparison:
    """All of `parts` at once: the first real change, else the first move within bounds."""
    for part in parts:
        if not part.reproduced:
            return part
    moved = [part for part in parts if not part.same]
    return Comparison(not moved, True, moved[0].detail if moved else "")


def compare_table(old: dict, new: dict, tolerance: Tolerance) -> Comparison:
    """A value table (columns, rows of raw cells): each cell within its column's bound (a
    `name | value` table: within its row name's bound)."""
    if old == new:
        return SAME
    if old.get("columns") != new.get("columns") or len(old.get("rows", [])) != len(new.get("rows", [])):
        return Comparison(False, False, "the table's columns or rows")
    columns = old["columns"]
    parts = []
    for r, (a_row, b_row) in enumerate(zip(old["rows"], new["rows"])):
        if columns == ["name", "value"]:
            if a_row[0] != b_row[0]:
                return Comparison(False, False, f"row {a_row[0]!r} -> {b_row[0]!r}")
            parts.append(compare_data(a_row[1], b_row[1], tolerance, (str(a_row[0]),)))
        else:
            parts += [compare_data(a, b, tolerance, (str(c),)) for c, a, b in zip(columns, a_row, b_row)]
    return combine(parts)


def compare_svg(old: str, new: str, pixels: float) -> Comparison:
    """Two SVG figures: the same drawing, every coordinate within `pixels` (ids that
    matplotlib draws at random aside)."""
    def shape(text: str) -> str:
        return re.sub(r'id="[^"]*"|url\(#[^)]*\)|xlink:href="#[^"]*"', "", text)
    old, new = shape(old), shape(new)
    if old == new:
        return SAME
    bound = Bound(absolute=pixels)
    old_pieces, old_numbers = split_numbers(old)
    new_pieces, new_numbers = split_numbers(new)
    if old_pieces != new_pieces or len(old_numbers) != len(new_numbers):
        return Comparison(False, False, "the drawing differs (other marks or text)")
    worst = max((abs(a.value - b.value) for a, b in zip(old_numbers, new_numbers)), default=0.0)
    if worst <= SUBPIXEL:
        return SAME
    if worst <= pixels:
        return Comparison(False, True, f"moved at most {worst:.2g} px, within {pixels:g} px")
    return Comparison(False, False, f"a mark moved {worst:.2g} px (beyond {bound.absolute:g} px)")


def path_text(path: tuple) -> str:
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_]\w*", key):
            out += ("." if out else "") + key
        else:
            out += f'["{key}"]'
    return out


def is_number(value) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
