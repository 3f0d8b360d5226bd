"""Chapter 3's run records (helpers.local_table): what a record holds, resume after an
interruption, the grid.

The runs are real runs of the trainer on a tiny generated MNIST-shaped folder (a second
or two each).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import ParameterError
from helpers import local_table as lt
from helpers import local_errors as le
from helpers import runs
from helpers.data import load_mnist
from helpers.metrics import layer_accuracies


def config(network="greedy", **changes) -> dict:
    base = {
        "network": network,
        "seed": 3,
        "width": 16,
        "depth": 3,
        "readout_std": 0.05,
        "epochs": 3,
        "lr": 1e-2,
        "batch_size": 32,
        "n_train": 256,
        "n_test": 120,
        "norm": [0.5, 0.5],
        "dataset": "mnist",
        "rank_range": [2, 12],
        "n_spectrum": None,
        "gaussian_sigmas": [0.0, 0.3],
        "fgsm_eps": [0.0, 0.1],
        "pgd_eps": 0.05,
        "pgd_steps": 2,
        "n_pgd": 40,
    }
    if network == "greedy":
        base["track_layers"] = [1, 3]
    if network == "backprop":
        base["probe_epochs"] = 1
    return {**base, **changes}


def spec(name="tiny", network="greedy", **changes) -> runs.RunSpec:
    return runs.RunSpec(
        "99_local_table_test",
        name,
        "helpers.local_table:train_local_run",
        config(network, **changes),
        "smoke",
    )


# ------------------------------------------------------------------ what a record holds
def test_a_greedy_record_holds_curves_spectra_attacks_and_saturation(places):
    r = runs.train(spec(), verbose=False)
    c, m = r["curves"], r["metrics"]
    assert list(zip(c["layer"], c["epoch"])) == [
        (l, e) for l in (1, 2, 3) for e in (1, 2, 3)
    ]
    for key in (
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "weight_change",
        "epoch_seconds",
    ):
        assert len(c[key]) == 9 and all(isinstance(v, float) for v in c[key]), key
    assert all(v > 0 for v in c["weight_change"])
    # the spectra of layers 1 and 3 before their training (epoch 0) and after every
    # epoch
    assert list(zip(c["track_layer"], c["track_epoch"])) == [
        (l, e) for l in (1, 3) for e in range(4)
    ]
    assert len(c["track_alpha"]) == len(c["track_total_variance"]) == 8
    # each layer's final accuracy is the last epoch of its own training
    assert (
        m["layer_acc"] == [c["test_acc"][3 * l - 1] for l in (1, 2, 3)]
        and m["output_acc"] == m["layer_acc"][-1]
    )
    assert (
        m["network"] == "greedy"
        and m["seed"] == 3
        and m["n_test"] == 120
        and m["n_pgd_digits"] == 40
    )
    for layer in ("1", "2", "3"):
        s = m["spectra"][layer]
        assert {
            "alpha",
            "r2",
            "participation_ratio",
            "rank_lo",
            "rank_hi",
            "dead_units",
            "n_positive",
            "total_variance",
            "log_amplitude",
            "fit_error",
        } <= set(s)
        assert s["rank_lo"] == 2 and s["rank_hi"] <= 12 and 0 <= s["dead_units"] <= 16
        rob = m["robustness"][layer]
        assert set(rob["gaussian"]) == {"0.0", "0.3"} and set(rob["fgsm"]) == {
            "0.0",
            "0.1",
        }
        assert {"clean", "pgd", "pgd_subset_fgsm", "pgd_subset_clean"} <= set(rob)
        assert set(m["alpha_perturbed"][layer]["gaussian"]) == {"0.0", "0.3"}
        sat = m["saturation"][layer]
        assert 0 <= sat["zero_loss"] <= 1 and sat["min_margin"] <= sat["median_margin"]
    ranks = m["eigenvalues"]["ranks"]
    assert (
        ranks[0] == 1
        and ranks[-1] == 16
        and len(m["eigenvalues"]["layers"]["2"]) == len(ranks)
    )
    assert r["epochs_run"] == 9 and r["numerics"] == "1"


def test_a_perturbation_of_size_zero_gives_the_clean_accuracy_and_alpha_exactly(places):
    """Alpha under attack is measured on the representation of the perturbed digits: at
    size 0 they are the clean digits, and at a larger size they are not."""
    m = runs.train(spec(), verbose=False)["metrics"]
    for layer in ("1", "2", "3"):
        clean, pert, rob = (
            m["spectra"][layer],
            m["alpha_perturbed"][layer],
            m["robustness"][layer],
        )
        for kind in ("gaussian", "fgsm"):
            assert (
                pert[kind]["0.0"]["alpha"] == clean["alpha"]
                and pert[kind]["0.0"]["r2"] == clean["r2"]
            )
            assert rob[kind]["0.0"] == rob["clean"]
        assert pert["gaussian"]["0.3"]["total_variance"] != clean["total_variance"]
        assert pert["fgsm"]["0.1"]["total_variance"] != clean["total_variance"]


@pytest.mark.parametrize("network", ["simultaneous", "backprop"])
def test_simultaneous_and_backprop_records(places, network):
    r = runs.train(spec(network=network), verbose=False)
    c, m = r["curves"], r["metrics"]
    assert c["epoch"] == [1, 2, 3] and all(len(w) == 3 for w in c["weight_change"])
    assert len(m["layer_acc"]) == 3 and set(m["spectra"]) == {"1", "2", "3"}
    if network == "simultaneous":
        assert c["layer_test_acc"][-1] == m["layer_acc"] and "saturation" in m
    else:  # the hidden layers are read by linear probes, the output by the trained head
        assert c["test_acc"][-1] == m["output_acc"] and "output_saturation" in m
        assert "track_layer" not in c


def test_n_val_scores_the_network_on_held_out_training_digits(places):
    s = spec("held-out", network="simultaneous", n_val=100)
    r = runs.train(s, verbose=False)
    assert (r["data"]["n_train"], r["data"]["n_test"]) == (156, 100)
    assert r["data"]["test_set"] == "100 held-out training images"
    assert r["metrics"]["n_test"] == 100
    # the saved network's accuracies, recomputed on the held-out digits
    net = le.LocalErrorNet(784, 16, 3, readout_std=0.05)
    net.load_state_dict(
        torch.load(runs.checkpoint_path(s), weights_only=True)["objects"]["net"]
    )
    data = load_mnist(256, 120, normalize=(0.5, 0.5), flatten=True)
    held = data.holdout(100, seed=runs.VAL_SEED)
    assert layer_accuracies(net, held.X_test, held.y_test) == r["metrics"]["layer_acc"]


# --------------------------------------------------------------------------- resume
class Interrupted(Exception):
    pass


def interrupt_after(monkeypatch, k: int):
    """Make the next run stop right after its k-th checkpoint (as a process killed then
    would).
    """
    real = runs.RunContext.checkpoint

    def checkpoint(self, epoch, **objects):
        real(self, epoch, **objects)
        if epoch == k:
            raise Interrupted

    monkeypatch.setattr(runs.RunContext, "checkpoint", checkpoint)
    return lambda: monkeypatch.setattr(runs.RunContext, "checkpoint", real)


def untimed(record: dict) -> tuple[dict, dict]:
    curves = {k: v for k, v in record["curves"].items() if k != "epoch_seconds"}
    metrics = {
        k: v
        for k, v in record["metrics"].items()
        if not k.endswith("seconds") and "seconds_" not in k
    }
    return curves, metrics


@pytest.mark.parametrize(
    "network, k",
    [("greedy", 4), ("greedy", 3), ("simultaneous", 1), ("backprop", 2)],
    ids=["greedy-inside-layer-2", "greedy-between-layers", "simultaneous", "backprop"],
)
def test_an_interrupted_run_resumes_bit_identical_to_an_uninterrupted_one(
    places, monkeypatch, network, k
):
    clean = runs.train(spec("clean", network), verbose=False)
    resumed_spec = spec("resumed", network)
    restore = interrupt_after(monkeypatch, k)
    with pytest.raises(Interrupted):
        runs.train(resumed_spec, verbose=False)
    restore()
    resumed = runs.train(resumed_spec, verbose=False)
    assert (
        resumed["resumed_after_epochs"] == [k] and clean["resumed_after_epochs"] == []
    )
    assert untimed(resumed) == untimed(clean)
    a = torch.load(runs.checkpoint_path(spec("clean", network)), weights_only=True)[
        "objects"
    ]
    b = torch.load(runs.checkpoint_path(resumed_spec), weights_only=True)["objects"]
    assert a["net"].keys() == b["net"].keys()
    for key, tensor in a["net"].items():
        assert torch.equal(tensor, b["net"][key]), key
    assert torch.equal(a["batches"], b["batches"])


def test_the_resume_check_is_not_vacuous(places, monkeypatch):
    """Without the optimiser's state a resumed greedy layer ends elsewhere: the
    comparison above can fail."""
    clean = runs.train(spec("clean"), verbose=False)
    restore = interrupt_after(monkeypatch, 4)
    with pytest.raises(Interrupted):
        runs.train(spec("resumed"), verbose=False)
    restore()
    monkeypatch.setattr(
        lt._OptimizerSlot,
        "attach",
        lambda self, opt, resume: setattr(self, "optimizer", opt),
    )
    resumed = runs.train(spec("resumed"), verbose=False)
    assert (
        untimed(resumed)[1]["layer_acc"] != untimed(clean)[1]["layer_acc"]
        or untimed(resumed)[0]["train_loss"] != untimed(clean)[0]["train_loss"]
    )


# ------------------------------------------------------------------ pieces and the grid
def test_spectrum_fit_reports_a_fit_it_cannot_make():
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.0, 0.0])
    f = lt.spectrum_fit(s, [1, 6])
    assert f["alpha"] is None and f["r2"] is None and "min_points" in f["fit_error"]
    assert (
        f["n_positive"] == 4
        and f["total_variance"] == 7.5
        and f["participation_ratio"] > 1
    )
    ok = lt.spectrum_fit(1.0 / np.arange(1, 41), [2, 30])
    assert (
        ok["alpha"] == pytest.approx(1.0)
        and ok["r2"] == pytest.approx(1.0)
        and ok["fit_error"] is None
    )


def test_log_ranks():
    assert lt.log_ranks(5) == [1, 2, 3, 4, 5]
    r = lt.log_ranks(1000)
    assert (
        r[0] == 1
        and r[-1] == 1000
        and len(r) <= lt.SPECTRUM_POINTS
        and r == sorted(set(r))
    )
    with pytest.raises(ValueError):
        lt.log_ranks(0)


def test_the_grid_has_one_run_per_network_and_seed_with_only_its_settings():
    specs = lt.TABLE.specs({"seeds": [0, 1]}, "paper")
    assert [s.name for s in specs] == [
        f"{n}-seed{s}" for n in lt.NETWORKS for s in (0, 1)
    ]
    by_name = {s.name: s.config for s in specs}
    assert (
        by_name["greedy-seed0"]["track_layers"] == [1, 3, 5]
        and "probe_epochs" not in by_name["greedy-seed0"]
    )
    assert (
        by_name["backprop-seed1"]["probe_epochs"] == 5
        and "track_layers" not in by_name["backprop-seed1"]
    )
    assert all(c["epochs"] == 30 and c["width"] == 1000 for c in by_name.values())
    smoke = lt.TABLE.specs({"profile": "smoke"})
    assert all(s.profile == "smoke" and s.config["width"] == 48 for s in smoke)
    # the estimate: hours at the source's budget, more for more epochs, seconds in the
    # smoke profile
    cost = {s.name: s.cost_hint_s for s in specs}
    assert (
        600 < cost["greedy-seed0"] < 4 * 3600
        and cost["backprop-seed0"] > cost["greedy-seed0"] / 2
    )
    longer = lt.TABLE.specs({"seeds": [0], "epochs": 60}, "paper")[0]
    assert longer.cost_hint_s > 1.5 * cost["greedy-seed0"]
    assert all(s.cost_hint_s < 10 for s in smoke)


def test_a_bad_network_or_subset_is_named(places):
    bad = runs.RunSpec(
        "99_local_table_test",
        "bad",
        "helpers.local_table:train_local_run",
        {**config(), "network": "dfa"},
        "smoke",
    )
    with pytest.raises(ParameterError, match="network='dfa' is not known"):
        runs.train(bad, verbose=False)
    with pytest.raises(
        ParameterError, match="n_pgd=500 is more than the 120 test digits"
    ):
        runs.train(spec("big", n_pgd=500, epochs=1), verbose=False)
    assert math.isfinite(lt._cost(config()))
