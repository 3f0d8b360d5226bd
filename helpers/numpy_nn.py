"""A small Keras-like neural-network framework written with NumPy: the subject of
chapter 1.

Every computation here is NumPy (float64 by default, float32 selectable per layer or per
model); the only things taken from the rest of :mod:`helpers` are the book's progress
bar and its NaN check. The pieces, and the shapes they work on (``N`` = batch size):

- :class:`Variable`: a trainable (or frozen) array, e.g. a weight matrix.
- Layers (:class:`Diffable` subclasses), each with a ``forward`` that returns the output
  and what the backward pass needs, and a ``backward`` that maps the gradient of the
  output to the gradients of the inputs and of the layer's variables (a vector-Jacobian
  product: no Jacobian is ever built): :class:`Dense`, :class:`BatchNorm`,
  :class:`ReLU`, :class:`LeakyReLU`, :class:`Sigmoid`, :class:`Tanh`, :class:`Softmax`,
  :class:`Add`.
- Losses: :class:`MeanSquaredError`, :class:`CategoricalCrossentropy` (on probabilities,
  or fused with the softmax when ``from_logits=True``).
- :class:`GradientTape`: records the layer calls made inside
  ``with GradientTape() as tape:`` and walks them backwards.
- Optimizers that update every variable they are given, each with its own state:
  :class:`SGD` (with momentum), :class:`RMSProp`, :class:`Adam` (PyTorch's update
  formulas).
- :class:`OneHotEncoder`, :class:`CategoricalAccuracy`, and :class:`SequentialModel`
  (compile / fit / evaluate / predict / train_on_batch).

Weights are stored as ``(fan_in, fan_out)`` so that a layer computes ``x @ W + b``.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from .train import TrainingDiverged, check_finite

__all__ = [
    "Variable",
    "Diffable",
    "Dense",
    "BatchNorm",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Add",
    "MeanSquaredError",
    "CategoricalCrossentropy",
    "GradientTape",
    "Optimizer",
    "SGD",
    "RMSProp",
    "Adam",
    "OneHotEncoder",
    "CategoricalAccuracy",
    "SequentialModel",
    "initial_weights",
    "INITIALIZERS",
    "TrainingDiverged",
    "softmax",
    "log_softmax",
]

_DTYPES = (np.float32, np.float64)


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.type not in _DTYPES:
        raise ValueError(
            f"dtype={dtype} is not supported; use np.float64 (the default) or "
            "np.float32"
        )
    return dtype


def _as_rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# --------------------------------------------------------------------------- variables
class Variable:
    """A named array that layers read and optimizers update in place.

    ``value`` has a fixed shape and dtype; ``trainable=False`` marks state that is not
    learned by gradient descent (BatchNorm's running statistics).
    """

    def __init__(self, value: np.ndarray, name: str = "", trainable: bool = True):
        self.value = np.array(value)
        self.name = name
        self.trainable = trainable

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def assign(self, value) -> None:
        """Overwrite the values (shape must match), keeping the array object."""
        value = np.asarray(value, dtype=self.value.dtype)
        if value.shape != self.value.shape:
            raise ValueError(
                f"{self.name}: cannot assign shape {value.shape} to a variable of "
                f"shape {self.shape}"
            )
        self.value[...] = value

    def __repr__(self) -> str:
        kind = "" if self.trainable else ", frozen"
        return (
            f"Variable({self.name!r}, shape={self.shape}, "
            f"dtype={self.value.dtype}{kind})"
        )


# --------------------------------------------------------------------------- the tape
# the tapes whose `with` block is running, innermost last
_ACTIVE_TAPES: list["GradientTape"] = []


class _Node:
    __slots__ = ("layer", "inputs", "output", "ctx")

    def __init__(self, layer, inputs, output, ctx):
        self.layer, self.inputs, self.output, self.ctx = layer, inputs, output, ctx


class GradientTape:
    """Records the layer calls made inside ``with GradientTape() as tape:``.

    ``tape.gradient(target, sources)`` returns, for each source (a :class:`Variable` or
    an array that took part in the computation), the gradient of the scalar ``target``.
    The recorded calls are visited in reverse order of execution, which is a reverse
    topological order of the computation graph: when a call is visited, every call that
    used its output has already added its contribution. A tensor used by several calls
    therefore receives the **sum** of their gradients, and a layer called twice (shared
    weights) accumulates both gradients into its variables.

    Arrays are identified by object identity; the tape keeps them alive until
    ``gradient`` has run (or for ever with ``persistent=True``).
    """

    def __init__(self, persistent: bool = False):
        self.persistent = persistent
        self._nodes: list[_Node] = []
        self._used = False

    def __enter__(self) -> "GradientTape":
        _ACTIVE_TAPES.append(self)
        return self

    def __exit__(self, *exc) -> bool:
        _ACTIVE_TAPES.remove(self)
        return False

    def _record(self, node: _Node) -> None:
        self._nodes.append(node)

    def gradient(
        self, target: np.ndarray, sources: Sequence
    ) -> list[np.ndarray | None]:
        """Gradients of ``target`` (a scalar output of a recorded call) w.r.t.
        ``sources``.

        Returns a list aligned with ``sources``; an entry is None when that source does
        not influence ``target``.
        """
        if self._used and not self.persistent:
            raise RuntimeError(
                "this GradientTape has already computed a gradient; use "
                "GradientTape(persistent=True) to call gradient() more than once"
            )
        target = target if isinstance(target, np.ndarray) else None
        if target is None or not any(n.output is target for n in self._nodes):
            raise ValueError(
                "target was not produced by a call recorded on this tape: compute the "
                "loss "
                "inside the `with GradientTape() as tape:` block"
            )
        if target.size != 1:
            raise ValueError(
                f"target must be a scalar (a loss), got shape {target.shape}"
            )
        produced = {id(n.output) for n in self._nodes}
        wanted_arrays = {id(s) for s in sources if not isinstance(s, Variable)}
        grads: dict[int, np.ndarray] = {id(target): np.ones_like(target)}
        var_grads: dict[int, np.ndarray] = {}
        for node in reversed(self._nodes):
            g = grads.get(id(node.output))
            if g is None:
                continue  # this call does not lead to the target
            needs = tuple(
                id(x) in produced or id(x) in wanted_arrays for x in node.inputs
            )
            in_grads, w_grads = node.layer.backward(node.ctx, g, needs)
            for x, gx, need in zip(node.inputs, in_grads, needs):
                if need and gx is not None:
                    k = id(x)
                    grads[k] = gx if k not in grads else grads[k] + gx
            for var, gw in zip(node.layer.variables, w_grads):
                if gw is not None:
                    k = id(var)
                    var_grads[k] = gw if k not in var_grads else var_grads[k] + gw
        self._used = True
        if not self.persistent:
            self._nodes = []
        return [
            var_grads.get(id(s)) if isinstance(s, Variable) else grads.get(id(s))
            for s in sources
        ]


# --------------------------------------------------------------------------- layers
class Diffable:
    """A differentiable operation. Subclasses implement

    - ``forward(*inputs) -> (output, ctx)``: ``ctx`` holds what ``backward`` needs;
    - ``backward(ctx, grad_output, needs_input_grad) -> (input_grads, variable_grads)``:
      one gradient per input (None where ``needs_input_grad`` is False) and one per
      entry of ``self.variables`` (None for frozen ones).

    Calling the layer runs ``forward`` and, inside a ``GradientTape`` block, records the
    call. ``training`` switches layers that behave differently at training and test
    time.
    """

    training = True

    @property
    def variables(self) -> list[Variable]:
        return []

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for v in self.variables if v.trainable]

    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, ctx, grad_output, needs_input_grad):
        raise NotImplementedError

    def __call__(self, *inputs):
        output, ctx = self.forward(*inputs)
        if _ACTIVE_TAPES:
            _ACTIVE_TAPES[-1]._record(_Node(self, inputs, output, ctx))
        return output

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: The initializers of :class:`Dense`; see :func:`initial_weights`.
INITIALIZERS = ("zero", "normal", "xavier", "kaiming")
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _truncated_normal(rng: np.random.Generator, shape, std: float) -> np.ndarray:
    """Normal(0, std²) truncated at ±2 of its own std, rescaled so that the result has
    std ``std``.
    """
    sigma = std / _TRUNC_STD
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():  # redraw the values outside [-2, 2]
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * sigma


def initial_weights(
    fan_in: int, fan_out: int, initializer: str, rng=None, dtype=np.float64
) -> np.ndarray:
    """A ``(fan_in, fan_out)`` weight matrix, following Keras' initializers.

    - ``"zero"``: all zeros.
    - ``"normal"``: N(0, 0.05²) (Keras' ``RandomNormal`` default).
    - ``"xavier"`` (Glorot normal): std ``sqrt(2 / (fan_in + fan_out))``.
    - ``"kaiming"`` (He normal): std ``sqrt(2 / fan_in)``.

    Like Keras, Glorot and He draw from a normal truncated at two standard deviations
    and rescale it so that the std of the result is the one stated above.
    """
    if initializer not in INITIALIZERS:
        raise ValueError(
            f"initializer={initializer!r} is not known; allowed: {list(INITIALIZERS)}"
        )
    rng = _as_rng(rng)
    shape = (fan_in, fan_out)
    if initializer == "zero":
        w = np.zeros(shape)
    elif initializer == "normal":
        w = rng.normal(0.0, 0.05, shape)
    elif initializer == "xavier":
        w = _truncated_normal(rng, shape, math.sqrt(2.0 / (fan_in + fan_out)))
    else:
        w = _truncated_normal(rng, shape, math.sqrt(2.0 / fan_in))
    return w.astype(_check_dtype(dtype))


class Dense(Diffable):
    """Fully connected layer ``y = x @ W + b``; x: (N, input_size) -> y: (N,
    output_size).

    ``W`` has shape (input_size, output_size), ``b`` (output_size,) and starts at zero.
    ``initializer`` is one of :data:`INITIALIZERS`; ``rng`` a seed or
    ``np.random.Generator``.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        initializer: str = "kaiming",
        *,
        rng=None,
        dtype=np.float64,
    ):
        for name, v in (("input_size", input_size), ("output_size", output_size)):
            if not (isinstance(v, (int, np.integer)) and v >= 1):
                raise ValueError(f"Dense: {name}={v!r} must be a positive integer")
        self.input_size, self.output_size = int(input_size), int(output_size)
        dtype = _check_dtype(dtype)
        self.W = Variable(
            initial_weights(input_size, output_size, initializer, rng, dtype), "W"
        )
        self.b = Variable(np.zeros(output_size, dtype=dtype), "b")
        self.initializer = initializer

    @property
    def variables(self):
        return [self.W, self.b]

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"Dense({self.input_size}->{self.output_size}) expects inputs of shape "
                f"(batch, {self.input_size}), "
                f"got {x.shape}. Flatten images to vectors (load_mnist(flatten=True)) "
                "or set input_size to "
                f"the width of the previous layer."
            )
        out = x @ self.W.value
        out += self.b.value  # in place: no second (N, output_size) array
        return out, x

    def backward(self, x, g, needs):
        gx = g @ self.W.value.T if needs[0] else None
        return (gx,), (x.T @ g, g.sum(axis=0))

    def __repr__(self):
        return f"Dense({self.input_size}->{self.output_size}, {self.initializer})"


