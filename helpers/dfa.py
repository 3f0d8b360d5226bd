"""Direct feedback alignment (DFA) and feedback alignment (FA): the subject of chapter
4.

Notation (one example; a mini-batch stacks examples as rows). A multilayer perceptron
with hidden layers ``l = 1 .. L-1`` and an output layer ``L``:

    a_l = W_l h_{l-1} + b_l,    h_l = f(a_l),    h_0 = x,    y_hat = sigmoid(a_L),

with ``W_l`` of shape (n_l, n_{l-1}) (PyTorch's ``nn.Linear.weight`` layout). The loss
is the binary cross-entropy of the sigmoid outputs against the one-hot target, summed
over the c classes; its gradient at the output pre-activation is the *output error*
``e = y_hat - y``.

- **Backprop** sends ``e`` back through the transposed forward weights:
  ``delta_l = (W_{l+1}^T delta_{l+1}) * f'(a_l)``.
- **Feedback alignment** (FA) sends it back layer by layer through fixed random matrices
  ``B_{l+1}`` of the shape of ``W_{l+1}``:
  ``delta_l = (B_{l+1}^T delta_{l+1}) * f'(a_l)``.
- **Direct feedback alignment** (DFA) sends it straight to every hidden layer through a
  fixed random matrix ``B_l`` of shape (n_l, c): ``delta_l = (B_l e) * f'(a_l)``.

In all three the output layer gets its true gradient ``delta_L = e`` and every layer is
updated with ``dW_l = delta_l h_{l-1}^T``, ``db_l = delta_l`` (averaged over the
mini-batch).

Two implementations that must agree (the tests check it to 1e-10 in float64):

- :func:`numpy_forward`, :func:`numpy_dfa_grads`, :func:`numpy_bp_grads`: the formulas
  above, written out in NumPy for a tanh / sigmoid / ReLU MLP.
- :class:`DirectFeedbackAlignment` and :class:`FeedbackAlignment`: PyTorch learning
  rules for any ``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations.
  An instance is a :class:`helpers.Rule`, the ``step`` of :func:`helpers.fit`
  (``fit(model, data, opt, epochs, bs, loss_fn=bce_sigmoid_loss,
  step=DirectFeedbackAlignment(model))``): the optimiser, the NaN check and the
  evaluation stay those of the book's one training loop.

How the PyTorch DFA is made fast: the forward pass feeds each layer a *detached* copy of
the previous layer's output, so autograd never computes the backprop signal
``W^T delta`` at all; one custom autograd function at the output takes the logits *and*
every hidden output ``h_l`` as inputs, and its backward pass receives the true output
error ``e`` and returns ``e B_l^T`` for every hidden layer with a single matrix product
(the ``B_l`` are stacked). From there autograd multiplies by ``f'(a_l)`` and forms the
weight gradients as usual. A DFA step therefore costs a forward pass, one
weight-gradient product per layer and one small (N x c) @ (c x sum n_l) product: no more
than a backprop step, which computes an input-gradient product per layer too.

Alignment utilities: :func:`angle_deg`, :func:`gradient_alignment` (angle between a
rule's weight update and the backprop gradient, per layer), :func:`signal_alignment`
(angle between the error signals each rule delivers to a hidden layer) and
:func:`feedback_weight_angle` (angle between ``B_l`` and the forward weights' backward
path ``(W_L ... W_{l+1})^T``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .train import Rule

__all__ = [
    "ELEMENTWISE",
    "bce_sigmoid_loss",
    "numpy_forward",
    "numpy_bp_grads",
    "numpy_dfa_grads",
    "MLPLayers",
    "parse_mlp",
    "DirectFeedbackAlignment",
    "FeedbackAlignment",
    "zero_weights_",
    "normal_weights_",
    "angle_deg",
    "gradient_alignment",
    "signal_alignment",
    "feedback_weight_angle",
]

#: Activation modules that act elementwise (so that ``delta = g * f'(a)`` holds), and
#: Dropout.
ELEMENTWISE = (
    nn.Tanh,
    nn.Sigmoid,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Identity,
    nn.Dropout,
)


# --------------------------------------------------------------------------- loss
def bce_sigmoid_loss(
    logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Binary cross-entropy of ``sigmoid(logits)`` (N, c) against one-hot labels ``y``
    (N,).

    Summed over the c output units; ``reduction="mean"`` averages over the N examples
    (the training loss), ``"sum"`` sums over them (what :func:`helpers.evaluate` asks
    for), ``"none"`` returns the (N,) per-example losses. Its gradient with respect to
    ``logits`` is ``(sigmoid(logits) - onehot(y)) / N`` for ``"mean"``: the output error
    ``e`` of the module docstring, averaged over the batch.
    """
    if logits.ndim != 2:
        raise ValueError(
            f"logits must have shape (N, classes), got {tuple(logits.shape)}"
        )
    if y.ndim != 1 or len(y) != len(logits):
        raise ValueError(
            f"y must hold one class label per row of logits ({len(logits)}), got shape "
            f"{tuple(y.shape)}"
        )
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    per_example = F.binary_cross_entropy_with_logits(
        logits, target, reduction="none"
    ).sum(1)
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(
        f"reduction={reduction!r} is not known; use 'mean', 'sum' or 'none'"
    )


