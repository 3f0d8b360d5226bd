import math

import pytest
import torch
from torch import nn

import helpers
from helpers.train import (
    TrainingDiverged,
    check_finite,
    evaluate,
    fit,
    seed_everything,
    train_epoch,
)


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
    assert set(h) == {
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "epoch_seconds",
    }
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
    assert loss == pytest.approx(
        float(nn.functional.cross_entropy(out, data.y_test)), rel=1e-5
    )
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

    train_epoch(
        net,
        data.X_train,
        data.y_train,
        torch.optim.SGD(net.parameters(), lr=0.1),
        100,
        step=step,
        bar=False,
    )
    assert calls == [100] * 6


def test_nan_loss_stops_with_a_clear_message():
    data = tiny_data()
    seed_everything(0)
    net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(net.parameters(), lr=1e6)
    with pytest.raises(
        TrainingDiverged, match=r"diverged\. Lower the learning rate \(lr=1000000.0\)"
    ):
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
    """Nested text bars would fill executed notebooks with cursor codes: leave=False
    bars are hidden.
    """
    monkeypatch.setenv("BOOK_PLAIN_PROGRESS", "1")
    assert list(helpers.progress(range(3), desc="inner", leave=False)) == [0, 1, 2]
    assert list(helpers.progress(range(2), desc="outer")) == [0, 1]
    out = capsys.readouterr()
    text = out.out + out.err
    assert "outer" in text and "inner" not in text


def _reference_epoch(model, X, y, optimizer, batch_size, generator):
    """train_epoch as it was before the loss stayed on the device: Python sums after
    every step.
    """
    total_loss, correct, seen = 0.0, 0, 0
    for xb, yb in helpers.batches(X, y, batch_size, generator=generator):
        optimizer.zero_grad(set_to_none=True)
        out = model(xb)
        loss = nn.functional.cross_entropy(out, yb)
        loss.backward()
        loss_value = float(loss.detach())
        check_finite(loss_value)
        optimizer.step()
        total_loss += loss_value * len(xb)
        correct += int((out.argmax(1) == yb).sum())
        seen += len(xb)
    return total_loss / seen, correct / seen


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.Adam(p, lr=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5),
    ],
    ids=["adam", "sgd-momentum"],
)
def test_epoch_results_and_weights_are_bit_identical_to_the_per_step_python_loop(
    make_opt,
):
    """Loss and accuracy summed on the device (float64, step order) are the same numbers
    as Python's float sums of float(loss) * len(batch), epoch after epoch, and training
    is unchanged."""
    data = tiny_data(n_train=637)  # a last batch of 61: the batch sizes differ
    nets, opts = [], []
    for _ in range(2):
        torch.manual_seed(3)
        net = nn.Sequential(nn.Linear(784, 48), nn.Tanh(), nn.Linear(48, 10))
        nets.append(net)
        opts.append(make_opt(net.parameters()))
    g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for epoch in range(3):
        ours = train_epoch(
            nets[0], data.X_train, data.y_train, opts[0], 64, generator=g0, bar=False
        )
        ref = _reference_epoch(nets[1], data.X_train, data.y_train, opts[1], 64, g1)
        assert ours == ref  # bit-identical floats, not approximately equal
        assert all(
            torch.equal(a, b)
            for a, b in zip(nets[0].parameters(), nets[1].parameters())
        )


def _step_with_bad_loss_at(bad_step: int, value: float):
    """A training step whose loss at step ``bad_step`` (from 0) is NaN (``loss * nan``:
    NaN gradients too) or infinite (``loss + inf``: the gradients stay finite)."""
    calls = []

    def step(model, xb, yb):
        out = model(xb)
        loss = nn.functional.cross_entropy(out, yb)
        if len(calls) == bad_step:
            # loss + inf: inf however small the loss
            loss = loss * value if math.isnan(value) else loss + value
        calls.append(len(xb))
        loss.backward()
        return loss, out

    return step, calls


@pytest.mark.parametrize(
    "every,n_train,bad,window,value",
    [
        # 12 steps: found by the end-of-epoch check
        (50, 600, 7, "a step from 0 to 11 of epoch 3", "nan"),
        # found by the check after step 9
        (5, 600, 7, "a step from 5 to 9 of epoch 3", "nan"),
        # 11 steps: the last one alone after the check at step 9
        (5, 550, 10, "step 10 of epoch 3", "inf"),
    ],
)
def test_a_nan_or_inf_loss_is_found_within_the_check_window(
    monkeypatch, every, n_train, bad, window, value
):
    import helpers.train as train_module

    monkeypatch.setattr(train_module, "NAN_CHECK_EVERY", every)
    data = tiny_data(n_train=n_train)
    net = nn.Linear(784, 10)
    step, calls = _step_with_bad_loss_at(bad, float(value))
    with pytest.raises(TrainingDiverged) as err:
        train_epoch(
            net,
            data.X_train,
            data.y_train,
            torch.optim.SGD(net.parameters(), lr=0.1),
            50,
            step=step,
            epoch=3,
            bar=False,
        )
    msg = str(err.value)
    assert msg.startswith(
        f"The loss became {value} at {window}: training diverged. Lower the learning "
        "rate (lr=0.1)"
    )
    last = int(window.split(" of ")[0].split()[-1])
    assert len(calls) == last + 1  # it stopped at the check, not later


