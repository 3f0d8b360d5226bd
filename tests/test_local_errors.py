"""Tests of helpers.local_errors: fixed readouts, greedy / simultaneous / backprop
training, per-layer reads.
"""

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

import helpers
from helpers import local_errors as le
from helpers import metrics
from helpers.train import TrainingDiverged


def blobs(n_train=400, n_test=200, dim=20, n_classes=10, seed=0, spread=1.0):
    """A 10-class problem of Gaussian blobs in ``dim`` dimensions (separable with a
    little noise).
    """
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_classes, dim, generator=g) * 3

    def draw(n):
        y = torch.arange(n) % n_classes
        return centers[y] + spread * torch.randn(n, dim, generator=g), y

    return helpers.Data(
        *draw(n_train), *draw(n_test), mean=0.0, std=1.0, source="synthetic"
    )


def small_net(seed=0, **kw):
    """20 -> 3 x 32 -> 10. The readout std 0.06 gives logits of the size that std 0.01
    gives for 1000 units (the scale grows like std * sqrt(width)), so a few epochs
    suffice."""
    torch.manual_seed(seed)
    kw = {"in_features": 20, "width": 32, "depth": 3, "readout_std": 0.06, **kw}
    return le.LocalErrorNet(**kw)


def weights(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# -------------------------------------------------------------------------- the readout
def test_readout_has_no_trainable_parameters_and_is_saved_as_buffers():
    r = le.FixedReadout(1000, 10, std=0.01, generator=torch.Generator().manual_seed(0))
    assert list(r.parameters()) == []
    assert set(dict(r.named_buffers())) == {"weight", "bias"}
    assert r.weight.shape == (10, 1000) and not r.weight.requires_grad
    assert torch.equal(r.bias, torch.zeros(10))
    # 10,000 draws: std of the std ~ 0.00007
    assert abs(float(r.weight.std()) - 0.01) < 0.0005
    assert abs(float(r.weight.mean())) < 0.0005
    h = torch.randn(3, 1000)
    torch.testing.assert_close(r(h), h @ r.weight.T)


def test_net_parameters_are_exactly_the_blocks():
    net = small_net()
    expected = sum(p.numel() for b in net.blocks for p in b.parameters())
    assert (
        sum(p.numel() for p in net.parameters())
        == expected
        == 20 * 32 + 32 + 2 * (32 * 32 + 32)
    )
    assert all(list(r.parameters()) == [] for r in net.readouts)
    state = net.state_dict()
    # saved with the model
    assert all(f"readouts.{i}.weight" in state for i in range(3))
    # moved with the model
    assert net.to(torch.float64).readouts[0].weight.dtype == torch.float64


def test_readout_std_default_and_validation():
    # 784 -> 5 x 1000 -> 10
    net = le.LocalErrorNet(generator=torch.Generator().manual_seed(1))
    assert net.depth == 5 and net.widths == [1000] * 5
    assert [tuple(b[0].weight.shape) for b in net.blocks] == [(1000, 784)] + [
        (1000, 1000)
    ] * 4
    assert all(isinstance(b[1], nn.ReLU) for b in net.blocks)
    assert all(abs(float(r.weight.std()) - 0.01) < 0.0005 for r in net.readouts)
    with pytest.raises(ValueError, match="readout std"):
        le.FixedReadout(4, 2, std=0.0)
    with pytest.raises(ValueError, match="width"):
        le.LocalErrorNet(width=[8, 0])
    with pytest.raises(ValueError, match="depth"):
        le.LocalErrorNet(depth=0)


def test_trainable_head_only_for_the_last_readout():
    net = small_net(trainable_head=True)
    assert (
        isinstance(net.readouts[-1], nn.Linear)
        and net.readouts[-1].weight.requires_grad
    )
    assert all(isinstance(r, le.FixedReadout) for r in net.readouts[:-1])


# -------------------------------------------------------- forward, truncation, features
def test_forward_truncated_and_layer_logits_agree():
    net = small_net()
    x = torch.randn(5, 20)
    logits = net.layer_logits(x)
    assert len(logits) == 3 and all(t.shape == (5, 10) for t in logits)
    torch.testing.assert_close(net(x), logits[-1])
    for layer in (1, 2, 3):
        cut = net.truncated(layer)
        torch.testing.assert_close(cut(x), logits[layer - 1])
        # shared, not copied
        assert cut[-1] is net.readouts[layer - 1] and cut[1] is net.blocks[0]
    probe = nn.Linear(32, 10)
    assert net.truncated(2, readout=probe)[-1] is probe
    # NumPy integers are layers too
    torch.testing.assert_close(net.truncated(np.int64(2))(x), logits[1])
    for bad in (0, 4, -1, 1.0, True):
        with pytest.raises(ValueError, match="numbered 1 to 3"):
            net.truncated(bad)


def test_images_are_flattened():
    torch.manual_seed(0)
    net = le.LocalErrorNet(width=8, depth=2)
    X = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(net(X), net(X.reshape(4, 784)))


def test_layer_representations_match_a_manual_forward_and_do_not_depend_on_batching():
    net = small_net()
    X = torch.randn(23, 20)
    with torch.no_grad():
        h1 = net.blocks[0](X)
        h2 = net.blocks[1](h1)
        h3 = net.blocks[2](h2)
    reps = le.layer_representations(net, X, batch_size=5)
    assert list(reps) == [1, 2, 3]
    for got, want in zip(reps.values(), (h1, h2, h3)):
        torch.testing.assert_close(got, want)
        assert not got.requires_grad
    # int: a tensor
    torch.testing.assert_close(le.layer_representations(net, X, 2, batch_size=1000), h2)
    assert list(le.layer_representations(net, X, [3, 1])) == [3, 1]
    assert (h1 >= 0).all()  # after the ReLU


def test_layer_representations_restores_mode_and_checks_layers():
    net = small_net()
    net.train()
    le.layer_representations(net, torch.randn(4, 20), 1)
    assert net.training
    with pytest.raises(ValueError, match="numbered 1 to 3"):
        le.layer_representations(net, torch.randn(4, 20), [1, 4])
    with pytest.raises(ValueError, match="empty"):
        le.layer_representations(net, torch.randn(4, 20), [])


# ---------------------------------------------------------------------- greedy training
def test_greedy_freezes_earlier_layers_bit_for_bit_and_leaves_readouts_alone():
    data = blobs()
    net = small_net()
    readouts = [r.weight.clone() for r in net.readouts]
    g = torch.Generator().manual_seed(0)
    le.train_greedy(
        net, data, epochs=2, lr=1e-2, batch_size=32, layers=[1], generator=g
    )
    after_1 = [weights(b) for b in net.blocks]
    # an int is one layer
    le.train_greedy(net, data, epochs=2, lr=1e-2, batch_size=32, layers=2, generator=g)
    after_2 = [weights(b) for b in net.blocks]
    # layer 1 frozen while layer 2 trained: bit-identical
    assert same(after_1[0], after_2[0])
    assert not same(after_1[1], after_2[1])  # layer 2 did train
    assert same(after_1[2], after_2[2])  # layer 3 not asked for: untouched
    assert all(torch.equal(a, r.weight) for a, r in zip(readouts, net.readouts))


def test_greedy_computes_each_frozen_representation_once_not_per_batch():
    data = blobs(n_train=400, n_test=200)
    net = small_net()
    le.train_greedy(net, data, epochs=1, lr=1e-2, batch_size=32, layers=[1])
    calls = []
    handle = net.blocks[0].register_forward_hook(
        lambda m, i, o: calls.append(len(i[0]))
    )
    try:
        le.train_greedy(
            net,
            data,
            epochs=3,
            lr=1e-2,
            batch_size=8,
            layers=[2],
            representation_batch_size=150,
        )
    finally:
        handle.remove()
    # once over the training set (3 chunks of <= 150) and once over the test set (2
    # chunks), not once per mini-batch (3 epochs x 50 batches) or per evaluation
    assert calls == [150, 150, 100, 150, 50]


def test_greedy_learns_each_layer_and_history_matches_the_final_per_layer_accuracy():
    data = blobs()
    net = small_net()
    seen = []
    hist = le.train_greedy(
        net,
        data,
        epochs=3,
        lr=1e-2,
        batch_size=32,
        on_epoch_end=lambda layer, epoch, h: seen.append((layer, epoch)),
    )
    assert list(hist) == [1, 2, 3]
    assert seen == [(l, e) for l in (1, 2, 3) for e in (1, 2, 3)]
    accs = metrics.layer_accuracies(net, data.X_test, data.y_test)
    for layer in (1, 2, 3):
        h = hist[layer]
        assert len(h["test_acc"]) == 3 and h["train_loss"][-1] < h["train_loss"][0]
        # a layer does not change after its own training, so its last epoch's accuracy
        # is final
        assert h["test_acc"][-1] == pytest.approx(
            accs[layer - 1], abs=1 / len(data.y_test) + 1e-12
        )
    assert min(accs) > 0.9


def test_greedy_is_reproducible_with_a_seed():
    data = blobs()
    nets = []
    for _ in range(2):
        net = small_net(seed=3)
        le.train_greedy(
            net,
            data,
            epochs=1,
            lr=1e-2,
            batch_size=32,
            generator=torch.Generator().manual_seed(5),
        )
        nets.append(net)
    assert same(weights(nets[0]), weights(nets[1]))


def test_a_shorter_greedy_run_is_the_first_epochs_of_a_longer_one():
    """Adam with a constant learning rate does not know how many epochs follow: a
    2-epoch run of a layer is, bit for bit, the first 2 epochs of a 4-epoch run (the
    chapter reads its 10-epoch single layer off the 30-epoch curve of greedy layer
    1)."""
    data = blobs()
    a, b = small_net(seed=6), small_net(seed=6)
    short = le.train_greedy(
        a,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        layers=[1],
        generator=torch.Generator().manual_seed(2),
    )[1]
    long = le.train_greedy(
        b,
        data,
        epochs=4,
        lr=1e-2,
        batch_size=32,
        layers=[1],
        generator=torch.Generator().manual_seed(2),
    )[1]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert short[key] == long[key][:2], key
    assert long["train_loss"][3] != short["train_loss"][1]


def test_greedy_errors_are_clear():
    data = blobs()
    with pytest.raises(ValueError, match="trainable_head=True"):
        le.train_greedy(small_net(trainable_head=True), data, epochs=1)
    with pytest.raises(ValueError, match="increasing"):
        le.train_greedy(small_net(), data, epochs=1, layers=[2, 1])
    with pytest.raises(ValueError, match="numbered 1 to 3"):
        le.train_greedy(small_net(), data, epochs=1, layers=[4])
    with pytest.raises(ValueError, match="lr"):
        le.train_greedy(small_net(), data, epochs=1, lr=0)
    with pytest.raises(ValueError, match="epochs"):
        le.train_greedy(small_net(), data, epochs=-1)
    with pytest.raises(ValueError, match="batch_size"):
        le.train_greedy(small_net(), data, epochs=1, batch_size=0)


def test_nan_inputs_stop_training_with_a_clear_error():
    data = blobs()
    data.X_train[3, 0] = math.nan
    with pytest.raises(TrainingDiverged, match="Lower the learning rate"):
        le.train_greedy(small_net(), data, epochs=1, batch_size=400)
    with pytest.raises(TrainingDiverged):
        le.train_simultaneous(small_net(), data, epochs=1, batch_size=400)


# ---------------------------------------------------------------- simultaneous training
def test_no_gradient_crosses_layers():
    net = small_net()
    x, y = torch.randn(8, 20), torch.arange(8) % 10
    losses, logits = le.local_losses(net, x, y)
    assert len(losses) == 3 and all(t.shape == (8, 10) for t in logits)
    losses[1].backward()  # layer 2's loss
    # nothing reaches layer 1
    assert all(p.grad is None for p in net.blocks[0].parameters())
    # nor layer 3 (above)
    assert all(p.grad is None for p in net.blocks[2].parameters())
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in net.blocks[1].parameters()
    )
    # the same loss without the detach does reach layer 1: the check above is not
    # vacuous
    net.zero_grad(set_to_none=True)
    losses, _ = le.local_losses(net, x, y, detach=False)
    losses[1].backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in net.blocks[0].parameters()
    )


