"""Chapter 7's grid (helpers.fashion_table): its runs, the gap interval, the verdict
rule, the data fallback, and a real smoke-size run of every piece on generated data."""

from __future__ import annotations

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
    specs = ft.TABLE.specs({"profile": "paper"})
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
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
    assert out["ratio"] == pytest.approx(fashion / mnist)


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
    specs = [s for s in specs if "3x400" not in s.name]
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
    # a finished record is loaded, not retrained
    again = runs.ensure(specs, verbose=False)
    assert all(again[n]["finished_utc"] == records[n]["finished_utc"] for n in again)


def test_an_unknown_piece_is_named():
    with pytest.raises(ParameterError, match="piece='cnn'"):
        ft.train_claim_run({"piece": "cnn"}, None)
