"""Sparse weights: layers whose every unit keeps a fixed random fraction of its weights.

- :func:`fan_in_mask`, :func:`sparse_init_`: the mask (the same number of non-zero
  weights per output unit) and the initialisation for the kept fan-in;
- :class:`SparseWeights` (``nn.Linear``), :class:`SparseWeights2d` (``nn.Conv2d``):
  modules that hold the fixed mask;
- keeping them sparse while training: :class:`KeepSparse`, the :class:`helpers.Rule` for
  :func:`helpers.fit` (also made by :func:`sparse_step`), or :func:`rezero_after_step`,
  an optimiser hook; :func:`rezero_sparse_weights` for a whole model;
- :func:`floor_division_init_`: our minimal re-creation of a reproduction blog post's
  sparse initialisation, whose floor division zeroes every weight.

The paper's code (Ahmad & Scheinkman, 2019) keeps a sparse layer's default
initialisation, masked (``SparseWeights(..., init=None)``); the default here re-draws
the kept weights for the kept fan-in. k-winners are in :mod:`helpers.kwinners`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .params import _is_int
from .params import _is_number as _is_real
from .train import Rule

__all__ = [
    "fan_in_mask",
    "sparse_init_",
    "SparseWeights",
    "SparseWeights2d",
    "rezero_sparse_weights",
    "rezero_after_step",
    "KeepSparse",
    "sparse_step",
    "floor_division_init_",
]


def fan_in_mask(
    out_units: int,
    fan_in: int,
    density: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random boolean mask (out_units, fan_in) with exactly
    ``round(density * fan_in)`` True per row.

    Every output unit gets the same number of non-zero weights; which inputs, is drawn
    uniformly without replacement from ``generator`` (or torch's global RNG).

    Parameters
    ----------
    out_units, fan_in : positive ints.
    density : the fraction of weights kept, in (0, 1]; ``round(density * fan_in)``
        (Python's round) must be at least 1.
    """
    if not _is_int(out_units) or out_units < 1 or not _is_int(fan_in) or fan_in < 1:
        raise ValueError(
            f"out_units={out_units!r} and fan_in={fan_in!r} must be positive integers"
        )
    if not _is_real(density) or not 0 < density <= 1:
        raise ValueError(
            f"density={density!r} must be in (0, 1]: the fraction of each unit's "
            "weights that are kept "
            f"(0.5 keeps half; 1 is a dense layer)"
        )
    n_on = int(round(density * fan_in))
    if n_on < 1:
        raise ValueError(
            f"density={density} keeps round({density} * {fan_in}) = 0 of the "
            f"fan_in={fan_in} weights "
            f"of every unit; use density >= {1 / fan_in:.3g}"
        )
    order = torch.rand(out_units, fan_in, generator=generator).argsort(dim=1)
    mask = torch.zeros(out_units, fan_in, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_on], True)
    return mask


def sparse_init_(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    init: str = "default",
    generator: torch.Generator | None = None,
) -> float:
    """Re-initialise a masked layer with its *effective* fan-in (non-zero inputs per
    unit); return the bound.

    ``weight`` (out, ...) and ``mask`` (same shape, bool, the same number of True per
    output unit, ``fan_eff``). Non-zero weights are drawn from U(-bound, bound) and
    masked weights set to 0:

    - ``init="default"``: bound = 1/sqrt(fan_eff), PyTorch's default for ``nn.Linear`` /
      ``nn.Conv2d`` with the true number of inputs, so that a sparse layer's outputs
      have the same variance as the dense layer's at initialisation (using the full
      fan-in would shrink them by sqrt(density));
    - ``init="kaiming"``: bound = sqrt(6/fan_eff), He's uniform initialisation for
      ReLU-like units.

    The bias (if any) is drawn from U(-1/sqrt(fan_eff), 1/sqrt(fan_eff)), as PyTorch
    does.
    """
    flat = mask.reshape(mask.shape[0], -1)
    counts = flat.sum(dim=1)
    fan_eff = int(counts[0])
    if not bool((counts == fan_eff).all()) or fan_eff < 1:
        raise ValueError(
            "sparse_init_ needs a mask with the same, positive number of non-zero "
            "weights per output unit"
        )
    if init == "default":
        bound = 1.0 / math.sqrt(fan_eff)
    elif init == "kaiming":
        bound = math.sqrt(6.0 / fan_eff)
    else:
        raise ValueError(
            f"init={init!r} is not known; use 'default' (PyTorch's, with the effective "
            "fan-in) or 'kaiming'"
        )
    with torch.no_grad():
        w = torch.rand(weight.shape, generator=generator) * (2 * bound) - bound
        weight.copy_((w * mask).to(weight.dtype))
        if bias is not None:
            b_bound = 1.0 / math.sqrt(fan_eff)
            bias.copy_(
                (
                    torch.rand(bias.shape, generator=generator) * (2 * b_bound)
                    - b_bound
                ).to(bias.dtype)
            )
    return bound


