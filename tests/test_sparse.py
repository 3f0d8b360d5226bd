"""Tests of helpers.sparse: the sparse net's namespace and its learning rule,
SparseNet.
"""

import pytest
import torch
from torch import nn

import helpers
from helpers import attacks, kwinners, metrics, sparse, sparse_weights


def test_the_namespace_gathers_the_pieces_without_copies():
    for module in (kwinners, sparse_weights):
        for name in module.__all__:
            assert getattr(sparse, name) is getattr(module, name), name
    assert sparse.KWinners is kwinners.KWinners
    assert sparse.SparseWeights is sparse_weights.SparseWeights
    assert sparse.noise_score is metrics.noise_score
    assert sparse.add_pixel_noise is attacks.add_pixel_noise


def blobs(seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 12, generator=g) * 2
    y = torch.arange(150) % 3
    X = centers[y] + torch.randn(150, 12, generator=g)
    return helpers.Data(
        X[:120], y[:120], X[120:], y[120:], mean=0.0, std=1.0, source="synthetic"
    )


def sparse_mlp():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    return nn.Sequential(
        sparse.SparseWeights(nn.Linear(12, 16), 0.25, generator=g),
        sparse.KWinners(16, 4),
        nn.Linear(16, 3),
    )


def test_sparse_net_rule_equals_keep_sparse_plus_boost_decay_per_epoch():
    data = blobs()
    a, b = sparse_mlp(), sparse_mlp()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    hist_a = helpers.fit(
        a,
        data,
        opt_a,
        3,
        16,
        step=sparse.SparseNet(),
        generator=torch.Generator().manual_seed(1),
    )
    hist_b = helpers.fit(
        b,
        data,
        opt_b,
        3,
        16,
        step=sparse.sparse_step(),
        generator=torch.Generator().manual_seed(1),
        on_epoch_end=lambda epoch, h: sparse.update_boost_strength(b),
    )
    assert hist_a["test_acc"] == hist_b["test_acc"]
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert a[1].boost_strength == pytest.approx(1.5 * 0.85**3)
    assert (a[0].weight != 0).sum(1).tolist() == [3] * 16
    assert isinstance(sparse.SparseNet(), helpers.Rule)
