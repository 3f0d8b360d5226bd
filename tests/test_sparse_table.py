"""Tests of helpers.sparse_table: Table 1 of "How can we be so dense?" at the paper
code's configuration.

The configuration is checked against the values of ``experiments_paper.cfg``; the
trainer runs on a tiny generated MNIST-shaped folder (a few seconds), and a run
interrupted after its second epoch resumes bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math

import pytest
import torch

import helpers
from helpers import runs, sparse, sparse_table

TRAINER = "helpers.sparse_table:train_table_run"


def test_rows_have_the_configuration_of_experiments_paper_cfg():
    c = {row: sparse_table.row_config(row, 0) for row in sparse_table.ROWS}
    pick = (
        "lr",
        "momentum",
        "epochs",
        "first_epoch_batch_size",
        "batch_size",
        "hidden",
        "k",
        "weight_density",
    )
    assert {row: tuple(c[row][key] for key in pick) for row in c} == {
        "Dense CNN-1": (0.01, 0.9, 15, 64, 64, 1000, 1000, 1.0),
        "Sparse CNN-1": (0.01, 0.0, 15, 4, 64, 150, 50, 0.3),
        "Dense CNN-2": (0.01, 0.9, 15, 64, 64, 1000, 1000, 1.0),
        "Sparse CNN-2": (0.02, 0.0, 10, 4, 64, 700, 100, 0.3),
    }
    assert [c[row]["conv_channels"] for row in c] == [[30], [30], [30, 30], [32, 64]]
    assert [c[row]["conv_k"] for row in c] == [[4320], [400], [4320, 480], [400, 300]]
    for config in c.values():
        assert (
            config["lr_gamma"],
            config["k_inference_factor"],
            config["boost_strength_factor"],
        ) == (0.8, 1.5, 0.85)
        assert (
            config["conv_weight_density"] == 1.0 and config["duty_cycle_period"] == 1000
        )
        assert config["wins"] == "positive" and config["noise_levels"] == [
            i / 20 for i in range(11)
        ]
        assert config["sparse_init"] is None  # the default init, masked
        assert config["protocol"] == "experiments_paper.cfg"
    assert (
        c["Sparse CNN-1"]["boost_strength"] == 1.5
        and c["Dense CNN-1"]["boost_strength"] == 0.0
    )
    assert (
        sparse_table.row_config("Sparse CNN-2", 3, epochs=2, n_train=600)["epochs"] == 2
    )
    with pytest.raises(ValueError, match="row='Sparse CNN-3' is not a row of Table 1"):
        sparse_table.row_config("Sparse CNN-3", 0)


def test_networks_have_the_papers_layers_k_and_initialisation():
    torch.manual_seed(0)
    nets = {
        row: sparse_table.make_net(sparse_table.row_config(row, 0))
        for row in sparse_table.ROWS
    }
    kinds = {row: [type(m).__name__ for m in net] for row, net in nets.items()}
    assert kinds["Dense CNN-1"] == [
        "Conv2d",
        "MaxPool2d",
        "ReLU",
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert kinds["Sparse CNN-2"] == [
        "Conv2d",
        "MaxPool2d",
        "KWinners2d",
        "Conv2d",
        "MaxPool2d",
        "KWinners2d",
        "Flatten",
        "SparseWeights",
        "KWinners",
        "Linear",
    ]
    s1, s2 = nets["Sparse CNN-1"], nets["Sparse CNN-2"]
    assert s1[2].ks(12, 12) == (4320, 400, 600) and (
        s1[5].k,
        s1[5].k_inference,
        s1[5].n,
    ) == (50, 75, 150)
    assert s2[2].ks(12, 12) == (4608, 400, 600) and s2[5].ks(4, 4) == (1024, 300, 450)
    assert (s2[8].k, s2[8].k_inference) == (100, 150)
    assert all(
        m.wins == "positive" and m.boost_strength == 1.5
        for m in sparse.kwinners_modules(s2)
    )
    # sparse weights: round(0.3 * fan-in) kept per unit, PyTorch's default init for the
    # full fan-in
    assert s1[4].n_nonzero == 1296 and s2[7].n_nonzero == 307
    w = s1[4].weight.detach()
    assert float(w.abs().max()) <= 1 / math.sqrt(4320) and float(
        w.abs().max()
    ) > 0.9 / math.sqrt(4320)
    assert (w != 0).sum(1).tolist() == [1296] * 150
    assert nets["Dense CNN-2"](torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_best_epoch_is_the_earliest_best_as_np_argmax():
    assert sparse_table.best_epoch([97.0, 98.5, 98.5, 98.1]) == 1
    assert sparse_table.best_epoch([99.0]) == 0
    assert (
        sparse_table.noise_seed(0, 1)
        != sparse_table.noise_seed(0, 2)
        != sparse_table.noise_seed(1, 1)
    )


def tiny_config(**changes) -> dict:
    config = sparse_table.row_config(
        "Sparse CNN-1", 3, epochs=3, n_train=200, n_test=100
    )
    return {**config, **changes}


def test_a_run_follows_the_schedule_and_its_noise_test_can_be_recomputed(places):
    spec = runs.RunSpec("99_sparse_test", "tiny", TRAINER, tiny_config(), "smoke")
    record = runs.train(spec, verbose=False)
    curves, metrics = record["curves"], record["metrics"]
    assert curves["epoch"] == [1, 2, 3] and curves["batch_size"] == [4, 64, 64]
    # lr * 0.8 ** e in epoch e
    assert curves["lr"] == pytest.approx([0.01, 0.008, 0.0064], rel=1e-12)
    assert curves["boost_strength"] == pytest.approx(
        [1.5 * 0.85, 1.5 * 0.85**2, 1.5 * 0.85**3]
    )
    for correct, acc, score in zip(
        curves["noise_correct"], curves["test_acc"], curves["noise_score"]
    ):
        assert (
            len(correct) == 11
            and score == sum(correct)
            and acc == 100 * correct[0] / 100
        )
    best = max(range(3), key=lambda e: (curves["test_acc"][e], -e))
    assert (
        metrics["best_epoch"] == best + 1
        and metrics["acc_best"] == curves["test_acc"][best]
    )
    assert metrics["noise_score_best_epoch"] == curves["noise_score"][best]
    assert (
        metrics["acc_last"] == curves["test_acc"][-1]
        and metrics["noise_score_last"] == curves["noise_score"][-1]
    )
    assert [d["kind"] for d in metrics["kwinners"]] == ["KWinners2d", "KWinners"]
    # the last epoch's noise test again, from the saved model: the same correct answers
    state = torch.load(runs.checkpoint_path(spec), weights_only=True)["objects"][
        "model"
    ]
    net = sparse_table.make_net(spec.config)
    net.load_state_dict(state)
    data = helpers.load_mnist(200, 100)
    again = sparse.noise_correct(
        net,
        data,
        spec.config["noise_levels"],
        seed=sparse_table.noise_seed(3, 3),
        batch_size=1000,
    )
    assert again == curves["noise_correct"][-1]
    # the noise is drawn anew every epoch: the epochs' seeds give other noisy pixels
    pixels = [
        sparse.add_pixel_noise(
            torch.zeros(1, 784),
            0.5,
            torch.Generator().manual_seed(sparse_table.noise_seed(3, e)),
        )
        for e in (2, 3)
    ]
    assert not torch.equal(*pixels)


def test_n_val_scores_the_network_on_held_out_training_digits(places):
    config = tiny_config(epochs=1, noise_levels=[0.0], n_val=50)
    spec = runs.RunSpec("99_sparse_test", "held-out", TRAINER, config, "smoke")
    r = runs.train(spec, verbose=False)
    assert (r["data"]["n_train"], r["data"]["n_test"]) == (150, 50)
    assert r["data"]["test_set"] == "50 held-out training images"
    net = sparse_table.make_net(config)
    net.load_state_dict(
        torch.load(runs.checkpoint_path(spec), weights_only=True)["objects"]["model"]
    )
    held = helpers.load_mnist(200, 100).holdout(50, seed=runs.VAL_SEED)
    correct = sparse.noise_correct(
        net, held, [0.0], seed=sparse_table.noise_seed(3, 1), batch_size=1000
    )
    assert r["curves"]["noise_correct"] == [correct]
    assert r["metrics"]["acc_last"] == 100 * correct[0] / 50


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_bit_identical_to_an_uninterrupted_one(
    places, monkeypatch, tmp_path
):
    """Stop a run right after its second checkpoint, rebuild everything from that
    checkpoint, finish, and compare with the same run done in one go (momentum on, so
    optimiser state matters too)."""
    config = tiny_config(momentum=0.9)
    spec = runs.RunSpec("99_sparse_test", "resume", TRAINER, config, "smoke")
    clean = runs.train(spec, verbose=False)
    clean_state = torch.load(runs.checkpoint_path(spec), weights_only=True)

    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "cache2"))
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "results2"))
    original = runs.RunContext.checkpoint

    def checkpoint_then_stop(self, epoch, **objects):
        original(self, epoch, **objects)
        if epoch == 2:
            raise Interrupted

    monkeypatch.setattr(runs.RunContext, "checkpoint", checkpoint_then_stop)
    with pytest.raises(Interrupted):
        runs.train(spec, verbose=False)
    assert not runs.record_path(spec).exists()
    # the global RNG is elsewhere now: the checkpoint must bring it back
    torch.manual_seed(12345)
    resumed = runs.train(spec, verbose=False)
    resumed_state = torch.load(runs.checkpoint_path(spec), weights_only=True)

    assert (
        resumed["resumed_after_epochs"] == [2] and clean["resumed_after_epochs"] == []
    )
    untimed = {
        key: None
        for key in (
            "epoch_seconds",
            "test_seconds",
            "epoch_cpu_seconds",
            "test_cpu_seconds",
        )
    }
    assert resumed["curves"] | untimed == clean["curves"] | untimed
    assert resumed["metrics"] == clean["metrics"]
    for key, tensor in clean_state["objects"]["model"].items():
        if isinstance(tensor, torch.Tensor):
            assert torch.equal(tensor, resumed_state["objects"]["model"][key]), key
        else:  # the k-winners' extra state: boost strength and samples seen
            assert tensor == resumed_state["objects"]["model"][key], key
    assert any(k.endswith("duty_cycles") for k in clean_state["objects"]["model"])
    for i, buf in clean_state["objects"]["optimizer"]["state"].items():
        assert torch.equal(
            buf["momentum_buffer"],
            resumed_state["objects"]["optimizer"]["state"][i]["momentum_buffer"],
        )
    assert clean_state["objects"]["scheduler"] == resumed_state["objects"]["scheduler"]
    assert torch.equal(
        clean_state["objects"]["shuffle"], resumed_state["objects"]["shuffle"]
    )


def test_the_grid_names_runs_uses_the_sources_epochs_and_shrinks_in_smoke():
    paper = sparse_table.TABLE.specs({"profile": "paper"})
    assert (
        len(paper) == 20
        and paper[0].name == "dense-cnn1-seed0"
        and paper[-1].name == "sparse-cnn2-seed4"
    )
    assert {s.config["row"]: s.config["epochs"] for s in paper} == {
        "Dense CNN-1": 15,
        "Sparse CNN-1": 15,
        "Dense CNN-2": 15,
        "Sparse CNN-2": 10,
    }
    assert all(
        s.config["n_train"] is None and 300 < s.cost_hint_s < 3600 for s in paper
    )
    smoke = sparse_table.TABLE.specs({"profile": "smoke"})
    assert [s.name for s in smoke] == [
        "dense-cnn1-seed0",
        "sparse-cnn1-seed0",
        "dense-cnn2-seed0",
        "sparse-cnn2-seed0",
    ]
    assert all(
        s.config["epochs"] == 2 and s.config["n_train"] == 600 and s.cost_hint_s < 60
        for s in smoke
    )
    one = sparse_table.TABLE.specs(
        {"paper_rows": ["Sparse CNN-2"], "paper_seeds": [7], "paper_epochs": 3}
    )
    assert [s.name for s in one] == ["sparse-cnn2-seed7"] and one[0].config[
        "epochs"
    ] == 3
    assert runs.grids_of("05_sparse_representations") == [sparse_table.TABLE]


def test_a_noise_test_without_the_clean_level_first_is_refused(places):
    spec = runs.RunSpec(
        "99_sparse_test", "bad", TRAINER, tiny_config(noise_levels=[0.1, 0.0]), "smoke"
    )
    with pytest.raises(
        ValueError,
        match=r"must start with 0.0: the clean test accuracy is the level-0 result",
    ):
        runs.train(spec, verbose=False)
