"""The book's metrics: what a trained network is scored with, in one place.

- accuracy under a perturbation: :func:`accuracy_under_attack` (Gaussian noise, FGSM,
  PGD from :mod:`helpers.attacks`), :func:`noise_correct` and :func:`noise_score` (the
  pixel noise of Ahmad & Scheinkman, :func:`helpers.attacks.add_pixel_noise`);
- per layer: :func:`layer_accuracies` (each layer read out by its own readout);
- how well classes separate in features and in a t-SNE map: :func:`knn_accuracy`,
  :func:`separation_metrics`, :func:`tsne_with_metrics`.

Every accuracy here is counted by :func:`helpers.train.count_correct`, the book's one
batched scoring loop (eval mode, the model's mode restored afterwards)::

    from helpers import metrics

    metrics.accuracy_under_attack(net, data.X_test, data.y_test, "fgsm", data, eps=0.1)
    metrics.noise_score(net, data)  # correct digits summed over 11 noise levels
    metrics.layer_accuracies(local_net, data.X_test, data.y_test)
    metrics.tsne_with_metrics(H, labels, seed=0).metrics
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .attacks import ATTACKS, WHITE_PIXEL, _mean_std, add_pixel_noise
from .inspect_net import _as_2d_array, _as_labels, embed_tsne
from .params import ParameterError
from .train import count_correct

__all__ = [
    "accuracy_under_attack",
    "noise_correct",
    "noise_score",
    "layer_accuracies",
    "knn_accuracy",
    "separation_metrics",
    "TSNEResult",
    "tsne_with_metrics",
]


# ------------------------------------------------------------------------ perturbations
def accuracy_under_attack(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    attack: str | Callable,
    norm,
    *,
    batch_size: int = 1000,
    **kwargs,
) -> float:
    """Accuracy in [0, 1] of ``model`` on perturbed inputs, batch by batch.

    Parameters
    ----------
    attack : ``"none"``, ``"gaussian"`` (needs ``sigma=``), ``"fgsm"`` (needs ``eps=``),
        ``"pgd"`` (``eps=``, optional ``steps=``, ``step_size=``, ``random_start=``,
        ``generator=``), or a callable ``f(model, X, y, norm, **kwargs) -> X_perturbed``
        (see :data:`helpers.attacks.ATTACKS`).
    norm : :class:`helpers.Data` or ``(mean, std)`` of the inputs' normalisation.
    batch_size : inputs perturbed and scored at a time (memory only; a random attack
        draws its noise batch by batch, so results depend on it through the random
        stream).
    kwargs : passed to the attack (sizes on the [0, 1] pixel scale).

    The model is evaluated in eval mode and put back in its mode afterwards.
    """
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise ParameterError(
                f"attack={attack!r} is not known; allowed: {sorted(ATTACKS)} "
                "or a callable"
            )
        fn = ATTACKS[attack]
    elif callable(attack):
        fn = attack
    else:
        raise TypeError(
            f"attack must be a name ({sorted(ATTACKS)}) or a callable, "
            f"not {type(attack).__name__}"
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    _mean_std(norm)
    (correct,), _ = count_correct(
        model,
        X,
        y,
        int(batch_size),
        perturb=lambda m, xb, yb: fn(m, xb, yb, norm, **kwargs),
    )
    return correct / len(X)


def noise_correct(
    model: nn.Module,
    data,
    levels: Sequence[float],
    *,
    where: str = "unit",
    seed: int = 0,
    batch_size: int = 1000,
    n_test: int | None = None,
    white: float = WHITE_PIXEL,
) -> list[int]:
    """Correctly classified test digits at each noise level (a list of ints, one per
    level).

    ``data`` is a :class:`helpers.data.Data`; its test inputs are normalised, so
    ``where="unit"`` (the paper) writes the white pixel as ``(WHITE_PIXEL - data.mean) /
    data.std``, which is the paper's noise followed by the normalisation, and
    ``where="normalized"`` (the source) writes :data:`~helpers.attacks.WHITE_PIXEL` into
    the normalised inputs (see :func:`helpers.attacks.add_pixel_noise`). The noise comes
    from a CPU generator seeded with ``seed`` and drawn level after level, so two models
    scored with the same seed and levels see the same noisy digits. The model runs in
    eval mode (its mode is restored). ``n_test`` limits the test digits used (the first
    n_test). ``white`` is the noise value (default the paper's
    :data:`~helpers.attacks.WHITE_PIXEL`): a pixel value on the [0, 1] scale with
    ``where="unit"``, the number written as is with ``where="normalized"``.
    """
    if where not in ("unit", "normalized"):
        raise ValueError(
            f"where={where!r} is not known; use 'unit' (the paper) or "
            "'normalized' (the source)"
        )
    X, y = data.X_test, data.y_test
    if n_test is not None:
        X, y = X[:n_test], y[:n_test]
    value = (white - data.mean) / data.std if where == "unit" else white
    generator = torch.Generator().manual_seed(seed)
    out = []
    for level in levels:
        Xn = add_pixel_noise(X, level, generator, where="normalized", value=value)
        (correct,), _ = count_correct(model, Xn, y, batch_size)
        out.append(correct)
    return out


def noise_score(
    model: nn.Module,
    data,
    levels: Iterable[float] = tuple(i / 20 for i in range(11)),
    **kwargs,
) -> int:
    """The paper's noise score: correct test digits summed over the noise levels.

    With the default levels 0, 0.05, ..., 0.5 (11 levels) and the 10,000 MNIST test
    digits the score is at most 110,000. Keyword arguments go to :func:`noise_correct`
    (``where``, ``seed``, ...).
    """
    return int(sum(noise_correct(model, data, list(levels), **kwargs)))


# --------------------------------------------------------------------------- per layer
def layer_accuracies(
    net: nn.Module, X: torch.Tensor, y: torch.Tensor, *, batch_size: int = 2000
) -> list[float]:
    """Accuracy in [0, 1] of a network truncated after each layer, read out by that
    layer's readout (a :class:`helpers.local_errors.LocalErrorNet`, or any model with a
    ``layer_logits(x)`` method returning one score tensor per layer).

    Entry ``l - 1`` is layer ``l``'s accuracy; one forward pass per batch serves every
    layer. For a backprop network (``trainable_head=True``) only the last entry is
    meaningful (the other readouts are random and untrained for); use
    :func:`helpers.local_errors.linear_probes` for its hidden layers.
    """
    correct, _ = count_correct(
        net, X, y, batch_size, outputs=lambda m, xb: m.layer_logits(xb)
    )
    return [c / len(X) for c in correct]


# --------------------------------------------------------------------------- t-SNE
def knn_accuracy(X, y, *, k: int = 5, seed: int = 0) -> float:
    """Out-of-sample k-NN accuracy in [0, 1] of the points ``X`` (N, D) with labels
    ``y`` (N,).

    The points are split in two halves, stratified by label and seeded by ``seed``; a
    k-nearest-neighbour classifier (Euclidean, majority vote) is fitted on one half and
    scored on the other.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    X = _as_2d_array(X, "X")
    y = _as_labels(y, len(X))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    if k > len(X) // 2:
        raise ValueError(
            f"k={k} is larger than the fitting half ({len(X) // 2} of {len(X)} "
            "points); use a smaller k or more points"
        )
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    X_fit, X_score, y_fit, y_score = train_test_split(
        X, y, test_size=0.5, random_state=seed, stratify=stratify
    )
    clf = KNeighborsClassifier(n_neighbors=k).fit(X_fit, y_fit)
    return float(clf.score(X_score, y_score))


