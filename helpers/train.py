"""Seeding, timing, progress bars, the eval-mode context, and the one training loop.

Every learning rule plugs into :func:`fit` the same way, as a :class:`Rule`::

    class MyRule(helpers.Rule):
        def step(self, model, xb, yb):  # gradients in .grad; returns (loss, output)
            ...
    helpers.fit(model, data, optimizer, epochs, batch_size, step=MyRule())

Backprop is ``Rule()`` itself (the default); DFA and FA (:mod:`helpers.dfa`), local
errors (:mod:`helpers.local_errors`) and the sparse net (:mod:`helpers.sparse`) are
subclasses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import random
import sys
import time
from typing import Callable, Iterable, Iterator

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
    "eval_mode",
    "count_correct",
    "evaluate",
    "Rule",
    "train_epoch",
    "fit",
    "fit_epochs",
    "as_rule",
]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a CPU generator with that
    seed.

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
    seconds, so that executed notebooks keep short, readable outputs. In plain text,
    bars that would vanish when done (``leave=False``, e.g. the batches inside an epoch)
    are not shown at all: nested text bars fill a notebook's output with cursor-movement
    codes.

    With ``BOOK_PROGRESS=none`` no bar is shown at all: the paper-profile runs whose
    outputs the book commits (``tools/reproduce.py``) print summary lines, not progress.
    """
    if os.environ.get("BOOK_PROGRESS") == "none":
        from tqdm.std import tqdm

        return tqdm(
            iterable,
            disable=True,
            **{k: v for k, v in kwargs.items() if k != "disable"},
        )
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
        f"Lower the learning rate{hint}, or check the inputs for NaN/inf and their "
        "normalisation."
    )


def check_finite(
    loss: float | torch.Tensor,
    *,
    epoch: int | None = None,
    step: int | None = None,
    lr=None,
):
    """Raise :class:`TrainingDiverged` when ``loss`` is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if math.isfinite(value):
        return
    where = " ".join(
        s
        for s in (
            f"epoch {epoch}" if epoch is not None else "",
            f"step {step}" if step is not None else "",
        )
        if s
    )
    raise _diverged(value, where or "this step", lr)


#: :func:`train_epoch` checks its running loss for NaN/inf after every this many steps
#: (and at the end of the epoch) instead of after every step: reading a value on the
#: host waits for the device.
NAN_CHECK_EVERY = 50


def _check_window(
    total: torch.Tensor, first: int, last: int, epoch: int | None, lr
) -> None:
    """Raise :class:`TrainingDiverged` if the running loss sum ``total`` is not finite;
    the steps ``first..last`` (counted from 0) are those since the last check."""
    value = float(total)
    if not math.isfinite(value):
        steps = f"step {last}" if first == last else f"a step from {first} to {last}"
        raise _diverged(
            value,
            steps + (f" of epoch {epoch}" if epoch is not None else " of this epoch"),
            lr,
        )


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``with eval_mode(model): ...`` runs the block in eval mode, then puts back the
    mode the model had (training or not), also when the block raises. Yields the
    model."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_correct(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
    *,
    outputs: Callable | None = None,
    perturb: Callable | None = None,
    loss_fn: Callable | None = None,
) -> tuple[list[int], float]:
    """The one batched scoring loop: correct predictions of ``model`` on (X, y), in eval
    mode.

    Batches of ``batch_size`` rows in order. ``outputs(model, xb)`` gives a list of
    class scores to score (default ``[model(xb)]``; e.g. one per layer);
    ``perturb(model, xb, yb)`` replaces each batch before scoring (an attack; it runs
    with gradients enabled), the scoring itself runs without gradients. Returns
    ``(correct per output, loss sum)``, the loss sum being
    ``loss_fn(out, yb, reduction="sum")`` of the first output summed over the batches
    (0.0 without ``loss_fn``). The model's mode is restored afterwards.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("X is empty: accuracy of zero examples is undefined")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    correct: list[int] | None = None
    total_loss = 0.0
    with eval_mode(model):
        for xb, yb in batches(X, y, batch_size, shuffle=False):
            if perturb is not None:
                xb = perturb(model, xb, yb)
            with torch.no_grad():
                outs = [model(xb)] if outputs is None else list(outputs(model, xb))
                if loss_fn is not None:
                    total_loss += float(loss_fn(outs[0], yb, reduction="sum"))
                hits = [int((out.argmax(1) == yb).sum()) for out in outs]
            correct = (
                hits if correct is None else [a + b for a, b in zip(correct, hits)]
            )
    return correct, total_loss


def evaluate(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 2000,
    loss_fn: Callable = F.cross_entropy,
) -> tuple[float, float]:
    """Return (mean loss, accuracy in [0, 1]) of ``model`` on (X, y), in eval mode."""
    (correct,), total_loss = count_correct(model, X, y, batch_size, loss_fn=loss_fn)
    return total_loss / len(X), correct / len(X)


class Rule:
    """A learning rule for :func:`fit`: how one mini-batch becomes gradients. This base
    class is end-to-end backprop of ``loss_fn`` (default: the cross-entropy).

    A rule is a subclass that overrides what it changes:

    - ``step(model, xb, yb) -> (loss, output)``: put the rule's gradients in the
      ``.grad`` of the parameters (the loop zeroes them before and steps the optimiser
      after) and return the mini-batch's loss and the model's output (class scores);
    - ``on_epoch_end(model, epoch, history)``: runs after each epoch's evaluation (e.g.
      a schedule of the rule's own state); nothing by default;
    - ``fit(...)``: the epochs themselves, for a rule that trains in stages (greedy
      layer-wise training); by default :func:`fit_epochs`.

    A rule is also callable as ``rule(model, xb, yb)``, the same as ``rule.step``.
    """

    name = "backprop"

    def __init__(self, loss_fn: Callable = F.cross_entropy):
        self.loss_fn = loss_fn

    def step(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor):
        out = model(xb)
        loss = self.loss_fn(out, yb)
        loss.backward()
        return loss, out

    def on_epoch_end(self, model: torch.nn.Module, epoch: int, history: dict) -> None:
        pass

    def fit(self, model, data, optimizer, epochs, batch_size, **kwargs) -> dict:
        return fit_epochs(
            model, data, optimizer, epochs, batch_size, rule=self, **kwargs
        )

    def __call__(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor):
        return self.step(model, xb, yb)


