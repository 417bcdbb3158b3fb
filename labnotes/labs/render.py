"""Turn lab results into HTML (template templates/lab.html) and Markdown (for mirrors)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup
from pygments import __version__ as PYGMENTS_VERSION
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from labnotes.labs.directive import LabCall, rerun_command
from labnotes.lexing import highlight
from labnotes.render_cache import content_key
from labnotes.template_errors import template_errors


@dataclass
class LabResult:
    """What a post shows for one ```lab block."""

    call: LabCall
    status: str                        # "ran", "cached" or "failed"
    output: str = ""
    value: dict | None = None
    figures: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    data: object = None                # the return value as JSON, for citations
    device_name: str = ""
    torch_version: str = ""
    error: str = ""
    traceback: str = ""
    source: str = ""                   # the callable's source, for show: source
    device: str = ""                   # the device kind it ran on: "cpu", "cuda", "mps"
    claims: tuple = ()                 # claims.Verdict of each `expect:` line, in block order

    @property
    def hardware(self) -> str:
        """`AMD EPYC CPU (AVX2)`, `NVIDIA H100 80GB HBM3 (CUDA 12.8, sm_90)`: where it ran."""
        return self.device_name or self.device.upper() or "an unknown device"

    @property
    def false_claims(self) -> tuple:
        return tuple(v for v in self.claims if not v.holds)

    @property
    def ref(self) -> str:
        return self.call.ref

    @property
    def show(self) -> tuple[str, ...]:
        return self.call.show

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def command(self) -> str:
        return rerun_command(self.call)

    @property
    def args_text(self) -> str:
        return ", ".join(f"{name}={source}" for name, source in self.call.args)

    @property
    def anchor(self) -> str:
        return f"lab-{self.call.line}"

    @property
    def wall_text(self) -> str:
        seconds = self.wall_s
        if seconds < 1:
            return f"{seconds * 1000:.0f} ms"
        if seconds < 120:
            return f"{seconds:.1f} s"
        return f"{seconds / 60:.1f} min"


def format_cell(value) -> str:
    """One number as a reader wants it: ints with thousands separators, floats to 4
    significant digits (without an exponent where one is not needed)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return _fixed(value, _decimals([value])) if _plain([value]) else f"{value:.3e}"


def format_rows(columns: list[str], rows: list[list]) -> list[list[str]]:
    """Table cells as text, one rule per column: ids whole, counts with thousands separators,
    floats with the same number of decimals down the column (so they line up)."""
    if columns == ["name", "value"]:
        return [[str(name), format_cell(value)] for name, value in rows]
    formatted = [[""] * len(columns) for _ in rows]
    for c, column in enumerate(columns):
        cells = [row[c] if c < len(row) else None for row in rows]
        numbers = [v for v in cells if isinstance(v, (int, float)) and not isinstance(v, bool)]
        floats = [v for v in numbers if isinstance(v, float)]
        decimals = _decimals(floats) if floats else 0
        plain = _plain(floats)
        for r, value in enumerate(cells):
            if value is None:
                text = ""
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                text = str(value)
            elif _is_id(column) and isinstance(value, int):
                text = str(value)
            elif floats and plain:
                text = _fixed(float(value), decimals)
            elif floats:
                text = f"{float(value):.3e}"
            else:
                text = f"{value:,}"
            formatted[r][c] = text
    return formatted


def numeric_columns(columns: list[str], rows: list[list]) -> list[bool]:
    """Which columns hold numbers only (empty cells aside): they are set flush right, so
    that digits of the same place line up down the column."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    flags = []
    for c in range(len(columns)):
        cells = [row[c] for row in rows if c < len(row) and row[c] is not None]
        flags.append(bool(cells) and all(number(value) for value in cells))
    return flags


def _is_id(column: str) -> bool:
    name = column.lower().replace(" ", "_")
    return name in ("id", "ids", "token", "rank") or name.endswith(("_id", "_ids"))


def _plain(floats: list[float]) -> bool:
    """Fixed-point reads well unless a value is tiny or huge."""
    finite = [abs(v) for v in floats if v == v and v not in (float("inf"), float("-inf"))]
    return all(v == 0 or 1e-4 <= v < 1e9 for v in finite)


def _decimals(floats: list[float]) -> int:
    """Decimals that give the column's smallest value 4 significant digits (at most 6)."""
    import math
    needed = [3 - math.floor(math.log10(abs(v))) for v in floats
              if v == v and v not in (0.0, float("inf"), float("-inf"))]
    return max(0, min(6, max(needed, default=1)))


def _fixed(value: float, decimals: int) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:,.{decimals}f}"


_GAP = re.compile(r"(?<=\S) {2,}(?=\S)")   # two or more spaces between two words: a column break


def _columns(line: str) -> int:
    """How many column breaks a printed line has (aligned output puts two spaces or more
    between its fields; prose and samples put one)."""
    return len(_GAP.findall(line))


def _edges(line: str) -> set[int]:
    """Where the line's columns end and start (either side of each break)."""
    return {edge for gap in _GAP.finditer(line) for edge in gap.span()}


def output_blocks(output: str) -> list[tuple[bool, str]]:
    """Printed output cut into runs of lines: (True, text) for a table the lab printed
    (columns aligned with spaces), which must keep its alignment and scroll on a narrow
    screen, (False, text) for everything else, which wraps.

    A table holds at least two lines with two column breaks or more (three columns), the
    lines next to them whose breaks line up with theirs, and up to two header lines just
    above, which have a break or an indent."""
    lines = output.split("\n")
    table = [_columns(line) >= 2 for line in lines]
    grown = True
    while grown:                     # take in neighbours whose columns line up
        grown = False
        for i, line in enumerate(lines):
            if not table[i] and _columns(line) and any(
                    0 <= j < len(lines) and table[j] and _edges(line) & _edges(lines[j])
                    for j in (i - 1, i + 1)):
                table[i] = grown = True
    blocks: list[list] = []          # [is a table, lines]
    for line, in_table in zip(lines, table):
        if blocks and blocks[-1][0] == in_table:
            blocks[-1][1].append(line)
        else:
            blocks.append([in_table, [line]])
    for number, block in enumerate(blocks):
        if block[0] and sum(_columns(line) >= 2 for line in block[1]) < 2:
            block[0] = False
        elif block[0] and number > 0 and not blocks[number - 1][0]:   # its header lines
            above = blocks[number - 1][1]
            header = 0
            while header < min(2, len(above)) and above[-1 - header].strip() and \
                    (_columns(above[-1 - header]) or above[-1 - header].startswith("  ")):
                header += 1
            if header:
                block[1][:0] = above[-header:]
                del above[-header:]
    return [(in_table, "\n".join(run)) for in_table, run in blocks if run]


def output_html(output: str) -> Markup:
    """Printed output for `<pre class="lab-output">`: each table in its own non-wrapping band,
    `<span class="lab-output-table">`, the rest as text that wraps. The text is unchanged
    (a band holds its lines' newlines, so no blank line appears around it)."""
    blocks = output_blocks(output)
    parts = []
    for number, (table, text) in enumerate(blocks):
        if number < len(blocks) - 1:
            text += "\n"
        parts.append(Markup('<span class="lab-output-table">{}</span>').format(text) if table
                     else Markup.escape(text))
    return Markup("").join(parts)


def output_with_note(output: str, dropped: int) -> str:
    """Captured output, with a visible note when the lab printed too much."""
    if dropped:
        return output + f"\n[output cut: {dropped:,} more characters not shown]"
    return output


BUILTIN_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


class LabRenderer:
    """Renders LabResults and sources; one per build (it holds the Jinja environment).

    A site's templates folder may override lab.html, labsource.html or both: each
    template is looked up there first, then among the generator's own.
    """

    def __init__(self, templates: Path | None = None, remember=None):
        """`remember(kind, key, make)` (a `RenderCache.get`) keeps highlighted source from one
        build to the next: Pygments is most of what re-rendering a post's lab blocks costs."""
        self.remember = remember
        folders = [str(f) for f in (templates, BUILTIN_TEMPLATES) if f is not None]
        self.folders = list(dict.fromkeys(folders))
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(self.folders),
                                      autoescape=True, keep_trailing_newline=False)
        self.env.filters["cell"] = format_cell
        self.env.globals["format_rows"] = format_rows
        self.env.globals["numeric_columns"] = numeric_columns
        self.env.filters["output_html"] = output_html
        self.formatter = HtmlFormatter(cssclass="highlight")

    def _highlight(self, source: str) -> Markup:
        def make() -> str:
            return highlight(source, PythonLexer(), self.formatter)
        if self.remember is None:
            return Markup(make())
        return Markup(self.remember("highlight", content_key(PYGMENTS_VERSION, source), make))

    def lab_html(self, result: LabResult) -> str:
        source_html = self._highlight(result.source) if "source" in result.show and \
            result.source else ""
        with template_errors(self.folders):
            return self.env.get_template("lab.html").render(lab=result, source_html=source_html)

    def source_html(self, ref: str, source: str, file: str, line: int) -> str:
        source_html = self._highlight(source)
        with template_errors(self.folders):
            return self.env.get_template("labsource.html").render(
                ref=ref, source_html=source_html, file=file, line=line)


def lab_markdown(result: LabResult) -> str:
    """A lab as Markdown: outputs as text, figures as links (made absolute by the mirror)."""
    parts = [f"**Lab** `{result.ref}`" + (f" ({result.args_text})" if result.args_text else "")]
    if "source" in result.show and result.source:
        parts.append(fence(result.source, "python"))
    if result.failed:
        parts.append(f"This lab failed: {result.error}")
        if result.traceback:
            parts.append(fence(result.traceback, "text"))
    if "output" in result.show and result.output:
        parts.append("Output:\n\n" + fence(result.output, "text"))
    value = result.value if "value" in result.show else None
    if value and value["kind"] == "tensor":
        shape = ", ".join(map(str, value["shape"]))
        parts.append(f"Value: tensor, shape ({shape}), {value['dtype']}\n\n"
                     + fence(value["text"], "text"))
    elif value and value["kind"] == "table":
        parts.append("Value:\n\n" + markdown_table(value["columns"], value["rows"]))
    elif value:
        parts.append("Value:\n\n" + fence(value["text"], "text"))
    if "figures" in result.show:
        for figure in result.figures:
            alt = figure["alt"].replace("[", "(").replace("]", ")")
            parts.append(f"![{alt}](/labs/{figure['file']})")
    if result.claims:
        parts.append("Claims checked on every build:\n\n" + "\n".join(
            claim_markdown(verdict) for verdict in result.claims))
    provenance = "" if result.failed else (
        f"Ran on {result.device_name} with torch {result.torch_version} in {result.wall_text}. ")
    parts.append(f"*{provenance}Rerun:* `{result.command}`")
    return "\n\n".join(parts)


def claim_markdown(verdict) -> str:
    """A claim as a list item of the mirror: "- `forward_max < 1e-6`: holds (forward_max = 1.2e-07)"."""
    if verdict.holds:
        state = "holds"
    else:
        state = f"cannot be checked: {verdict.error}" if verdict.error else "is FALSE"
    values = f" ({verdict.values_text})" if verdict.values_text else ""
    return f"- `{verdict.claim.text}`: {state}{values}"


def source_markdown(ref: str, source: str) -> str:
    return f"**Source of** `{ref}`\n\n" + fence(source, "python")


def fence(text: str, language: str) -> str:
    """A fenced code block whose fence is longer than any backtick run inside."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


def markdown_table(columns: list[str], rows: list[list]) -> str:
    """A value table in Markdown, cells formatted as on the page."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(str(c)) for c in columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |"
              for row in format_rows(columns, rows)]
    return "\n".join(lines)


def value_text(value: dict | None) -> str:
    """A lab's value as the page shows it, as text."""
    if not value:
        return ""
    if value.get("kind") == "table":
        return markdown_table(value["columns"], value["rows"])
    return value.get("text", "")