# ----------------------------------------------------------------------- NumPy formulas
_NP_ACTS = {
    "tanh": (np.tanh, lambda a, h: 1.0 - h**2),
    "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda a, h: h * (1.0 - h)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, h: (a > 0).astype(a.dtype)),
}


def _np_act(act: str):
    try:
        return _NP_ACTS[act]
    except KeyError:
        raise ValueError(
            f"act={act!r} is not known; use one of {sorted(_NP_ACTS)}"
        ) from None


def _np_check(Ws, bs, X):
    if len(Ws) != len(bs) or not Ws:
        raise ValueError(
            f"give one bias per weight matrix (got {len(Ws)} weights and {len(bs)} "
            "biases)"
        )
    n_prev = X.shape[1]
    for l, (W, b) in enumerate(zip(Ws, bs), 1):
        if W.ndim != 2 or W.shape[1] != n_prev or b.shape != (W.shape[0],):
            raise ValueError(
                f"layer {l}: W has shape {W.shape} and b {b.shape}, but its input has "
                f"{n_prev} features; "
                f"W_{l} must be ({W.shape[0] if W.ndim == 2 else '?'}, {n_prev}) and "
                f"b_{l} ({W.shape[0] if W.ndim == 2 else '?'},)"
            )
        n_prev = W.shape[0]


def numpy_forward(
    Ws: Sequence[np.ndarray], bs: Sequence[np.ndarray], X: np.ndarray, act: str = "tanh"
):
    """Forward pass of the MLP ``a_l = h_{l-1} W_l^T + b_l``, ``h_l = f(a_l)`` on rows
    ``X`` (N, n_0).

    Returns ``(A, H, Y_hat)``: the pre-activations ``A = [a_1 .. a_L]``, the inputs of
    every layer ``H = [h_0 = X, h_1 .. h_{L-1}]`` and the sigmoid outputs ``Y_hat`` (N,
    c).
    """
    _np_check(Ws, bs, X)
    f, _ = _np_act(act)
    A, H = [], [X]
    h = X
    for l, (W, b) in enumerate(zip(Ws, bs)):
        a = h @ W.T + b
        A.append(a)
        if l < len(Ws) - 1:
            h = f(a)
            H.append(h)
    y_hat = 1.0 / (1.0 + np.exp(-A[-1]))
    return A, H, y_hat


