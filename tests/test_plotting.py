import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import helpers
from helpers.plotting import RULE_COLORS, label_axes, plot_runs, rule_color


def test_importing_helpers_sets_the_style():
    matplotlib.rcdefaults()
    helpers.apply_style()
    assert (
        matplotlib.rcParams["axes.spines.top"] is False
        and matplotlib.rcParams["axes.grid"] is True
    )


def test_every_rule_has_a_distinct_colour_and_unknown_rules_fail():
    main = ["backprop", "dfa", "local_errors", "sparse"]
    assert len({RULE_COLORS[r] for r in main}) == len(main)
    with pytest.raises(KeyError, match="known"):
        rule_color("hebbian")


def test_plot_runs_draws_mean_and_band():
    fig, ax = plt.subplots()
    runs = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    line = plot_runs(ax, [1, 2, 3], runs, rule="dfa")
    assert (
        np.allclose(line.get_ydata(), [2, 3, 4])
        and line.get_color() == RULE_COLORS["dfa"]
    )
    assert line.get_label() == "dfa (n=2)" and len(ax.collections) == 1  # the std band
    single = plot_runs(ax, [1, 2, 3], [1, 1, 1], label="one run")
    assert single.get_label() == "one run" and len(ax.collections) == 1
    with pytest.raises(ValueError, match="3 points but x has 2"):
        plot_runs(ax, [1, 2], runs)
    label_axes(ax, "epoch", "test error (%)", title="t")
    assert ax.get_xlabel() == "epoch" and ax.get_legend() is not None
    plt.close(fig)