def test_simultaneous_layer_1_equals_training_layer_1_alone():
    """With no gradient from above, layer 1's updates are those of layer 1 trained alone
    on its loss.
    """
    data = blobs()
    a, b = small_net(seed=4), small_net(seed=4)
    le.train_simultaneous(
        a,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        generator=torch.Generator().manual_seed(9),
    )
    le.train_greedy(
        b,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        layers=[1],
        generator=torch.Generator().manual_seed(9),
    )
    for pa, pb in zip(a.blocks[0].parameters(), b.blocks[0].parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    # upper layers trained too
    assert not same(weights(a.blocks[1]), weights(small_net(seed=4).blocks[1]))


def test_simultaneous_makes_one_step_per_batch_for_every_layer_and_records_each_layer(
    monkeypatch,
):
    data = blobs(n_train=400)
    net = small_net()
    readout = net.readouts[0].weight.clone()
    steps = []
    orig_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        steps.append(sum(len(g["params"]) for g in self.param_groups))
        return orig_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    hist = le.train_simultaneous(net, data, epochs=3, lr=1e-2, batch_size=25)
    monkeypatch.undo()
    # 400 / 25 batches per epoch, one optimiser step each ...
    assert len(steps) == 3 * 16
    assert set(steps) == {2 * 3}  # ... over the weights and biases of all three blocks
    assert len(hist["layer_test_acc"]) == 3 and all(
        len(r) == 3 for r in hist["layer_test_acc"]
    )
    assert hist["layer_test_acc"][-1] == metrics.layer_accuracies(
        net, data.X_test, data.y_test
    )
    assert hist["test_acc"][-1] == hist["layer_test_acc"][-1][-1]
    assert min(hist["layer_test_acc"][-1]) > 0.9
    assert torch.equal(readout, net.readouts[0].weight)


# ------------------------------------------------------------------ backprop and probes
def test_backprop_trains_every_block_and_the_head():
    data = blobs()
    net = small_net(trainable_head=True)
    before = weights(net)
    hist = le.train_backprop(net, data, epochs=3, lr=1e-2, batch_size=32)
    after = weights(net)
    assert len(before) == len(after) == 2 * 3 + 2  # 3 blocks + the head
    # the error reached layer 1
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    assert hist["test_acc"][-1] > 0.9


def test_linear_probes_read_every_layer_without_changing_the_net():
    data = blobs()
    net = small_net(trainable_head=True)
    le.train_backprop(net, data, epochs=2, lr=1e-2, batch_size=32)
    before = weights(net)
    probes, accs = le.linear_probes(net, data, epochs=3, lr=1e-2, batch_size=32)
    assert same(before, weights(net))
    assert len(probes) == len(accs) == 3 and all(
        isinstance(p, nn.Linear) for p in probes
    )
    assert min(accs) > 0.9
    for layer, (probe, acc) in enumerate(zip(probes, accs), start=1):
        _, direct = helpers.evaluate(
            net.truncated(layer, probe), data.X_test, data.y_test
        )
        assert direct == pytest.approx(acc, abs=1 / len(data.y_test) + 1e-12)
    with pytest.raises(ValueError, match="at least 1"):
        le.linear_probes(net, data, epochs=0)


# ----------------------------------------------------- resuming an interrupted training
class Stop(Exception):
    """Raised by a test's callback to interrupt a training, as a killed process
    would.
    """


def deep_copy(state: dict) -> dict:
    """``state`` through ``torch.save`` / ``torch.load``, as a checkpoint file carries
    it.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _restore(state, seed_net=99, **kw):
    # other initial weights: everything must come from the state
    net = small_net(seed=seed_net, **kw)
    net.load_state_dict(state["net"])
    gen = torch.Generator()
    gen.set_state(state["gen"])
    return net, gen


def test_greedy_interrupted_inside_a_layer_resumes_bit_identical():
    data = blobs()
    a = small_net(seed=2)
    full = le.train_greedy(
        a,
        data,
        epochs=3,
        lr=1e-2,
        batch_size=32,
        generator=torch.Generator().manual_seed(1),
    )
    b, gb, optimizers, saved = (
        small_net(seed=2),
        torch.Generator().manual_seed(1),
        {},
        {},
    )

    def stop_after_layer_2_epoch_1(layer, epoch, hist):
        if (layer, epoch) == (2, 1):
            saved.update(
                deep_copy(
                    {
                        "net": b.state_dict(),
                        "gen": gb.get_state(),
                        "opt": optimizers[2].state_dict(),
                    }
                )
            )
            raise Stop

    with pytest.raises(Stop):
        le.train_greedy(
            b,
            data,
            epochs=3,
            lr=1e-2,
            batch_size=32,
            generator=gb,
            on_epoch_end=stop_after_layer_2_epoch_1,
            on_optimizer=lambda layer, opt: optimizers.__setitem__(layer, opt),
        )
    c, gc = _restore(saved)
    seen, loaded = [], []

    def load(layer, opt):
        if layer == 2:
            opt.load_state_dict(saved["opt"])
            loaded.append(layer)

    hist = le.train_greedy(
        c,
        data,
        epochs=3,
        lr=1e-2,
        batch_size=32,
        layers=[2, 3],
        generator=gc,
        start_epoch=1,
        on_optimizer=load,
        on_epoch_end=lambda l, e, h: seen.append((l, e)),
    )
    assert loaded == [2]
    assert seen == [(2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]  # the true epoch numbers
    assert (
        len(hist[2]["test_acc"]) == 2 and hist[2]["test_acc"] == full[2]["test_acc"][1:]
    )
    assert hist[3]["train_loss"] == full[3]["train_loss"]
    assert same(weights(a), weights(c)) and torch.equal(
        a.readouts[2].weight, c.readouts[2].weight
    )


def test_greedy_without_the_optimizer_state_does_not_resume_identically():
    """The check above is not vacuous: a resumed layer with a fresh Adam state ends
    elsewhere.
    """
    data = blobs()
    a = small_net(seed=2)
    le.train_greedy(
        a,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        layers=[1],
        generator=torch.Generator().manual_seed(1),
    )
    b, gb, saved = small_net(seed=2), torch.Generator().manual_seed(1), {}

    def stop(layer, epoch, hist):
        saved.update(deep_copy({"net": b.state_dict(), "gen": gb.get_state()}))
        raise Stop

    with pytest.raises(Stop):
        le.train_greedy(
            b,
            data,
            epochs=2,
            lr=1e-2,
            batch_size=32,
            layers=[1],
            generator=gb,
            on_epoch_end=stop,
        )
    c, gc = _restore(saved)
    le.train_greedy(
        c,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        layers=[1],
        generator=gc,
        start_epoch=1,
    )
    assert not same(weights(a.blocks[0]), weights(c.blocks[0]))


@pytest.mark.parametrize("rule", ["simultaneous", "backprop"])
def test_simultaneous_and_backprop_resume_bit_identical(rule):
    data = blobs()
    head = rule == "backprop"
    train = le.train_simultaneous if rule == "simultaneous" else le.train_backprop
    a = small_net(seed=5, trainable_head=head)
    full = train(
        a,
        data,
        epochs=3,
        lr=1e-2,
        batch_size=32,
        generator=torch.Generator().manual_seed(4),
    )
    b, gb, box, saved = (
        small_net(seed=5, trainable_head=head),
        torch.Generator().manual_seed(4),
        [],
        {},
    )

    def stop_after_2(epoch, hist):
        if epoch == 2:
            saved.update(
                deep_copy(
                    {
                        "net": b.state_dict(),
                        "gen": gb.get_state(),
                        "opt": box[0].state_dict(),
                    }
                )
            )
            raise Stop

    with pytest.raises(Stop):
        train(
            b,
            data,
            epochs=3,
            lr=1e-2,
            batch_size=32,
            generator=gb,
            on_epoch_end=stop_after_2,
            on_optimizer=box.append,
        )
    c, gc = _restore(saved, trainable_head=head)
    seen = []
    hist = train(
        c,
        data,
        epochs=3,
        lr=1e-2,
        batch_size=32,
        generator=gc,
        start_epoch=2,
        on_optimizer=lambda opt: opt.load_state_dict(saved["opt"]),
        on_epoch_end=lambda e, h: seen.append(e),
    )
    assert seen == [3] and hist["test_acc"] == full["test_acc"][2:]
    assert same(weights(a), weights(c))
    if rule == "simultaneous":
        assert hist["layer_test_acc"] == full["layer_test_acc"][2:]


def test_start_epoch_is_checked():
    data = blobs()
    with pytest.raises(
        ValueError, match="start_epoch=4 must be an integer from 0 to epochs=3"
    ):
        le.train_greedy(small_net(), data, epochs=3, start_epoch=4)
    with pytest.raises(ValueError, match="start_epoch"):
        le.train_simultaneous(small_net(), data, epochs=3, start_epoch=-1)
    with pytest.raises(ValueError, match="start_epoch"):
        le.train_backprop(
            small_net(trainable_head=True), data, epochs=3, start_epoch=1.5
        )
    # start_epoch = epochs: nothing left to train, and nothing changes
    net = small_net()
    before = weights(net)
    hist = le.train_backprop(net, data, epochs=3, start_epoch=3)
    assert hist["test_acc"] == [] and same(before, weights(net))


# --------------------------------------------------------------------------- saturation
def test_layer_saturation_counts_exact_zero_losses_and_margins():
    net = le.LocalErrorNet(in_features=2, width=2, depth=1, readout_std=1.0)
    with torch.no_grad():
        net.blocks[0][0].weight.copy_(torch.eye(2))
        net.blocks[0][0].bias.zero_()
        net.readouts[0].weight.zero_()
        # class 0's score is the first input, the others 0
        net.readouts[0].weight[0, 0] = 1.0
    X = torch.tensor([[17.0, 0.0], [30.0, 0.0], [16.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 0, 1])
    (s,) = le.layer_saturation(net, X, y, batch_size=3)
    # margins 17, 30, 16, and 0 - 0 = 0 for the last (class 1 ties with classes 2..9)
    assert s["median_margin"] == pytest.approx(16.5) and s["min_margin"] == 0.0
    # float32: (17 + log(1 + 9 exp(-17))) rounds back to 17 (spacing 1.9e-6 > 2 x
    # 3.7e-7), so margins 17 and 30 give a loss of exactly 0; at 16, 9 exp(-16) = 1.0e-6
    # survives the rounding
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(net(X), y, reduction="none")
    assert s["zero_loss"] == int((losses == 0).sum()) / 4 == 0.5
    assert float(losses[2]) > 0
    assert s["mean_loss"] == pytest.approx(float(losses.double().mean()), rel=1e-6)
    with pytest.raises(ValueError, match="rows"):
        le.layer_saturation(net, X, y[:2])


# ------------------------------------------------------------ the rules for helpers.fit
def test_local_greedy_rule_in_fit_equals_train_greedy_bit_for_bit():
    """One Adam over every block (only the trained layer has gradients) gives the same
    weights and history as train_greedy's fresh Adam per layer."""
    data = blobs()
    ref, net = small_net(), small_net()
    hist_ref = le.train_greedy(
        ref,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        generator=torch.Generator().manual_seed(0),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    hist = helpers.fit(
        net,
        data,
        opt,
        2,
        32,
        step=le.LocalGreedy(),
        generator=torch.Generator().manual_seed(0),
    )
    assert same(weights(ref), weights(net))
    for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert hist[k] == [v for layer in (1, 2, 3) for v in hist_ref[layer][k]]
    assert hist["layer"] == [1, 1, 2, 2, 3, 3] and len(hist["epoch_seconds"]) == 2
    with pytest.raises(ValueError, match="trainable_head=True"):
        helpers.fit(
            small_net(trainable_head=True), data, opt, 1, 32, step=le.LocalGreedy()
        )
    with pytest.raises(TypeError, match="one layer at a time"):
        le.LocalGreedy().step(net, data.X_train[:4], data.y_train[:4])


def test_local_simultaneous_rule_in_fit_equals_train_simultaneous_bit_for_bit():
    data = blobs()
    ref, net = small_net(), small_net()
    hist_ref = le.train_simultaneous(
        ref,
        data,
        epochs=2,
        lr=1e-2,
        batch_size=32,
        generator=torch.Generator().manual_seed(0),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    hist = helpers.fit(
        net,
        data,
        opt,
        2,
        32,
        step=le.LocalSimultaneous(),
        generator=torch.Generator().manual_seed(0),
    )
    assert same(weights(ref), weights(net))
    assert (
        hist["test_acc"] == hist_ref["test_acc"]
        and hist["train_loss"] == hist_ref["train_loss"]
    )


def test_layer_representations_keep_the_device_and_the_mode():
    data = blobs()
    net = small_net().eval()
    feats = le.layer_representations(net, data.X_test, [3, 1], batch_size=7)
    assert list(feats) == [3, 1] and not net.training
    with torch.no_grad():  # the same batches of 7: the same kernels, the same bits
        X = data.X_test
        h1 = torch.cat([net.blocks[0](X[i : i + 7]) for i in range(0, len(X), 7)])
    assert torch.equal(feats[1], h1) and feats[1].device == data.X_test.device