class BatchNorm(Diffable):
    """Batch normalisation over the batch axis of (N, features) inputs.

    Training mode normalises with the batch mean and (biased) variance and updates the
    running statistics as PyTorch does:
    ``running = (1 - momentum) * running + momentum * batch``, with the unbiased batch
    variance ``var * N / (N - 1)``. Evaluation mode (``training = False``) normalises
    with the running statistics. ``gamma`` starts at 1, ``beta`` at 0.

    A batch of one row (the last mini-batch of 15 rows in batches of 7, say) trains as
    in Keras's ``BatchNormalization``: its mean is the row and its variance 0, so the
    output is ``beta`` and no gradient reaches the input; the running variance takes
    that variance 0 (PyTorch stops with an error instead).
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.1,
        eps: float = 1e-5,
        dtype=np.float64,
    ):
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm: momentum={momentum} must be in [0, 1]")
        dtype = _check_dtype(dtype)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.gamma = Variable(np.ones(num_features, dtype=dtype), "gamma")
        self.beta = Variable(np.zeros(num_features, dtype=dtype), "beta")
        self.running_mean = Variable(
            np.zeros(num_features, dtype=dtype), "running_mean", trainable=False
        )
        self.running_var = Variable(
            np.ones(num_features, dtype=dtype), "running_var", trainable=False
        )

    @property
    def variables(self):
        return [self.gamma, self.beta, self.running_mean, self.running_var]

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm({self.num_features}) expects inputs of shape (batch, "
                f"{self.num_features}), "
                f"got {x.shape}"
            )
        if self.training:
            n = x.shape[0]
            if n == 0:
                raise ValueError(
                    "BatchNorm got an empty batch (0 rows): give it at least one row"
                )
            mean = x.mean(axis=0)
            xc = x - mean
            var = np.einsum("ij,ij->j", xc, xc) / n
            m = self.momentum
            self.running_mean.value *= 1 - m
            self.running_mean.value += m * mean
            self.running_var.value *= 1 - m
            # one row: var 0, as Keras
            self.running_var.value += (m * n / (n - 1) if n > 1 else m) * var
        else:
            xc = x - self.running_mean.value
            var = self.running_var.value
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xc *= inv_std  # xc is a fresh array: normalise it in place, it becomes x-hat
        xhat = xc
        out = xhat * self.gamma.value
        out += self.beta.value
        return out, (xhat, inv_std, self.training)

    def backward(self, ctx, g, needs):
        xhat, inv_std, training = ctx
        g_gamma = np.einsum("ij,ij->j", g, xhat)
        g_beta = g.sum(axis=0)
        gx = None
        if needs[0]:
            scale = self.gamma.value * inv_std
            if training:  # the batch statistics depend on x too
                n = g.shape[0]
                gx = (g - (g_beta / n) - xhat * (g_gamma / n)) * scale
            else:
                gx = g * scale
        return (gx,), (g_gamma, g_beta, None, None)

    def __repr__(self):
        return f"BatchNorm({self.num_features})"


class LeakyReLU(Diffable):
    """``x`` where ``x > 0``, ``alpha * x`` elsewhere, element by element
    (``alpha = 0``: ReLU).
    """

    def __init__(self, alpha: float = 0.3):
        self.alpha = float(alpha)

    def forward(self, x):
        positive = x > 0
        if self.alpha == 0:
            return x * positive, positive
        return np.where(positive, x, self.alpha * x), positive

    def backward(self, positive, g, needs):
        if self.alpha == 0:
            return (g * positive,), ()
        return (np.where(positive, g, self.alpha * g),), ()

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class ReLU(LeakyReLU):
    """``max(x, 0)`` element by element."""

    def __init__(self):
        super().__init__(alpha=0.0)

    def __repr__(self):
        return "ReLU()"


class Sigmoid(Diffable):
    """``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""

    def forward(self, x):
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
        return y, y

    def backward(self, y, g, needs):
        return (g * y * (1 - y),), ()