def separation_metrics(
    Z, y, X_original=None, *, k: int = 5, seed: int = 0
) -> dict[str, float]:
    """How well the classes ``y`` (N,) separate in the embedding ``Z`` (N, 2) and in
    ``X_original`` (N, D).

    Returns a dict of floats:

    - ``knn_acc_2d``, ``silhouette_2d``: k-NN accuracy (:func:`knn_accuracy`, k=``k``)
      and silhouette score (Euclidean, labels as clusters) in the embedding;
    - with ``X_original``: ``knn_acc_original``, ``silhouette_original`` (the same in
      the original space), and ``trustworthiness`` of ``Z`` with respect to
      ``X_original`` for ``k`` neighbours.
    """
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import silhouette_score

    Z = _as_2d_array(Z, "Z")
    y = _as_labels(y, len(Z))
    if len(np.unique(y)) < 2:
        raise ValueError(
            "y has a single class: silhouette and k-NN accuracy need at least two "
            "classes"
        )
    out = {
        "knn_acc_2d": knn_accuracy(Z, y, k=k, seed=seed),
        "silhouette_2d": float(silhouette_score(Z, y)),
    }
    if X_original is not None:
        X = _as_2d_array(X_original, "X_original")
        if len(X) != len(Z):
            raise ValueError(
                f"X_original has {len(X)} points but Z has {len(Z)}: they must be the "
                "same points"
            )
        if k >= len(X) / 2:
            raise ValueError(
                f"k={k} must be smaller than half the number of points ({len(X)}) for "
                "trustworthiness"
            )
        out["knn_acc_original"] = knn_accuracy(X, y, k=k, seed=seed)
        out["silhouette_original"] = float(silhouette_score(X, y))
        out["trustworthiness"] = float(trustworthiness(X, Z, n_neighbors=k))
    return out


@dataclass
class TSNEResult:
    """A t-SNE embedding ``Z`` (N, 2), the seconds the embedding took, and
    :func:`separation_metrics`.
    """

    Z: np.ndarray
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def tsne_with_metrics(
    X,
    y,
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    k: int = 5,
    init: str | np.ndarray = "pca",
    max_iter: int = 1000,
    n_threads: int | None = None,
) -> TSNEResult:
    """:func:`embed_tsne` of ``X`` (N, D) timed (wall clock, t-SNE only), then
    :func:`separation_metrics` of the embedding with labels ``y`` (N,) and ``X`` as
    original space."""
    X = _as_2d_array(X, "X")
    y = _as_labels(y, len(X))
    start = time.perf_counter()
    Z = embed_tsne(
        X,
        perplexity=perplexity,
        seed=seed,
        init=init,
        max_iter=max_iter,
        n_threads=n_threads,
    )
    seconds = time.perf_counter() - start
    return TSNEResult(
        Z=Z, seconds=seconds, metrics=separation_metrics(Z, y, X, k=k, seed=seed)
    )
