"""Looking inside a network: features at any layer, t-SNE embeddings, pictures of them.

Used by the chapters that compare what different learning rules make of the hidden
layers::

    from helpers import inspect_net as insp
    from helpers import metrics

    H = insp.layer_features(net, data.X_test[:2000], 2)  # (2000, 128): output of net[2]
    res = metrics.tsne_with_metrics(
        H, data.y_test[:2000], seed=0
    )  # embedding, metrics, seconds
    insp.scatter_classes(ax, res.Z, data.y_test[:2000])

:func:`layer_features` is the book's one reader of hidden features (chapter 3's
:func:`helpers.local_errors.layer_representations` reads a ``LocalErrorNet`` through
it). The numbers that say "clusters form" (k-NN accuracy, trustworthiness, silhouette)
are in :mod:`helpers.metrics`.

Everything here works on NumPy arrays or tensors and returns NumPy arrays (features are
returned as tensors by :func:`layer_features`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .train import eval_mode

__all__ = [
    "layer_features",
    "embed_tsne",
    "align_embedding",
    "scatter_classes",
    "show_maps",
]


# --------------------------------------------------------------------------- features
def _resolve_layer(model: nn.Sequential, layer: int | str) -> int:
    """Position (0-based, non-negative) of ``layer`` (an index, possibly negative, or a
    child name).
    """
    names = [name for name, _ in model.named_children()]
    n = len(names)
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(
                f"layer {layer!r} is not a child of this nn.Sequential; its children "
                f"are {names}"
            )
        return names.index(layer)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(
            f"layer={layer!r} must be an integer index or a child name, not "
            f"{type(layer).__name__}"
        )
    if not -n <= layer < n:
        raise ValueError(
            f"layer={layer} is out of range: this nn.Sequential has {n} modules, "
            f"so use an index from {-n} to {n - 1} (the output of model[i] is returned)"
        )
    return int(layer) % n


@torch.no_grad()
def layer_features(
    model: nn.Sequential,
    X: torch.Tensor,
    layers: int | str | Sequence[int | str],
    *,
    batch_size: int = 1000,
    flatten: bool = False,
    cpu: bool = True,
) -> torch.Tensor | dict[int | str, torch.Tensor]:
    """Outputs of chosen modules of an ``nn.Sequential`` for inputs ``X``.

    Parameters
    ----------
    model : an ``nn.Sequential`` (nested ones count as one module each). It is run in
        eval mode (dropout off, batch norm on running statistics) and put back in its
        mode after.
    X : inputs of shape (N, ...) that ``model`` accepts, e.g. (N, 1, 28, 28) or (N,
        784).
    layers : one layer or a list of layers. A layer is the position ``i`` of a module
        (negative counts from the end) or its name; its features are the output of
        ``model[i]``, so ``layers=len(model) - 1`` gives the model's output.
    batch_size : inputs per forward pass (memory, not results).
    flatten : reshape each output to (N, features), e.g. conv maps (N, C, H, W) -> (N,
        C*H*W).
    cpu : move the features to the CPU (default); False keeps them on the model's
        device.

    Returns
    -------
    For a single layer, a tensor of shape (N, ...) (the module's output shape); for a
    list, a dict ``{layer: tensor}`` in the order given. The forward pass stops after
    the deepest layer asked for.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"layer_features needs an nn.Sequential, got {type(model).__name__}; wrap "
            "the model's "
            "layers in nn.Sequential(...) (or pass the Sequential attribute of your "
            "module)"
        )
    if len(model) == 0:
        raise ValueError("the nn.Sequential is empty: it has no layers to read")
    single = isinstance(layers, (int, np.integer, str))
    wanted = [layers] if single else list(layers)
    if not wanted:
        raise ValueError("layers is empty: ask for at least one layer, e.g. layers=[1]")
    positions = {layer: _resolve_layer(model, layer) for layer in wanted}
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer")
    if not isinstance(X, torch.Tensor):
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    device = next((p.device for p in model.parameters()), X.device)
    last = max(positions.values())
    modules = list(model.children())[: last + 1]
    chunks: dict[int, list[torch.Tensor]] = {pos: [] for pos in set(positions.values())}
    with eval_mode(model):
        for start in range(0, len(X), batch_size):
            h = X[start : start + batch_size].to(device)
            for i, module in enumerate(modules):
                try:
                    h = module(h)
                except RuntimeError as e:
                    raise ValueError(
                        f"model[{i}] ({module}) failed on an input of shape "
                        f"{tuple(h.shape)}"
                        f"{' (the raw input X)' if i == 0 else ''}: {e}. Check that X "
                        "has "
                        "the shape the model expects, e.g. (N, 1, 28, 28) for a CNN or "
                        "(N, 784) for an MLP without nn.Flatten."
                    ) from None
                if i in chunks:
                    chunks[i].append(h.detach().cpu() if cpu else h.detach())
    out = {}
    for layer, pos in positions.items():
        t = torch.cat(chunks[pos]) if chunks[pos] else torch.empty(0)
        out[layer] = t.reshape(len(t), -1) if flatten else t
    return out[wanted[0]] if single else out


