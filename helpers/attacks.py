"""Perturbed inputs for models that take *normalised* inputs: Gaussian noise, FGSM and PGD.

Sizes are given on the **[0, 1] pixel scale** (``eps = 0.1`` is a tenth of the pixel range),
whatever normalisation the model expects. The book's data are normalised as
``x = (pixel - mean) / std`` (:class:`helpers.Data`), so a pixel-scale size ``eps`` is
``eps / std`` in normalised units, and the valid range ``pixel in [0, 1]`` is
``x in [(0 - mean) / std, (1 - mean) / std]``. Every function here returns normalised inputs
inside that range (perturbed inputs are clipped to it)::

    from helpers import attacks

    net1 = net.truncated(1)                                         # any model of normalised inputs
    attacks.accuracy_under_attack(net1, data.X_test, data.y_test, "fgsm", data, eps=0.1)
    attacks.accuracy_under_attack(net1, data.X_test, data.y_test, "pgd", data, eps=0.1, steps=20)
    attacks.accuracy_under_attack(net1, data.X_test, data.y_test, "gaussian", data, sigma=0.3)

``norm`` is a :class:`helpers.Data` (its ``mean`` and ``std`` are used) or a ``(mean, std)`` pair.

- :func:`gaussian_noise`: ``pixel + sigma * z``, z standard normal, clipped to [0, 1].
- :func:`fgsm` (fast gradient sign method, Goodfellow et al. 2015): one step of size ``eps`` along
  the sign of the loss gradient with respect to the input; the sign is the same in pixel and
  normalised units because ``std > 0``.
- :func:`pgd` (projected gradient descent, Madry et al. 2018): ``steps`` signed-gradient steps of
  ``step_size``, each followed by projection onto the L-infinity ball of radius ``eps`` around
  the clean input and onto the valid pixel range; optionally from a uniform random start.

Gradient attacks run the model in eval mode (and put its mode back), differentiate with
respect to the input only (no parameter ``.grad`` is touched), and use the cross-entropy, whose
gradient direction is computed so that it does not underflow for very confident nets (see
:func:`_cross_entropy_direction`).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .params import ParameterError

__all__ = ["pixel_bounds", "gaussian_noise", "fgsm", "pgd", "accuracy_under_attack", "ATTACKS"]


def _mean_std(norm) -> tuple[float, float]:
    if isinstance(norm, (tuple, list)) and len(norm) == 2:
        mean, std = norm
    elif isinstance(getattr(norm, "mean", None), numbers.Real) and isinstance(getattr(norm, "std", None), numbers.Real):
        mean, std = norm.mean, norm.std  # a helpers.Data (or anything with numeric mean / std)
    else:
        raise TypeError(
            f"norm={norm!r} must be a helpers.Data (its mean and std are used) or a (mean, std) pair "
            "on the [0, 1] pixel scale, e.g. (0.5, 0.5)"
        )
    mean, std = float(mean), float(std)
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(f"normalisation (mean={mean}, std={std}) must be finite with std > 0")
    return mean, std


def pixel_bounds(norm, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised values of pixels 0 and 1: ``((0 - mean) / std, (1 - mean) / std)``.

    Computed in ``like``'s dtype and on its device with the same arithmetic as
    :func:`helpers.load_mnist`, so that clean black and white pixels lie exactly on the bounds
    (clipping a clean input leaves it bit-identical).
    """
    mean, std = _mean_std(norm)
    ends = torch.tensor([0.0, 1.0], dtype=like.dtype, device=like.device)
    lo, hi = (ends - mean) / std
    return lo, hi


