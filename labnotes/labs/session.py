"""Labs run by hand in Jupyter as the build runs them: a post's notebook imports this.

A build starts every lab from the same state (seeds, threads, defaults: capture.LabState)
and publishes its printed output, its value (a table, a tensor or text) and its figures (SVG
for line plots, PNG for images). `LabSession` does the same in a notebook's kernel, so a
notebook's cell, run on the machine that built the post, shows what the post shows.
"""
from __future__ import annotations

import base64

from labnotes.labs.capture import (LabState, close_figures, describe_value, figure_alt,
                                   figure_image, lab_figures)
from labnotes.labs.render import markdown_table, value_text
from labnotes.labs.runtime import lab_seed


class Published:
    """A lab's value as the post shows it: text, and a Markdown table when it is a table."""

    def __init__(self, shown: dict):
        self.shown = shown

    def __repr__(self) -> str:
        return value_text(self.shown)

    def _repr_markdown_(self) -> str | None:
        if self.shown.get("kind") != "table":
            return None
        return markdown_table(self.shown["columns"], self.shown["rows"])


class LabSession:
    """`start(ref)` before a lab's call, `show(value, ...)` after it."""

    def __init__(self):
        self.state = LabState()     # taken once the notebook's set-up cell has run
        self.ref = ""

    def start(self, ref: str) -> None:
        """Put back the state the build starts `ref` from: its seed, threads, plotting defaults."""
        self.state.reset(lab_seed(ref))
        self.ref = ref

    def show(self, value, *parts: str) -> Published | None:
        """Display what the post shows of a lab's result; `parts` as in the block's `show:`.

        Figures are displayed as the post publishes them (SVG or PNG) and then closed; the
        value comes back as a `Published` for Jupyter to show as the cell's result. What the
        lab printed is already in the cell's output, so "output" needs nothing here.
        """
        figures = lab_figures(value)
        if "figures" in parts:
            from IPython.display import display
            for number, figure in enumerate(figures, start=1):
                data, kind = figure_image(figure)
                image = {"image/svg+xml": data.decode("utf-8")} if kind == "svg" else \
                    {"image/png": base64.b64encode(data).decode("ascii")}
                display({**image, "text/plain": figure_alt(figure, number, self.ref)}, raw=True)
        close_figures()
        shown = describe_value(value) if "value" in parts else None
        return Published(shown) if shown else None