class Tanh(Diffable):
    """``tanh(x)``."""

    def forward(self, x):
        y = np.tanh(x)
        return y, y

    def backward(self, y, g, needs):
        return (g * (1 - y * y),), ()


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits; the row maximum is subtracted before
    ``exp``.
    """
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(z))`` without forming ``softmax`` (no ``log(0)``)."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Softmax(Diffable):
    """Softmax over the last axis of (N, C) inputs: each row becomes a probability
    vector.
    """

    def forward(self, z):
        if z.ndim != 2:
            raise ValueError(
                f"Softmax expects (batch, classes) inputs, got shape {z.shape}"
            )
        s = softmax(z)
        return s, s

    def backward(self, s, g, needs):
        # J^T g for J = diag(s) - s s^T, one row at a time, without building J
        return (s * (g - np.einsum("ij,ij->i", g, s)[:, None]),), ()


class Add(Diffable):
    """Element-wise sum of two arrays of one shape (e.g. a skip connection)."""

    def forward(self, a, b):
        if a.shape != b.shape:
            raise ValueError(f"Add: shapes {a.shape} and {b.shape} differ")
        return a + b, None

    def backward(self, ctx, g, needs):
        return (g if needs[0] else None, g if needs[1] else None), ()


# --------------------------------------------------------------------------- losses
def _check_targets(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> None:
    if y_pred.shape != y_true.shape:
        hint = (
            " Targets look like class labels: one-hot encode them first "
            "(OneHotEncoder)."
            if y_true.ndim == 1 and y_pred.ndim == 2
            else ""
        )
        raise ValueError(
            f"{who}: predictions have shape {y_pred.shape} but targets "
            f"{y_true.shape}.{hint}"
        )


class MeanSquaredError(Diffable):
    """``mean((y_pred - y_true)²)`` over all elements; the gradient flows to ``y_pred``
    only.
    """

    def forward(self, y_pred, y_true):
        _check_targets(y_pred, y_true, "MeanSquaredError")
        d = y_pred - y_true
        return np.asarray(np.mean(d * d), dtype=y_pred.dtype), d

    def backward(self, d, g, needs):
        return ((2.0 / d.size) * g * d, None), ()


class CategoricalCrossentropy(Diffable):
    """Mean over the batch of ``-sum_c y_true[c] * log p[c]`` for one-hot (or soft)
    targets.

    ``from_logits=False``: the first input holds probabilities (a Softmax output); they
    are clipped to ``[eps, 1]`` before the log, as Keras does. ``from_logits=True``: the
    first input holds logits and the loss is computed with a stable log-softmax, fused
    with its gradient ``(softmax(z) - y_true) / N`` — the form to train with.
    """

    def __init__(self, from_logits: bool = False, eps: float = 1e-7):
        self.from_logits, self.eps = from_logits, eps

    def forward(self, y_pred, y_true):
        _check_targets(y_pred, y_true, "CategoricalCrossentropy")
        n = y_pred.shape[0]
        if self.from_logits:
            logp = log_softmax(y_pred)
            loss = -np.einsum("ij,ij->", y_true, logp) / n
            return np.asarray(loss, dtype=y_pred.dtype), (logp, y_true)
        p = np.clip(y_pred, self.eps, 1.0)
        loss = -np.einsum("ij,ij->", y_true, np.log(p)) / n
        return np.asarray(loss, dtype=y_pred.dtype), (p, y_true)

    def backward(self, ctx, g, needs):
        a, y_true = ctx
        n = a.shape[0]
        if self.from_logits:  # d/dz of -sum y log softmax(z) = softmax(z) * sum(y) - y
            gz = np.exp(a) * y_true.sum(axis=1, keepdims=True) - y_true
            return (gz * (g / n), None), ()
        return (-(g / n) * y_true / a, None), ()

    def __repr__(self):
        return f"CategoricalCrossentropy(from_logits={self.from_logits})"


# --------------------------------------------------------------------------- optimizers
class Optimizer:
    """Updates variables in place from ``(gradient, variable)`` pairs.

    State (momentum, running averages) is kept per variable, so one optimizer can train
    every weight of a model. A missing gradient (None) is an error, not a silent skip.
    """

    def __init__(self, learning_rate: float):
        if not (
            isinstance(learning_rate, (int, float, np.floating, np.integer))
            and not isinstance(learning_rate, bool)
            and math.isfinite(learning_rate)
            and learning_rate > 0
        ):
            raise ValueError(
                f"learning_rate={learning_rate!r} must be a positive finite number"
            )
        self.learning_rate = float(learning_rate)
        self.state: dict[int, dict[str, np.ndarray]] = {}
        self.iterations = 0

    def apply_gradients(
        self, grads_and_vars: Iterable[tuple[np.ndarray | None, Variable]]
    ) -> None:
        pairs = list(grads_and_vars)
        for g, v in pairs:
            if g is None:
                raise ValueError(
                    f"variable {v!r} received no gradient: it does not influence the "
                    "loss. "
                    "Pass only the variables the loss depends on."
                )
            if g.shape != v.shape:
                raise ValueError(f"gradient of shape {g.shape} for {v!r}")
        self.iterations += 1
        for g, v in pairs:
            self._update(v, g, self.state.setdefault(id(v), {}))

    def _update(self, v: Variable, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``buf = momentum * buf + g``; ``w -= lr * buf`` (PyTorch's SGD; ``momentum=0``:
    plain SGD).
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0):
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        self.momentum = momentum

    def _update(self, v, g, state):
        if self.momentum:
            buf = state.get("buf")
            if buf is None:
                buf = state["buf"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = buf
        v.value -= self.learning_rate * g


class RMSProp(Optimizer):
    """``s = rho * s + (1 - rho) g²``; ``w -= lr * g / (sqrt(s) + eps)`` (PyTorch's
    RMSprop).
    """

    def __init__(
        self, learning_rate: float = 0.001, rho: float = 0.9, eps: float = 1e-7
    ):
        super().__init__(learning_rate)
        if not 0 <= rho < 1:
            raise ValueError(f"rho={rho} must be in [0, 1)")
        self.rho, self.eps = rho, eps

    def _update(self, v, g, state):
        s = state.get("s")
        if s is None:
            s = state["s"] = np.zeros_like(v.value)
        tmp = np.multiply(g, g)  # the one scratch array of this step
        tmp *= 1 - self.rho
        s *= self.rho
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= self.learning_rate
        v.value -= tmp


class Adam(Optimizer):
    """Adam with bias correction, written as PyTorch writes it::

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
    w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        eps: float = 1e-8,
    ):
        super().__init__(learning_rate)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= b < 1:
                raise ValueError(f"{name}={b} must be in [0, 1)")
        self.beta_1, self.beta_2, self.eps = beta_1, beta_2, eps

    def _update(self, v, g, state):
        if "m" not in state:
            state["m"], state["v"], state["t"] = (
                np.zeros_like(v.value),
                np.zeros_like(v.value),
                0,
            )
        m, s = state["m"], state["v"]
        state["t"] += 1
        t = state["t"]
        tmp = np.multiply(g, 1 - self.beta_1)  # the one scratch array of this step
        m *= self.beta_1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta_2
        s *= self.beta_2
        s += tmp
        np.sqrt(s, out=tmp)
        tmp /= math.sqrt(1 - self.beta_2**t)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= self.learning_rate / (1 - self.beta_1**t)
        v.value -= tmp


