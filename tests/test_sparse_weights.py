"""Tests of helpers.sparse_weights: masks, sparse layers, keeping them sparse in
training, and the floor-division re-creation."""

import math

import pytest
import torch
from torch import nn

import helpers
from helpers import kwinners, sparse_weights
from helpers.kwinners import KWinners
from helpers.sparse_weights import SparseWeights, SparseWeights2d


# ----------------------------------------------------------------------- sparse weights
def test_fan_in_mask_has_the_same_count_per_unit():
    g = torch.Generator().manual_seed(0)
    mask = sparse_weights.fan_in_mask(7, 20, 0.3, g)
    assert mask.shape == (7, 20) and mask.sum(1).tolist() == [6] * 7
    assert (
        len({tuple(r.tolist()) for r in mask}) > 1
    )  # units draw their inputs independently
    assert sparse_weights.fan_in_mask(3, 10, 1.0).all()
    with pytest.raises(ValueError, match=r"density=0.01 keeps round\(0.01 \* 20\) = 0"):
        sparse_weights.fan_in_mask(3, 20, 0.01)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        sparse_weights.fan_in_mask(3, 20, 0.0)


def test_sparse_weights_linear_and_conv_masks():
    g = torch.Generator().manual_seed(0)
    lin = SparseWeights(nn.Linear(20, 7), 0.3, generator=g)
    assert lin.n_nonzero == 6 and (lin.weight != 0).sum(1).tolist() == [6] * 7
    conv = SparseWeights2d(
        nn.Conv2d(3, 4, 3), 0.5, generator=g
    )  # fan-in 27: round(13.5) = 14
    assert (
        conv.n_nonzero == 14
        and (conv.weight != 0).reshape(4, -1).sum(1).tolist() == [14] * 4
    )
    assert conv(torch.randn(2, 3, 5, 5)).shape == (2, 4, 3, 3)
    with pytest.raises(
        TypeError, match="wraps a torch.nn.Linear, got Conv2d; use SparseWeights2d"
    ):
        SparseWeights(nn.Conv2d(1, 1, 1), 0.5)


def fit_sparse_net(plug: str, optimizer: str):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 12, generator=g) * 2
    y = torch.arange(150) % 3
    X = centers[y] + torch.randn(150, 12, generator=g)
    data = helpers.Data(
        X[:120], y[:120], X[120:], y[120:], mean=0.0, std=1.0, source="synthetic"
    )
    net = nn.Sequential(
        SparseWeights(nn.Linear(12, 16), 0.25, generator=g),
        KWinners(16, 4),
        SparseWeights(nn.Linear(16, 3), 0.5, generator=g),
    )
    opt = (
        torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        if optimizer == "sgd"
        else torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    )
    kwargs = dict(on_epoch_end=lambda epoch, h: kwinners.update_boost_strength(net))
    if plug == "hook":
        sparse_weights.rezero_after_step(opt, net)
    elif plug == "step":
        kwargs["step"] = sparse_weights.sparse_step()
    hist = helpers.fit(net, data, opt, epochs=3, batch_size=16, **kwargs)
    return net, hist


