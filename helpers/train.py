"""Seeding, timing, progress bars and the one training loop for PyTorch models."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
import time
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .data import batches

__all__ = [
    "seed_everything",
    "Timer",
    "progress",
    "TrainingDiverged",
    "check_finite",
    "evaluate",
    "train_epoch",
    "fit",
]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a CPU generator with that seed.

    On the CPU the same seed and the same profile give bit-identical results.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Timer:
    """Wall-clock timer: ``with Timer() as t: ...`` then ``t.seconds``.

    On CUDA it synchronises before reading the clock so that queued kernels count.
    """

    def __init__(self, device: torch.device | str | None = None):
        self.cuda = device is not None and torch.device(device).type == "cuda"
        self.seconds = float("nan")

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __enter__(self):
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self._start
        return False


def _widgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def progress(iterable: Iterable | None = None, **kwargs):
    """A ``tqdm.auto`` progress bar.

    In a notebook with ipywidgets it is a widget; otherwise (terminal, papermill, nbval,
    or ``BOOK_PLAIN_PROGRESS=1``) it is a plain-text bar that updates at most every few
    seconds, so that executed notebooks keep short, readable outputs. In plain text, bars
    that would vanish when done (``leave=False``, e.g. the batches inside an epoch) are not
    shown at all: nested text bars fill a notebook's output with cursor-movement codes.

    With ``BOOK_PROGRESS=none`` no bar is shown at all: the paper-profile runs whose outputs the
    book commits (``tools/reproduce.py``) print summary lines, not progress.
    """
    if os.environ.get("BOOK_PROGRESS") == "none":
        from tqdm.std import tqdm

        return tqdm(iterable, disable=True, **{k: v for k, v in kwargs.items() if k != "disable"})
    if os.environ.get("BOOK_PLAIN_PROGRESS") or not _widgets_available():
        from tqdm.std import tqdm

        if kwargs.get("leave") is False:
            kwargs["disable"] = True

        kwargs.setdefault("mininterval", 5.0)
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs.setdefault("ncols", 100)
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message suggests what to change."""


def _diverged(value: float, where: str, lr) -> TrainingDiverged:
    hint = f" (lr={lr})" if lr is not None else ""
    return TrainingDiverged(
        f"The loss became {value} at {where}: training diverged. "
        f"Lower the learning rate{hint}, or check the inputs for NaN/inf and their normalisation."
    )


