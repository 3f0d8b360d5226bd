import math

import pytest
import torch
from torch import nn

import helpers
from helpers.train import TrainingDiverged, check_finite, evaluate, fit, seed_everything, train_epoch


def tiny_data(n_train=600, n_test=200, seed=0):
    """A linearly separable 10-class problem shaped like flattened MNIST."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(10, 784, generator=g) * 3
    def draw(n):
        y = torch.arange(n) % 10
        return centers[y] + torch.randn(n, 784, generator=g), y
    Xtr, ytr = draw(n_train)
    Xte, yte = draw(n_test)
    return helpers.Data(Xtr, ytr, Xte, yte, mean=0.0, std=1.0, source="synthetic")


def run_once(seed, data):
    seed_everything(seed)
    net = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    return fit(net, data, opt, epochs=2, batch_size=50), net


def test_same_seed_gives_identical_metrics_and_weights():
    data = tiny_data()
    (h1, n1), (h2, n2) = run_once(7, data), run_once(7, data)
    assert h1["train_loss"] == h2["train_loss"] and h1["test_acc"] == h2["test_acc"]
    assert all(torch.equal(a, b) for a, b in zip(n1.parameters(), n2.parameters()))
    h3, _ = run_once(8, data)
    assert h3["train_loss"] != h1["train_loss"]


def test_fit_learns_and_reports_history():
    h, net = run_once(0, tiny_data())
    assert set(h) == {"train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"}
    assert all(len(v) == 2 for v in h.values())
    assert h["test_acc"][-1] > 0.9 and h["train_loss"][1] < h["train_loss"][0]
    assert all(s > 0 for s in h["epoch_seconds"])


def test_evaluate_matches_a_direct_computation_and_restores_mode():
    data = tiny_data()
    net = nn.Sequential(nn.Linear(784, 10), nn.Dropout(0.5))
    net.train()
    loss, acc = evaluate(net, data.X_test, data.y_test, batch_size=33)
    net.eval()
    with torch.no_grad():
        out = net(data.X_test)
    assert acc == pytest.approx(float((out.argmax(1) == data.y_test).float().mean()))
    assert loss == pytest.approx(float(nn.functional.cross_entropy(out, data.y_test)), rel=1e-5)
    net.train()
    evaluate(net, data.X_test, data.y_test)
    assert net.training


def test_custom_step_is_used():
    data = tiny_data()
    net = nn.Linear(784, 10)
    calls = []

    def step(model, xb, yb):
        calls.append(len(xb))
        out = model(xb)
        loss = nn.functional.cross_entropy(out, yb)
        loss.backward()
        return loss, out

    train_epoch(net, data.X_train, data.y_train, torch.optim.SGD(net.parameters(), lr=0.1), 100, step=step, bar=False)
    assert calls == [100] * 6


def test_nan_loss_stops_with_a_clear_message():
    data = tiny_data()
    seed_everything(0)
    net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(net.parameters(), lr=1e6)
    with pytest.raises(TrainingDiverged, match=r"diverged\. Lower the learning rate \(lr=1000000.0\)"):
        fit(net, data, opt, epochs=3, batch_size=50)


def test_check_finite():
    check_finite(1.0)
    for bad in (math.nan, math.inf, torch.tensor(float("nan"))):
        with pytest.raises(TrainingDiverged, match="epoch 2 step 5"):
            check_finite(bad, epoch=2, step=5)


def test_timer_measures_elapsed_time():
    import time
    with helpers.Timer() as t:
        time.sleep(0.01)
    assert t.seconds >= 0.009


def test_progress_is_plain_text_when_asked(monkeypatch, capsys):
    monkeypatch.setenv("BOOK_PLAIN_PROGRESS", "1")
    assert list(helpers.progress(range(3), desc="x")) == [0, 1, 2]
    from tqdm.std import tqdm
    assert type(helpers.progress(range(1))) is tqdm


def test_plain_text_hides_transient_inner_bars(monkeypatch, capsys):
    """Nested text bars would fill executed notebooks with cursor codes: leave=False bars are hidden."""
    monkeypatch.setenv("BOOK_PLAIN_PROGRESS", "1")
    assert list(helpers.progress(range(3), desc="inner", leave=False)) == [0, 1, 2]
    assert list(helpers.progress(range(2), desc="outer")) == [0, 1]
    out = capsys.readouterr()
    text = out.out + out.err
    assert "outer" in text and "inner" not in text