def test_a_step_that_fails_on_diverged_weights_reports_the_divergence(monkeypatch):
    data = tiny_data(n_train=600)
    net = nn.Linear(784, 10)
    inner, _ = _step_with_bad_loss_at(2, float("nan"))

    def step(model, xb, yb):
        if not torch.isfinite(model.weight).all():
            raise ValueError("some library refuses NaN inputs")
        return inner(model, xb, yb)

    with pytest.raises(
        TrainingDiverged, match=r"became nan at a step from 0 to 2 of epoch 1"
    ) as err:
        train_epoch(
            net,
            data.X_train,
            data.y_train,
            torch.optim.SGD(net.parameters(), lr=0.1),
            50,
            step=step,
            epoch=1,
            bar=False,
        )
    assert isinstance(err.value.__context__, ValueError)


def test_an_empty_epoch_is_a_clear_error():
    net = nn.Linear(784, 10)
    with pytest.raises(ValueError, match="X is empty"):
        train_epoch(
            net,
            torch.empty(0, 784),
            torch.empty(0, dtype=torch.long),
            torch.optim.SGD(net.parameters(), lr=0.1),
            50,
            bar=False,
        )


# --------------------------------------------------------------------------- eval mode
def test_eval_mode_restores_the_mode_even_after_an_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with helpers.eval_mode(model) as m:
        assert m is model and not model.training and not model[1].training
    assert model.training and model[1].training
    model.eval()
    with helpers.eval_mode(model):
        pass
    assert not model.training  # an eval-mode model stays in eval mode
    model.train()
    with pytest.raises(RuntimeError, match="boom"), helpers.eval_mode(model):
        raise RuntimeError("boom")
    assert model.training


# --------------------------------------------------------------------- the scoring loop
def test_count_correct_counts_every_output_and_sums_the_loss_in_order():
    from helpers.train import count_correct

    torch.manual_seed(0)
    model = nn.Linear(3, 4).train()
    X, y = torch.randn(10, 3), torch.arange(10) % 4
    with torch.no_grad():
        out = model(X)
    (c,), loss = count_correct(
        model, X, y, 4, loss_fn=torch.nn.functional.cross_entropy
    )
    assert c == int((out.argmax(1) == y).sum()) and model.training
    want = 0.0
    for i in range(0, 10, 4):  # the sum, batch by batch, in Python floats
        want += float(
            torch.nn.functional.cross_entropy(
                out[i : i + 4], y[i : i + 4], reduction="sum"
            )
        )
    assert loss == want
    both, _ = count_correct(model, X, y, 3, outputs=lambda m, xb: [m(xb), -m(xb)])
    assert both[0] == c and both[1] == int(((-out).argmax(1) == y).sum())
    flipped, _ = count_correct(model, X, y, 3, perturb=lambda m, xb, yb: -xb)
    with torch.no_grad():
        assert flipped == [int((model(-X).argmax(1) == y).sum())]
    with pytest.raises(ValueError, match="X is empty"):
        count_correct(model, X[:0], y[:0])
    with pytest.raises(ValueError, match="batch_size=0"):
        count_correct(model, X, y, 0)


# --------------------------------------------------------------------------- rules
class CountingRule(helpers.Rule):
    """Backprop that counts its steps and the epochs it has seen end."""

    def __init__(self):
        super().__init__()
        self.steps, self.epochs = 0, []

    def step(self, model, xb, yb):
        self.steps += 1
        return super().step(model, xb, yb)

    def on_epoch_end(self, model, epoch, history):
        self.epochs.append((epoch, len(history["test_acc"])))


def test_a_rule_plugs_into_fit_and_backprop_is_the_default_rule():
    data = tiny_data(n_train=100, n_test=50)
    results = []
    for step in (None, helpers.Rule(), CountingRule()):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        seen = []
        hist = fit(
            model,
            data,
            opt,
            2,
            32,
            step=step,
            generator=torch.Generator().manual_seed(0),
            on_epoch_end=lambda e, h, seen=seen: seen.append(e),
        )
        results.append(
            (hist["test_acc"], [p.detach().clone() for p in model.parameters()])
        )
        assert seen == [1, 2]
    rule = step
    # 100 rows, batches of 32
    assert rule.steps == 2 * 4 and rule.epochs == [(1, 1), (2, 2)]
    for acc, params in results[1:]:
        assert acc == results[0][0] and all(
            torch.equal(a, b) for a, b in zip(params, results[0][1])
        )


def test_as_rule_accepts_rules_and_functions_and_names_what_it_refuses():
    from helpers.train import as_rule

    rule = helpers.Rule()
    assert as_rule(rule) is rule
    assert isinstance(as_rule(None), helpers.Rule)
    fn = as_rule(lambda model, xb, yb: (torch.zeros(()), xb))
    assert fn.step(None, torch.ones(2, 3), None)[1].shape == (2, 3)
    with pytest.raises(TypeError, match="must be a helpers.Rule or a function"):
        as_rule(3)