# ------------------------------------------------------------------- labels and metrics
class OneHotEncoder:
    """Class labels <-> one-hot rows.

    ``fit(labels)`` learns the sorted set of classes; ``forward(labels)`` (or calling
    the encoder) returns (N, n_classes) one-hot rows; ``inverse(one_hot_or_probs)``
    returns the label of each row's largest entry. Unknown labels stop with an error
    naming them.
    """

    def __init__(self, dtype=np.float64):
        self.dtype = _check_dtype(dtype)
        self.classes_: np.ndarray | None = None

    def fit(self, labels) -> "OneHotEncoder":
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(
                "OneHotEncoder.fit expects a non-empty 1-D array of labels, got shape "
                f"{labels.shape}"
            )
        self.classes_ = np.unique(labels)
        return self

    def forward(self, labels) -> np.ndarray:
        if self.classes_ is None:
            raise RuntimeError("OneHotEncoder: call fit(labels) before forward")
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(
                f"OneHotEncoder expects a 1-D array of labels, got shape {labels.shape}"
            )
        idx = np.searchsorted(self.classes_, labels)
        idx_clipped = np.minimum(idx, len(self.classes_) - 1)
        bad = self.classes_[idx_clipped] != labels
        if bad.any():
            unknown = np.unique(labels[bad])[:5].tolist()
            raise ValueError(
                f"labels {unknown} are not among the classes seen by fit "
                f"({self.classes_.tolist()}); fit the encoder on labels that cover "
                "every class"
            )
        out = np.zeros((len(labels), len(self.classes_)), dtype=self.dtype)
        out[np.arange(len(labels)), idx] = 1
        return out

    __call__ = forward

    def inverse(self, rows) -> np.ndarray:
        if self.classes_ is None:
            raise RuntimeError("OneHotEncoder: call fit(labels) before inverse")
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != len(self.classes_):
            raise ValueError(
                f"inverse expects shape (N, {len(self.classes_)}), got {rows.shape}"
            )
        return self.classes_[rows.argmax(axis=1)]


