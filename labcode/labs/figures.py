"""The house style of lab figures: drawn to be read on a phone as well as a laptop.

A post's column is about 700 px wide on a laptop and 350 px on a phone, and a figure is scaled to
fit it. Drawn `WIDTH` inches wide, with axis labels and ticks at 11 pt (titles keep
matplotlib's 12 pt, legends its 10 pt), its lettering stays close to the size of the prose on
both; panels are stacked in a column rather than set side by side, for the same reason.
"""
from __future__ import annotations

WIDTH = 5.2  # inches: the width every lab figure is drawn at


def house_style(fig):
    """Letter `fig`'s axis labels and ticks at 11 pt and tighten its layout; returns `fig`."""
    for ax in fig.axes:  # colorbars included
        ax.xaxis.label.set_fontsize(11)
        ax.yaxis.label.set_fontsize(11)
        ax.tick_params(labelsize=11)
    fig.tight_layout()
    return fig
