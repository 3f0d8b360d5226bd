"""Tests of helpers.inspect_net: layer features, t-SNE, alignment, pictures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from helpers import inspect_net as insp


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 4, 13, 13)
        nn.Flatten(),
        nn.Linear(4 * 13 * 13, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def blobs(n_per_class=40, n_classes=4, dim=10, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 5
    X = np.concatenate(
        [c + spread * rng.normal(size=(n_per_class, dim)) for c in centres]
    )
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


# ----------------------------------------------------------------------- layer_features
def test_layer_features_shapes_at_every_layer():
    net = small_cnn()
    X = torch.randn(5, 1, 28, 28)
    expected = [
        (5, 4, 26, 26),
        (5, 4, 26, 26),
        (5, 4, 13, 13),
        (5, 676),
        (5, 8),
        (5, 8),
        (5, 3),
    ]
    feats = insp.layer_features(net, X, list(range(len(net))))
    assert list(feats) == list(range(len(net)))
    for i, shape in enumerate(expected):
        assert tuple(feats[i].shape) == shape, i
        # single layer: a tensor
        assert tuple(insp.layer_features(net, X, i).shape) == shape
    flat = insp.layer_features(net, X, [0, 2], flatten=True)
    assert tuple(flat[0].shape) == (5, 4 * 26 * 26) and tuple(flat[2].shape) == (
        5,
        4 * 13 * 13,
    )


def test_layer_features_values_match_manual_forward_and_batching():
    net = small_cnn()
    X = torch.randn(7, 1, 28, 28)
    with torch.no_grad():
        manual = net[:5](X)  # output of net[4]
        out = net(X)
    got = insp.layer_features(net, X, [4, -1, -1], batch_size=3)
    torch.testing.assert_close(got[4], manual)
    torch.testing.assert_close(got[-1], out)


def test_layer_features_names_and_mode_restored():
    net = nn.Sequential()
    net.add_module("fc", nn.Linear(6, 5))
    net.add_module("drop", nn.Dropout(0.9))
    net.add_module("act", nn.ReLU())
    net.train()
    X = torch.randn(4, 6)
    a = insp.layer_features(net, X, "act")
    b = insp.layer_features(net, X, "act")
    torch.testing.assert_close(a, b)  # dropout off: eval mode during extraction
    torch.testing.assert_close(a, torch.relu(net.fc(X)).detach())
    assert net.training  # mode put back


def test_layer_features_errors_are_clear():
    net = small_cnn()
    X = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="out of range.*7 modules"):
        insp.layer_features(net, X, 7)
    with pytest.raises(ValueError, match="not a child"):
        insp.layer_features(net, X, "conv9")
    with pytest.raises(TypeError, match="nn.Sequential"):
        insp.layer_features(nn.Linear(3, 3), torch.randn(2, 3), 0)
    with pytest.raises(ValueError, match=r"model\[4\].*shape"):
        # wrong input size reaches the Linear
        insp.layer_features(net, torch.randn(2, 1, 20, 20), 6)
    with pytest.raises(ValueError, match="empty"):
        insp.layer_features(net, X, [])


# --------------------------------------------------------------------------- t-SNE


def test_tsne_accepts_tensors_images_and_an_initialisation():
    X = torch.randn(60, 1, 4, 4)
    init = np.random.default_rng(0).normal(size=(60, 2)) * 1e-4
    Z = insp.embed_tsne(X, perplexity=5, init=init, max_iter=300)
    assert Z.shape == (60, 2) and np.isfinite(Z).all()


def test_tsne_thread_cap_is_seeded_and_released():
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info()]
    X, _ = blobs(n_per_class=20, n_classes=3)
    a = insp.embed_tsne(X, perplexity=10, max_iter=300, n_threads=1)
    b = insp.embed_tsne(X, perplexity=10, max_iter=300, n_threads=1)
    np.testing.assert_array_equal(a, b)
    # the cap is lifted afterwards
    assert [p["num_threads"] for p in threadpool_info()] == before


def test_tsne_errors_are_clear():
    with pytest.raises(ValueError, match="perplexity=30"):
        insp.embed_tsne(np.zeros((20, 3)))
    with pytest.raises(ValueError, match="max_iter=250"):
        insp.embed_tsne(np.random.rand(60, 3), perplexity=5, max_iter=250)
    with pytest.raises(ValueError, match="n_threads=0"):
        insp.embed_tsne(np.random.rand(60, 3), perplexity=5, n_threads=0)
    with pytest.raises(ValueError, match=r"shape \(60, 2\)"):
        insp.embed_tsne(np.random.rand(60, 3), perplexity=5, init=np.zeros((10, 2)))


# --------------------------------------------------------------------------- alignment
def test_align_embedding_undoes_rotation_scale_shift():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(50, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    reflect = np.array([[1, 0], [0, -1]])
    Z = 3.0 * R @ rot @ reflect + np.array([5.0, -2.0])
    np.testing.assert_allclose(insp.align_embedding(Z, R), R, atol=1e-10)
    with pytest.raises(ValueError, match="same points"):
        insp.align_embedding(Z[:10], R)


# --------------------------------------------------------------------------- pictures
def test_scatter_classes_and_show_maps_draw():
    X, y = blobs(n_per_class=5, n_classes=3)
    fig, axes = plt.subplots(1, 3)
    insp.scatter_classes(axes[0], X[:, :2], y, title="blobs")
    assert len(axes[0].collections) == 3
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["0", "1", "2"]
    assert axes[0].get_xlabel() and axes[0].get_ylabel()
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        insp.scatter_classes(axes[1], X[:, :3], y)
    maps = np.random.default_rng(0).normal(size=(2, 3, 3))
    im = insp.show_maps(axes[1:], maps, cmap="RdBu_r", symmetric=True)
    lo, hi = im.get_clim()
    assert lo == -hi == -np.abs(maps).max()
    with pytest.raises(ValueError, match="axes"):
        insp.show_maps(axes[:1], maps)
    plt.close(fig)
