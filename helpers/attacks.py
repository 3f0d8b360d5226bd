"""Perturbed inputs for models that take *normalised* inputs: Gaussian noise, FGSM, PGD,
and the pixel noise of Ahmad & Scheinkman (2019).

Sizes are given on the **[0, 1] pixel scale** (``eps = 0.1`` is a tenth of the pixel
range), whatever normalisation the model expects. The book's data are normalised as
``x = (pixel - mean) / std`` (:class:`helpers.Data`), so a pixel-scale size ``eps`` is
``eps / std`` in normalised units, and the valid range ``pixel in [0, 1]`` is
``x in [(0 - mean) / std, (1 - mean) / std]``. Every function here returns normalised
inputs inside that range (perturbed inputs are clipped to it)::

    from helpers import attacks, metrics

    X_adv = attacks.fgsm(net, data.X_test, data.y_test, data, eps=0.1)
    net1 = net.truncated(1)  # any model of normalised inputs
    metrics.accuracy_under_attack(
        net1, data.X_test, data.y_test, "pgd", data, eps=0.1, steps=20
    )
    metrics.accuracy_under_attack(
        net1, data.X_test, data.y_test, "gaussian", data, sigma=0.3
    )

``norm`` is a :class:`helpers.Data` (its ``mean`` and ``std`` are used) or a
``(mean, std)`` pair.

- :func:`gaussian_noise`: ``pixel + sigma * z``, z standard normal, clipped to [0, 1].
- :func:`fgsm` (fast gradient sign method, Goodfellow et al. 2015): one step of size
  ``eps`` along the sign of the loss gradient with respect to the input; the sign is the
  same in pixel and normalised units because ``std > 0``.
- :func:`pgd` (projected gradient descent, Madry et al. 2018): ``steps`` signed-gradient
  steps of ``step_size``, each followed by projection onto the L-infinity ball of radius
  ``eps`` around the clean input and onto the valid pixel range; optionally from a
  uniform random start.
- :func:`add_pixel_noise`: a random fraction of every image's pixels set to one value
  (the "white" pixel :data:`WHITE_PIXEL`); scored by
  :func:`helpers.metrics.noise_score`.

Gradient attacks run the model in eval mode (and put its mode back), differentiate with
respect to the input only (no parameter ``.grad`` is touched), and use the
cross-entropy, whose gradient direction is computed so that it does not underflow for
very confident nets (see :func:`_cross_entropy_direction`).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .params import ParameterError
from .params import _is_number as _is_real
from .train import eval_mode

__all__ = [
    "pixel_bounds",
    "gaussian_noise",
    "fgsm",
    "pgd",
    "ATTACKS",
    "WHITE_PIXEL",
    "add_pixel_noise",
]

#: The "white" noise value of Ahmad & Scheinkman (2019): MNIST's mean plus two standard
#: deviations, 0.7469, a pixel value on the [0, 1] scale (:func:`add_pixel_noise`).
WHITE_PIXEL = 0.1307 + 2 * 0.3081


def _mean_std(norm) -> tuple[float, float]:
    if isinstance(norm, (tuple, list)) and len(norm) == 2:
        mean, std = norm
    elif isinstance(getattr(norm, "mean", None), numbers.Real) and isinstance(
        getattr(norm, "std", None), numbers.Real
    ):
        # a helpers.Data (or anything with numeric mean / std)
        mean, std = norm.mean, norm.std
    else:
        raise TypeError(
            f"norm={norm!r} must be a helpers.Data (its mean and std are used) or a "
            "(mean, std) pair "
            "on the [0, 1] pixel scale, e.g. (0.5, 0.5)"
        )
    mean, std = float(mean), float(std)
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(
            f"normalisation (mean={mean}, std={std}) must be finite with std > 0"
        )
    return mean, std


def pixel_bounds(norm, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised values of pixels 0 and 1:
    ``((0 - mean) / std, (1 - mean) / std)``.

    Computed in ``like``'s dtype and on its device with the same arithmetic as
    :func:`helpers.load_mnist`, so that clean black and white pixels lie exactly on the
    bounds (clipping a clean input leaves it bit-identical).
    """
    mean, std = _mean_std(norm)
    ends = torch.tensor([0.0, 1.0], dtype=like.dtype, device=like.device)
    lo, hi = (ends - mean) / std
    return lo, hi