# --------------------------------------------------------------------------- t-SNE
def _as_2d_array(X, name: str) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim < 2:
        raise ValueError(f"{name} must have shape (N, features), got shape {X.shape}")
    X = X.reshape(len(X), -1)
    if not np.isfinite(X).all():
        raise ValueError(
            f"{name} contains NaN or inf values; check the features (did training "
            "diverge?)"
        )
    return X


def _as_labels(y, n: int) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise ValueError(
            f"y has {len(y)} labels but there are {n} points: give one label per point"
        )
    return y


def embed_tsne(
    X,
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    init: str | np.ndarray = "pca",
    max_iter: int = 1000,
    n_threads: int | None = None,
) -> np.ndarray:
    """2-D t-SNE of ``X`` (shape (N, D), or (N, ...) which is flattened) with
    scikit-learn.

    Barnes-Hut t-SNE, Euclidean distances, ``learning_rate="auto"``, ``init="pca"`` (or
    an (N, 2) array, e.g. to share an initialisation between embeddings), ``max_iter``
    optimisation steps (more than 250: scikit-learn spends the first 250 in its
    early-exaggeration phase, and an embedding stopped there is still unusable, about as
    trustworthy as a random one), seeded by ``seed``. ``n_threads`` caps the threads of
    the neighbour search and of the gradient (None: scikit-learn's default, every core);
    on a machine shared with other jobs ``n_threads=1`` can be several times faster than
    waiting for busy cores. Returns ``Z`` of shape (N, 2), float64.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    X = _as_2d_array(X, "X")
    n = len(X)
    if not 0 < perplexity < n:
        raise ValueError(
            f"perplexity={perplexity} must be positive and smaller than the number of "
            f"points ({n}); "
            "use more points or a smaller perplexity (5 to 50 is usual)"
        )
    if (
        isinstance(max_iter, bool)
        or not isinstance(max_iter, (int, np.integer))
        or max_iter <= 250
    ):
        raise ValueError(
            f"max_iter={max_iter!r} must be an integer above 250: the first 250 steps "
            "are "
            "scikit-learn's early exaggeration, after which the embedding is not yet "
            "usable"
        )
    if n_threads is not None and (
        isinstance(n_threads, bool)
        or not isinstance(n_threads, (int, np.integer))
        or n_threads < 1
    ):
        raise ValueError(
            f"n_threads={n_threads!r} must be None (every core) or a positive integer"
        )
    if isinstance(init, np.ndarray) and init.shape != (n, 2):
        raise ValueError(
            f"init has shape {init.shape}; an initial embedding must have shape ({n}, "
            "2)"
        )
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init=init,
        learning_rate="auto",
        max_iter=int(max_iter),
        random_state=seed,
        n_jobs=None if n_threads is None else int(n_threads),
    )
    if n_threads is None:
        return tsne.fit_transform(X)
    with threadpool_limits(limits=int(n_threads)):
        return tsne.fit_transform(X)


def align_embedding(Z, reference) -> np.ndarray:
    """Rotate/reflect, scale and shift ``Z`` (N, 2) to best match ``reference`` (N, 2)
    (Procrustes).

    The map is a similarity transform (orthogonal matrix, one scale factor, translation)
    fitted by least squares over the same N points, so distances keep their ratios and
    every metric of :func:`separation_metrics` is unchanged; only the picture is turned
    to be comparable.
    """
    from scipy.linalg import orthogonal_procrustes

    Z = _as_2d_array(Z, "Z")
    R = _as_2d_array(reference, "reference")
    if Z.shape != R.shape:
        raise ValueError(
            f"Z has shape {Z.shape} but reference has {R.shape}: align embeddings of "
            "the same points"
        )
    Zc, Rc = Z - Z.mean(0), R - R.mean(0)
    Q, _ = orthogonal_procrustes(Zc, Rc)
    rotated = Zc @ Q
    denom = float((rotated**2).sum())
    scale = float((rotated * Rc).sum()) / denom if denom > 0 else 1.0
    return rotated * scale + R.mean(0)


# --------------------------------------------------------------------------- pictures
def scatter_classes(
    ax,
    Z,
    y,
    *,
    s: float = 3.0,
    alpha: float = 0.8,
    legend: bool = True,
    title: str | None = None,
    xlabel: str = "t-SNE 1 (arb. units)",
    ylabel: str = "t-SNE 2 (arb. units)",
):
    """Scatter the 2-D points ``Z`` (N, 2) coloured by class ``y`` (N,), one colour per
    digit.

    Colours are :data:`helpers.plotting.CLASS_COLORS` (class c gets colour c mod 10), so
    a digit has the same colour in every figure. Ticks are removed (t-SNE coordinates
    have no meaning). Returns ``ax``.
    """
    from .plotting import CLASS_COLORS

    Z = _as_2d_array(Z, "Z")
    if Z.shape[1] != 2:
        raise ValueError(f"Z must have shape (N, 2), got {Z.shape}")
    y = _as_labels(y, len(Z))
    for c in np.unique(y):
        m = y == c
        ax.scatter(
            Z[m, 0],
            Z[m, 1],
            s=s,
            alpha=alpha,
            color=CLASS_COLORS[int(c) % len(CLASS_COLORS)],
            label=str(c),
            linewidths=0,
            rasterized=True,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(
            title="digit",
            markerscale=4 / max(s, 0.1) * 2,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            handletextpad=0.1,
            borderaxespad=0.2,
        )
    return ax


def show_maps(
    axes,
    maps,
    *,
    cmap: str = "gray",
    symmetric: bool = False,
    shared_scale: bool = True,
    titles: Sequence[str] | None = None,
):
    """Draw 2-D maps ``maps`` (M, H, W) (feature maps or kernels) into the axes ``axes``
    (>= M of them).

    ``shared_scale`` uses one colour range for all M maps (so brightness compares across
    maps); ``symmetric`` centres it on 0 (for signed kernels, with a diverging ``cmap``
    such as "RdBu_r"). Returns the last image, for a colorbar. Unused axes are switched
    off.
    """
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (M, H, W), got {maps.shape}")
    axes = np.asarray(axes).ravel()
    if len(axes) < len(maps):
        raise ValueError(
            f"{len(maps)} maps need at least as many axes, got {len(axes)}"
        )
    vmin = vmax = None
    if shared_scale:
        lo, hi = float(maps.min()), float(maps.max())
        if symmetric:
            hi = max(abs(lo), abs(hi))
            lo = -hi
        vmin, vmax = lo, hi if hi > lo else lo + 1e-12
    im = None
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(maps):
            m = maps[i]
            if not shared_scale and symmetric:
                h = float(np.abs(m).max()) or 1e-12
                im = ax.imshow(m, cmap=cmap, vmin=-h, vmax=h)
            else:
                im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7, pad=1)
    return im