def _check_size(value, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ParameterError(f"{name}={value!r} must be a finite number >= 0 ({what})")
    if value > 1:
        raise ParameterError(
            f"{name}={value!r} is larger than the whole pixel range: {name} is given on the [0, 1] pixel "
            f"scale ({what}), e.g. 0.1. A value in 0..255 units must be divided by 255; a value in "
            "normalised units must be multiplied by the normalisation's std"
        )
    return float(value)


def _cross_entropy_direction(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A positive per-example multiple of d(cross-entropy)/d(logits) that cannot underflow.

    The gradient of the cross-entropy with respect to the logits is ``p - e_y`` with ``p`` the
    softmax. For a confident net (largest logit ~100 above the others) every wrong-class ``p_j``
    is below float32's smallest number, ``p - e_y`` is exactly zero, and so is the input
    gradient: a sign-gradient attack then does not move the input at all (a numerical gradient
    masking, not robustness). Earlier, from a gap of ~17 between the top two logits, ``p_y``
    rounds to 1 and the true class's term ``p_y - 1`` is lost while the wrong classes' terms
    survive, which tilts the direction. Writing ``p_j = (1 - p_y) q_j`` for the wrong classes, with ``q``
    the softmax of the wrong classes' logits alone, gives ``p - e_y = (1 - p_y) (q - e_y)``:
    ``q - e_y`` has the same direction, per example, and its entries are of order one.
    """
    true = F.one_hot(y, logits.shape[1]).to(torch.bool)
    q = torch.softmax(logits.detach().masked_fill(true, float("-inf")), dim=1)
    return q - true.to(q.dtype)


def _input_gradient_sign(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sign of the cross-entropy's gradient with respect to each input.

    Each example's input gradient is its ``d loss / d logits`` pulled back through the model; a
    positive factor per example does not change its sign, so :func:`_cross_entropy_direction`
    gives the sign of the cross-entropy's gradient exactly, also where float32's softmax
    saturates. This needs the examples not to interact in the forward pass (true in eval mode
    for every model of this book: batch norm uses its running statistics).
    """
    x = X.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (grad,) = torch.autograd.grad(logits, x, grad_outputs=_cross_entropy_direction(logits, y))
    return grad.sign()


def _eval_mode(model: nn.Module):
    class _Ctx:
        def __enter__(self):
            self.was = model.training
            model.eval()

        def __exit__(self, *exc):
            model.train(self.was)
            return False

    return _Ctx()


# --------------------------------------------------------------------------- perturbations
def gaussian_noise(X: torch.Tensor, norm, sigma: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``X`` plus Gaussian noise of standard deviation ``sigma`` on the [0, 1] pixel scale, clipped.

    In normalised units the noise has standard deviation ``sigma / std``. The noisy pixels are
    clipped to [0, 1], so the effective perturbation is slightly smaller than ``sigma`` near
    black and white. ``generator`` (on X's device, or the CPU) makes the draw reproducible.
    """
    sigma = _check_size(sigma, "sigma", "standard deviation of the noise in pixel units")
    _, std = _mean_std(norm)
    lo, hi = pixel_bounds(norm, X)
    if generator is not None and generator.device != X.device:
        z = torch.randn(X.shape, generator=generator, device=generator.device, dtype=X.dtype).to(X.device)
    else:
        z = torch.randn(X.shape, generator=generator, device=X.device, dtype=X.dtype)
    return torch.clamp(X + (sigma / std) * z, lo, hi)


def fgsm(model: nn.Module, X: torch.Tensor, y: torch.Tensor, norm, eps: float) -> torch.Tensor:
    """Fast gradient sign method: ``clip(X + (eps / std) * sign(grad_X loss))`` in normalised units.

    ``eps`` is the L-infinity size of the perturbation on the [0, 1] pixel scale. With ``eps = 0``
    the step is zero and a clean input (inside the valid range) comes back bit-identical.
    """
    eps = _check_size(eps, "eps", "L-infinity size of the perturbation in pixel units")
    _, std = _mean_std(norm)
    lo, hi = pixel_bounds(norm, X)
    with _eval_mode(model):
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
    """Projected gradient descent in the L-infinity ball of radius ``eps`` (pixel scale).

    Parameters
    ----------
    eps : radius of the ball on the [0, 1] pixel scale.
    steps : number of signed-gradient steps (>= 1).
    step_size : size of each step on the pixel scale (default ``2.5 * eps / steps``, so that the
        steps can cross the ball and come back).
    random_start : start from a uniform random point of the ball (clipped to the valid range)
        instead of the clean input.
    generator : ``torch.Generator`` for the random start.

    After every step the input is projected back onto the ball around the clean ``X`` and onto
    the valid pixel range. Returns the last iterate (normalised units).
    """
    eps = _check_size(eps, "eps", "L-infinity radius of the perturbation in pixel units")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ParameterError(f"steps={steps!r} must be a positive integer, e.g. 20")
    if step_size is None:
        step_size = 2.5 * eps / steps
    else:
        step_size = _check_size(step_size, "step_size", "size of one PGD step in pixel units")
    _, std = _mean_std(norm)
    lo, hi = pixel_bounds(norm, X)
    X0 = X.detach()
    radius, alpha = eps / std, step_size / std
    x = X0.clone()
    if random_start:
        if generator is not None and generator.device != X.device:
            u = torch.rand(X.shape, generator=generator, device=generator.device, dtype=X.dtype).to(X.device)
        else:
            u = torch.rand(X.shape, generator=generator, device=X.device, dtype=X.dtype)
        x = torch.clamp(X0 + (2 * u - 1) * radius, lo, hi)
    with _eval_mode(model):
        for _ in range(int(steps)):
            x = x + alpha * _input_gradient_sign(model, x, y)
            x = torch.max(torch.min(x, X0 + radius), X0 - radius)
            x = torch.clamp(x, lo, hi)
    return x.detach()


#: The attacks by name, for :func:`accuracy_under_attack`.
ATTACKS: dict[str, Callable] = {
    "none": lambda model, X, y, norm: X,
    "gaussian": lambda model, X, y, norm, **kw: gaussian_noise(X, norm, **kw),
    "fgsm": fgsm,
    "pgd": pgd,
}


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
    attack : ``"none"``, ``"gaussian"`` (needs ``sigma=``), ``"fgsm"`` (needs ``eps=``), ``"pgd"``
        (``eps=``, optional ``steps=``, ``step_size=``, ``random_start=``, ``generator=``), or a
        callable ``f(model, X, y, norm, **kwargs) -> X_perturbed``.
    norm : :class:`helpers.Data` or ``(mean, std)`` of the inputs' normalisation.
    batch_size : inputs perturbed and scored at a time (memory only; a random attack draws its
        noise batch by batch, so results depend on it through the random stream).
    kwargs : passed to the attack (sizes on the [0, 1] pixel scale).

    The model is evaluated in eval mode and put back in its mode afterwards.
    """
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise ParameterError(f"attack={attack!r} is not known; allowed: {sorted(ATTACKS)} or a callable")
        fn = ATTACKS[attack]
    elif callable(attack):
        fn = attack
    else:
        raise TypeError(f"attack must be a name ({sorted(ATTACKS)}) or a callable, not {type(attack).__name__}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("X is empty: accuracy of zero examples is undefined")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    _mean_std(norm)
    correct = 0
    with _eval_mode(model):
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            xa = fn(model, xb, yb, norm, **kwargs)
            with torch.no_grad():
                correct += int((model(xa).argmax(1) == yb).sum())
    return correct / len(X)
