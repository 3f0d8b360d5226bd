"""The book's one plot style: set when ``helpers`` is imported.

The same learning rule has the same colour in every chapter (:data:`RULE_COLORS`);
curves over several seeds are drawn as mean with a ±1 std band (:func:`plot_runs`).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib as mpl
import numpy as np

__all__ = [
    "RULE_COLORS",
    "CLASS_COLORS",
    "apply_style",
    "rule_color",
    "plot_runs",
    "label_axes",
]

#: One colour per learning rule, used in every chapter (Okabe-Ito, colour-blind safe).
RULE_COLORS = {
    "backprop": "#0072B2",  # blue
    "dfa": "#D55E00",  # vermilion
    "feedback_alignment": "#CC79A7",  # reddish purple
    "local_errors": "#009E73",  # bluish green
    "local_greedy": "#009E73",
    "local_simultaneous": "#56B4E9",  # sky blue
    "sparse": "#E69F00",  # orange
    "dense": "#0072B2",  # a dense net is trained with backprop
    "numpy": "#F0E442",  # yellow
    "reference": "#000000",  # a paper's number
}

#: Ten distinct colours for the ten digit classes (matplotlib's tab10).
CLASS_COLORS = [mpl.colormaps["tab10"](i) for i in range(10)]

_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "gray",
}


def apply_style() -> None:
    """Set the book's matplotlib style (idempotent)."""
    mpl.rcParams.update(_STYLE)


def rule_color(rule: str) -> str:
    """The colour of a learning rule; raises KeyError listing the known rules."""
    try:
        return RULE_COLORS[rule]
    except KeyError:
        raise KeyError(
            f"no colour for rule {rule!r}; known: {sorted(RULE_COLORS)}"
        ) from None


def plot_runs(
    ax,
    x: Sequence[float],
    runs,
    *,
    rule: str | None = None,
    label: str | None = None,
    color: str | None = None,
    **line_kwargs,
):
    """Plot the mean over seeds of ``runs`` (shape seeds × len(x), or one run) with a ±1
    std band.

    Returns the line. The band is drawn only when there are at least two runs.
    """
    Y = np.atleast_2d(np.asarray(runs, dtype=float))
    x = np.asarray(x, dtype=float)
    if Y.shape[1] != len(x):
        raise ValueError(f"runs have {Y.shape[1]} points but x has {len(x)}")
    color = color or (rule_color(rule) if rule else None)
    mean = Y.mean(0)
    n = Y.shape[0]
    suffix = f" (n={n})" if n > 1 else ""
    (line,) = ax.plot(
        x, mean, color=color, label=(label or rule or "") + suffix, **line_kwargs
    )
    if n > 1:
        std = Y.std(0, ddof=1)
        ax.fill_between(
            x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0
        )
    return line


def label_axes(
    ax, xlabel: str, ylabel: str, title: str | None = None, legend: bool | None = None
):
    """Label both axes (with units, please), set the title, and add a legend when there
    is more than one labelled artist."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if legend or (
        legend is None
        and len([lab for lab in labels if lab and not lab.startswith("_")]) > 1
    ):
        ax.legend()
    return ax
