"""Nøkland's MNIST table at the protocol of his public code, as a grid of run records.

The paper's code (``anokland/dfa-torch``, read at commit 17dae73) trains MLPs of tanh
units with logit outputs and this protocol, which :func:`train_table_run` follows:

* pixels scaled to [0, 1] (``-normalization scale``: minus the training minimum, divided
  by the maximum: x / 255 for MNIST); the real test set; the training set reshuffled
  every epoch; mini-batches of 64, the last one of 32 kept (938 steps an epoch);
* the loss's gradient at the logits is ``sigmoid(a) - y`` (its ``BCECriterion.lua``),
  **summed** over the mini-batch, not averaged; DFA projects that same error ``e`` to
  every hidden layer;
* RMSprop (Torch7's ``optim.rmsprop``): ``m <- 0.99 m + 0.01 g^2``,
  ``x <- x - lr g / (sqrt(m) + 1e-8)``, learning rate 1e-4, no momentum, weight decay or
  learning-rate decay. ``m`` starts at 0 (``rms_init``): optim's code started it at 1
  from June to September 2016, and which version the paper's runs used cannot be told
  from the code;
* backprop starts from Torch's default ``nn.Linear`` init, weight and bias ~
  U(±1/sqrt(fan_in)); DFA from all weights and biases zero; FA zeroes every layer but
  the first, whose random init it keeps, and feeds back through a copy of the initial
  random weights of the layers above;
* DFA feedback ``B_l`` of shape (10, n_l), U(±1/sqrt(n_l)) with n_l the hidden layer's
  width, drawn once; hidden error ``delta_l = (e B_l) * (1 - h_l^2)``;
* at most 299 epochs (``while epoch ~= 300``); after each epoch the running mean of the
  online training error (the errors of each mini-batch before its update),
  ``0.75 mean + 0.25 error``, starting at 1, is compared with 0.01 % and training stops
  when it is at or below; the test error of every epoch, the stopping epoch's included,
  is logged. The code keeps no best epoch: its number is the last epoch's test error.

The trainer is written with explicit matrix products (no autograd), so that one step
costs little more than its matrix products (see ``benchmarks/bench_throughput.py``).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from . import runs
from .train import TrainingDiverged

__all__ = [
    "ARCHS",
    "TABLE",
    "train_table_run",
    "make_layers",
    "LeanRMSprop",
    "epoch_flops",
]

#: The rows of the paper's MNIST table that the chapter reruns: name -> hidden widths.
ARCHS = {"7x240": [240] * 7, "1x800": [800], "2x800": [800, 800]}
RULES = ("bp", "dfa", "fa")
#: The paper's test errors (%), Table 1 of Nøkland (2016), for backprop and DFA.
PAPER = {
    "7x240": {"bp": 2.16, "dfa": 2.32},
    "1x800": {"bp": 1.59, "dfa": 1.68},
    "2x800": {"bp": 1.60, "dfa": 1.74},
}


def make_layers(
    hidden: list[int],
    rule: str,
    generator: torch.Generator,
    n_in: int = 784,
    n_out: int = 10,
) -> tuple[nn.ModuleList, list[torch.Tensor]]:
    """The linear layers, initialised as the source's ``mlp.lua`` does for ``rule``, and
    the feedback matrices (DFA: one (10, n_l) per hidden layer; FA: one per layer above
    the first, shaped like its weight; backprop: none)."""
    sizes = [n_in, *hidden, n_out]
    layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
    with torch.no_grad():
        # Torch7's nn.Linear:reset(): U(±1/sqrt(fan_in)) for weight and bias
        for layer in layers:
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        feedback: list[torch.Tensor] = []
        if rule == "dfa":
            for width in hidden:
                bound = 1.0 / math.sqrt(width)
                feedback.append(
                    torch.empty(n_out, width).uniform_(
                        -bound, bound, generator=generator
                    )
                )
            for layer in layers:
                layer.weight.zero_()
                layer.bias.zero_()
        elif rule == "fa":
            feedback = [layer.weight.detach().clone() for layer in layers[1:]]
            for layer in layers[1:]:
                layer.weight.zero_()
                layer.bias.zero_()
        elif rule != "bp":
            raise ValueError(f"rule={rule!r} is not known; allowed: {RULES}")
    return layers, feedback


class LeanRMSprop:
    """Torch7's ``optim.rmsprop`` on a list of tensors, in place:
    ``m <- alpha m + (1 - alpha) g^2``, ``x <- x - lr g / (sqrt(m) + eps)``, ``m``
    starting at ``init``."""

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float,
        alpha: float = 0.99,
        eps: float = 1e-8,
        init: float = 0.0,
    ):
        self.params, self.lr, self.alpha, self.eps = params, lr, alpha, eps
        self.m = [torch.full_like(p, init) for p in params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        torch._foreach_mul_(self.m, self.alpha)
        torch._foreach_addcmul_(self.m, grads, grads, value=1 - self.alpha)
        denom = torch._foreach_sqrt(self.m)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, grads, denom, value=-self.lr)

    def state_dict(self) -> dict:
        return {f"m{i}": m for i, m in enumerate(self.m)}

    def load_state_dict(self, state: dict) -> None:
        for i, m in enumerate(self.m):
            m.copy_(state[f"m{i}"])


@torch.no_grad()
def _step(Ws, bs, feedback, rule, X, T, y):
    """One mini-batch: forward, the rule's errors, gradients (summed over the batch).
    Returns (gradients in the order W1, b1, W2, b2, ..., number of errors before the
    update, BCE sum)."""
    H = [X]
    for W, b in zip(Ws[:-1], bs[:-1]):
        H.append(torch.addmm(b, H[-1], W.t()).tanh_())
    a = torch.addmm(bs[-1], H[-1], Ws[-1].t())
    wrong = (a.argmax(1) != y).sum()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(a, T, reduction="sum")
    e = torch.sigmoid(a).sub_(T)
    grads = [None] * (2 * len(Ws))
    d = e
    for layer in range(len(Ws) - 1, -1, -1):
        grads[2 * layer] = d.t().mm(H[layer])
        grads[2 * layer + 1] = d.sum(0)
        if layer == 0:
            break
        h = H[layer]
        if rule == "bp":
            back = d.mm(Ws[layer])
        elif rule == "dfa":
            back = e.mm(feedback[layer - 1])
        else:  # fa: the layer above's fixed random copy of its initial weights
            back = d.mm(feedback[layer - 1])
        d = back.mul_(1 - h * h)
    return grads, wrong, loss


@torch.no_grad()
def _test_error(Ws, bs, X, y, batch: int = 1000) -> float:
    wrong = 0
    for i in range(0, len(X), batch):
        h = X[i : i + batch]
        for W, b in zip(Ws[:-1], bs[:-1]):
            h = torch.addmm(b, h, W.t()).tanh_()
        wrong += int(
            (torch.addmm(bs[-1], h, Ws[-1].t()).argmax(1) != y[i : i + batch]).sum()
        )
    return wrong / len(X)


def epoch_flops(
    hidden: list[int], rule: str, n: int = 60_000, n_in: int = 784, n_out: int = 10
) -> float:
    """Floating-point operations of the matrix products of one training epoch of ``n``
    examples.
    """
    sizes = [n_in, *hidden, n_out]
    forward = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    weight_grads = forward
    if rule == "bp" or rule == "fa":
        back = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    else:
        back = n_out * sum(hidden)
    return 2.0 * n * (forward + weight_grads + back)


@runs.trainer(numerics="1")
def train_table_run(config: dict, ctx: runs.RunContext) -> dict:
    """One row x rule x seed of Nøkland's MNIST table (see the module docstring for the
    protocol).

    An optional ``n_val`` in the configuration trains on the rest of the training set
    and puts ``n_val`` held-out training images in the test set's place
    (:meth:`helpers.runs.RunContext.data`): ``test_err`` is then the held-out error.
    """
    hidden, rule = list(config["hidden"]), config["rule"]
    data = ctx.data(
        n_train=config["n_train"],
        n_test=config["n_test"],
        normalize="unit",
        flatten=True,
        dataset=config["dataset"],
        n_val=config.get("n_val"),
    )
    X, y, Xt, yt = data.X_train, data.y_train, data.X_test, data.y_test
    T = torch.nn.functional.one_hot(y, 10).to(X.dtype)
    gen = torch.Generator().manual_seed(config["seed"])
    layers, feedback = make_layers(hidden, rule, gen)
    layers.to(ctx.device)
    feedback = [B.to(ctx.device) for B in feedback]
    Ws = [layer.weight.data for layer in layers]
    bs = [layer.bias.data for layer in layers]
    params = [t for pair in zip(Ws, bs) for t in pair]
    opt = LeanRMSprop(
        params,
        lr=config["lr"],
        alpha=config["rms_alpha"],
        eps=config["rms_eps"],
        init=config["rms_init"],
    )
    shuffle = torch.Generator().manual_seed(10_000 + config["seed"])
    fb = nn.ParameterList(nn.Parameter(B, requires_grad=False) for B in feedback)

    epoch = ctx.restore(layers=layers, feedback=fb, optimizer=opt, shuffle=shuffle)
    feedback = [p.data for p in fb]
    err_mean = ctx.curves["train_err_mean"][-1] if epoch else 1.0
    finished = err_mean <= config["stop_train_err"] if epoch else False
    n, bsz = len(X), config["batch_size"]
    while epoch != config["max_epochs"] and not finished:
        epoch += 1
        start = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(X.device)
        wrong = torch.zeros((), dtype=torch.int64, device=X.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=X.device)
        for i in range(0, n, bsz):
            idx = order[i : i + bsz]
            grads, w, loss = _step(Ws, bs, feedback, rule, X[idx], T[idx], y[idx])
            opt.step(grads)
            wrong += w
            loss_sum += loss
        train_err = int(wrong) / n
        mean_bce = float(loss_sum) / (n * 10)
        if not math.isfinite(mean_bce):
            raise TrainingDiverged(
                f"{rule} {config['arch']} seed {config['seed']}: the loss became "
                f"{mean_bce} "
                f"in epoch {epoch}; lower the learning rate (lr={config['lr']})"
            )
        err_mean = 0.75 * err_mean + 0.25 * train_err
        finished = err_mean <= config["stop_train_err"]
        test_err = _test_error(Ws, bs, Xt, yt)
        ctx.log(
            epoch=epoch,
            train_err=train_err,
            train_err_mean=err_mean,
            test_err=test_err,
            train_bce=mean_bce,
            epoch_seconds=round(time.perf_counter() - start, 3),
        )
        ctx.checkpoint(
            epoch, layers=layers, feedback=fb, optimizer=opt, shuffle=shuffle
        )
    test = ctx.curves["test_err"]
    best = min(range(len(test)), key=test.__getitem__)
    return {
        "test_err_last": test[-1],
        "stop_epoch": epoch,
        "stopped_by_rule": bool(finished),
        "test_err_min": test[best],
        "test_err_min_epoch": best + 1,
        "train_err_mean_last": err_mean,
    }


def _expand(p: dict) -> list[dict]:
    out = []
    for seed in p["seeds"]:
        for arch in p["table_archs"]:
            for rule in p["table_rules"]:
                out.append(
                    {
                        "arch": arch,
                        "hidden": ARCHS[arch],
                        "rule": rule,
                        "seed": seed,
                        "lr": p["table_lr"],
                        "rms_alpha": 0.99,
                        "rms_eps": 1e-8,
                        "rms_init": 0.0,
                        "batch_size": p["batch_size"],
                        "max_epochs": p["table_max_epochs"],
                        "stop_train_err": 1e-4,
                        "n_train": p["n_train"],
                        "n_test": p["n_test"],
                        "dataset": "mnist",
                    }
                )
    return out


def _cost(config: dict) -> float:
    """CPU seconds at 1 thread, at most: every epoch run, matrix products at 0.6 of 85
    GFLOP/s.
    """
    n = config["n_train"] or 60_000
    return (
        config["max_epochs"]
        * epoch_flops(config["hidden"], config["rule"], n)
        / (0.6 * 85e9)
    )


#: The chapter's grid: every seed x row x rule, each run at the source's full budget.
TABLE = runs.Grid(
    chapter="04_feedback_alignment",
    trainer=train_table_run,
    defaults={
        "table_archs": ["7x240", "1x800", "2x800"],
        "table_rules": ["bp", "dfa"],
        "seeds": [0, 1, 2],
        "table_lr": 1e-4,
        "batch_size": 64,
        "table_max_epochs": 299,
        "n_train": None,
        "n_test": None,
    },
    smoke={"n_train": 2000, "n_test": 500, "table_max_epochs": 2, "seeds": [0]},
    expand=_expand,
    name=lambda c: f"{c['arch']}-{c['rule']}-seed{c['seed']}",
    cost=_cost,
)