def check_finite(loss: float | torch.Tensor, *, epoch: int | None = None, step: int | None = None, lr=None):
    """Raise :class:`TrainingDiverged` when ``loss`` is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if math.isfinite(value):
        return
    where = " ".join(s for s in (f"epoch {epoch}" if epoch is not None else "", f"step {step}" if step is not None else "") if s)
    raise _diverged(value, where or "this step", lr)


#: :func:`train_epoch` checks its running loss for NaN/inf after every this many steps (and at the
#: end of the epoch) instead of after every step: reading a value on the host waits for the device.
NAN_CHECK_EVERY = 50


def _check_window(total: torch.Tensor, first: int, last: int, epoch: int | None, lr) -> None:
    """Raise :class:`TrainingDiverged` if the running loss sum ``total`` is not finite; the steps
    ``first..last`` (counted from 0) are those since the last check."""
    value = float(total)
    if not math.isfinite(value):
        steps = f"step {last}" if first == last else f"a step from {first} to {last}"
        raise _diverged(value, steps + (f" of epoch {epoch}" if epoch is not None else " of this epoch"), lr)


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 2000,
             loss_fn: Callable = F.cross_entropy) -> tuple[float, float]:
    """Return (mean loss, accuracy in [0, 1]) of ``model`` on (X, y), in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for xb, yb in batches(X, y, batch_size, shuffle=False):
        out = model(xb)
        total_loss += float(loss_fn(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    return total_loss / len(X), correct / len(X)


def train_epoch(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    *,
    loss_fn: Callable = F.cross_entropy,
    step: Callable | None = None,
    generator: torch.Generator | None = None,
    epoch: int | None = None,
    bar: bool = True,
) -> tuple[float, float]:
    """One pass over (X, y) in shuffled mini-batches; return (mean loss, accuracy).

    ``step(model, xb, yb) -> (loss, output)`` replaces the default backprop step
    (zero grad, forward, ``loss_fn``, backward) for learning rules that compute
    their own gradients; the optimiser step and the NaN check stay here.

    The loss and accuracy are summed on the device and read once at the end; a NaN or
    infinite loss raises :class:`TrainingDiverged` at the next check, every
    :data:`NAN_CHECK_EVERY` steps and at the end of the epoch, naming the steps since the
    last check.
    """
    model.train()
    total_loss = correct = None  # running sums on the loss's device: no host synchronisation per step
    seen, checked = 0, 0  # examples so far; steps before ``checked`` have been checked for NaN/inf
    n_batches = math.ceil(len(X) / batch_size)
    it = batches(X, y, batch_size, generator=generator)
    if bar:
        it = progress(it, total=n_batches, desc=f"epoch {epoch}" if epoch is not None else "train", leave=False)
    lr = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
    i = -1
    for i, (xb, yb) in enumerate(it):
        optimizer.zero_grad(set_to_none=True)
        try:
            if step is None:
                out = model(xb)
                loss = loss_fn(out, yb)
                loss.backward()
            else:
                loss, out = step(model, xb, yb)
        except Exception:
            if total_loss is not None and i > checked:  # weights broken by a loss not yet checked?
                _check_window(total_loss, checked, i - 1, epoch, lr)
            raise
        if total_loss is None:
            # float64 sums in the order of the steps: the same numbers as summing float(loss) in Python
            total_loss = torch.zeros((), dtype=_sum_dtype(loss.device), device=loss.device)
            correct = torch.zeros((), dtype=torch.int64, device=loss.device)
        total_loss += loss.detach().to(total_loss.dtype) * len(xb)
        correct += (out.argmax(1) == yb).sum()
        seen += len(xb)
        if (i + 1) % NAN_CHECK_EVERY == 0:
            _check_window(total_loss, checked, i, epoch, lr)
            checked = i + 1
        optimizer.step()
    if total_loss is None:
        raise ValueError("X is empty: an epoch needs at least one example")
    if checked <= i:
        _check_window(total_loss, checked, i, epoch, lr)
    return float(total_loss) / seen, int(correct) / seen


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def fit(
    model: torch.nn.Module,
    data,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    *,
    loss_fn: Callable = F.cross_entropy,
    step: Callable | None = None,
    generator: torch.Generator | None = None,
    scheduler=None,
    on_epoch_end: Callable | None = None,
    desc: str = "training",
) -> dict[str, list[float]]:
    """Train for ``epochs`` on ``data`` (a :class:`helpers.data.Data`) and evaluate after each.

    Returns the history ``{"train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"}``,
    one entry per epoch (accuracies in [0, 1]). ``on_epoch_end(epoch, history)`` runs after each.
    """
    history = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds")}
    bar = progress(range(1, epochs + 1), desc=desc)
    for epoch in bar:
        with Timer(data.device) as t:
            tr_loss, tr_acc = train_epoch(
                model, data.X_train, data.y_train, optimizer, batch_size,
                loss_fn=loss_fn, step=step, generator=generator, epoch=epoch,
            )
        if scheduler is not None:
            scheduler.step()
        te_loss, te_acc = evaluate(model, data.X_test, data.y_test, loss_fn=loss_fn)
        for k, v in zip(history, (tr_loss, tr_acc, te_loss, te_acc, t.seconds)):
            history[k].append(v)
        bar.set_postfix(train_acc=f"{tr_acc:.4f}", test_acc=f"{te_acc:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history