@pytest.mark.parametrize("plug", ["hook", "step"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_nonzero_count_per_unit_is_exact_after_training(plug, optimizer):
    net, hist = fit_sparse_net(plug, optimizer)
    assert (net[0].weight != 0).sum(1).tolist() == [3] * 16  # round(0.25 * 12)
    assert (net[2].weight != 0).sum(1).tolist() == [8] * 3
    assert torch.equal(net[0].weight != 0, net[0].weight_mask)
    assert hist["test_acc"][-1] > 0.6  # it learns (chance: 1/3)
    assert net[1].boost_strength == pytest.approx(1.5 * 0.85**3)


def test_without_rezeroing_the_masked_weights_drift():
    net, _ = fit_sparse_net("none", "sgd")
    assert (net[0].weight != 0).sum() > 3 * 16
    assert sparse_weights.rezero_sparse_weights(net) == 2
    assert (net[0].weight != 0).sum(1).tolist() == [3] * 16


def test_sparse_init_uses_the_effective_fan_in():
    g = torch.Generator().manual_seed(0)
    layer = SparseWeights(
        nn.Linear(1000, 500), 0.2, generator=g
    )  # 200 non-zero inputs per unit
    w = layer.weight.detach()
    bound = 1 / math.sqrt(200)
    nz = w[w != 0]
    assert nz.numel() == 500 * 200 and float(nz.abs().max()) <= bound
    assert float(nz.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    # the pre-activations have the variance of PyTorch's dense default (1/3 for unit
    # inputs) ...
    x = torch.randn(2000, 1000, generator=g)
    with torch.no_grad():
        sparse_var = float((x @ w.T).var())
        dense_var = float((x @ nn.Linear(1000, 500).weight.T).var())
        naive = nn.Linear(
            1000, 500
        )  # ... while masking PyTorch's default keeps only density * 1/3
        naive_var = float((x @ (naive.weight * layer.weight_mask).T).var())
    assert sparse_var == pytest.approx(1 / 3, rel=0.05) and dense_var == pytest.approx(
        1 / 3, rel=0.05
    )
    assert naive_var == pytest.approx(0.2 / 3, rel=0.05)
    he = SparseWeights(nn.Linear(1000, 10), 0.2, init="kaiming", generator=g)
    w_he = he.weight.detach().abs().max()
    assert float(w_he) <= math.sqrt(6 / 200) and float(w_he) > bound
    kept = nn.Linear(10, 4)
    before = kept.weight.detach().clone()
    sw = SparseWeights(kept, 0.5, init=None, generator=g)
    assert torch.equal(sw.weight, before * sw.weight_mask)


def test_loading_a_state_dict_brings_its_mask():
    a = SparseWeights(nn.Linear(10, 4), 0.5, generator=torch.Generator().manual_seed(0))
    b = SparseWeights(nn.Linear(10, 4), 0.5, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.weight_mask, b.weight_mask)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.weight.fill_(1.0)
    b.rezero_weights()
    assert torch.equal(b.weight != 0, a.weight_mask)


def test_floor_division_init_zeroes_the_layer_it_draws():
    torch.manual_seed(0)
    fc1 = nn.Linear(4320, 300)
    got = sparse_weights.floor_division_init_(fc1, 0.5)
    assert (
        got["fan"] == 2160 and got["weight_bound"] == 0.0 and got["bias_bound"] == 0.0
    )
    assert got["nonzero_weights"] == 0 and got["nonzero_biases"] == 0
    assert not fc1.weight.any() and not fc1.bias.any()
    assert got["weight_bound_with_slash"] == pytest.approx(1 / math.sqrt(2160))
    assert got["bias_bound_with_slash"] == pytest.approx(1 / math.sqrt(2160))
    # fan 1: the weight bound is still 0 (gain 0.577 // 1 = 0), the bias bound is 1 //
    # 1 = 1
    tiny = sparse_weights.floor_division_init_(nn.Linear(2, 3), 0.5)
    assert (
        tiny["fan"] == 1 and tiny["weight_bound"] == 0.0 and tiny["bias_bound"] == 1.0
    )
    assert tiny["nonzero_weights"] == 0 and tiny["nonzero_biases"] == 3
    # a gain above sqrt(fan) survives the floor division (2 // 1 = 2)
    assert (
        sparse_weights.floor_division_init_(nn.Linear(2, 3), 0.5, gain=2.0)[
            "nonzero_weights"
        ]
        == 6
    )
    with pytest.raises(TypeError, match="nn.Linear, got Conv2d"):
        sparse_weights.floor_division_init_(nn.Conv2d(1, 2, 3), 0.5)
    with pytest.raises(ValueError, match="density=0"):
        sparse_weights.floor_division_init_(nn.Linear(4, 2), 0)


def test_the_papers_mask_counts_equal_ours_for_the_table_1_layers():
    # the paper's code zeroes int(round((1 - density) * fan_in)) weights per unit; we
    # keep round(density * fan_in): the same numbers for every sparse layer of its Table
    # 1
    for fan_in in (4320, 1024):
        assert fan_in - int(round((1 - 0.3) * fan_in)) == int(round(0.3 * fan_in))
        layer = SparseWeights(nn.Linear(fan_in, 5), 0.3, init=None)
        assert layer.n_nonzero == fan_in - int(round(0.7 * fan_in))
        # init=None: the default init's bound, 1/sqrt of the full fan-in, is kept
        assert float(layer.weight.detach().abs().max()) <= 1 / math.sqrt(fan_in)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rezeroing_before_each_forward_as_the_paper_equals_masking_the_gradients(
    momentum,
):
    """The paper's SparseWeights zeroes the masked weights before every training forward
    pass (and after each epoch) and leaves their gradients alone; sparse_step masks the
    gradients. With SGD the kept weights and every forward pass are the same bit for
    bit."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(40, 12, generator=g), torch.randint(0, 3, (40,), generator=g)
    torch.manual_seed(1)
    ours = nn.Sequential(
        SparseWeights(nn.Linear(12, 8), 0.25, init=None), nn.ReLU(), nn.Linear(8, 3)
    )
    papers = nn.Sequential(
        SparseWeights(nn.Linear(12, 8), 0.25, init=None), nn.ReLU(), nn.Linear(8, 3)
    )
    papers.load_state_dict(ours.state_dict())
    opts = [
        torch.optim.SGD(net.parameters(), lr=0.1, momentum=momentum)
        for net in (ours, papers)
    ]
    step = sparse_weights.sparse_step()
    for i in range(0, 40, 8):
        xb, yb = X[i : i + 8], y[i : i + 8]
        opts[0].zero_grad()
        _, out_ours = step(ours, xb, yb)
        opts[0].step()
        opts[1].zero_grad()
        papers[
            0
        ].rezero_weights()  # the paper's forward: rezero when training, then the layer
        out = papers(xb)
        torch.nn.functional.cross_entropy(out, yb).backward()
        opts[1].step()
        assert torch.equal(out, out_ours)
    papers[0].rezero_weights()  # the paper's postEpoch
    for a, b in zip(ours.parameters(), papers.parameters()):
        assert torch.equal(a, b)