def _check_size(value, name: str, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ParameterError(f"{name}={value!r} must be a finite number >= 0 ({what})")
    if value > 1:
        raise ParameterError(
            f"{name}={value!r} is larger than the whole pixel range: {name} is given "
            "on the [0, 1] pixel "
            f"scale ({what}), e.g. 0.1. A value in 0..255 units must be divided by "
            "255; a value in "
            "normalised units must be multiplied by the normalisation's std"
        )
    return float(value)


def _cross_entropy_direction(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A positive per-example multiple of d(cross-entropy)/d(logits) that cannot
    underflow.

    The gradient of the cross-entropy with respect to the logits is ``p - e_y`` with
    ``p`` the softmax. For a confident net (largest logit ~100 above the others) every
    wrong-class ``p_j`` is below float32's smallest number, ``p - e_y`` is exactly zero,
    and so is the input gradient: a sign-gradient attack then does not move the input at
    all (a numerical gradient masking, not robustness). Earlier, from a gap of ~17
    between the top two logits, ``p_y`` rounds to 1 and the true class's term
    ``p_y - 1`` is lost while the wrong classes' terms survive, which tilts the
    direction. Writing ``p_j = (1 - p_y) q_j`` for the wrong classes, with ``q`` the
    softmax of the wrong classes' logits alone, gives ``p - e_y = (1 - p_y) (q - e_y)``:
    ``q - e_y`` has the same direction, per example, and its entries are of order one.
    """
    true = F.one_hot(y, logits.shape[1]).to(torch.bool)
    q = torch.softmax(logits.detach().masked_fill(true, float("-inf")), dim=1)
    return q - true.to(q.dtype)


def _input_gradient_sign(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Sign of the cross-entropy's gradient with respect to each input.

    Each example's input gradient is its ``d loss / d logits`` pulled back through the
    model; a positive factor per example does not change its sign, so
    :func:`_cross_entropy_direction` gives the sign of the cross-entropy's gradient
    exactly, also where float32's softmax saturates. This needs the examples not to
    interact in the forward pass (true in eval mode for every model of this book: batch
    norm uses its running statistics).
    """
    x = X.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (grad,) = torch.autograd.grad(
            logits, x, grad_outputs=_cross_entropy_direction(logits, y)
        )
    return grad.sign()


# ------------------------------------------------------------------------ perturbations
def gaussian_noise(
    X: torch.Tensor, norm, sigma: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``X`` plus Gaussian noise of standard deviation ``sigma`` on the [0, 1] pixel
    scale, clipped.

    In normalised units the noise has standard deviation ``sigma / std``. The noisy
    pixels are clipped to [0, 1], so the effective perturbation is slightly smaller than
    ``sigma`` near black and white. ``generator`` (on X's device, or the CPU) makes the
    draw reproducible.
    """
    sigma = _check_size(
        sigma, "sigma", "standard deviation of the noise in pixel units"
    )
    _, std = _mean_std(norm)
    lo, hi = pixel_bounds(norm, X)
    if generator is not None and generator.device != X.device:
        z = torch.randn(
            X.shape, generator=generator, device=generator.device, dtype=X.dtype
        ).to(X.device)
    else:
        z = torch.randn(X.shape, generator=generator, device=X.device, dtype=X.dtype)
    return torch.clamp(X + (sigma / std) * z, lo, hi)


def fgsm(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, norm, eps: float
) -> torch.Tensor:
    """Fast gradient sign method: ``clip(X + (eps / std) * sign(grad_X loss))`` in
    normalised units.

    ``eps`` is the L-infinity size of the perturbation on the [0, 1] pixel scale. With
    ``eps = 0`` the step is zero and a clean input (inside the valid range) comes back
    bit-identical.
    """
    eps = _check_size(eps, "eps", "L-infinity size of the perturbation in pixel units")
    _, std = _mean_std(norm)
    lo, hi = pixel_bounds(norm, X)
    with eval_mode(model):
        direction = _input_gradient_sign(model, X, y)
    return torch.clamp(X.detach() + (eps / std) * direction, lo, hi)


def pgd(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    norm,
    eps: float,
    *,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball of radius ``eps`` (pixel
    scale).

    Parameters
    ----------
    eps : radius of the ball on the [0, 1] pixel scale.
    steps : number of signed-gradient steps (>= 1).
    step_size : size of each step on the pixel scale (default ``2.5 * eps / steps``, so
        that the steps can cross the ball and come back).
    random_start : start from a uniform random point of the ball (clipped to the valid
        range) instead of the clean input.
    generator : ``torch.Generator`` for the random start.

    After every step the input is projected back onto the ball around the clean ``X``
    and onto the valid pixel range. Returns the last iterate (normalised units).
    """
    eps = _check_size(
        eps, "eps", "L-infinity radius of the perturbation in pixel units"
    )
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ParameterError(f"steps={steps!r} must be a positive integer, e.g. 20")
    if step_size is None:
        step_size = 2.5 * eps / steps
    else:
        step_size = _check_size(
            step_size, "step_size", "size of one PGD step in pixel units"
        )
    _, std = _mean_std(norm)
    lo, hi = pixel_bounds(norm, X)
    X0 = X.detach()
    radius, alpha = eps / std, step_size / std
    x = X0.clone()
    if random_start:
        if generator is not None and generator.device != X.device:
            u = torch.rand(
                X.shape, generator=generator, device=generator.device, dtype=X.dtype
            ).to(X.device)
        else:
            u = torch.rand(X.shape, generator=generator, device=X.device, dtype=X.dtype)
        x = torch.clamp(X0 + (2 * u - 1) * radius, lo, hi)
    with eval_mode(model):
        for _ in range(int(steps)):
            x = x + alpha * _input_gradient_sign(model, x, y)
            x = torch.max(torch.min(x, X0 + radius), X0 - radius)
            x = torch.clamp(x, lo, hi)
    return x.detach()


#: The attacks by name, for :func:`helpers.metrics.accuracy_under_attack`.
ATTACKS: dict[str, Callable] = {
    "none": lambda model, X, y, norm: X,
    "gaussian": lambda model, X, y, norm, **kw: gaussian_noise(X, norm, **kw),
    "fgsm": fgsm,
    "pgd": pgd,
}


# -------------------------------------------------------------------------- pixel noise
def add_pixel_noise(
    x: torch.Tensor,
    level: float,
    generator: torch.Generator | None = None,
    *,
    where: str = "unit",
    value: float = WHITE_PIXEL,
) -> torch.Tensor:
    """Set a random fraction ``level`` of every image's pixels to ``value``; returns a
    new tensor.

    Exactly ``int(level * D)`` pixels per image are set (D = pixels per image, 784 for
    MNIST), chosen uniformly without replacement, independently per image, from
    ``generator`` (or torch's global RNG): the same generator state gives the same
    noise. A pixel that already had ``value`` stays unchanged, so on real digits "set"
    can exceed "changed" by such rare coincidences.

    Parameters
    ----------
    x : images (N, ...) with D values per image after the batch dimension, e.g. (N, 784)
        or (N, 1, 28, 28).
    level : the fraction of pixels set, in [0, 1] (the paper uses 0, 0.05, ..., 0.5).
    generator : a ``torch.Generator`` (on the CPU or x's device).
    where : the scale of ``x``:

        - ``"unit"`` (the paper): pixels on the [0, 1] scale, *before* normalisation;
          ``value`` (default :data:`WHITE_PIXEL` = 0.1307 + 2 * 0.3081 = 0.7469, a
          bright grey) is written as a pixel value and the result stays in [0, 1]. ``x``
          outside [0, 1] stops with an error.
        - ``"normalized"`` (the source): ``x`` is already normalised,
          ``(pixel - mean) / std``, and the same number ``value`` is written into it as
          is. With MNIST's normalisation the default 0.7469 then stands for the pixel
          0.1307 + 0.7469 * 0.3081 = 0.36, a dimmer grey than the paper's (whose noise
          is 2.0 after normalisation). To apply the paper's noise to normalised data,
          pass ``value=(WHITE_PIXEL - mean) / std`` (what
          :func:`helpers.metrics.noise_score` does).
    value : the value written, on the scale of ``x``.
    """
    if not _is_real(level) or not 0 <= level <= 1:
        raise ValueError(
            f"level={level!r} must be a fraction of the pixels in [0, 1] (e.g. 0.1 "
            "sets 10% of them)"
        )
    if where not in ("unit", "normalized"):
        raise ValueError(
            f"where={where!r} is not known; use 'unit' (pixels in [0, 1], the paper) "
            "or "
            f"'normalized' (already normalised inputs, the source)"
        )
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(
            "x must be a batch of images (N, ...) with N >= 1; got shape "
            f"{tuple(x.shape)}"
        )
    if where == "unit":
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"where='unit' expects pixels in [0, 1], but x spans [{lo:.3g}, "
                f"{hi:.3g}]: it looks "
                "normalised. Pass where='normalized', or map it back with "
                "data.to_unit(x)"
            )
    N = x.shape[0]
    flat = x.reshape(N, -1).clone()
    n_noisy = int(level * flat.shape[1])
    if n_noisy:
        device = generator.device if generator is not None else x.device
        idx = (
            torch.rand(N, flat.shape[1], generator=generator, device=device)
            .topk(n_noisy, dim=1, sorted=False)
            .indices
        )
        flat.scatter_(1, idx.to(x.device), value)
    return flat.reshape(x.shape)
