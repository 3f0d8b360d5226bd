"""Tests of helpers.metrics: accuracy under attack, noise score, layer accuracies, t-SNE
metrics.
"""

import numpy as np
import pytest
import torch
from torch import nn

import helpers
from helpers import ParameterError, attacks, metrics
from helpers import inspect_net as insp
from helpers import local_errors as le


def blobs(n_per_class=40, n_classes=4, dim=10, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 5
    X = np.concatenate(
        [c + spread * rng.normal(size=(n_per_class, dim)) for c in centres]
    )
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def tensor_data(n=60, dim=6, seed=0):
    """A 3-class problem of well separated Gaussian blobs (inputs normalised with mean
    0.5, std 0.5, i.e. pixels (x + 1) / 2 in [0, 1] for most points)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, dim, generator=g) * 0.5
    y = torch.arange(n) % 3
    X = (centers[y] + 0.05 * torch.randn(n, dim, generator=g)).clamp(-1, 1)
    return helpers.Data(
        X, y, X.clone(), y.clone(), mean=0.5, std=0.5, source="synthetic"
    )


def nearest_center_model(data):
    """A linear model that classifies the blobs by their nearest center."""
    centers = torch.stack([data.X_train[data.y_train == c].mean(0) for c in range(3)])
    lin = nn.Linear(centers.shape[1], 3)
    with torch.no_grad():
        lin.weight.copy_(2 * centers)
        lin.bias.copy_(-(centers**2).sum(1))
    return lin


# ---------------------------------------------------------------- accuracy under attack
def test_accuracy_under_attack_counts_batch_by_batch_and_restores_the_mode():
    data = tensor_data()
    model = nearest_center_model(data).train()
    X, y = data.X_test, data.y_test
    clean = helpers.evaluate(model, X, y)[1]
    assert clean == 1.0
    assert metrics.accuracy_under_attack(model, X, y, "none", data) == clean
    assert model.training  # the mode is put back

    # a callable attack: the sign of every second row of each batch flipped
    def flip(m, xb, yb, norm):
        assert not m.training  # attacks see the model in eval mode
        out = xb.clone()
        out[::2] = -xb[::2]
        return out

    for bs in (7, 60):
        want = 0
        for i in range(0, len(X), bs):  # the same, by hand
            with torch.no_grad():
                want += int(
                    (
                        model(flip(model.eval(), X[i : i + bs], None, None)).argmax(1)
                        == y[i : i + bs]
                    ).sum()
                )
        model.train()
        assert (
            metrics.accuracy_under_attack(model, X, y, flip, data, batch_size=bs)
            == want / 60
        )
        assert want < 60  # the flip does change predictions
    assert metrics.accuracy_under_attack(model, X, y, "fgsm", data, eps=0.0) == clean
    a = metrics.accuracy_under_attack(model, X, y, "fgsm", data, eps=0.2, batch_size=7)
    b = metrics.accuracy_under_attack(
        model, X, y, "fgsm", data, eps=0.2, batch_size=1000
    )
    assert a == b  # FGSM is deterministic and per example: batches do not matter


def test_accuracy_under_attack_errors_are_clear():
    data = tensor_data()
    model = nearest_center_model(data)
    X, y = data.X_test, data.y_test
    with pytest.raises(ParameterError, match="attack='deepfool' is not known"):
        metrics.accuracy_under_attack(model, X, y, "deepfool", data)
    with pytest.raises(ValueError, match="X has 60 rows but y has 3"):
        metrics.accuracy_under_attack(model, X, y[:3], "none", data)
    with pytest.raises(ValueError, match="batch_size=0"):
        metrics.accuracy_under_attack(model, X, y, "none", data, batch_size=0)
    with pytest.raises(TypeError, match="norm="):
        metrics.accuracy_under_attack(model, X, y, "none", "mnist")


# --------------------------------------------------------------------- layer accuracies
def test_layer_accuracies_match_argmax_of_each_truncated_net():
    torch.manual_seed(0)
    net = le.LocalErrorNet(in_features=6, width=8, depth=3, readout_std=0.5).train()
    data = tensor_data()
    accs = metrics.layer_accuracies(net, data.X_test, data.y_test, batch_size=7)
    assert len(accs) == 3 and net.training
    for layer, acc in enumerate(accs, start=1):
        with torch.no_grad():
            pred = net.truncated(layer)(data.X_test).argmax(1)
        assert acc == int((pred == data.y_test).sum()) / len(data.y_test)
    with pytest.raises(ValueError, match="X is empty"):
        metrics.layer_accuracies(net, data.X_test[:0], data.y_test[:0])


# -------------------------------------------------------------------------- noise score
class Recorder(nn.Module):
    """Predicts class 0 and records the inputs it was shown."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        out = torch.zeros(len(x), 10)
        out[:, 0] = 1
        return out


def test_noise_score_counts_correct_digits_with_paper_noise_before_normalisation():
    g = torch.Generator().manual_seed(0)
    X01 = torch.rand(30, 1, 28, 28, generator=g)
    mean, std = 0.1307, 0.3081
    y = torch.arange(30) % 3  # 10 digits of class 0
    data = helpers.Data(
        (X01 - mean) / std,
        y,
        (X01 - mean) / std,
        y,
        mean=mean,
        std=std,
        source="synthetic",
    )
    rec = Recorder().train()
    assert metrics.noise_correct(rec, data, [0.0, 0.1, 0.5], batch_size=7) == [
        10,
        10,
        10,
    ]
    assert rec.training  # mode restored
    assert metrics.noise_score(rec, data) == 110  # 11 default levels
    # where="unit": the white pixel, normalised, i.e. the paper's noise followed by the
    # normalisation
    rec = Recorder()
    metrics.noise_correct(rec, data, [0.25], batch_size=30, seed=5)
    paper = (
        attacks.add_pixel_noise(X01, 0.25, torch.Generator().manual_seed(5)) - mean
    ) / std
    torch.testing.assert_close(rec.seen[0], paper)
    assert (
        int(((rec.seen[0] - 2.0).abs() < 1e-5).reshape(30, -1).sum(1).min()) >= 196
    )  # white = 2.0 after normalisation
    # where="normalized": the source's way, 0.7469 written into the normalised inputs
    rec = Recorder()
    metrics.noise_correct(rec, data, [0.25], batch_size=30, seed=5, where="normalized")
    source = attacks.add_pixel_noise(
        data.X_test, 0.25, torch.Generator().manual_seed(5), where="normalized"
    )
    assert torch.equal(rec.seen[0], source)
    assert int((rec.seen[0] == attacks.WHITE_PIXEL).reshape(30, -1).sum(1).min()) >= 196


# ------------------------------------------------------------------------ t-SNE metrics
def test_metrics_of_separated_blobs_are_near_one():
    X, y = blobs()
    m = metrics.separation_metrics(X[:, :2], y, X)
    assert m["knn_acc_2d"] > 0.97 and m["knn_acc_original"] == 1.0
    assert m["silhouette_2d"] > 0.9 and m["silhouette_original"] > 0.9
    assert 0 <= m["trustworthiness"] <= 1


def test_metrics_with_shuffled_labels_are_near_chance():
    X, y = blobs(n_per_class=100, n_classes=4)
    y_shuffled = np.random.default_rng(1).permutation(y)
    m = metrics.separation_metrics(X[:, :2], y_shuffled, X)
    # 4 classes: chance is 0.25; 200 scored points give a standard error of about 0.03
    assert abs(m["knn_acc_original"] - 0.25) < 0.12
    assert abs(m["knn_acc_2d"] - 0.25) < 0.12
    assert abs(m["silhouette_original"]) < 0.1


def test_trustworthiness_identity_vs_random_embedding():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.arange(200) % 2
    assert metrics.separation_metrics(X, y, X)["trustworthiness"] == pytest.approx(1.0)
    X10 = rng.normal(size=(200, 10))
    random_Z = rng.normal(size=(200, 2))
    assert metrics.separation_metrics(random_Z, y, X10)["trustworthiness"] < 0.6


def test_knn_accuracy_is_out_of_sample():
    # every point is its own class: in-sample 1-NN would score 1, out of sample it
    # cannot
    X = np.arange(40, dtype=float).reshape(-1, 1)
    y = np.arange(40)
    assert metrics.knn_accuracy(X, y, k=1) == 0.0
    # two classes on a line, split by position: neighbours always agree except at the
    # border
    assert metrics.knn_accuracy(X, (X[:, 0] >= 20).astype(int), k=1) >= 0.9


def test_metric_errors_are_clear():
    X, y = blobs()
    with pytest.raises(ValueError, match="labels but there are"):
        metrics.separation_metrics(X[:, :2], y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        Z = X[:, :2].copy()
        Z[0, 0] = np.nan
        metrics.separation_metrics(Z, y)
    with pytest.raises(ValueError, match="k=500"):
        metrics.knn_accuracy(X, y, k=500)
    with pytest.raises(ValueError, match="single class"):
        metrics.separation_metrics(X[:, :2], np.zeros(len(y)))
    with pytest.raises(ValueError, match="same points"):
        metrics.separation_metrics(X[:, :2], y, X[:-1])


def test_tsne_with_metrics_separates_blobs_and_is_seeded():
    X, y = blobs(n_per_class=30, n_classes=3)
    res = metrics.tsne_with_metrics(
        X, torch.as_tensor(y), perplexity=10, seed=0, max_iter=300
    )
    assert res.Z.shape == (90, 2) and res.seconds > 0
    assert res.metrics["knn_acc_2d"] == 1.0 and res.metrics["silhouette_2d"] > 0.7
    assert res.metrics["trustworthiness"] > 0.8
    again = insp.embed_tsne(X, perplexity=10, seed=0, max_iter=300)
    np.testing.assert_allclose(again, res.Z)