class CategoricalAccuracy:
    """Fraction (in [0, 1]) of rows whose largest prediction is at the target's largest
    entry.
    """

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        _check_targets(y_pred, y_true, "CategoricalAccuracy")
        return float(np.mean(y_pred.argmax(axis=1) == y_true.argmax(axis=1)))


# --------------------------------------------------------------------------- the model
class SequentialModel:
    """Layers applied one after another, trained with one optimizer and one loss.

    ``compile(optimizer, loss, metrics)``, then ``fit(X, Y, epochs, batch_size)`` with
    one-hot ``Y``. When the last layer is a :class:`Softmax` and the loss is a
    :class:`CategoricalCrossentropy` on probabilities, training skips the Softmax and
    uses the fused, stable ``from_logits`` loss instead (same value, same gradient, no
    ``log(0)``); ``predict`` still returns probabilities.
    """

    def __init__(self, layers: Sequence[Diffable]):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("SequentialModel needs at least one layer")
        dtypes = {v.value.dtype for layer in self.layers for v in layer.variables}
        if len(dtypes) > 1:
            raise ValueError(
                f"layers mix dtypes {sorted(map(str, dtypes))}: build every layer with "
                "one dtype"
            )
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float64)
        self.optimizer: Optimizer | None = None
        self.loss_fn: Diffable | None = None
        self.metrics: list = []
        self._fused = False
        self.history: dict[str, list[float]] = {}

    # -- structure
    @property
    def variables(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.variables]

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for v in self.variables if v.trainable]

    @property
    def input_size(self) -> int | None:
        first = self.layers[0]
        return getattr(first, "input_size", getattr(first, "num_features", None))

    def set_training(self, training: bool) -> None:
        for layer in self.layers:
            layer.training = training

    def compile(
        self,
        optimizer: Optimizer,
        loss: Diffable,
        metrics: Sequence = (CategoricalAccuracy(),),
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                "optimizer must be an Optimizer (SGD, RMSProp, Adam), got "
                f"{optimizer!r}"
            )
        self.optimizer, self.loss_fn, self.metrics = optimizer, loss, list(metrics)
        if (
            isinstance(loss, CategoricalCrossentropy)
            and loss.from_logits
            and isinstance(self.layers[-1], Softmax)
        ):
            raise ValueError(
                "the model ends with a Softmax, so its outputs are probabilities, but "
                "the loss has "
                "from_logits=True (it would apply a second softmax). Use "
                "CategoricalCrossentropy() (the model then trains with the fused, "
                "stable form), "
                "or drop the final Softmax layer."
            )
        self._fused = (
            isinstance(loss, CategoricalCrossentropy)
            and not loss.from_logits
            and isinstance(self.layers[-1], Softmax)
        )
        self._train_loss = (
            CategoricalCrossentropy(from_logits=True) if self._fused else loss
        )

    # -- inputs
    def _check_inputs(self, X, Y=None) -> tuple[np.ndarray, np.ndarray | None]:
        X = np.asarray(X, dtype=self.dtype)
        width = self.input_size
        if X.ndim != 2 or (width is not None and X.shape[1] != width):
            raise ValueError(
                f"the model expects inputs of shape (N, {width}), got {X.shape}; "
                "flatten images with load_mnist(flatten=True) or X.reshape(len(X), -1)"
            )
        if not np.isfinite(X).all():
            raise ValueError("inputs contain NaN or inf; clean or re-normalise them")
        if Y is not None:
            Y = np.asarray(Y, dtype=self.dtype)
            if Y.ndim != 2:
                raise ValueError(
                    "targets must be one-hot rows of shape (N, classes), got "
                    f"{Y.shape}; "
                    "encode labels with OneHotEncoder().fit(labels)(labels)"
                )
            if len(Y) != len(X):
                raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")
        return X, Y

    # -- forward passes
    def call(self, X: np.ndarray, *, logits: bool = False) -> np.ndarray:
        """Apply the layers (all of them, or all but a final Softmax when
        ``logits``).
        """
        layers = (
            self.layers[:-1]
            if logits and isinstance(self.layers[-1], Softmax)
            else self.layers
        )
        for layer in layers:
            X = layer(X)
        return X

    def predict(self, X, batch_size: int = 2000) -> np.ndarray:
        """Outputs (probabilities after a Softmax) in evaluation mode."""
        X, _ = self._check_inputs(X)
        self.set_training(False)
        try:
            return np.concatenate(
                [self.call(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
            )
        finally:
            self.set_training(True)

    def _require_compiled(self):
        if self.optimizer is None:
            raise RuntimeError(
                "call model.compile(optimizer=..., loss=...) before training or "
                "evaluating"
            )

    def evaluate(self, X, Y, batch_size: int = 2000) -> dict[str, float]:
        """Mean loss and metrics on (X, Y) in evaluation mode:
        ``{"loss": ..., "acc": ...}``.
        """
        self._require_compiled()
        X, Y = self._check_inputs(X, Y)
        self.set_training(False)
        total, preds = 0.0, []
        try:
            for i in range(0, len(X), batch_size):
                out = self.call(X[i : i + batch_size], logits=self._fused)
                total += float(self._train_loss(out, Y[i : i + batch_size])) * len(out)
                preds.append(out)
        finally:
            self.set_training(True)
        out = np.concatenate(preds)
        return {
            "loss": total / len(X),
            **{_metric_name(m): m(out, Y) for m in self.metrics},
        }

    # -- training
    def train_on_batch(
        self, xb: np.ndarray, yb: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """One gradient step on a batch; returns (loss, model output). No input checks
        (see fit).
        """
        with GradientTape() as tape:
            out = self.call(xb, logits=self._fused)
            loss = self._train_loss(out, yb)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        loss = float(loss)
        check_finite(
            loss, step=self.optimizer.iterations, lr=self.optimizer.learning_rate
        )
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss, out

    def fit(
        self,
        X,
        Y,
        epochs: int,
        batch_size: int,
        *,
        validation_data=None,
        rng=None,
        progress: Callable | None = None,
    ) -> dict[str, list[float]]:
        """Train for ``epochs`` in shuffled mini-batches (order from ``rng``, a seed or
        Generator).

        After each epoch, records ``train_loss``, ``train_acc`` (averaged over the
        epoch's batches), ``epoch_seconds`` and, with
        ``validation_data=(X_test, Y_test)``, ``test_loss`` and ``test_acc`` (accuracies
        in [0, 1]). ``progress`` wraps the epoch loop (e.g. :func:`helpers.progress`).
        Returns (and keeps in ``self.history``) the history.
        """
        self._require_compiled()
        if not (
            isinstance(epochs, int)
            and epochs >= 1
            and isinstance(batch_size, int)
            and batch_size >= 1
        ):
            raise ValueError(
                f"epochs={epochs!r} and batch_size={batch_size!r} must be positive "
                "integers"
            )
        X, Y = self._check_inputs(X, Y)
        out_width = self.predict(X[:2]).shape[1]
        if Y.shape[1] != out_width:
            raise ValueError(
                f"targets have {Y.shape[1]} columns but the model outputs {out_width}"
            )
        if validation_data is not None:
            Xv, Yv = self._check_inputs(*validation_data)
        rng = _as_rng(rng)
        accuracy = CategoricalAccuracy()
        hist = self.history = {
            k: []
            for k in (
                "train_loss",
                "train_acc",
                "test_loss",
                "test_acc",
                "epoch_seconds",
            )
        }
        epochs_iter = range(1, epochs + 1)
        bar = (
            progress(epochs_iter, desc="epochs")
            if progress is not None
            else epochs_iter
        )
        self.set_training(True)
        for epoch in bar:
            start = time.perf_counter()
            order = rng.permutation(len(X))
            total, correct = 0.0, 0.0
            for i in range(0, len(X), batch_size):
                idx = order[i : i + batch_size]
                xb, yb = X[idx], Y[idx]
                try:
                    loss, out = self.train_on_batch(xb, yb)
                except TrainingDiverged as e:
                    raise TrainingDiverged(f"epoch {epoch}: {e}") from None
                total += loss * len(idx)
                correct += accuracy(out, yb) * len(idx)
            hist["epoch_seconds"].append(time.perf_counter() - start)
            hist["train_loss"].append(total / len(X))
            hist["train_acc"].append(correct / len(X))
            if validation_data is not None:
                res = self.evaluate(Xv, Yv)
                hist["test_loss"].append(res["loss"])
                hist["test_acc"].append(res.get("acc", float("nan")))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(
                    train_acc=f"{hist['train_acc'][-1]:.4f}",
                    **(
                        {"test_acc": f"{hist['test_acc'][-1]:.4f}"}
                        if validation_data is not None
                        else {}
                    ),
                )
        return hist

    def __repr__(self):
        return "SequentialModel([" + ", ".join(map(repr, self.layers)) + "])"


def _metric_name(metric) -> str:
    return (
        "acc"
        if isinstance(metric, CategoricalAccuracy)
        else getattr(metric, "__name__", type(metric).__name__)
    )
