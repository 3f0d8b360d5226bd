"""Deep networks trained with local errors: every hidden layer has its own fixed random
readout.

A :class:`LocalErrorNet` is a stack of hidden blocks ``Linear -> ReLU`` (5 x 1000 units
by default). Block ``l`` maps ``h_{l-1}`` to ``h_l`` and has a *readout*
``r_l(h) = B_l h``, a linear map to the class scores whose weights
``B_l ~ N(0, readout_std^2)`` (0.01 by default) are drawn once and never trained, with
zero bias. The readouts are registered as buffers, so they are saved with the model and
moved with ``.to(device)`` but are not parameters: no optimiser can change them. Layer
``l``'s *local* loss is the cross-entropy of ``r_l(h_l)``.

Three ways to train the same blocks::

    from helpers import local_errors as le

    net = le.LocalErrorNet()  # 784 -> 5 x 1000 -> 10
    hist = le.train_greedy(net, data, epochs=30, lr=1e-3, batch_size=64)
    metrics.layer_accuracies(
        net, data.X_test, data.y_test
    )  # [acc after layer 1, ..., layer 5]

    net = le.LocalErrorNet()
    le.train_simultaneous(net, data, epochs=30, lr=1e-3, batch_size=64)

    bp = le.LocalErrorNet(trainable_head=True)                 # the backprop baseline
    le.train_backprop(bp, data, epochs=30, lr=1e-3, batch_size=64)

- **Greedy layer-wise** (:func:`train_greedy`): layer 1 is trained alone through
  ``r_1``, then frozen; layer 2 is trained alone through ``r_2`` on layer 1's (fixed)
  output, and so on. Because the earlier layers no longer change, their output for the
  whole training and test set is computed **once per layer** and the mini-batches are
  drawn from that tensor.
- **Simultaneous** (:func:`train_simultaneous`, Mostafa et al.'s setting): every layer
  learns from its own local loss at the same time. The input of each block is detached,
  so no gradient crosses from one layer to the one below; one optimiser step per
  mini-batch updates all layers.
- **End-to-end backprop** (:func:`train_backprop`): the same blocks, but the last
  readout is an ordinary trainable ``nn.Linear`` (``trainable_head=True``) and the
  cross-entropy of the network's output is back-propagated through every layer. We make
  the head trainable because that is the standard backprop network of this architecture;
  a backprop network forced to use a fixed random head would be a different (and
  handicapped) baseline. The intermediate readouts of such a network are still the fixed
  random ones, which its blocks were *not* trained for, so read its hidden layers with
  :func:`linear_probes` instead.

The same three as learning rules for :func:`helpers.fit` (one optimiser over all
parameters)::

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    helpers.fit(net, data, opt, 30, 64, step=le.LocalGreedy())  # = train_greedy
    helpers.fit(
        net, data, opt, 30, 64, step=le.LocalSimultaneous()
    )  # = train_simultaneous
    helpers.fit(bp, data, opt_bp, 30, 64)  # = train_backprop

Layers are numbered from 1 (the first hidden layer) to ``depth``, as in the papers;
lists returned per layer hold layer 1 at index 0. Inputs may be images
``(N, 1, 28, 28)`` or flat ``(N, 784)``: they are flattened first.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Data
from .inspect_net import layer_features
from .metrics import layer_accuracies
from .params import _is_int
from .train import Rule, Timer, eval_mode, fit, fit_epochs

__all__ = [
    "FixedReadout",
    "LocalErrorNet",
    "local_losses",
    "layer_representations",
    "layer_saturation",
    "LocalGreedy",
    "LocalSimultaneous",
    "train_greedy",
    "train_simultaneous",
    "train_backprop",
    "linear_probes",
]


# --------------------------------------------------------------------------- modules
class FixedReadout(nn.Module):
    """A linear map ``h -> h @ W.T + b`` whose weights are drawn once and never trained.

    Parameters
    ----------
    in_features, out_features : sizes of ``h`` and of the output (the number of
        classes).
    std : standard deviation of the Gaussian weights ``W ~ N(0, std^2)``; the bias is
        zero.
    generator : optional ``torch.Generator`` for the draw (default: torch's global RNG).

    ``weight`` (out_features, in_features) and ``bias`` (out_features,) are buffers, not
    parameters: ``list(readout.parameters()) == []``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        std: float = 0.01,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ValueError(
                f"readout std={std!r} must be a positive finite number, e.g. 0.01"
            )
        w = torch.randn(out_features, in_features, generator=generator) * std
        self.register_buffer("weight", w)
        self.register_buffer("bias", torch.zeros(out_features))
        self.in_features, self.out_features, self.std = (
            in_features,
            out_features,
            float(std),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"std={self.std}, fixed"
        )


class LocalErrorNet(nn.Module):
    """Hidden blocks ``Linear -> ReLU``, each with its own readout to the class scores.

    Parameters
    ----------
    in_features : input size after flattening (784 for MNIST).
    width : units per hidden layer (1000), or a sequence giving each layer's width.
    depth : number of hidden layers (5); ignored when ``width`` is a sequence.
    n_classes : number of classes (10).
    readout_std : standard deviation of the fixed random readout weights (0.01).
    trainable_head : if True, the *last* readout is an ordinary trainable ``nn.Linear``
        (PyTorch's default initialisation): the end-to-end backprop baseline. Readouts
        of the other layers stay fixed.
    generator : optional ``torch.Generator`` for the readout weights (the blocks use
        torch's global RNG, like every ``nn.Linear``).

    Attributes
    ----------
    blocks : ``nn.ModuleList`` of ``nn.Sequential(nn.Linear, nn.ReLU)``;
        ``blocks[l - 1]`` is layer l.
    readouts : ``nn.ModuleList``; ``readouts[l - 1]`` is layer l's readout.

    ``net(X)`` returns the last layer's class scores ``(N, n_classes)``;
    ``net.truncated(l)`` is the network cut after layer ``l`` and read out through
    ``readouts[l - 1]``.
    """

    def __init__(
        self,
        in_features: int = 784,
        width: int | Sequence[int] = 1000,
        depth: int = 5,
        n_classes: int = 10,
        readout_std: float = 0.01,
        trainable_head: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if _is_int(width):
            if not (_is_int(depth) and depth >= 1):
                raise ValueError(
                    f"depth={depth!r} must be a positive integer (number of hidden "
                    "layers)"
                )
            widths = [width] * int(depth)
        else:
            widths = list(width)
            if not widths:
                raise ValueError(
                    "width is an empty sequence: give at least one hidden-layer width"
                )
        if not all(_is_int(w) and w >= 1 for w in widths):
            raise ValueError(
                f"width={width!r}: every hidden-layer width must be a positive integer"
            )
        self.widths = widths = [int(w) for w in widths]
        self.trainable_head = bool(trainable_head)
        sizes = [in_features, *widths]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU())
            for a, b in zip(sizes[:-1], sizes[1:])
        )
        readouts = [
            FixedReadout(w, n_classes, readout_std, generator=generator) for w in widths
        ]
        if trainable_head:
            readouts[-1] = nn.Linear(widths[-1], n_classes)
        self.readouts = nn.ModuleList(readouts)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def _check_layer(self, layer) -> int:
        if not _is_int(layer) or not 1 <= layer <= self.depth:
            raise ValueError(
                f"layer={layer!r} is not a layer of this network: layers are numbered "
                f"1 to {self.depth} "
                "(1 = first hidden layer)"
            )
        return int(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for block in self.blocks:
            h = block(h)
        return self.readouts[-1](h)

    def layer_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Class scores of every layer through its own readout, from one forward
        pass.
        """
        h, out = x.flatten(1), []
        for block, readout in zip(self.blocks, self.readouts):
            h = block(h)
            out.append(readout(h))
        return out

    def truncated(self, layer: int, readout: nn.Module | None = None) -> nn.Sequential:
        """The network cut after ``layer`` (1..depth) with ``readout`` (default: the
        layer's own).

        The returned ``nn.Sequential(Flatten, block_1, ..., block_layer, readout)``
        shares its modules with this network (no copy): use it to evaluate or attack one
        layer.
        """
        self._check_layer(layer)
        head = self.readouts[layer - 1] if readout is None else readout
        return nn.Sequential(nn.Flatten(), *self.blocks[:layer], head)


# ------------------------------------------------------------------ losses and features
def local_losses(
    net: LocalErrorNet, x: torch.Tensor, y: torch.Tensor, *, detach: bool = True
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each layer's cross-entropy through its own readout, and each layer's class
    scores.

    With ``detach=True`` (local learning) the input of every block is detached from the
    graph, so ``losses[l].backward()`` reaches only block ``l + 1``'s parameters; layer
    1's parameters get no gradient from layer 2's loss. Returns ``(losses, logits)``,
    lists of length depth.
    """
    h = x.flatten(1)
    losses, logits = [], []
    for block, readout in zip(net.blocks, net.readouts):
        h = block(h.detach() if detach else h)
        out = readout(h)
        losses.append(F.cross_entropy(out, y))
        logits.append(out)
    return losses, logits


def _device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def _apply_blocks(
    blocks: Iterable[nn.Module], H: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``blocks`` applied in turn to H (already flat), in chunks of ``batch_size``
    rows.
    """
    blocks = list(blocks)
    # filled in place: no list of chunks plus a concatenated copy at the peak
    out = None
    for start in range(0, len(H), batch_size):
        h = H[start : start + batch_size]
        for block in blocks:
            h = block(h)
        if out is None:
            out = h.new_empty((len(H), *h.shape[1:]))
        out[start : start + len(h)] = h
    if out is None:
        raise ValueError(
            "the data set is empty: there is nothing to compute a representation of"
        )
    return out


def layer_representations(
    net: LocalErrorNet,
    X: torch.Tensor,
    layers: int | Sequence[int] | None = None,
    *,
    batch_size: int = 1000,
) -> torch.Tensor | dict[int, torch.Tensor]:
    """Hidden-layer activities ``h_l`` (after the ReLU) for inputs X, batched and
    without gradients.

    Parameters
    ----------
    X : inputs (N, 784) or (N, 1, 28, 28), normalised as the network was trained.
    layers : one layer number (1..depth) -> a tensor (N, width_l); a sequence of them ->
        a dict ``{layer: tensor}`` in the order given; None -> a dict with every layer.
    batch_size : rows per forward pass (memory only, not results).

    Tensors stay on the network's device, in float32. The forward pass stops at the
    deepest layer asked for. The network is run in eval mode and put back in its mode
    afterwards.
    """
    single = _is_int(layers)
    wanted = (
        list(range(1, net.depth + 1))
        if layers is None
        else ([layers] if single else list(layers))
    )
    if not wanted:
        raise ValueError("layers is empty: ask for at least one layer, e.g. layers=[1]")
    wanted = [net._check_layer(layer) for layer in wanted]
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer")
    # position l of this view is block l's output: the one reader of hidden features
    # reads it
    view = nn.Sequential(nn.Flatten(), *net.blocks)
    with eval_mode(net):  # the blocks are the net's: its mode is the one to put back
        feats = layer_features(view, X, wanted, batch_size=batch_size, cpu=False)
    return feats[wanted[0]] if single else feats


@torch.no_grad()
def layer_saturation(
    net: LocalErrorNet, X: torch.Tensor, y: torch.Tensor, *, batch_size: int = 2000
) -> list[dict[str, float]]:
    """How saturated each layer's softmax is on (X, y), read through the layer's own
    readout.

    For every layer, with ``z`` the class scores of its readout and
    ``m = z_y - max_{j != y} z_j`` each example's *margin* (negative when the example is
    misclassified):

    - ``zero_loss``: fraction of examples whose cross-entropy, computed as in training
      (``F.cross_entropy`` in the network's dtype), is exactly 0.0. The loss of a
      correctly classified example is ``log(1 + s)`` with
      ``s = sum_{j != y} exp(z_j - z_y)``, computed as
      ``(z_y + log(sum_j exp(z_j - z_y))) - z_y``; in float32 the sum rounds back to
      ``z_y`` once ``s`` is below half the float32 spacing at ``|z_y|`` (``2^-24 |z_y|``
      for scores above 1): with nine wrong classes and a score of 17 that is a margin of
      17 or more. The gradient with respect to the scores is then at most ``s``: such an
      example no longer moves the weights;
    - ``median_margin`` and ``min_margin``: the median (``numpy.median``) and smallest
      margin;
    - ``mean_loss``: the mean cross-entropy (as ``helpers.evaluate`` reports it).

    Returns one dict per layer (layer 1 first). The network is run in eval mode and put
    back.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("X is empty: the saturation of zero examples is undefined")
    device = _device_of(net)
    zero = torch.zeros(net.depth, dtype=torch.long)
    loss_sum = torch.zeros(net.depth, dtype=torch.float64)
    margins: list[list[torch.Tensor]] = [[] for _ in range(net.depth)]
    with eval_mode(net):
        for start in range(0, len(X), batch_size):
            xb = X[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            for l, z in enumerate(net.layer_logits(xb)):
                loss = F.cross_entropy(z, yb, reduction="none")
                zero[l] += int((loss == 0).sum())
                loss_sum[l] += float(loss.double().sum())
                true = z.gather(1, yb[:, None])[:, 0]
                other = z.scatter(1, yb[:, None], float("-inf")).max(1).values
                margins[l].append((true - other).double().cpu())
    out = []
    for l in range(net.depth):
        m = torch.cat(margins[l])
        out.append(
            {
                "zero_loss": int(zero[l]) / len(X),
                "median_margin": float(np.median(m.numpy())),
                "min_margin": float(m.min()),
                "mean_loss": float(loss_sum[l]) / len(X),
            }
        )
    return out


# --------------------------------------------------------------------------- training
def _check_training_args(epochs, lr, batch_size):
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs={epochs!r} must be an integer >= 0")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} must be a positive finite number, e.g. 1e-3")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"batch_size={batch_size!r} must be a positive integer, e.g. 64"
        )


def _check_start_epoch(start_epoch, epochs):
    if (
        isinstance(start_epoch, bool)
        or not isinstance(start_epoch, int)
        or not 0 <= start_epoch <= epochs
    ):
        raise ValueError(
            f"start_epoch={start_epoch!r} must be an integer from 0 to "
            f"epochs={epochs}: the number of "
            "epochs already done by the run being resumed (0 for a fresh start)"
        )


def _offset(on_epoch_end: Callable | None, start_epoch: int) -> Callable | None:
    """``on_epoch_end`` called with epoch numbers counted from the start of the whole
    run.
    """
    if on_epoch_end is None:
        return None
    return lambda epoch, history: on_epoch_end(start_epoch + epoch, history)


def _frozen_data(
    data: Data, H_train: torch.Tensor, H_test: torch.Tensor, what: str
) -> Data:
    """A :class:`Data` whose inputs are a fixed representation (so :func:`helpers.fit`
    can train on it).
    """
    return Data(
        H_train,
        data.y_train,
        H_test,
        data.y_test,
        mean=0.0,
        std=1.0,
        source=f"{data.source} | {what}",
        dataset=data.dataset,
    )


def _greedy_stages(
    net: LocalErrorNet,
    data: Data,
    layers: Sequence[int],
    representation_batch_size: int,
):
    """For each layer of ``layers`` (increasing): ``(layer, model, frozen)``, where
    ``model`` is the layer's block and readout and ``frozen`` the data whose inputs are
    the output of the layers below, computed once (the blocks below are never run while
    the layer trains)."""
    device = _device_of(net)
    H_train = data.X_train.to(device).flatten(1)
    H_test = data.X_test.to(device).flatten(1)
    done = 0  # H_* is the output of layers 1..done
    for layer in layers:
        below = net.blocks[done : layer - 1]
        if len(below):
            H_train = _apply_blocks(below, H_train, representation_batch_size)
            H_test = _apply_blocks(below, H_test, representation_batch_size)
            done = layer - 1
        model = nn.Sequential(net.blocks[layer - 1], net.readouts[layer - 1])
        yield (
            layer,
            model,
            _frozen_data(data, H_train, H_test, f"output of layers 1..{layer - 1}"),
        )


def _check_fixed_readouts(net: LocalErrorNet, what: str) -> None:
    if not isinstance(net, LocalErrorNet):
        raise TypeError(f"{what} trains a LocalErrorNet, got {type(net).__name__}")
    if net.trainable_head:
        raise ValueError(
            f"{what} needs fixed readouts on every layer, but this net has "
            "trainable_head=True "
            "(the backprop baseline); build it with LocalErrorNet(trainable_head=False)"
        )


class LocalSimultaneous(Rule):
    """All layers of a :class:`LocalErrorNet` learn at once, each from its own readout's
    loss.

    One forward pass in which each block's input is detached (:func:`local_losses`), one
    backward pass of the *sum* of the per-layer losses: since the blocks' parameters are
    disjoint and each loss reaches only its own block, one optimiser step on all blocks
    is an independent update of every layer on its own loss. The step returns the summed
    loss and the last layer's class scores.
    """

    name = "local_simultaneous"

    def step(self, model, xb, yb):
        losses, logits = local_losses(model, xb, yb, detach=True)
        total = torch.stack(losses).sum()
        total.backward()
        return total, logits[-1]


class LocalGreedy(Rule):
    """Greedy layer-wise training of a :class:`LocalErrorNet`, as a rule for
    :func:`helpers.fit`.

    Layer 1 is trained alone through its fixed readout for ``epochs`` epochs, then layer
    2 on layer 1's frozen output, and so on (:func:`train_greedy` explains the stages).
    ``fit``'s optimiser must hold the blocks' parameters (e.g.
    ``Adam(net.parameters())``): only the layer being trained has gradients, so an
    optimiser without per-parameter state from earlier steps (Adam, SGD) updates it
    exactly as a fresh optimiser per layer would.

    ``layers``: which layers to train (default all); ``representation_batch_size``: rows
    per forward pass of the frozen representations. ``fit`` returns the history of every
    layer-epoch in training order (``train_loss``, ``train_acc``, ``test_loss``,
    ``test_acc`` for the net cut after that layer, and ``layer``), and ``epoch_seconds``
    with one entry per epoch of the budget: a greedy epoch trains every layer once, so
    each entry is the whole run's seconds (frozen representations included) divided by
    ``epochs``.
    """

    name = "local_greedy"

    def __init__(
        self,
        layers: Sequence[int] | None = None,
        *,
        representation_batch_size: int = 2000,
        loss_fn: Callable = F.cross_entropy,
    ):
        super().__init__(loss_fn)
        self.layers = layers
        self.representation_batch_size = representation_batch_size

    def step(self, model, xb, yb):
        raise TypeError(
            "LocalGreedy trains one layer at a time: give it to helpers.fit as "
            "step=LocalGreedy(), which trains the layers in turn"
        )

    def fit(
        self,
        net,
        data,
        optimizer,
        epochs,
        batch_size,
        *,
        loss_fn=F.cross_entropy,
        generator=None,
        scheduler=None,
        on_epoch_end=None,
        desc="greedy",
    ) -> dict:
        _check_fixed_readouts(net, "LocalGreedy")
        todo = _layers_to_train(net, self.layers)
        keys = ("train_loss", "train_acc", "test_loss", "test_acc")
        history: dict[str, list] = {k: [] for k in (*keys, "layer", "epoch_seconds")}
        stage_rule = Rule(self.loss_fn)
        with Timer(data.device) as t:
            for layer, model, frozen in _greedy_stages(
                net, data, todo, self.representation_batch_size
            ):
                hist = fit_epochs(
                    model,
                    frozen,
                    optimizer,
                    epochs,
                    batch_size,
                    rule=stage_rule,
                    loss_fn=loss_fn,
                    generator=generator,
                    scheduler=scheduler,
                    desc=f"{desc}, layer {layer}/{net.depth}",
                )
                for k in keys:
                    history[k] += hist[k]
                history["layer"] += [layer] * epochs
                self.on_epoch_end(net, len(history["layer"]), history)
                if on_epoch_end is not None:
                    on_epoch_end(len(history["layer"]), history)
        history["epoch_seconds"] = [t.seconds / epochs] * epochs if epochs else []
        return history


def _layers_to_train(net: LocalErrorNet, layers) -> list[int]:
    if _is_int(layers):
        layers = [layers]
    todo = (
        list(range(1, net.depth + 1))
        if layers is None
        else [net._check_layer(l) for l in layers]
    )
    if not todo:
        raise ValueError(
            "layers is empty: give at least one layer to train, e.g. layers=[1]"
        )
    if todo != sorted(set(todo)):
        raise ValueError(
            f"layers={list(layers)} must be distinct and increasing: layer l is "
            "trained on top of layers < l"
        )
    return todo


def train_greedy(
    net: LocalErrorNet,
    data: Data,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    layers: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    representation_batch_size: int = 2000,
    on_epoch_end: Callable | None = None,
    start_epoch: int = 0,
    on_optimizer: Callable | None = None,
) -> dict[int, dict[str, list[float]]]:
    """Greedy layer-wise training: each layer alone through its fixed readout, earlier
    layers frozen.

    Parameters
    ----------
    net : a :class:`LocalErrorNet` with fixed readouts (``trainable_head=False``).
    data : a :class:`helpers.Data` (inputs normalised as the network will see them).
    epochs, lr, batch_size : per layer: Adam with learning rate ``lr``, mini-batches of
        ``batch_size`` drawn from a fresh permutation each epoch
        (:func:`helpers.batches`).
    layers : which layers to train, in increasing order (default: all, 1..depth); one
        layer may be given as an int. Layers not listed keep their current weights (and
        are used, frozen, below the trained ones).
    generator : ``torch.Generator`` for the mini-batch order (default: torch's global
        RNG).
    representation_batch_size : rows per forward pass when computing frozen
        representations.
    on_epoch_end : optional ``f(layer, epoch, history)`` called after each epoch of each
        layer.
    start_epoch : epochs of the *first* listed layer already done (0: none). To resume a
        layer interrupted after ``k`` epochs, restore the network's weights, the
        ``generator``'s state and the layer's optimiser state (through
        ``on_optimizer``), then call again with that layer first in ``layers`` and
        ``start_epoch=k``: it trains epochs ``k + 1 .. epochs``, and the result is the
        same, bit for bit on the CPU, as an uninterrupted run.
    on_optimizer : optional ``f(layer, optimizer)`` called once per layer, right after
        the layer's Adam optimiser is made and before its first step: load a saved
        optimiser state into it, or keep a reference to save it (e.g. in
        ``on_epoch_end``).

    Returns
    -------
    ``{layer: history}`` where history is :func:`helpers.fit`'s (``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc``, ``epoch_seconds``, one entry per epoch)
    for the network truncated after that layer and read out by that layer's readout. A
    resumed layer's history holds only the epochs run in this call (``on_epoch_end``
    gets their true epoch numbers).

    The representation entering layer ``l`` (the frozen output of layers ``1..l-1``) is
    computed once for the whole training and test set, then layer ``l`` alone is trained
    on it; the blocks below are never run during that layer's epochs and only block
    ``l``'s parameters are given to the optimiser, so they stay bit-identical.

    To follow a layer's representation while it trains (e.g. its spectrum after every
    epoch)::

        def watch(layer, epoch, history):
            if layer == 1:
                H = layer_representations(net, data.X_test, 1)  # (N_test, width)
                alphas.append(
                    spectrum.fit_powerlaw_alpha(spectrum.eigenspectrum(H)).alpha
                )

        train_greedy(net, data, on_epoch_end=watch)
    """
    _check_fixed_readouts(net, "train_greedy")
    _check_training_args(epochs, lr, batch_size)
    todo = _layers_to_train(net, layers)
    _check_start_epoch(start_epoch, epochs)
    histories = {}
    for layer, model, frozen in _greedy_stages(
        net, data, todo, representation_batch_size
    ):
        optimizer = torch.optim.Adam(net.blocks[layer - 1].parameters(), lr=lr)
        if on_optimizer is not None:
            on_optimizer(layer, optimizer)
        skip = start_epoch if layer == todo[0] else 0
        callback = None
        if on_epoch_end is not None:

            def callback(epoch, hist, _l=layer, _skip=skip):
                on_epoch_end(_l, _skip + epoch, hist)

        histories[layer] = fit(
            model,
            frozen,
            optimizer,
            epochs - skip,
            batch_size,
            generator=generator,
            on_epoch_end=callback,
            desc=f"greedy layer {layer}/{net.depth}",
        )
    return histories


def train_simultaneous(
    net: LocalErrorNet,
    data: Data,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    on_epoch_end: Callable | None = None,
    start_epoch: int = 0,
    on_optimizer: Callable | None = None,
) -> dict[str, list]:
    """All layers learn at once, each from its own readout's loss; no gradient crosses
    layers.

    Every mini-batch: one forward pass in which each block's input is detached
    (:func:`local_losses`), one backward pass of the *sum* of the per-layer losses, one
    Adam step on all blocks. Since the blocks' parameters are disjoint and each loss
    reaches only its own block, this equals an independent Adam update of every layer on
    its own loss.

    Returns :func:`helpers.fit`'s history, where ``train_loss`` is the summed local loss
    and ``train_acc`` / ``test_loss`` / ``test_acc`` are the last layer's, plus
    ``layer_test_acc``: for each epoch, the list of every layer's test accuracy
    (:func:`helpers.metrics.layer_accuracies`). ``on_epoch_end(epoch, history)`` is
    called after each epoch. The step is the rule :class:`LocalSimultaneous`.

    ``start_epoch`` and ``on_optimizer(optimizer)`` resume an interrupted run as in
    :func:`train_greedy`: with the network, the generator and (through ``on_optimizer``)
    the optimiser restored to their state after epoch ``start_epoch``, the call trains
    the remaining epochs, bit-identical on the CPU to an uninterrupted run; its history
    then holds only those epochs.
    """
    _check_fixed_readouts(net, "train_simultaneous")
    _check_training_args(epochs, lr, batch_size)
    _check_start_epoch(start_epoch, epochs)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    if on_optimizer is not None:
        on_optimizer(optimizer)
    layer_test_acc: list[list[float]] = []

    def after_epoch(epoch, history):
        layer_test_acc.append(layer_accuracies(net, data.X_test, data.y_test))
        history["layer_test_acc"] = layer_test_acc
        if on_epoch_end is not None:
            on_epoch_end(start_epoch + epoch, history)

    history = fit(
        net,
        data,
        optimizer,
        epochs - start_epoch,
        batch_size,
        step=LocalSimultaneous(),
        generator=generator,
        on_epoch_end=after_epoch,
        desc="simultaneous local errors",
    )
    history["layer_test_acc"] = layer_test_acc
    return history


def train_backprop(
    net: LocalErrorNet,
    data: Data,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    on_epoch_end: Callable | None = None,
    start_epoch: int = 0,
    on_optimizer: Callable | None = None,
) -> dict[str, list[float]]:
    """End-to-end backprop of the output's cross-entropy through every block (Adam).

    ``net`` should have ``trainable_head=True`` (a trainable last layer ``nn.Linear``);
    with a fixed head the error is still back-propagated, through the random readout.
    Returns :func:`helpers.fit`'s history (the network's output, i.e. the last layer).
    ``start_epoch`` and ``on_optimizer(optimizer)`` resume an interrupted run as in
    :func:`train_simultaneous`.
    """
    _check_training_args(epochs, lr, batch_size)
    _check_start_epoch(start_epoch, epochs)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    if on_optimizer is not None:
        on_optimizer(optimizer)
    return fit(
        net,
        data,
        optimizer,
        epochs - start_epoch,
        batch_size,
        generator=generator,
        on_epoch_end=_offset(on_epoch_end, start_epoch),
        desc="end-to-end backprop",
    )


def linear_probes(
    net: LocalErrorNet,
    data: Data,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    representation_batch_size: int = 2000,
) -> tuple[list[nn.Linear], list[float]]:
    """A trainable linear readout fitted to each layer's frozen representation.

    The network is not changed. For every layer ``l`` a fresh
    ``nn.Linear(width_l, n_classes)`` is trained with Adam on ``h_l`` of the training
    set (computed once per layer). This reads any network's hidden layers the same way
    (e.g. a backprop network, whose intermediate readouts are untrained), so
    representations of different learning rules can be compared.

    Returns ``(probes, test_accuracies)``, one per layer;
    ``net.truncated(l, probes[l - 1])`` is the network cut after layer l with its probe
    (e.g. to attack it).
    """
    _check_training_args(epochs, lr, batch_size)
    if epochs < 1:
        raise ValueError(
            f"epochs={epochs} must be at least 1: a probe must be trained to be read"
        )
    device = _device_of(net)
    n_classes = net.readouts[-1].out_features
    H_train = data.X_train.to(device).flatten(1)
    H_test = data.X_test.to(device).flatten(1)
    probes, accs = [], []
    with eval_mode(net):
        for layer, block in enumerate(net.blocks, start=1):
            H_train = _apply_blocks([block], H_train, representation_batch_size)
            H_test = _apply_blocks([block], H_test, representation_batch_size)
            probe = nn.Linear(H_train.shape[1], n_classes).to(device)
            optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
            hist = fit(
                probe,
                _frozen_data(data, H_train, H_test, f"output of layer {layer}"),
                optimizer,
                epochs,
                batch_size,
                generator=generator,
                desc=f"probe layer {layer}/{net.depth}",
            )
            probes.append(probe)
            accs.append(hist["test_acc"][-1])
    return probes, accs