class _StepFunction(Rule):
    """A plain ``step(model, xb, yb) -> (loss, output)`` function as a :class:`Rule`."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = getattr(fn, "__name__", "step")

    def step(self, model, xb, yb):
        return self.fn(model, xb, yb)


def as_rule(step: Rule | Callable | None, loss_fn: Callable = F.cross_entropy) -> Rule:
    """``step`` as a :class:`Rule`: a rule as is, a function as the rule's step, None as
    backprop of ``loss_fn``."""
    if step is None:
        return Rule(loss_fn)
    if isinstance(step, Rule):
        return step
    if callable(step):
        return _StepFunction(step)
    raise TypeError(
        f"step={step!r} must be a helpers.Rule or a function "
        "step(model, xb, yb) -> (loss, output)"
    )


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

    ``step`` is the learning rule: a :class:`Rule` or a function
    ``step(model, xb, yb) -> (loss, output)`` (default: backprop of ``loss_fn``); it
    computes the gradients, the optimiser step and the NaN check stay here.

    The loss and accuracy are summed on the device and read once at the end; a NaN or
    infinite loss raises :class:`TrainingDiverged` at the next check, every
    :data:`NAN_CHECK_EVERY` steps and at the end of the epoch, naming the steps since
    the last check.
    """
    rule = as_rule(step, loss_fn)
    model.train()
    # running sums on the loss's device: no host synchronisation per step
    total_loss = correct = None
    # examples so far; steps before ``checked`` have been checked for NaN/inf
    seen, checked = 0, 0
    n_batches = math.ceil(len(X) / batch_size)
    it = batches(X, y, batch_size, generator=generator)
    if bar:
        it = progress(
            it,
            total=n_batches,
            desc=f"epoch {epoch}" if epoch is not None else "train",
            leave=False,
        )
    lr = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
    i = -1
    for i, (xb, yb) in enumerate(it):
        optimizer.zero_grad(set_to_none=True)
        try:
            loss, out = rule.step(model, xb, yb)
        except Exception:
            # weights broken by a loss not yet checked?
            if total_loss is not None and i > checked:
                _check_window(total_loss, checked, i - 1, epoch, lr)
            raise
        if total_loss is None:
            # float64 sums in the order of the steps: the same numbers as summing
            # float(loss) in Python
            total_loss = torch.zeros(
                (), dtype=_sum_dtype(loss.device), device=loss.device
            )
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
    # MPS has no float64
    return torch.float32 if device.type == "mps" else torch.float64


def fit(
    model: torch.nn.Module,
    data,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    *,
    loss_fn: Callable = F.cross_entropy,
    step: Rule | Callable | None = None,
    generator: torch.Generator | None = None,
    scheduler=None,
    on_epoch_end: Callable | None = None,
    desc: str = "training",
) -> dict[str, list[float]]:
    """Train for ``epochs`` on ``data`` (a :class:`helpers.data.Data`) and evaluate
    after each.

    ``step`` is the learning rule (a :class:`Rule`, or a function
    ``step(model, xb, yb) -> (loss, output)``; default: backprop of ``loss_fn``);
    ``loss_fn`` is also the loss the evaluation reports. Returns the history
    ``{"train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"}``, one entry
    per epoch (accuracies in [0, 1]). ``on_epoch_end(epoch, history)`` runs after each
    epoch, after the rule's own.
    """
    return as_rule(step, loss_fn).fit(
        model,
        data,
        optimizer,
        epochs,
        batch_size,
        loss_fn=loss_fn,
        generator=generator,
        scheduler=scheduler,
        on_epoch_end=on_epoch_end,
        desc=desc,
    )


def fit_epochs(
    model: torch.nn.Module,
    data,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    *,
    rule: Rule,
    loss_fn: Callable = F.cross_entropy,
    generator: torch.Generator | None = None,
    scheduler=None,
    on_epoch_end: Callable | None = None,
    desc: str = "training",
) -> dict[str, list[float]]:
    """The epochs of :func:`fit` for one ``rule`` (what :meth:`Rule.fit` does by
    default).
    """
    history = {
        k: []
        for k in ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds")
    }
    bar = progress(range(1, epochs + 1), desc=desc)
    for epoch in bar:
        with Timer(data.device) as t:
            tr_loss, tr_acc = train_epoch(
                model,
                data.X_train,
                data.y_train,
                optimizer,
                batch_size,
                loss_fn=loss_fn,
                step=rule,
                generator=generator,
                epoch=epoch,
            )
        if scheduler is not None:
            scheduler.step()
        te_loss, te_acc = evaluate(model, data.X_test, data.y_test, loss_fn=loss_fn)
        for k, v in zip(history, (tr_loss, tr_acc, te_loss, te_acc, t.seconds)):
            history[k].append(v)
        bar.set_postfix(train_acc=f"{tr_acc:.4f}", test_acc=f"{te_acc:.4f}")
        rule.on_epoch_end(model, epoch, history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history
