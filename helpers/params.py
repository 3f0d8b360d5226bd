"""Notebook parameters: profiles, validation and device choice.

Every chapter has a papermill ``parameters`` cell whose defaults are the paper's
settings, then resolves them in the next cell::

    P = resolve_params(
        profile,
        dict(epochs=epochs, batch_size=batch_size, lr=lr, n_train=n_train, device=device, seeds=seeds),
        smoke=dict(epochs=1, n_train=2000, n_test=500, seeds=[0]),
    )

``profile="paper"`` keeps the values as given (papermill overrides included);
``profile="smoke"`` replaces the values named in ``smoke`` so that the same notebook
runs end to end in seconds. Every value is checked against a rule; a nonsense value
stops with a :class:`ParameterError` naming the parameter and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from types import SimpleNamespace
from typing import Any, Callable

import torch

__all__ = ["ParameterError", "PROFILES", "RULES", "Params", "resolve_params", "resolve_device"]

PROFILES = ("paper", "smoke")


class ParameterError(ValueError):
    """A notebook parameter has a value that cannot work; the message names it."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def positive_int(v) -> str | None:
    return None if _is_int(v) and v >= 1 else "a positive integer"


def nonneg_int(v) -> str | None:
    return None if _is_int(v) and v >= 0 else "an integer >= 0"


def positive_real(v) -> str | None:
    return None if _is_real(v) and v > 0 else "a positive finite number"


def nonneg_real(v) -> str | None:
    return None if _is_real(v) and v >= 0 else "a finite number >= 0"


def fraction(v) -> str | None:
    return None if _is_real(v) and 0 <= v <= 1 else "a number in [0, 1]"


def optional(rule: Callable) -> Callable:
    def check(v):
        return None if v is None else (None if rule(v) is None else f"None or {rule(v)}")

    return check


def list_of(rule: Callable, nonempty: bool = True) -> Callable:
    def check(v):
        what = f"a {'non-empty ' if nonempty else ''}list of {rule(object()) or 'values'}"
        if isinstance(v, str):  # papermill's -p passes '[0, 1]' as text; -y parses YAML
            return f"{what}, not text (papermill's -p passes text: give lists with -y, e.g. -y \"seeds: [0, 1]\")"
        if not isinstance(v, (list, tuple)) or (nonempty and not v):
            return what
        return None if all(rule(x) is None for x in v) else what

    return check


def one_of(*allowed) -> Callable:
    return lambda v: None if v in allowed else f"one of {list(allowed)}"


def device_rule(v) -> str | None:
    try:
        resolve_device(v)
    except ParameterError as e:
        return str(e).split(": ", 1)[-1]
    return None


#: Rules for parameter names shared by the chapters; a chapter may pass more.
RULES: dict[str, Callable[[Any], str | None]] = {
    "epochs": positive_int,
    "batch_size": positive_int,
    "lr": positive_real,
    "momentum": fraction,
    "weight_decay": nonneg_real,
    "n_train": optional(positive_int),
    "n_test": optional(positive_int),
    "seed": nonneg_int,
    "seeds": list_of(nonneg_int),
    "device": device_rule,
    "n_tsne": positive_int,
    "noise_levels": list_of(fraction),
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when present, else MPS when present, else CPU; others are checked."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ParameterError(f"device={device!r} is not allowed: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise ParameterError(
            f"device={device!r} is not known: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r}: CUDA is not available here; use 'auto' or 'cpu'")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ParameterError(
            f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) here; use 'cuda:0' or 'auto'"
        )
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParameterError(f"device={device!r}: MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


class Params(SimpleNamespace):
    """Resolved parameters: attribute access, plus ``as_dict()`` for the results file."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, torch.device) else v) for k, v in vars(self).items()}

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def resolve_params(
    profile: str,
    values: dict[str, Any],
    *,
    smoke: dict[str, Any] | None = None,
    rules: dict[str, Callable[[Any], str | None]] | None = None,
) -> Params:
    """Apply the profile, validate every value, and resolve ``device``.

    ``rules`` adds or replaces checks for chapter-specific names: a rule returns None
    when the value is fine, else a short phrase saying what is allowed.
    """
    if profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is not known; allowed: {list(PROFILES)}")
    resolved = dict(values)
    if profile == "smoke":
        unknown = set(smoke or {}) - set(values)
        if unknown:
            raise ParameterError(f"smoke sets parameters the notebook does not have: {sorted(unknown)}")
        resolved.update(smoke or {})
    all_rules = {**RULES, **(rules or {})}
    problems = []
    for name, value in resolved.items():
        rule = all_rules.get(name)
        why = rule(value) if rule else None
        if why is not None:
            problems.append(f"{name}={value!r} is not allowed: it must be {why}")
    if problems:
        raise ParameterError("; ".join(problems))
    if "device" in resolved:
        resolved["device"] = resolve_device(resolved["device"])
    return Params(profile=profile, **resolved)
