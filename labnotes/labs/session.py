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


class Data:
    """A lab's result as claims read it (the JSON tree citations walk), with dict keys as
    attributes: `r.history[-1].val_loss`, `r["max |grad|"]`."""

    def __init__(self, tree):
        self._tree = tree

    def __getattr__(self, name: str):
        if name.startswith("_") or not isinstance(self._tree, dict) or name not in self._tree:
            raise AttributeError(f"the result has no key {name!r}")
        return _wrap(self._tree[name])

    def __getitem__(self, key):
        return _wrap(self._tree[key])

    def __len__(self) -> int:
        return len(self._tree)

    def __iter__(self):
        items = self._tree.values() if isinstance(self._tree, dict) else self._tree
        return (_wrap(item) for item in items)

    def __eq__(self, other) -> bool:
        return self._tree == (other._tree if isinstance(other, Data) else other)

    def __repr__(self) -> str:
        return repr(self._tree)


def _wrap(tree):
    return Data(tree) if isinstance(tree, (dict, list)) else tree


class LabSession:
    """`start(ref)` before a lab's call, `show(value, ...)` after it."""

    def __init__(self):
        self.state = LabState()     # taken once the notebook's set-up cell has run
        self.ref = ""

    def start(self, ref: str) -> None:
        """Put back the state the build starts `ref` from: its seed, threads, plotting defaults."""
        self.state.reset(lab_seed(ref))
        self.ref = ref

    def data(self, value) -> Data:
        """`value` as `expect:` claims read it: dataclasses as dicts, tensors as lists."""
        from labnotes.labs.capture import to_data
        return Data(to_data(value))

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
