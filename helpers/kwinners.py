"""k-winners-take-all activations with boosting and duty cycles (Ahmad & Scheinkman,
2019).

Two layers, in the manner of ``nupic.torch``:

- **pure tensor functions** (no state): :func:`resolve_k`, :func:`inference_k`,
  :func:`boost_factors`, :func:`winner_mask`, :func:`kwinners`, :func:`kwinners2d`,
  :func:`update_duty_cycles`, :func:`binary_entropy`, :func:`duty_cycle_entropy`;
- **modules** that hold state: :class:`KWinners`, :class:`KWinners2d` (duty cycles,
  boost strength), and the helpers a training loop calls on a whole model:
  :func:`update_boost_strength`, :func:`kwinners_modules`, :func:`inference_factor`.

The paper's code (``numenta/htmpapers``, ``arxiv/how_can_we_be_so_dense``) counts a
unit's win for the duty cycles when its output is > 0
(``KWinners(..., wins="positive")``; the default here counts the k winners). The
eval-mode k (:func:`inference_k`) and the duty-cycle update (:func:`update_duty_cycles`)
are the paper's. Sparse weights are in :mod:`helpers.sparse_weights`;
:mod:`helpers.sparse` puts the pieces of the sparse net together.

k-winners in one equation. For one sample with pre-activations
:math:`x \\in \\mathbb{R}^n`, duty cycles :math:`d \\in [0, 1]^n` (how often each unit
won recently) and boost strength :math:`\\beta`,

.. math::

    b_i = \\exp\\big(\\beta\\,(k/n - d_i)\\big), \\qquad
    W = \\operatorname{top-}k\\{x_i b_i\\}, \\qquad
    y_i = x_i \\text{ if } i \\in W \\text{ else } 0, \\qquad
    \\partial y_i / \\partial x_j = [i = j \\in W].

The boost factors only *choose* the winners; the winners pass their original values, and
the gradient flows to the winners only. Units that won less often than the target
density ``k/n`` get a boost above 1, so that in time every unit takes part. (Because
:math:`e^{\\beta k/n}` is the same for every unit of a layer, the target density changes
no choice; only the duty cycles do.) The boost *multiplies* the value, as in the paper
and ``nupic.torch``: for a negative pre-activation a boost above 1 makes the unit less
likely to win, not more. We keep that definition.

Speed. Finding the k-th largest value per row is most of the cost. On the CPU, NumPy's
introselect (``np.partition``) is several times faster than ``torch.topk`` for rows of a
few thousand units, and NumPy's comparisons are faster than torch's boolean kernels, so
CPU float tensors use NumPy; every other tensor (CUDA, MPS, bfloat16) uses
``torch.topk``. Both give the same winners (tested). ``benchmarks/bench_kwinners.py``
measures the cost against a ReLU.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .params import _is_int
from .params import _is_number as _is_real

__all__ = [
    # functions
    "WIN_RULES",
    "resolve_k",
    "round_half_up",
    "inference_k",
    "boost_factors",
    "winner_mask",
    "kwinners",
    "kwinners2d",
    "update_duty_cycles",
    # modules and model-wide helpers
    "KWinners",
    "KWinners2d",
    "update_boost_strength",
    "kwinners_modules",
    "inference_factor",
    # duty-cycle diagnostics
    "binary_entropy",
    "duty_cycle_entropy",
    "max_duty_cycle_entropy",
    "units_never_won",
]

_NUMPY_DTYPES = (torch.float32, torch.float64)

#: What counts as a win in the duty cycles (the ``wins`` parameter of
#: :class:`KWinners`).
WIN_RULES = ("winners", "positive")


# =========================================================================== functions
def resolve_k(k: int | float, n: int) -> int:
    """The number of winners among ``n`` units.

    Parameters
    ----------
    k : an ``int`` from 0 to ``n`` is a count of winners; a ``float`` in [0, 1] is a
        fraction of the ``n`` units, turned into ``round(k * n)`` winners (Python's
        ``round``: halves go to the even neighbour, so ``0.5 * 5`` gives 2). ``k = 0``
        makes the layer output zeros; ``k = n`` makes it the identity.
    n : the number of units that compete (positive).

    Raises ``ValueError`` for k > n, k < 0 or a fraction outside [0, 1], and
    ``TypeError`` for anything that is not a number (``True`` is not taken for 1).
    """
    if not _is_int(n) or n < 1:
        raise ValueError(
            f"n={n!r} must be a positive integer (the number of units that compete)"
        )
    if _is_int(k):
        if k < 0:
            raise ValueError(
                f"k={k} is negative; use 0 <= k <= n (k is the number of winners)"
            )
        if k > n:
            raise ValueError(
                f"k={k} is larger than the layer's n={n} units; use k <= n"
            )
        return int(k)
    if isinstance(k, float):
        if not (math.isfinite(k) and 0.0 <= k <= 1.0):
            raise ValueError(
                f"k={k!r} is a float, so it is read as a fraction of the n={n} units "
                "and must be in "
                f"[0, 1]; pass an int (e.g. k={int(k) if math.isfinite(k) else 10}) "
                "for a count of winners"
            )
        return int(round(k * n))
    raise TypeError(
        f"k={k!r} must be an int (a count of winners) or a float in [0, 1] (a fraction "
        "of the units)"
    )


def round_half_up(x: float) -> int:
    """``x`` (>= 0) rounded to the nearest integer, halves up: Python 2's ``round``.

    The paper's code ran on Python 2.7 (its Dockerfile: ``FROM python:2.7.14``), whose
    ``round(4.5)`` is 5; Python 3's ``round`` sends halves to the even neighbour (4).
    Exact for every float: ``x - floor(x)`` has no rounding error.
    """
    whole = math.floor(x)
    return int(whole) + (1 if x - whole >= 0.5 else 0)


def inference_k(k: int, factor: float, n: int) -> int:
    """The number of winners in eval mode: ``min(n, round(k * factor))``, halves rounded
    up.

    As the paper's ``k_winners`` modules compute it,
    ``min(int(round(k * kInferenceFactor)), n)`` under the Python 2.7 they ran on
    (:func:`round_half_up`: k = 3 and factor 1.5 give 5, where Python 3's ``round``
    would give 4). ``factor`` > 0; the paper uses 1.5, so that at test time a few more
    units than during training pass their values (e.g. k = 100 becomes 150).
    """
    if not _is_real(factor) or factor <= 0:
        raise ValueError(
            f"k_inference_factor={factor!r} must be a positive finite number (1.0 "
            "keeps k; the paper uses 1.5)"
        )
    return min(n, round_half_up(k * factor))


def boost_factors(
    duty_cycles: torch.Tensor, target_density: float, boost_strength: float
) -> torch.Tensor:
    """``exp(boost_strength * (target_density - duty_cycles))``, elementwise.

    Parameters
    ----------
    duty_cycles : per-unit (or per-channel) fraction of recent samples in which the unit
        won, in [0, 1].
    target_density : ``k / n``, the fraction of units that win per sample, in [0, 1].
    boost_strength : beta >= 0. 0 gives factors of exactly 1 (no boosting).
    """
    return torch.exp(boost_strength * (target_density - duty_cycles))


def _mask_numpy(
    scores: torch.Tensor, k: int, dim: int, break_ties: bool, dtype: torch.dtype
) -> torch.Tensor:
    a = scores.detach().numpy()
    a = np.moveaxis(a, dim, -1)  # a view; the units that compete are now the last axis
    n = a.shape[-1]
    part = np.partition(a, n - k, axis=-1)
    kth = part[..., n - k : n - k + 1]  # the k-th largest value of every row
    mask = a >= kth
    if break_ties and k < n:
        # After the partition, positions < n-k hold values <= kth; a row has more than k
        # values >= kth exactly when one of them equals kth.
        tied = part[..., : n - k].max(axis=-1) == kth[..., 0]
        if tied.any():
            rows, kt = a[tied], kth[tied]
            above, equal = rows > kt, rows == kt
            need = k - above.sum(axis=-1, keepdims=True)
            mask[tied] = above | (equal & (np.cumsum(equal, axis=-1) <= need))
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    out = mask if np_dtype == np.bool_ else mask.astype(np_dtype)
    return torch.from_numpy(np.moveaxis(out, -1, dim))


def _mask_torch(
    scores: torch.Tensor, k: int, dim: int, break_ties: bool, dtype: torch.dtype
) -> torch.Tensor:
    scores = scores.detach()
    kth = scores.topk(k, dim=dim, sorted=False).values.amin(dim=dim, keepdim=True)
    mask = scores >= kth
    if break_ties and (mask.sum(dim=dim, keepdim=True) > k).any():
        above = scores > kth
        equal = mask & ~above
        need = k - above.sum(dim=dim, keepdim=True)
        mask = above | (equal & (equal.cumsum(dim=dim) <= need))
    return mask.to(dtype)


def _mask(
    scores: torch.Tensor,
    k: int,
    dim: int,
    break_ties: bool,
    dtype: torch.dtype,
    backend: str = "auto",
) -> torch.Tensor:
    n = scores.shape[dim]
    if not 0 <= k <= n:
        raise ValueError(
            f"k={k} is larger than the layer's n={n} units; use k <= n"
            if k > n
            else f"k={k} is negative; use 0 <= k <= n"
        )
    if k == 0:
        return torch.zeros(scores.shape, dtype=dtype, device=scores.device)
    if k == n:
        return torch.ones(scores.shape, dtype=dtype, device=scores.device)
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(
            f"backend={backend!r} is not known; use 'auto', 'numpy' or 'torch'"
        )
    use_numpy = scores.device.type == "cpu" and scores.dtype in _NUMPY_DTYPES
    if backend == "numpy" and not use_numpy:
        raise ValueError(
            f"backend='numpy' needs a float32/float64 CPU tensor, got {scores.dtype} "
            f"on {scores.device}"
        )
    if backend == "numpy" or (backend == "auto" and use_numpy):
        return _mask_numpy(scores, k, dim % scores.dim(), break_ties, dtype).to(
            scores.device
        )
    return _mask_torch(scores, k, dim, break_ties, dtype)


def winner_mask(
    scores: torch.Tensor,
    k: int,
    dim: int = 1,
    *,
    break_ties: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of ``scores`` along ``dim``.

    Parameters
    ----------
    scores : a float tensor; the entries along ``dim`` compete (no NaN).
    k : the number of winners, an int from 0 to ``scores.shape[dim]``.
    dim : the dimension along which units compete.
    break_ties : the tie rule. ``True`` (default): exactly ``k`` winners per row; when
        several entries equal the k-th largest value, those with the *lowest index*
        along ``dim`` win. ``False``: every entry >= the k-th largest value wins, so a
        row with ties may have more than ``k`` winners (all of a constant row win).
    backend : ``"auto"`` (NumPy for float32/float64 CPU tensors, else ``torch.topk``),
        ``"numpy"`` or ``"torch"``; all give the same mask.
    """
    return _mask(scores, k, dim, break_ties, torch.bool, backend)