class _SparseWeightsBase(nn.Module):
    _kind: type = nn.Module

    def __init__(
        self,
        module: nn.Module,
        density: float,
        *,
        init: str | None = "default",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not isinstance(module, self._kind):
            other = "SparseWeights2d" if self._kind is nn.Linear else "SparseWeights"
            raise TypeError(
                f"{type(self).__name__} wraps a torch.nn.{self._kind.__name__}, got "
                f"{type(module).__name__}; use {other} for that"
            )
        self.module = module
        self.density = float(density) if _is_real(density) else density
        w = module.weight
        out_units, fan_in = w.shape[0], int(np.prod(w.shape[1:]))
        mask = fan_in_mask(out_units, fan_in, density, generator).reshape(w.shape)
        self.register_buffer("weight_mask", mask.to(w.device))
        # 0/1 in the weights' dtype: multiplying by it is ~20x faster on the CPU than
        # masked_fill_
        self.register_buffer(
            "_weight_mask_f", mask.to(device=w.device, dtype=w.dtype), persistent=False
        )
        self.register_load_state_dict_post_hook(
            lambda module, incompatible: module._sync_mask()
        )
        self.n_nonzero = int(mask.reshape(out_units, -1).sum(dim=1)[0])
        if init is not None:
            sparse_init_(w, module.bias, mask, init, generator)
        self.rezero_weights()

    @torch.no_grad()
    def _sync_mask(self) -> None:
        self._weight_mask_f.copy_(self.weight_mask)

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.module.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    @torch.no_grad()
    def rezero_weights(self) -> None:
        """Set the masked weights back to exactly zero (call after every optimiser
        step).
        """
        self.module.weight.mul_(self._weight_mask_f)

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradient of the masked weights (call between ``backward()`` and
        ``optimizer.step()``).

        With a zero gradient, SGD (with momentum, Nesterov, weight decay), Adam, AdamW
        and RMSprop leave a weight that is zero at exactly zero, so the layer stays
        sparse through the step.
        """
        g = self.module.weight.grad
        if g is not None:
            g.mul_(self._weight_mask_f)

    def extra_repr(self) -> str:
        return f"density={self.density}, nonzero_per_unit={self.n_nonzero}"


class SparseWeights(_SparseWeightsBase):
    """An ``nn.Linear`` whose every output unit keeps the same number of non-zero
    weights.

    At construction a random mask keeps ``round(density * in_features)`` weights of each
    output unit (:func:`fan_in_mask`), the layer is re-initialised for that effective
    fan-in (:func:`sparse_init_`) and the other weights are set to 0. The mask is fixed;
    an optimiser step moves masked weights away from zero, so after every step call
    :meth:`rezero_weights` (or, for a whole model, :func:`rezero_sparse_weights`; see
    :func:`rezero_after_step` and :class:`KeepSparse` for ``helpers.fit``).

    Parameters
    ----------
    module : the ``nn.Linear`` to make sparse (its weights are modified in place).
    density : fraction of each unit's weights that are kept, in (0, 1] (the paper's
        "weight density"; 0.5 keeps half, 1 keeps all).
    init : ``"default"`` (PyTorch's init with the effective fan-in; default),
        ``"kaiming"``, or None to keep the module's current weights and only zero the
        masked ones. None is what the paper's code does in its Table 1 runs: its
        ``SparseWeights`` only zeroes the masked weights of a default-initialised
        ``nn.Linear`` (bound 1/sqrt(full fan-in)), and the re-drawing for the kept
        fan-in (``normalize_weights``) is off in its ``experiments_paper.cfg``.
    generator : a ``torch.Generator`` for the mask and the init (else torch's global
        RNG).
    """

    _kind = nn.Linear


class SparseWeights2d(_SparseWeightsBase):
    """An ``nn.Conv2d`` whose every output channel keeps the same number of non-zero
    weights.

    The fan-in of an output channel is
    ``in_channels / groups * kernel_height * kernel_width``; ``round(density * fan_in)``
    of those weights are kept. Otherwise as :class:`SparseWeights`.
    """

    _kind = nn.Conv2d


def rezero_sparse_weights(model: nn.Module) -> int:
    """Call :meth:`rezero_weights` on every sparse-weights module in ``model``; returns
    how many.
    """
    found = [m for m in model.modules() if isinstance(m, _SparseWeightsBase)]
    for m in found:
        m.rezero_weights()
    return len(found)


def rezero_after_step(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Make ``optimizer.step()`` rezero every sparse layer of ``model`` right after each
    step.

    Registers an optimiser post-step hook, so any training loop, ``helpers.fit``
    included, keeps the masked weights at exactly zero without changes. Returns the
    hook's handle (``handle.remove()`` undoes it).
    """
    return optimizer.register_step_post_hook(
        lambda opt, args, kwargs: rezero_sparse_weights(model)
    )


class KeepSparse(Rule):
    """Backprop of ``loss_fn`` that keeps every sparse-weights layer of the model
    sparse.

    :func:`helpers.fit` calls ``step(model, xb, yb)`` after ``optimizer.zero_grad()``
    and *before* ``optimizer.step()``. This step rezeroes the masked weights (a guard
    against optimisers that move zero weights with a zero gradient), runs forward and
    backward with ``loss_fn``, and zeroes the gradients of the masked weights, so that
    the optimiser step that follows leaves them at zero (exactly, for SGD, Adam, AdamW
    and RMSprop): the model is sparse in every forward pass and after the last step,
    when ``fit`` evaluates it::

        helpers.fit(
            net, data, opt, epochs, batch_size, step=sparse_weights.KeepSparse()
        )

    (:func:`rezero_after_step` is the alternative that needs no ``step=``.)
    """

    name = "keep_sparse"

    def step(self, model, xb, yb):
        rezero_sparse_weights(model)
        out = model(xb)
        loss = self.loss_fn(out, yb)
        loss.backward()
        for m in model.modules():
            if isinstance(m, _SparseWeightsBase):
                m.mask_gradients()
        return loss, out


def sparse_step(loss_fn: Callable = F.cross_entropy) -> KeepSparse:
    """The ``step=`` of :func:`helpers.fit` / :func:`helpers.train_epoch` that keeps
    sparse layers sparse: ``KeepSparse(loss_fn)`` (see :class:`KeepSparse`)."""
    return KeepSparse(loss_fn)


def floor_division_init_(
    linear: nn.Linear, density: float, gain: float = 1 / math.sqrt(3)
) -> dict:
    """Re-draw ``linear``'s weights and bias with the blog post's sparse initialisation,
    ``//`` and all.

    A minimal re-creation of the arithmetic of the function (ours, not its code): for a
    layer with ``in_features`` inputs of which a fraction ``density`` is kept,
    ``fan = int(in_features * density)``, ``std = gain // sqrt(fan)``, weight bound
    ``sqrt(3) * std``, bias bound ``1 // sqrt(fan)``; weight and bias are drawn from
    U(-bound, bound). ``//`` is Python's floor division, so with ``gain`` below 1 (the
    default, 1/sqrt(3), is PyTorch's gain for its default ``leaky_relu(sqrt(5))`` init)
    the weight bound is 0 for every fan >= 1, and the bias bound is 0 for every
    fan >= 2: the layer comes out all zeros. With ``/`` the bounds would be
    ``sqrt(3) * gain / sqrt(fan)`` = 1/sqrt(fan) and 1/sqrt(fan).

    Returns ``{"fan", "weight_bound", "bias_bound", "weight_bound_with_slash",
    "bias_bound_with_slash", "nonzero_weights", "nonzero_biases"}`` (counts after the
    re-draw).
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(
            f"floor_division_init_ re-draws an nn.Linear, got {type(linear).__name__}"
        )
    if not _is_real(density) or not 0 < density <= 1:
        raise ValueError(
            f"density={density!r} must be in (0, 1]: the fraction of each unit's "
            "weights kept"
        )
    fan = int(linear.in_features * density)
    if fan < 1:
        raise ValueError(
            f"density={density} keeps int({density} * {linear.in_features}) = 0 inputs "
            "per unit"
        )
    std = gain // math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    bias_bound = 1 // math.sqrt(fan)
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
        if linear.bias is not None:
            linear.bias.uniform_(-bias_bound, bias_bound)
    return {
        "fan": fan,
        "weight_bound": bound,
        "bias_bound": bias_bound,
        "weight_bound_with_slash": math.sqrt(3.0) * gain / math.sqrt(fan),
        "bias_bound_with_slash": 1 / math.sqrt(fan),
        "nonzero_weights": int((linear.weight != 0).sum()),
        "nonzero_biases": int((linear.bias != 0).sum())
        if linear.bias is not None
        else 0,
    }