def _np_output_error(y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
    onehot = np.zeros_like(y_hat)
    onehot[np.arange(len(y)), y] = 1.0
    return y_hat - onehot


def _np_weight_grads(deltas, H):
    n = len(H[0])
    return [d.T @ h / n for d, h in zip(deltas, H)], [d.sum(0) / n for d in deltas]


def numpy_bp_grads(Ws, bs, X, y, act: str = "tanh"):
    """Backprop gradients of the mean (over N) summed-BCE loss: returns ``(dWs, dbs)``.

    ``delta_L = e = y_hat - onehot(y)``, ``delta_l = (delta_{l+1} W_{l+1}) * f'(a_l)``
    (rows), ``dW_l = delta_l^T h_{l-1} / N``, ``db_l = sum_n delta_l / N``.
    """
    A, H, y_hat = numpy_forward(Ws, bs, X, act)
    _, df = _np_act(act)
    delta = _np_output_error(y_hat, np.asarray(y))
    deltas = [delta]
    for l in range(len(Ws) - 2, -1, -1):
        delta = (delta @ Ws[l + 1]) * df(A[l], H[l + 1])
        deltas.insert(0, delta)
    return _np_weight_grads(deltas, H)


def numpy_dfa_grads(Ws, bs, Bs, X, y, act: str = "tanh"):
    """DFA updates (the ones that replace the gradients) of the same loss: returns
    ``(dWs, dbs)``.

    ``Bs[l]`` is the fixed feedback matrix of hidden layer ``l+1``, shape (n_{l+1}, c).
    ``e = y_hat - onehot(y)``, ``delta_l = (e B_l^T) * f'(a_l)`` for hidden layers,
    ``delta_L = e``.
    """
    A, H, y_hat = numpy_forward(Ws, bs, X, act)
    _, df = _np_act(act)
    if len(Bs) != len(Ws) - 1:
        raise ValueError(
            f"{len(Ws) - 1} hidden layers need {len(Ws) - 1} feedback matrices, got "
            f"{len(Bs)}"
        )
    e = _np_output_error(y_hat, np.asarray(y))
    deltas = []
    for l, B in enumerate(Bs):
        if B.shape != (Ws[l].shape[0], e.shape[1]):
            raise ValueError(
                f"B_{l + 1} has shape {B.shape}; it must be (n_{l + 1}, c) = "
                f"{(Ws[l].shape[0], e.shape[1])}"
            )
        deltas.append((e @ B.T) * df(A[l], H[l + 1]))
    deltas.append(e)
    return _np_weight_grads(deltas, H)


# ------------------------------------------------------------- parsing an nn.Sequential
@dataclass
class MLPLayers:
    """An ``nn.Sequential`` MLP split into its parts.

    ``prefix``: reshaping modules before the first Linear (``nn.Flatten``); ``linears``:
    the L ``nn.Linear`` layers in order; ``acts[l]``: the elementwise modules after
    ``linears[l]`` (empty for the output layer, whose pre-activations are the model's
    output).
    """

    prefix: list[nn.Module]
    linears: list[nn.Linear]
    acts: list[list[nn.Module]] = field(default_factory=list)

    @property
    def hidden_sizes(self) -> list[int]:
        return [lin.out_features for lin in self.linears[:-1]]

    @property
    def n_out(self) -> int:
        return self.linears[-1].out_features


def parse_mlp(model: nn.Module) -> MLPLayers:
    """Check that ``model`` is an ``nn.Sequential`` of
    ``[Flatten,] Linear, act..., Linear, act..., ..., Linear`` and split it
    (:class:`MLPLayers`). Raises ``TypeError`` / ``ValueError`` saying what to
    change."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            "DFA/FA need an nn.Sequential of nn.Linear layers and elementwise "
            "activations, got "
            f"{type(model).__name__}; write the network as "
            "nn.Sequential(nn.Linear(...), nn.Tanh(), ...)"
        )
    prefix, linears, acts = [], [], []
    for i, m in enumerate(model):
        if isinstance(m, nn.Flatten):
            if linears:
                raise TypeError(
                    f"model[{i}] is nn.Flatten after a Linear layer; only a leading "
                    "Flatten is supported"
                )
            prefix.append(m)
        elif isinstance(m, nn.Linear):
            if linears and m.in_features != linears[-1].out_features:
                raise ValueError(
                    f"model[{i}] is Linear({m.in_features} -> {m.out_features}) but "
                    "the layer before it has "
                    f"{linears[-1].out_features} outputs: the shapes do not chain; "
                    "make its in_features "
                    f"{linears[-1].out_features}"
                )
            linears.append(m)
            acts.append([])
        elif isinstance(m, ELEMENTWISE):
            if not linears:
                raise TypeError(
                    f"model[{i}] ({type(m).__name__}) comes before the first "
                    "nn.Linear; start with a Linear"
                )
            acts[-1].append(m)
        else:
            raise TypeError(
                f"model[{i}] is {type(m).__name__}, which DFA/FA here do not support: "
                "use only nn.Linear, a leading "
                "nn.Flatten and elementwise activations "
                f"({', '.join(t.__name__ for t in ELEMENTWISE)})"
            )
    if not linears:
        raise ValueError("the model has no nn.Linear layer: there is nothing to train")
    if acts[-1]:
        raise ValueError(
            f"the model ends with {type(acts[-1][-1]).__name__} after its last Linear: "
            "DFA needs the output "
            "pre-activations (logits); remove the output nonlinearity and put it in "
            "the loss "
            "(e.g. helpers.dfa.bce_sigmoid_loss for sigmoid outputs with binary "
            "cross-entropy)"
        )
    return MLPLayers(prefix, linears, acts)


def zero_weights_(model: nn.Module) -> nn.Module:
    """Set every weight and bias of ``model`` to 0 (DFA's initialisation in the paper);
    returns it.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def normal_weights_(
    model: nn.Module,
    std: float,
    generator: torch.Generator | None = None,
    bias: float | None = 0.0,
) -> nn.Module:
    """Draw every Linear weight from N(0, std^2); set biases to ``bias`` (None: draw
    them too).
    """
    if not std > 0:
        raise ValueError(f"std={std} must be positive")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(
                    torch.randn(
                        m.weight.shape, generator=generator, dtype=m.weight.dtype
                    )
                    * std
                )
                if m.bias is not None:
                    if bias is None:
                        m.bias.copy_(
                            torch.randn(
                                m.bias.shape, generator=generator, dtype=m.bias.dtype
                            )
                            * std
                        )
                    else:
                        m.bias.fill_(bias)
    return model


# -------------------------------------------------------------------- the PyTorch rules
def _draw(shape, init: str, scale: float, generator, dtype, device) -> torch.Tensor:
    if init == "uniform":
        t = (
            torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        ) * scale
    elif init == "normal":
        t = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    else:
        raise ValueError(f"init={init!r} is not known; use 'uniform' or 'normal'")
    return t.to(dtype=dtype, device=device)


class _RandomFeedbackRule(Rule):
    """Shared plumbing: parsing, the :class:`helpers.Rule` step, fixed feedback."""

    name = "rule"

    def __init__(self, model: nn.Module, loss_fn: Callable = bce_sigmoid_loss):
        super().__init__(loss_fn)
        self.model = model
        self.layers = parse_mlp(model)
        p = self.layers.linears[0].weight
        self.dtype, self.device = p.dtype, p.device

    def _init_feedback(
        self, shapes, fans, init: str, scale: float | None, feedback, generator
    ) -> None:
        """Set the fixed feedback matrices: copies of ``feedback`` (whose shapes the
        caller has checked), or drawn with ``init`` ("uniform": U[-s, s]; "normal": N(0,
        s^2)) in ``shapes``, where ``s`` is ``scale`` or, by default, ``1 / sqrt(fan)``
        for each matrix's entry of ``fans``."""
        if feedback is not None:
            self.init, self.scales = "given", []
            self._B = [
                torch.as_tensor(B)
                .detach()
                .to(dtype=self.dtype, device=self.device)
                .clone()
                for B in feedback
            ]
            return
        if init not in ("uniform", "normal"):
            raise ValueError(f"init={init!r} is not known; use 'uniform' or 'normal'")
        if scale is None and init == "normal":
            raise ValueError(
                "init='normal' needs a scale (the standard deviation of B), e.g. "
                "scale=0.01"
            )
        if scale is not None and not (
            isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0
        ):
            raise ValueError(f"scale={scale!r} must be a positive number")
        self.init = init
        self.scales = [
            float(scale) if scale is not None else 1 / math.sqrt(f) for f in fans
        ]
        self._B = [
            _draw(shape, init, s, generator, self.dtype, self.device)
            for shape, s in zip(shapes, self.scales)
        ]

    # the feedback matrices are plain tensors held here, never parameters of the model,
    # so no optimiser can see them and they never change.
    @property
    def feedback(self) -> list[torch.Tensor]:
        """The fixed feedback matrices (copies; changing them changes nothing)."""
        return [B.clone() for B in self._B]

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.layers.prefix:
            x = m(x)
        n_in = self.layers.linears[0].in_features
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(
                f"the input has shape {tuple(x.shape)} after the model's leading "
                "Flatten (if any), but the first "
                f"Linear expects (N, {n_in}); load the data with flatten=True or start "
                "the model with nn.Flatten()"
            )
        return x

    def _sync(self):
        p = self.layers.linears[0].weight
        if p.device != self.device or p.dtype != self.dtype:
            self.dtype, self.device = p.dtype, p.device
            self._B = [B.to(dtype=p.dtype, device=p.device) for B in self._B]
            self._on_feedback_changed()

    def _on_feedback_changed(self):
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def step(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor):
        """One training step for :func:`helpers.fit`: forward, loss, and the rule's
        gradients in ``.grad`` of every parameter (the loop zeroes them before and steps
        the optimiser after). Returns ``(loss, logits)``."""
        if model is not self.model:
            raise ValueError(
                f"this {type(self).__name__} was built for another model; create one "
                "per model: "
                f"step = {type(self).__name__}(model)"
            )
        out = self.forward(xb)
        loss = self.loss_fn(out, yb)
        loss.backward()
        return loss, out

    def __repr__(self):
        sizes = [self.layers.linears[0].in_features] + [
            lin.out_features for lin in self.layers.linears
        ]
        return (
            f"{type(self).__name__}({'-'.join(map(str, sizes))}, "
            f"feedback {self.init}, scale {self.describe_scale()})"
        )

    def describe_scale(self) -> str:
        return ", ".join(f"{s:.3g}" for s in self.scales) if self.scales else "-"


class _DFAOutput(torch.autograd.Function):
    """Identity on the logits; in backward, hands ``e B_l^T`` to every hidden output
    ``h_l``.
    """

    @staticmethod
    def forward(
        ctx, BT: torch.Tensor, sizes: tuple, logits: torch.Tensor, *hidden: torch.Tensor
    ):
        ctx.save_for_backward(BT)
        ctx.sizes = sizes
        return logits.clone()

    @staticmethod
    def backward(ctx, e: torch.Tensor):
        (BT,) = ctx.saved_tensors
        if not ctx.sizes:
            return (None, None, e)
        # one (N, c) @ (c, sum n_l) product
        signals = torch.split(e @ BT, ctx.sizes, dim=1)
        return (None, None, e, *signals)


class DirectFeedbackAlignment(_RandomFeedbackRule):
    """Direct feedback alignment for an ``nn.Sequential`` MLP (see the module
    docstring).

    Parameters
    ----------
    model : ``nn.Sequential`` of an optional leading ``nn.Flatten``, ``nn.Linear``
        layers and elementwise activations (:data:`ELEMENTWISE`), ending with the output
        ``nn.Linear`` (logits).
    init : ``"uniform"`` (default): ``B_l ~ U[-s_l, s_l]``; ``"normal"``:
        ``B_l ~ N(0, s_l^2)``.
    scale : ``s_l``. ``None`` with ``"uniform"`` is ``1/sqrt(n_l)`` (n_l: width of
        hidden layer l), the scaling of Nøkland's code; with ``"normal"`` a scale must
        be given (e.g. 0.01).
    feedback : explicit matrices ``[B_1, ..., B_{L-1}]`` of shapes (n_l, c) instead of
        drawing them.
    generator : a ``torch.Generator`` for the draw (else ``torch.manual_seed``'s global
        one).
    loss_fn : ``loss_fn(logits, y)`` whose gradient at the logits is the output error;
        the default is sigmoid outputs with binary cross-entropy, as in the paper.

    ``B_l`` are fixed: they are plain tensors of this object, never parameters of the
    model. Call the object as ``step(model, xb, yb)`` (the protocol of
    :func:`helpers.fit`).
    """

    name = "dfa"

    def __init__(
        self,
        model: nn.Module,
        *,
        init: str = "uniform",
        scale: float | None = None,
        feedback: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        loss_fn: Callable = bce_sigmoid_loss,
    ):
        super().__init__(model, loss_fn)
        hidden, c = self.layers.hidden_sizes, self.layers.n_out
        if feedback is not None:
            feedback = list(feedback)
            if len(feedback) != len(hidden):
                raise ValueError(
                    f"the model has {len(hidden)} hidden layers, so it needs "
                    f"{len(hidden)} feedback "
                    f"matrices; got {len(feedback)}"
                )
            for l, (B, n) in enumerate(zip(feedback, hidden), 1):
                if tuple(B.shape) != (n, c):
                    raise ValueError(
                        f"feedback matrix B_{l} has shape {tuple(B.shape)}; it must be "
                        f"(n_{l}, c) = ({n}, {c}): one row per unit of hidden layer "
                        f"{l}, one column per output"
                    )
        self._init_feedback(
            [(n, c) for n in hidden], hidden, init, scale, feedback, generator
        )
        self._on_feedback_changed()

    def _on_feedback_changed(self):
        self._sizes = tuple(B.shape[0] for B in self._B)
        self._BT = torch.cat(self._B, 0).T.contiguous() if self._B else torch.empty(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, c) of the model, with a graph whose backward pass is DFA's."""
        self._sync()
        h = self._check_input(x)
        hidden = []
        L = len(self.layers.linears)
        for l, (lin, acts) in enumerate(zip(self.layers.linears, self.layers.acts)):
            # detached: no backprop signal is ever computed
            a = lin(h.detach() if l > 0 else h)
            for act in acts:
                a = act(a)
            if l < L - 1:
                hidden.append(a)
            h = a
        return _DFAOutput.apply(self._BT, self._sizes, h, *hidden)

    def hidden_signals(self, e: torch.Tensor) -> list[torch.Tensor]:
        """The signals ``e B_l^T`` (N, n_l) that DFA delivers to the hidden outputs for
        output errors ``e`` (N, c).
        """
        self._sync()
        return [e @ B.T for B in self._B]


class _FALinearFn(torch.autograd.Function):
    """``x W^T + b`` whose backward sends ``g B`` (not ``g W``) to the input."""

    @staticmethod
    def forward(ctx, x, W, b, B):
        ctx.save_for_backward(x, B)
        out = x @ W.T
        return out + b if b is not None else out

    @staticmethod
    def backward(ctx, g):
        x, B = ctx.saved_tensors
        gx = g @ B if ctx.needs_input_grad[0] else None
        gW = g.T @ x if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.needs_input_grad[2] else None
        return gx, gW, gb, None


class FeedbackAlignment(_RandomFeedbackRule):
    """Feedback alignment (Lillicrap et al.): the error goes back layer by layer through
    fixed random matrices ``B_l`` of the shape of ``W_l`` instead of ``W_l`` itself.

    ``init="uniform"`` with ``scale=None`` draws
    ``B_l ~ U[-1/sqrt(n_{l-1}), 1/sqrt(n_{l-1})]`` (the default PyTorch/Torch7
    initialisation of the same Linear, as in Nøkland's code); the other parameters are
    those of :class:`DirectFeedbackAlignment`, with ``feedback`` of shapes
    ``W_l.shape``.
    """

    name = "feedback_alignment"

    def __init__(
        self,
        model: nn.Module,
        *,
        init: str = "uniform",
        scale: float | None = None,
        feedback: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        loss_fn: Callable = bce_sigmoid_loss,
    ):
        super().__init__(model, loss_fn)
        shapes = [tuple(lin.weight.shape) for lin in self.layers.linears]
        if feedback is not None:
            feedback = list(feedback)
            if [tuple(B.shape) for B in feedback] != shapes:
                raise ValueError(
                    "FA needs one feedback matrix per Linear, of the weights' shapes "
                    f"{shapes}; "
                    f"got {[tuple(B.shape) for B in feedback]}"
                )
        self._init_feedback(
            shapes, [s[1] for s in shapes], init, scale, feedback, generator
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, c) of the model, with a graph whose backward pass is FA's."""
        self._sync()
        h = self._check_input(x)
        for lin, acts, B in zip(self.layers.linears, self.layers.acts, self._B):
            h = _FALinearFn.apply(h, lin.weight, lin.bias, B)
            for act in acts:
                h = act(h)
        return h


# --------------------------------------------------------------------------- alignment
def angle_deg(u, v) -> float:
    """Angle in degrees (0 to 180) between ``u`` and ``v`` taken as flat vectors; NaN if
    one is zero.
    """
    u = torch.as_tensor(u).detach().reshape(-1).double()
    v = torch.as_tensor(v).detach().reshape(-1).double()
    if u.shape != v.shape:
        raise ValueError(
            f"u has {u.numel()} elements and v has {v.numel()}: the angle needs "
            "vectors of one size"
        )
    nu, nv = float(u.norm()), float(v.norm())
    if nu == 0 or nv == 0:
        return float("nan")
    u, v = u / nu, v / nv
    # 2 atan2(|u - v|, |u + v|) is accurate near 0 and 180 degrees, where acos(u . v) is
    # not
    return math.degrees(2 * math.atan2(float((u - v).norm()), float((u + v).norm())))


def _grads_of(model: nn.Module, params) -> list[torch.Tensor]:
    return [
        p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
        for p in params
    ]


def gradient_alignment(
    rule: _RandomFeedbackRule, X: torch.Tensor, y: torch.Tensor
) -> list[float]:
    """Per Linear layer, the angle (degrees) between the rule's weight update and the
    backprop gradient of the same loss on the batch ``(X, y)``. The output layer's angle
    is 0 for DFA and FA by construction. Leaves every ``.grad`` of the model as it found
    it."""
    model = rule.model
    weights = [lin.weight for lin in rule.layers.linears]
    saved = [p.grad for p in model.parameters()]
    try:
        model.zero_grad(set_to_none=True)
        rule.loss_fn(model(X), y).backward()
        bp = _grads_of(model, weights)
        model.zero_grad(set_to_none=True)
        rule.loss_fn(rule.forward(X), y).backward()
        ours = _grads_of(model, weights)
    finally:
        for p, g in zip(model.parameters(), saved):
            p.grad = g
    return [angle_deg(a, b) for a, b in zip(ours, bp)]


def signal_alignment(
    rule: DirectFeedbackAlignment, X: torch.Tensor, y: torch.Tensor
) -> list[float]:
    """Per hidden layer, the angle (degrees) between the signal DFA delivers to its
    output (``e B_l^T``, over the whole batch) and the backprop gradient of the loss at
    that output."""
    if not isinstance(rule, DirectFeedbackAlignment):
        raise TypeError(
            "signal_alignment compares DFA's direct signals; pass a "
            "DirectFeedbackAlignment"
        )
    layers = rule.layers
    h = rule._check_input(X).detach()
    hidden = []
    with torch.enable_grad():
        for l, (lin, acts) in enumerate(zip(layers.linears, layers.acts)):
            a = lin(h)
            for act in acts:
                a = act(a)
            if l < len(layers.linears) - 1:
                hidden.append(a)
            h = a
        logits = h
        loss = rule.loss_fn(logits, y)
        grads = torch.autograd.grad(loss, [logits, *hidden])
    e, bp_signals = grads[0], grads[1:]
    return [angle_deg(d, b) for d, b in zip(rule.hidden_signals(e), bp_signals)]


def feedback_weight_angle(rule: DirectFeedbackAlignment) -> list[float]:
    """Per hidden layer, the angle (degrees) between ``B_l`` (n_l, c) and
    ``(W_L W_{L-1} ... W_{l+1})^T``, the linear part of backprop's path from the output
    back to layer l (activations ignored). For the last hidden layer this is the angle
    between ``B_{L-1}`` and ``W_L^T``. NaN while the forward weights are all zero."""
    if not isinstance(rule, DirectFeedbackAlignment):
        raise TypeError(
            "feedback_weight_angle compares DFA's B_l with the forward weights; pass a "
            "DirectFeedbackAlignment"
        )
    Ws = [lin.weight.detach().double() for lin in rule.layers.linears]
    out = []
    M = None  # (c, n_l): W_L ... W_{l+1}
    for l in range(len(Ws) - 2, -1, -1):
        M = Ws[l + 1] if M is None else M @ Ws[l + 1]
        out.insert(0, angle_deg(rule._B[l], M.T))
    return out