class _KeepWinners(torch.autograd.Function):
    """``y = x * mask`` with the gradient ``grad * mask``; ``mask`` holds 0/1 in x's
    dtype.
    """

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def _winners_of(
    x: torch.Tensor,
    k: int,
    boost: torch.Tensor | None,
    dim: int,
    break_ties: bool,
    flatten: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, 0/1 float mask) for one competition; ``flatten`` joins all dims after
    the batch.
    """
    scores = x.detach() if boost is None else x.detach() * boost
    if flatten:
        mask = _mask(scores.reshape(len(x), -1), k, 1, break_ties, x.dtype).reshape(
            x.shape
        )
    else:
        mask = _mask(scores, k, dim, break_ties, x.dtype)
    return _KeepWinners.apply(x, mask), mask


def kwinners(
    x: torch.Tensor,
    k: int,
    boost: torch.Tensor | None = None,
    *,
    break_ties: bool = True,
    return_mask: bool = False,
):
    """k-winners-take-all over the units of each row of ``x``, shape (N, n).

    Parameters
    ----------
    x : pre-activations, (N, n).
    k : winners per row, an int from 0 to n (``k = 0``: zeros; ``k = n``: identity).
    boost : None, or boost factors of shape (n,) (see :func:`boost_factors`); the
        winners are the k largest ``x * boost``, the output keeps the original ``x`` at
        the winners.
    break_ties : the tie rule of :func:`winner_mask`.
    return_mask : also return the 0/1 winner mask (in x's dtype), e.g. to count wins.

    Returns ``y`` (N, n) with ``y = x`` at the winners and 0 elsewhere (or
    ``(y, mask)``); the gradient reaches the winners only.
    """
    if x.dim() != 2:
        raise ValueError(
            f"kwinners expects x of shape (batch, n); got shape {tuple(x.shape)}"
        )
    y, mask = _winners_of(x, k, boost, 1, break_ties, flatten=False)
    return (y, mask) if return_mask else y


def kwinners2d(
    x: torch.Tensor,
    k: int,
    boost: torch.Tensor | None = None,
    *,
    local: bool = False,
    break_ties: bool = True,
    return_mask: bool = False,
):
    """k-winners-take-all on feature maps ``x`` of shape (N, C, H, W).

    Parameters
    ----------
    x : pre-activations, (N, C, H, W).
    k : winners, an int. ``local=False``: k of the C*H*W units of each sample win
        (0 <= k <= C*H*W); ``local=True``: at every location (h, w), k of the C channels
        win (0 <= k <= C).
    boost : None, or per-channel boost factors of shape (C,) (broadcast over H and W).
    local : where units compete (see ``k``).
    break_ties, return_mask : as in :func:`kwinners` (ties: lowest index in the
        flattened C*H*W order when global, lowest channel when local).
    """
    if x.dim() != 4:
        raise ValueError(
            "kwinners2d expects x of shape (batch, channels, height, width); got "
            f"shape {tuple(x.shape)}"
        )
    if boost is not None:
        boost = boost.reshape(1, -1, 1, 1)
    y, mask = _winners_of(x, k, boost, 1, break_ties, flatten=not local)
    return (y, mask) if return_mask else y


def update_duty_cycles(
    duty_cycles: torch.Tensor,
    wins: torch.Tensor,
    batch_size: int,
    samples_seen: int,
    period: int,
) -> torch.Tensor:
    """The new duty cycles after one training batch (a pure function; the modules call
    it).

    .. math::

        T = \\max(\\min(P, s), B), \\qquad d \\leftarrow \\big(d\\,(T - B) + w\\big) / T

    Parameters
    ----------
    duty_cycles : d, the current duty cycles, each in [0, 1].
    wins : w, for every unit (channel), how many of this batch's samples it won in (for
        a channel: the number of its winning locations divided by H*W), each in [0, B].
    batch_size : B >= 1, the number of samples in this batch.
    samples_seen : s, the number of training samples seen so far *including* this batch
        (>= B).
    period : P >= 1, the averaging period in samples (the paper's "duty cycle period",
        1000).

    While fewer than P samples have been seen, T = s and d is the exact mean win rate
    over all samples so far; afterwards d is a running mean whose past weighs (P - B) /
    P per batch. This is the update of the paper's ``k_winners`` modules
    (``period = min(dutyCyclePeriod, learningIterations)``, then ``d * (period - B)``,
    ``+ w``, ``/ period``, in that order, so the float32 results are the same bit for
    bit) for every batch of at most P samples, which covers all of the paper's runs
    (batches of 4 and 64, P = 1000). The ``max(., B)`` (ours) only acts on a batch
    larger than P: d is then that batch's win rate, where the paper's formula would give
    the past a negative weight.

    What counts as a win is the caller's: see the ``wins`` parameter of
    :class:`KWinners`.
    """
    T = max(min(period, samples_seen), batch_size)
    return (duty_cycles * (T - batch_size) + wins) / T


# =========================================================================== modules
class _KWinnersBase(nn.Module):
    """State shared by :class:`KWinners` and :class:`KWinners2d`: duty cycles, boost
    strength, counts.
    """

    def __init__(
        self,
        n_duty: int,
        k,
        k_inference_factor: float,
        boost_strength: float,
        boost_strength_factor: float,
        duty_cycle_period: int,
        break_ties: bool,
        wins: str = "winners",
    ):
        super().__init__()
        if wins not in WIN_RULES:
            raise ValueError(
                f"wins={wins!r} is not known; use 'winners' (every one of the k "
                "winners counts) or "
                "'positive' (a unit counts when its output is > 0, as the paper's "
                "code)"
            )
        if not _is_real(k_inference_factor) or k_inference_factor <= 0:
            raise ValueError(
                f"k_inference_factor={k_inference_factor!r} must be a positive finite "
                "number "
                f"(1.0 keeps k in eval mode; the paper uses 1.5)"
            )
        if not _is_real(boost_strength) or boost_strength < 0:
            raise ValueError(
                f"boost_strength={boost_strength!r} must be a finite number >= 0 (0 "
                "turns boosting off)"
            )
        if not _is_real(boost_strength_factor) or not 0 <= boost_strength_factor <= 1:
            raise ValueError(
                f"boost_strength_factor={boost_strength_factor!r} must be in [0, 1] "
                "(the factor applied to the boost strength once per epoch; the paper "
                "uses 0.85)"
            )
        if not _is_int(duty_cycle_period) or duty_cycle_period < 1:
            raise ValueError(
                f"duty_cycle_period={duty_cycle_period!r} must be a positive integer "
                "(samples; the paper uses 1000)"
            )
        self._k_spec = k
        self.k_inference_factor = float(k_inference_factor)
        self.boost_strength = float(boost_strength)
        self.boost_strength_factor = float(boost_strength_factor)
        self.duty_cycle_period = int(duty_cycle_period)
        self.break_ties = bool(break_ties)
        self.wins = wins
        self.samples_seen = 0
        self.register_buffer("duty_cycles", torch.zeros(n_duty))
        self.register_buffer("win_counts", torch.zeros(n_duty, dtype=torch.long))

    def set_k_inference_factor(self, factor: float) -> None:
        """Change how many units win in eval mode (k * factor, rounded, at most n);
        training is unaffected.
        """
        if not _is_real(factor) or factor <= 0:
            raise ValueError(
                f"k_inference_factor={factor!r} must be a positive finite number "
                f"(1.0 keeps k in eval mode; the paper uses 1.5)"
            )
        self.k_inference_factor = float(factor)

    # -- boosting
    def update_boost_strength(self) -> float:
        """Multiply the boost strength by ``boost_strength_factor``; call once per
        epoch. Returns the new value.
        """
        self.boost_strength *= self.boost_strength_factor
        return self.boost_strength

    def _boost(self, target_density: float) -> torch.Tensor | None:
        if self.boost_strength == 0:
            return None
        return boost_factors(self.duty_cycles, target_density, self.boost_strength)

    def _record(self, wins: torch.Tensor, batch_size: int, integer_wins: torch.Tensor):
        with torch.no_grad():
            self.samples_seen += batch_size
            new = update_duty_cycles(
                self.duty_cycles,
                wins,
                batch_size,
                self.samples_seen,
                self.duty_cycle_period,
            )
            self.duty_cycles.copy_(new)
            self.win_counts += integer_wins.round().long()

    def _won(self, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """0/1 (in y's dtype) for every unit that counts as a win in this batch (see
        ``wins``).
        """
        return mask if self.wins == "winners" else (y.detach() > 0).to(y.dtype)

    def reset_duty_cycles(self) -> None:
        """Forget the past: duty cycles, win counts and the sample counter back to
        zero.
        """
        self.duty_cycles.zero_()
        self.win_counts.zero_()
        self.samples_seen = 0

    # -- state_dict carries the Python scalars too
    def get_extra_state(self):
        return {
            "boost_strength": self.boost_strength,
            "samples_seen": self.samples_seen,
        }

    def set_extra_state(self, state):
        self.boost_strength = float(state["boost_strength"])
        self.samples_seen = int(state["samples_seen"])


class KWinners(_KWinnersBase):
    """k-winners-take-all activation for inputs of shape (N, n), with boosting and duty
    cycles.

    In training mode, the ``k`` units with the largest boosted value ``x * b`` win,
    where ``b = exp(boost_strength * (k/n - duty_cycles))``; each winner passes its
    original value, every other unit outputs 0, and the gradient reaches the winners
    only. After the forward pass the duty cycles are updated
    (:func:`update_duty_cycles`) and ``win_counts`` grows. In eval mode
    ``k_inference = min(n, round(k * k_inference_factor))`` units win
    (:func:`inference_k`), boosted with the current duty cycles, and no state changes.
    The paper's code boosts in eval mode too, with the target density
    ``k_inference / n`` instead of ``k / n``; that multiplies every unit's factor by the
    same ``exp(beta (k_inference - k) / n)`` and so picks the same winners, up to float
    rounding.

    Parameters
    ----------
    n : number of units (the input's second dimension), positive.
    k : winners per sample: an int in [0, n], or a float in [0, 1] read as a fraction of
        n (``round(k * n)`` winners; see :func:`resolve_k`).
    k_inference_factor : > 0; eval mode uses ``min(n, round(k * k_inference_factor))``
        winners. Default 1.5 (the paper's); 1.0 keeps k.
    boost_strength : beta >= 0, the initial boost strength; 0 turns boosting off.
        Default 1.5 (the paper's).
    boost_strength_factor : in [0, 1]; :meth:`update_boost_strength` multiplies beta by
        it (once per epoch, see :func:`update_boost_strength`). Default 0.85 (the
        paper's).
    duty_cycle_period : P >= 1, the period, in samples, of the duty cycles' running
        mean. Default 1000.
    break_ties : the tie rule (see :func:`winner_mask`): True = exactly k winners,
        lowest index first among equal values; False = every unit tied with the k-th
        value wins.
    wins : what counts as a win in the duty cycles and ``win_counts``. ``"winners"``
        (default): being among the k winners, whatever the value passed. ``"positive"``:
        an output > 0, as the paper's code (``x.gt(0)`` on the layer's output) and
        ``nupic.torch``. The two differ only for a winner whose value is <= 0, which
        happens when fewer than k units of a sample are positive.

    Attributes: ``duty_cycles`` (n,) in [0, 1], ``win_counts`` (n,) int (wins since
    creation or :meth:`reset_duty_cycles`), ``samples_seen``, ``boost_strength``
    (current), ``k``, ``k_inference``.
    """

    def __init__(
        self,
        n: int,
        k: int | float,
        *,
        k_inference_factor: float = 1.5,
        boost_strength: float = 1.5,
        boost_strength_factor: float = 0.85,
        duty_cycle_period: int = 1000,
        break_ties: bool = True,
        wins: str = "winners",
    ):
        if not _is_int(n) or n < 1:
            raise ValueError(
                f"n={n!r} must be a positive integer (the number of units)"
            )
        super().__init__(
            n,
            k,
            k_inference_factor,
            boost_strength,
            boost_strength_factor,
            duty_cycle_period,
            break_ties,
            wins,
        )
        self.n = int(n)
        self.k = resolve_k(k, self.n)
        self.k_inference = inference_k(self.k, self.k_inference_factor, self.n)

    def set_k_inference_factor(self, factor: float) -> None:
        super().set_k_inference_factor(factor)
        self.k_inference = inference_k(self.k, self.k_inference_factor, self.n)

    @property
    def target_density(self) -> float:
        """k / n, the fraction of units that win per training sample."""
        return self.k / self.n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n:
            raise ValueError(
                f"KWinners(n={self.n}) expects input of shape (batch, {self.n}); got "
                f"shape {tuple(x.shape)}"
            )
        k = self.k if self.training else self.k_inference
        y, mask = _winners_of(
            x, k, self._boost(self.target_density), 1, self.break_ties, flatten=False
        )
        if self.training:
            wins = self._won(y, mask).sum(dim=0).to(self.duty_cycles.dtype)
            self._record(wins, len(x), wins)
        return y

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, k={self.k}, k_inference={self.k_inference}, "
            f"boost_strength={self.boost_strength:.4g}, "
            f"boost_strength_factor={self.boost_strength_factor}, "
            f"duty_cycle_period={self.duty_cycle_period}"
            + ("" if self.break_ties else ", break_ties=False")
            + ("" if self.wins == "winners" else f", wins={self.wins!r}")
        )


class KWinners2d(_KWinnersBase):
    """k-winners-take-all for feature maps (N, C, H, W), with per-channel duty cycles
    and boosting.

    ``local=False`` (default, as in the paper's CNNs): the ``k`` largest boosted values
    among all C*H*W units of each sample win. ``local=True``: at every location, ``k``
    of the C channels win. Boost factors are per channel,
    ``exp(boost_strength * (k/n - duty_cycles))`` with n = C*H*W (global) or n = C
    (local), broadcast over H and W. A channel's duty cycle is the fraction of its H*W
    locations that won, averaged over samples (the batch update divides the channel's
    win count by H*W, then :func:`update_duty_cycles`). Eval mode and the other
    parameters: as :class:`KWinners`.

    Parameters
    ----------
    channels : C, the number of input channels, positive.
    k : an int, or a float in [0, 1] read as a fraction of n (n = C*H*W when global,
        known at the first forward pass; n = C when local). The check k <= n happens at
        construction when ``local=True`` and at every forward pass when global (the
        spatial size is known then).
    local : where units compete (see above).
    k_inference_factor, boost_strength, boost_strength_factor, duty_cycle_period,
        break_ties, wins: as in :class:`KWinners` (ties: lowest flattened C*H*W index,
        or lowest channel when local; ``wins="positive"`` counts, per channel, the
        locations whose output is > 0, as the paper's ``KWinners2d``).
    """

    def __init__(
        self,
        channels: int,
        k: int | float,
        *,
        local: bool = False,
        k_inference_factor: float = 1.5,
        boost_strength: float = 1.5,
        boost_strength_factor: float = 0.85,
        duty_cycle_period: int = 1000,
        break_ties: bool = True,
        wins: str = "winners",
    ):
        if not _is_int(channels) or channels < 1:
            raise ValueError(f"channels={channels!r} must be a positive integer")
        super().__init__(
            channels,
            k,
            k_inference_factor,
            boost_strength,
            boost_strength_factor,
            duty_cycle_period,
            break_ties,
            wins,
        )
        self.channels = int(channels)
        self.local = bool(local)
        # Fail now rather than at the first batch where possible; k <= C*H*W is checked
        # at forward.
        if self.local:
            resolve_k(k, self.channels)
        elif not (_is_int(k) and k >= 0):
            resolve_k(
                k, 1
            )  # a negative int, a float outside [0, 1] or a non-number raises here

    def ks(self, height: int, width: int) -> tuple[int, int, int]:
        """``(n, k, k_inference)`` for maps of this spatial size (n = units that compete
        together).
        """
        n = self.channels if self.local else self.channels * height * width
        try:
            k = resolve_k(self._k_spec, n)
        except ValueError as e:
            if self.local:
                raise
            raise ValueError(
                f"{e} (n = C*H*W = {self.channels}*{height}*{width})"
            ) from None
        return n, k, inference_k(k, self.k_inference_factor, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"KWinners2d(channels={self.channels}) expects input of shape "
                f"(batch, {self.channels}, height, width); got shape {tuple(x.shape)}"
            )
        N, C, H, W = x.shape
        n, k, k_inf = self.ks(H, W)
        boost = self._boost(k / n)
        if boost is not None:
            boost = boost.reshape(1, C, 1, 1)
        y, mask = _winners_of(
            x,
            k if self.training else k_inf,
            boost,
            1,
            self.break_ties,
            flatten=not self.local,
        )
        if self.training:
            counts = self._won(y, mask).sum(dim=(0, 2, 3)).to(self.duty_cycles.dtype)
            self._record(counts / (H * W), N, counts)
        return y

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, k={self._k_spec!r}, local={self.local}, "
            f"k_inference_factor={self.k_inference_factor}, "
            f"boost_strength={self.boost_strength:.4g}, "
            f"boost_strength_factor={self.boost_strength_factor}, "
            f"duty_cycle_period={self.duty_cycle_period}"
            + ("" if self.break_ties else ", break_ties=False")
            + ("" if self.wins == "winners" else f", wins={self.wins!r}")
        )


def kwinners_modules(model: nn.Module) -> list[_KWinnersBase]:
    """Every :class:`KWinners` / :class:`KWinners2d` inside ``model`` (including
    ``model`` itself).
    """
    return [m for m in model.modules() if isinstance(m, _KWinnersBase)]


@contextlib.contextmanager
def inference_factor(model: nn.Module, factor: float) -> Iterator[list[_KWinnersBase]]:
    """Score ``model`` with another k-inference factor for the duration of a ``with``
    block.

    Every k-winners module of ``model`` lets ``round(k * factor)`` units (at most n) win
    in eval mode inside the block; on leaving it, even by an exception, each module's
    own factor and ``k_inference`` come back exactly as they were. Training-mode
    behaviour is not touched. Yields the modules. A model without k-winners modules is
    an error (the block would score the model unchanged without saying so)::

        with kwinners.inference_factor(net, 1.5):
            acc = helpers.evaluate(net, X, y)[1]
    """
    modules = kwinners_modules(model)
    if not modules:
        raise ValueError(
            f"{type(model).__name__} has no KWinners or KWinners2d module: there is no "
            "k-inference "
            f"factor to change"
        )
    saved = [(m.k_inference_factor, getattr(m, "k_inference", None)) for m in modules]
    try:
        for m in modules:
            m.set_k_inference_factor(factor)
        yield modules
    finally:
        for m, (f, k_inf) in zip(modules, saved):
            m.k_inference_factor = f
            if k_inf is not None:
                m.k_inference = k_inf


def update_boost_strength(model: nn.Module) -> int:
    """Decay the boost strength of every k-winners module in ``model``; returns how many
    there were.

    Call it once per epoch, e.g.
    ``helpers.fit(..., on_epoch_end=lambda epoch, h: update_boost_strength(net))``.
    """
    found = kwinners_modules(model)
    for m in found:
        m.update_boost_strength()
    return len(found)


# =============================================================== duty-cycle diagnostics
def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """``-p log2 p - (1-p) log2 (1-p)`` elementwise, in bits, with ``0 log 0 = 0``; p in
    [0, 1].
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    q = 1 - p
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q)) / math.log(2)


def duty_cycle_entropy(duty_cycles: torch.Tensor | _KWinnersBase) -> float:
    """Sum over units of the binary entropy of their duty cycles, in bits.

    High when the units share the work; it reaches :func:`max_duty_cycle_entropy` when
    every unit wins at the target rate k/n, and falls when a few units win all the time
    and the others never. Accepts the duty cycles or a k-winners module.
    """
    d = (
        duty_cycles.duty_cycles
        if isinstance(duty_cycles, _KWinnersBase)
        else duty_cycles
    )
    return float(binary_entropy(d.detach().cpu()).sum())


def max_duty_cycle_entropy(n_units: int, target_density: float) -> float:
    """The largest duty-cycle entropy ``n_units * H(target_density)`` at a fixed mean
    win rate, in bits.
    """
    return float(n_units * binary_entropy(torch.tensor(float(target_density))))


def units_never_won(module: _KWinnersBase) -> int:
    """How many units (channels, for :class:`KWinners2d`) have not won once in training
    mode since the module was created or :meth:`~_KWinnersBase.reset_duty_cycles` was
    called (a win as the module's ``wins`` counts it: with ``"positive"``, an
    output > 0)."""
    if not isinstance(module, _KWinnersBase):
        raise TypeError(
            "units_never_won needs a KWinners or KWinners2d module, not "
            f"{type(module).__name__}"
        )
    return int((module.win_counts == 0).sum())
