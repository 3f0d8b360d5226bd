"""Chapter 7's grid (helpers.fashion_table): its runs, the gap interval, the verdict
rule, the data fallback, and a real smoke-size run of every piece on generated data."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from conftest import make_fake_mnist

from helpers import dfa_table, local_table, runs, sparse, sparse_table
from helpers import fashion_table as ft
from helpers.data import DataError, load_mnist
from helpers.params import ParameterError

DATA = Path(os.environ.get("BOOK_DATA_DIR", "/nonexistent"))


# ------------------------------------------------------------------------- the grid
def test_parse_arch():
    assert ft.parse_arch("3x400") == [400, 400, 400]
    assert ft.parse_arch("1X800") == [800]
    for bad in ("800", "0x10", "ax3"):
        with pytest.raises(ParameterError, match="arch"):
            ft.parse_arch(bad)


def test_every_claim_runs_on_both_data_sets_with_the_claims_own_configuration():
    every = ft.TABLE.specs({"profile": "paper"})
    names = [s.name for s in every]
    assert len(names) == len(set(names))
    specs = [s for s in every if s.config["piece"] != "lrcheck"]
    seeds, archs = ft.DEFAULTS["seeds"], ft.DEFAULTS["dfa_archs"]
    per_seed_and_data = 2 * len(archs) + 3 + 2 + 2
    assert len(specs) == 2 * len(seeds) * per_seed_and_data
    by_name = {s.name: s.config for s in specs}
    for data, dataset in (("mnist", "mnist"), ("fashion", "fashion_mnist")):
        c = by_name[f"dfa-3x400-dfa-{data}-seed1"]
        assert c["hidden"] == [400] * 3 and c["dataset"] == dataset
        # chapter 4's protocol: every other setting as its table's
        ch4 = dfa_table.TABLE.specs({"profile": "paper"})[0].config
        same = {k for k in ch4 if k not in ("arch", "hidden", "rule", "seed")}
        same -= {"max_epochs", "dataset"}
        assert all(c[k] == ch4[k] for k in same)
        assert c["max_epochs"] == ft.DEFAULTS["dfa_epochs"]
        c = by_name[f"local-greedy-{data}-seed2"]
        ch3 = next(
            s.config
            for s in local_table.TABLE.specs({"profile": "paper"})
            if s.name == "greedy-seed2"
        )
        differ = {k for k in ch3 if ch3[k] != c[k]}
        assert differ <= {"epochs", "dataset", "n_pgd"}, differ
        assert c["dataset"] == dataset
        c = by_name[f"sparse-cnn1-{data}-seed0"]
        row = sparse_table.row_config(
            "Sparse CNN-1", 0, epochs=ft.DEFAULTS["sparse_epochs"]
        )
        assert {k: c[k] for k in row if k != "dataset"} == {
            k: v for k, v in row.items() if k != "dataset"
        }
        assert c["white_pixel"] == ft.WHITE[dataset]
        c = by_name[f"blog-sparse-{data}-seed0"]
        assert (c["k"], c["density"], c["lr"], c["momentum"]) == (100, 0.5, 0.01, 0.5)
    assert all(s.cost_hint_s and s.cost_hint_s > 0 for s in specs)
    smoke = ft.TABLE.specs({"profile": "smoke"})
    assert all(s.config["n_train"] == 300 for s in smoke)


def test_the_learning_rate_check_runs_each_piece_at_three_rates_on_held_out_images():
    specs = ft.TABLE.specs({"profile": "paper"})
    main = {s.name: s for s in specs if s.config["piece"] != "lrcheck"}
    check = [s for s in specs if s.config["piece"] == "lrcheck"]
    archs = ft.DEFAULTS["dfa_archs"]
    pieces = 2 * len(archs) + 3 + 2 + 2  # every rule of every claim, once
    assert ft.lr_factors(3) == [1 / 3, 1.0, 3.0]
    assert len(check) == 3 * pieces
    assert "lrcheck-x0.333-dfa-1x800-bp-fashion-seed0" in {s.name for s in check}
    assert "lrcheck-x3-blog-sparse-fashion-seed0" in {s.name for s in check}
    epochs = {
        "dfa": ("max_epochs", ft.DEFAULTS["lrcheck_dfa_epochs"]),
        "local": ("epochs", ft.DEFAULTS["lrcheck_local_epochs"]),
        "sparse": ("epochs", ft.DEFAULTS["lrcheck_sparse_epochs"]),
        "blog": ("epochs", ft.DEFAULTS["blog_epochs"]),
    }
    # what the check changes of a piece's configuration, besides its labels
    lean = {
        "dfa": set(),
        "local": {"gaussian_sigmas", "fgsm_eps", "pgd_steps", "n_pgd", "probe_epochs"},
        "sparse": {"noise_levels"},
        "blog": {"noise_levels"},
    }
    for s in check:
        c = s.config
        # Fashion-MNIST, first seed, the held-out images
        assert (c["data"], c["dataset"], c["seed"]) == ("fashion", "fashion_mnist", 0)
        assert c["n_val"] == 10_000 and c["lr_factor"] in (1 / 3, 1.0, 3.0)
        twin = main[s.name.split("-", 2)[2]].config  # the main run it checks
        assert c["piece"] == "lrcheck" and c["of"] == twin["piece"]
        assert c["lr"] == pytest.approx(twin["lr"] * c["lr_factor"], rel=1e-12)
        key, e = epochs[c["of"]]
        assert c[key] == e
        labels = {"piece", "of", "lr_factor", "n_val", "lr", key, "track_layers"}
        differ = {k for k in set(c) | set(twin) if c.get(k) != twin.get(k)}
        assert differ - labels <= lean[c["of"]], (s.name, differ)
        if c["of"] == "local":
            assert c["gaussian_sigmas"] == [] and c["fgsm_eps"] == []
            assert c.get("track_layers", []) == []
        if c["of"] in ("sparse", "blog"):
            assert c["noise_levels"] == [0.0]
        # its cost: the piece's own estimate on 50,000 training and 10,000 images
        if c["of"] == "dfa":
            scale = (50_000 / 60_000) * e / twin["max_epochs"]
            scale *= ft.LRCHECK_COST_FACTOR["dfa"] / ft.COST_FACTOR["dfa"]
            assert s.cost_hint_s == pytest.approx(scale * main_cost(main, s.name))
        assert 0 < s.cost_hint_s < 120
    total = sum(s.cost_hint_s for s in check) / 3600
    assert 0.2 < total < 0.6  # hours: a small share of the grid's
    smoke = [s for s in ft.TABLE.specs({"profile": "smoke"}) if "lrcheck" in s.name]
    assert len(smoke) == len(check)
    assert all(s.config["n_val"] == 100 and s.config["n_train"] == 300 for s in smoke)
    with pytest.raises(ParameterError, match="lrcheck_step"):
        ft.lr_factors(1)
    with pytest.raises(ParameterError, match="of='cnn'"):
        ft.train_claim_run({"piece": "lrcheck", "of": "cnn"}, None)


def main_cost(main: dict, check_name: str) -> float:
    return main[check_name.split("-", 2)[2]].cost_hint_s


def test_a_missing_fashion_set_is_run_as_mnist_only_by_name():
    specs = ft.TABLE.specs({"profile": "smoke", "fashion_dataset": "mnist"})
    fashion = [s for s in specs if s.config["data"] == "fashion"]
    assert fashion and all(s.config["dataset"] == "mnist" for s in fashion)
    assert all("fashion" in s.name for s in fashion)


def test_the_white_values_are_each_data_sets_mean_plus_two_std():
    assert ft.WHITE["mnist"] == sparse.WHITE_PIXEL
    assert ft.WHITE["fashion_mnist"] == pytest.approx(0.992)
    if not (DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip("Fashion-MNIST is not in BOOK_DATA_DIR")
    x = load_mnist(dataset="fashion_mnist", normalize="unit", root=DATA).X_train
    x = x.double()
    assert float(x.mean() + 2 * x.std()) == pytest.approx(
        ft.WHITE["fashion_mnist"], abs=1e-3
    )


# ------------------------------------------------------------------- gaps, verdicts
def test_gap_bootstrap_gives_the_gap_and_an_interval_around_it():
    out = ft.gap_bootstrap([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], n_boot=2000)
    assert out["gap"] == pytest.approx(2.0)
    lo, hi = out["ci95"]
    assert 2.0 - 1.0 - 1e-9 <= lo < 2.0 < hi <= 3.0 + 1e-9
    assert ft.gap_bootstrap([1.0, 1.0], [1.0, 1.0], n_boot=100)["ci95"] == [0.0, 0.0]
    again = ft.gap_bootstrap([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], n_boot=2000)
    assert again == out
    with pytest.raises(ValueError, match="finite"):
        ft.gap_bootstrap([1.0, float("nan")], [1.0])
    with pytest.raises(ParameterError, match="n_boot"):
        ft.gap_bootstrap([1.0], [1.0], n_boot=5)


@pytest.mark.parametrize(
    "kind, mnist, fashion, ci, limit, expected",
    [
        ("advantage", 10.0, 12.0, (5.0, 20.0), None, "holds"),
        ("advantage", 10.0, 4.0, (2.0, 9.0), None, "holds weaker"),
        ("advantage", 10.0, 4.0, (-1.0, 9.0), None, "does not hold"),
        ("advantage", 10.0, -4.0, (-6.0, -1.0), None, "does not hold"),
        ("advantage", -1.0, 3.0, (1.0, 5.0), None, "holds"),
        ("close", 0.1, 0.05, (-0.2, 0.3), 2.0, "holds"),
        ("close", 0.1, 0.5, (0.3, 0.7), 2.0, "holds weaker"),
        ("close", 0.1, 3.0, (2.5, 3.5), 2.0, "does not hold"),
        ("close", -0.2, 0.1, (-0.1, 0.3), 2.0, "holds"),
        ("close", -0.2, 0.3, (0.1, 0.5), 2.0, "holds weaker"),
        # not close on Fashion-MNIST, even if no closer on MNIST
        ("close", 5.0, 3.0, (2.5, 3.5), 2.0, "does not hold"),
    ],
)
def test_the_verdict_rule(kind, mnist, fashion, ci, limit, expected):
    out = ft.verdict(kind, mnist, fashion, ci, limit)
    assert out["verdict"] == expected and expected in ft.VERDICTS
    if mnist > 0:  # how many times MNIST's gap Fashion-MNIST's is
        assert out["ratio"] == pytest.approx(fashion / mnist)
    else:  # a ratio to a gap of the other sign says nothing (it would be negative)
        assert out["ratio"] is None


def test_the_verdict_rule_refuses_what_it_cannot_judge():
    assert ft.verdict("advantage", 0.0, 1.0, (0.5, 2.0))["ratio"] is None
    with pytest.raises(ParameterError, match="limit"):
        ft.verdict("close", 0.1, 0.2, (0.0, 0.3))
    with pytest.raises(ParameterError, match="kind"):
        ft.verdict("better", 0.1, 0.2, (0.0, 0.3))
    with pytest.raises(ValueError, match="low <= high"):
        ft.verdict("advantage", 0.1, 0.2, (0.3, 0.0))
    with pytest.raises(ValueError, match="finite"):
        ft.verdict("advantage", float("nan"), 0.2, (0.0, 0.3))


def test_gaps_are_written_in_their_units_format():
    assert ft.format_gap(0.4321, "test-error points") == "+0.43"
    assert ft.format_gap(-0.5, "Spearman ρ", (-0.91, 0.1)) == "-0.50 [-0.91, +0.10]"
    assert ft.format_gap(25_575.4, "noise score", [1_000, 40_123.6]) == (
        "+25,575 [+1,000, +40,124]"
    )
    assert ft.format_gap(None, "Spearman ρ") == "—"  # a claim not testable in the run
    with pytest.raises(ValueError, match="unit='points' is not known"):
        ft.format_gap(1.0, "points")


def test_the_verdict_as_a_phrase_gives_the_ratio_only_when_weaker():
    assert ft.verdict_text({"verdict": "holds", "ratio": 0.8}) == "holds"
    assert ft.verdict_text({"verdict": "holds weaker", "ratio": 0.456}) == (
        "holds weaker, ratio of the gaps 0.46"
    )
    assert ft.verdict_text({"verdict": "holds weaker", "ratio": None}) == (
        "holds weaker"
    )
    assert ft.verdict_text({"verdict": "does not hold", "mnist_shown": False}) == (
        "does not hold; not shown on MNIST in this run either"
    )
    assert ft.verdict_text(
        {"verdict": "holds weaker", "ratio": 2.0, "mnist_shown": False}
    ) == ("holds weaker, ratio of the gaps 2.00; not shown on MNIST in this run")
    assert ft.verdict_text(
        {"verdict": ft.UNTESTABLE, "why": "3 good fits", "mnist_shown": None}
    ) == ("not testable in our run (3 good fits)")


@pytest.mark.parametrize(
    "kind, ci, limit, expected",
    [
        ("advantage", (0.1, 3.0), None, True),
        ("advantage", (0.0, 3.0), None, False),  # an interval that reaches 0
        ("advantage", (-2.0, -1.0), None, False),
        ("close", (0.5, 3.0), 0.5, True),  # reaches down to the limit
        ("close", (0.6, 3.0), 0.5, False),
        ("close", (-1.0, 0.2), 0.0, True),
    ],
)
def test_shown_is_the_claims_own_test_on_one_data_set(kind, ci, limit, expected):
    assert ft.shown(kind, ci, limit) is expected
    # verdict applies the same test to Fashion-MNIST's interval
    gap = sum(ci) / 2
    assert (ft.verdict(kind, 1.0, gap, ci, limit)["verdict"] != "does not hold") is (
        expected
    )


def test_shown_refuses_what_it_cannot_judge():
    with pytest.raises(ParameterError, match="limit"):
        ft.shown("close", (0.0, 1.0))
    with pytest.raises(ParameterError, match="kind"):
        ft.shown("better", (0.0, 1.0))
    with pytest.raises(ValueError, match="low <= high"):
        ft.shown("advantage", (1.0, 0.0))


# ------------------------------------------------------------ the learning-rate check
def check_record(of, factor, value, n_val=10_000, **config) -> dict:
    """A learning-rate check record as the trainers write it (only what is read)."""
    lr = {"dfa": 1e-4, "local": 1e-3, "sparse": 0.01, "blog": 0.01}[of] * factor
    metrics = {
        "dfa": {"test_err_last": 1 - value / 100},
        "local": {"output_acc": value / 100},
        "sparse": {"acc_last": value},
        "blog": {"acc": value},
    }[of]
    c = {"piece": "lrcheck", "of": of, "lr_factor": factor, "lr": lr, **config}
    return {"config": c, "metrics": metrics, "data": {"n_test": n_val}}


def test_lr_check_reads_each_rules_held_out_accuracy_and_picks_the_best_rate():
    dfa = {"arch": "1x800", "rule": "dfa"}
    bp = {"arch": "1x800", "rule": "bp"}
    records = [
        check_record("dfa", 1 / 3, 80.0, **dfa),
        check_record("dfa", 1.0, 82.0, **dfa),
        check_record("dfa", 3.0, 85.0, **dfa),
        check_record("dfa", 1 / 3, 86.0, **bp),
        check_record("dfa", 1.0, 87.0, **bp),
        check_record("dfa", 3.0, 87.0, **bp),  # a tie: the source's rate
        check_record("local", 1 / 3, 70.0, network="greedy"),
        check_record("local", 1.0, 70.0, network="greedy"),
        check_record("local", 3.0, 70.3, network="greedy"),
        check_record("sparse", 1.0, 90.0, row="Dense CNN-1"),
        check_record("sparse", 3.0, 89.0, row="Dense CNN-1"),
        check_record("blog", 1.0, 80.0, kind="sparse"),
        {"config": {"piece": "dfa"}, "metrics": {}},  # not a check: ignored
    ]
    out = ft.lr_check(records)
    assert set(out) == {"dfa", "local", "sparse", "blog"}
    d = out["dfa"]["1x800 DFA"]
    assert d["acc"] == pytest.approx({1 / 3: 80.0, 1.0: 82.0, 3.0: 85.0})
    assert d["lr"][3.0] == pytest.approx(3e-4) and d["n_val"] == 10_000
    assert d["best"] == 3.0 and d["gain"] == pytest.approx(3.0)
    assert d["se"] == pytest.approx(100 * (2 * 0.82 * 0.18 / 10_000) ** 0.5)
    b = out["dfa"]["1x800 backprop"]
    assert b["best"] == 1.0 and b["gain"] == 0.0
    assert out["local"]["greedy"]["best"] == 3.0  # any gain counts when z = 0
    assert out["sparse"]["Dense CNN-1"]["best"] == 1.0
    assert out["blog"]["blog post's sparse CNN"]["best"] == 1.0
    # with z = 2 a gain of 0.3 points on 10,000 images (se 0.65) is not a better rate
    strict = ft.lr_check({f"r{i}": r for i, r in enumerate(records)}, z=2)
    assert strict["local"]["greedy"]["best"] == 1.0
    assert strict["local"]["greedy"]["gain"] == 0.0
    assert strict["dfa"]["1x800 DFA"]["best"] == 3.0  # 3 points: > 2 se (1.09)
    # two rates beating the source's equally: the one nearer the source's
    tie = [
        check_record("blog", 1 / 9, 81.0, kind="dense"),
        check_record("blog", 1.0, 80.0, kind="dense"),
        check_record("blog", 3.0, 81.0, kind="dense"),
    ]
    assert ft.lr_check(tie)["blog"]["blog post's dense CNN"]["best"] == 3.0
    with pytest.raises(ValueError, match="factor 1"):
        ft.lr_check([check_record("sparse", 3.0, 90.0, row="Dense CNN-1")])
    with pytest.raises(ParameterError, match="z="):
        ft.lr_check(records, z=-1)


def test_lr_tilt_says_which_rule_the_sources_rate_favours():
    def piece(gains):  # rule -> its accuracy at factors 1 and 3
        return ft.lr_check(
            [
                check_record("dfa", f, 80.0 + g * (f == 3.0), arch="1x800", rule=r)
                for r, g in gains.items()
                for f in (1.0, 3.0)
            ]
        )["dfa"]

    both = ft.lr_tilt(piece({"dfa": 0.0, "bp": -1.0}), "1x800 DFA", "1x800 backprop")
    assert both["tilt"] == 0.0 and both["favours"] is None
    assert "best of the three for both 1x800 DFA and 1x800 backprop" in both["sentence"]
    against = ft.lr_tilt(piece({"dfa": 3.0, "bp": 1.0}), "1x800 DFA", "1x800 backprop")
    assert against["tilt"] == pytest.approx(2.0)
    assert against["favours"] == "1x800 backprop"
    assert "1x800 DFA scores 3.0 points higher at 0.0003" in against["sentence"]
    assert "favours 1x800 backprop by about 2.0 points" in against["sentence"]
    favours = ft.lr_tilt(piece({"dfa": 0.0, "bp": 1.5}), "1x800 DFA", "1x800 backprop")
    assert favours["tilt"] == pytest.approx(-1.5)
    assert favours["favours"] == "1x800 DFA"
    assert "1x800 DFA does best at the source's rate" in favours["sentence"]
    assert "favours 1x800 DFA by about 1.5 points" in favours["sentence"]
    same = ft.lr_tilt(piece({"dfa": 1.0, "bp": 1.0}), "1x800 DFA", "1x800 backprop")
    assert same["tilt"] == 0.0 and same["favours"] is None
    assert "favours neither" in same["sentence"]

    # with z standard errors: a tilt within the noise of a difference of two gains
    # favours neither rule; a larger one does
    check = piece({"dfa": 3.0, "bp": 1.0})
    se = check["1x800 DFA"]["se"]
    assert se == pytest.approx(check["1x800 backprop"]["se"])  # same accuracy, 80 %
    noise = 4 * math.sqrt(2) * se  # z = 4, two equal standard errors
    assert 2.0 < noise  # the tilt of 2.0 points is within it
    within = ft.lr_tilt(check, "1x800 DFA", "1x800 backprop", z=4)
    assert within["tilt"] == pytest.approx(2.0)
    assert within["noise"] == pytest.approx(noise)
    assert within["favours"] is None
    assert "leans towards 1x800 backprop by 2.0 points" in within["sentence"]
    assert "favours neither measurably" in within["sentence"]
    beyond = ft.lr_tilt(check, "1x800 DFA", "1x800 backprop", z=2)
    assert beyond["favours"] == "1x800 backprop" and 2.0 > beyond["noise"]
    assert "favours 1x800 backprop by about 2.0 points" in beyond["sentence"]
    with pytest.raises(ParameterError, match="z=-1"):
        ft.lr_tilt(check, "1x800 DFA", "1x800 backprop", z=-1)


# --------------------------------------------------------------------------- the data
def test_without_fashion_mnist_smoke_falls_back_to_mnist_and_paper_stops(
    offline, tmp_path, monkeypatch
):
    # offline: no BOOK_DATA_DIR, an empty cache, no network
    dataset, warning = ft.choose_dataset("smoke")
    assert dataset == "mnist" and "fashion_mnist is missing" in warning
    assert "MNIST in its place" in warning and "BOOK_DATA_DIR" in warning
    with pytest.raises(DataError, match="FashionMNIST/raw/") as e:
        ft.choose_dataset("paper")
    assert "BOOK_DATA_DIR" in str(e.value)
    make_fake_mnist(tmp_path / "d", folder="FashionMNIST")
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "d"))
    assert ft.choose_dataset("paper") == ("fashion_mnist", None)
    assert ft.choose_dataset("smoke", "mnist") == ("mnist", None)


# ------------------------------------------------------------------- the pieces, run
def test_blog_cnn_pair():
    torch.manual_seed(0)
    dense, sparse_net = ft.blog_cnn("dense"), ft.blog_cnn("sparse")
    x = torch.randn(3, 1, 28, 28)
    assert dense(x).shape == sparse_net(x).shape == (3, 10)
    fc1 = sparse_net[4]
    kept = float((fc1.module.weight != 0).float().mean())
    assert kept == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ParameterError, match="kind"):
        ft.blog_cnn("medium")


def test_noise_correct_takes_the_white_value(fake_mnist_root):
    data = load_mnist(50, 40, root=fake_mnist_root)
    torch.manual_seed(0)
    net = ft.blog_cnn("dense")
    default = sparse.noise_correct(net, data, [0.0, 0.5], seed=1)
    same = sparse.noise_correct(net, data, [0.0, 0.5], seed=1, white=0.7469)
    other = sparse.noise_correct(net, data, [0.0, 0.5], seed=1, white=0.0)
    assert same == default and other[0] == default[0]
    # a black noise pixel is the minimum of the normalised range, not MNIST's 2.0
    x = sparse.add_pixel_noise(
        data.X_test,
        0.5,
        torch.Generator().manual_seed(1),
        where="normalized",
        value=(0.0 - data.mean) / data.std,
    )
    assert float(x.min()) == pytest.approx(-data.mean / data.std)


def test_every_piece_trains_on_a_tiny_folder_and_resumes(places, monkeypatch):
    root = places / "both"
    make_fake_mnist(root)
    make_fake_mnist(root, folder="FashionMNIST", seed=1)
    monkeypatch.setenv("BOOK_DATA_DIR", str(root))
    specs = ft.TABLE.specs(
        {"profile": "smoke", "seeds": [0], "n_train": 200, "n_test": 100}
    )
    # the learning-rate check at the source's rate only (the other rates: same code)
    specs = [
        s
        for s in specs
        if "3x400" not in s.name and not s.name.startswith(("lrcheck-x0", "lrcheck-x3"))
    ]
    records = runs.ensure(specs, verbose=False)
    for name, r in records.items():
        want = "fashion_mnist" if "-fashion-" in name else "mnist"
        assert r["data"]["dataset"] == want
    assert records["blog-sparse-fashion-seed0"]["config"][
        "white_pixel"
    ] == pytest.approx(0.992)
    assert len(records["blog-dense-mnist-seed0"]["metrics"]["noise_acc"]) == 11
    assert "test_err_last" in records["dfa-1x800-dfa-mnist-seed0"]["metrics"]
    assert "spectra" in records["local-greedy-fashion-seed0"]["metrics"]
    assert "noise_score_last" in records["sparse-cnn1-fashion-seed0"]["metrics"]
    # the learning-rate check: trained on the rest, scored on held-out training images
    checks = {n: r for n, r in records.items() if n.startswith("lrcheck-")}
    assert len(checks) == 2 + 3 + 2 + 2
    for name, r in checks.items():
        assert r["data"]["dataset"] == "fashion_mnist", name
        n_train, n_val = r["config"]["n_train"], r["config"]["n_val"]
        assert (r["data"]["n_train"], r["data"]["n_test"]) == (n_train - n_val, n_val)
        assert r["data"]["test_set"] == "100 held-out training images"
    assert records["lrcheck-x1-local-greedy-fashion-seed0"]["metrics"]["n_test"] == 100
    out = ft.lr_check(records, z=2)
    assert set(out["dfa"]) == {"1x800 backprop", "1x800 DFA"}
    assert set(out["local"]) == {"greedy", "simultaneous", "backprop"}
    assert all(
        e["n_val"] == 100 and e["best"] == 1.0 for p in out.values() for e in p.values()
    )
    # a finished record is loaded, not retrained
    again = runs.ensure(specs, verbose=False)
    assert all(again[n]["finished_utc"] == records[n]["finished_utc"] for n in again)


def test_an_unknown_piece_is_named():
    with pytest.raises(ParameterError, match="piece='cnn'"):
        ft.train_claim_run({"piece": "cnn"}, None)
