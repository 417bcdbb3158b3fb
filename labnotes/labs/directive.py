"""Parse ```lab and ```labsource blocks into LabCall / SourceCall."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from labnotes.errors import BuildError
from labnotes.labs.claims import Claim, ClaimSyntaxError, parse_claim
from labnotes.labs.precision import Tolerance, ToleranceError, parse_tolerance
from labnotes.model import FencedBlock

SHOW_CHOICES = ("source", "output", "value", "figures")
DEFAULT_SHOW = ("output", "figures")
# parameters the engine fills in; a post may not set them
RESERVED_ARGS = {"device", "progress", "quick"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_REF = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<qualname>[A-Za-z_][\w.]*)$")
_KEY = re.compile(r"^(?P<key>[A-Za-z_]\w*)\s*:\s*(?P<value>.*)$")


class _Reference:
    """`module:qualname`, split (for dataclasses with a `ref` field)."""

    @property
    def module(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def qualname(self) -> str:
        return self.ref.split(":", 1)[1]


@dataclass(frozen=True)
class LabCall(_Reference):
    """One ```lab block: call `module:qualname(**args)` and show parts of the result."""

    ref: str                      # "labcode.labs.attention:causal_weights_demo"
    args: tuple[tuple[str, str], ...]  # (name, Python literal source), in block order
    show: tuple[str, ...] = DEFAULT_SHOW
    timeout: float | None = None
    after: str | None = None
    name: str | None = None       # `name: train`: prose cites it as {{ train.key }}
    measured: tuple[str, ...] = ()  # value keys / table columns that are measurements (timings)
    expects: tuple[Claim, ...] = ()   # `expect:` lines: claims checked against the result
    tolerance: Tolerance = Tolerance()  # `tolerance:`: how far a rerun's numbers may move
    path: Path = Path("?")
    line: int = 0                 # line of the opening fence
    ref_line: int = 0             # line of the reference itself
    arg_lines: dict = field(default_factory=dict, compare=False, hash=False)

    def kwargs(self) -> dict:
        """The keyword arguments as Python values."""
        return {name: ast.literal_eval(source) for name, source in self.args}


@dataclass(frozen=True)
class SourceCall(_Reference):
    """One ```labsource block: show the source of `module:qualname` without running it."""

    ref: str
    path: Path
    line: int
    ref_line: int


def parse_block(block: FencedBlock) -> LabCall | SourceCall:
    """Parse a fenced block; BuildError names the file and line of anything wrong."""
    lines = block.text.splitlines()
    numbered = [(block.line + 1 + i, text.strip()) for i, text in enumerate(lines)]
    numbered = [(n, t) for n, t in numbered if t and not t.startswith("#")]
    if not numbered:
        raise BuildError(block.path, f"empty ```{block.kind} block: its first line must be a "
                         "reference such as labcode.labs.attention:causal_weights_demo", block.line)
    ref_line, ref = numbered[0]
    if not _REF.match(ref):
        raise BuildError(block.path, f"{ref!r} is not a lab reference: write module:function, "
                         "e.g. labcode.labs.attention:causal_weights_demo", ref_line)
    if block.kind == "labsource":
        if len(numbered) > 1:
            raise BuildError(block.path, "a ```labsource block holds one reference and nothing "
                             "else", numbered[1][0])
        return SourceCall(ref=ref, path=block.path, line=block.line, ref_line=ref_line)

    show, timeout, after, name, measured = DEFAULT_SHOW, None, None, None, ()
    expects: list[Claim] = []
    tolerance = Tolerance()
    args: list[tuple[str, str]] = []
    arg_lines: dict[str, int] = {}
    seen: set[str] = set()
    for number, text in numbered[1:]:
        match = _KEY.match(text)
        if not match:
            raise BuildError(block.path, f"cannot read {text!r}: lab options are `key: value` "
                             "lines", number)
        key, value = match["key"], match["value"].strip()
        if key == "expect":
            try:
                expects.append(parse_claim(value, number))
            except ClaimSyntaxError as error:
                raise BuildError(block.path, str(error), number) from None
            continue
        if key in seen:
            raise BuildError(block.path, f"`{key}` is given twice in this lab", number)
        seen.add(key)
        if key == "show":
            show = _parse_show(value, block.path, number)
        elif key == "timeout":
            timeout = _parse_timeout(value, block.path, number)
        elif key == "after":
            if not _REF.match(value):
                raise BuildError(block.path, f"after: {value!r} is not a lab reference "
                                 "(module:function)", number)
            after = value
            arg_lines["after"] = number
        elif key == "measured":
            measured = tuple(p.strip() for p in value.replace(",", " ").split() if p.strip())
        elif key == "tolerance":
            try:
                tolerance = parse_tolerance(value)
            except ToleranceError as error:
                raise BuildError(block.path, f"tolerance: {error}", number) from None
        elif key == "name":
            if not _NAME.match(value):
                raise BuildError(block.path, f"name: {value!r} must be a plain identifier "
                                 "such as train or bpe_demo (prose cites it as {{ train.loss }})",
                                 number)
            name = value
        elif key in RESERVED_ARGS:
            raise BuildError(block.path, f"`{key}` is set by the build (--device, progress, "
                             "--quick); "
                             "remove it from the lab", number)
        else:
            try:
                ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise BuildError(block.path, f"the value of `{key}` is not a Python literal: "
                                 f"{value!r} (quote strings: {key}: \"...\")", number) from None
            args.append((key, value))
            arg_lines[key] = number
    return LabCall(ref=ref, args=tuple(args), show=show, timeout=timeout, after=after, name=name,
                   measured=measured, expects=tuple(expects), tolerance=tolerance,
                   path=block.path, line=block.line, ref_line=ref_line, arg_lines=arg_lines)


def _parse_show(value: str, path: Path, line: int) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in value.replace(",", " ").split() if p.strip())
    unknown = [p for p in parts if p not in SHOW_CHOICES]
    if unknown or not parts:
        raise BuildError(path, f"show: {value!r}: choose from {', '.join(SHOW_CHOICES)}", line)
    return parts


def _parse_timeout(value: str, path: Path, line: int) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise BuildError(path, f"timeout: {value!r} must be a positive number of seconds", line)
    return seconds


def rerun_command(call: LabCall) -> str:
    """The shell command that reruns this lab locally, as shown beside it."""
    import shlex

    parts = ["python", "build.py", "lab", call.ref]
    for name, source in call.args:
        parts += ["--arg", shlex.quote(f"{name}={source}")]
    return " ".join(parts)
