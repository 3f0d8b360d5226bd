"""Benchmark: one training step of each chapter's networks against its own matrix
products.

For every network the book trains at length, one process at one thread measures

- ``step_ms``: one training step (forward, backward, optimiser update) on the helpers'
  real code path: :func:`helpers.train_epoch` with the chapter's optimiser and step
  function, or, for chapter 4's table runs, the loop of
  :func:`helpers.dfa_table.train_table_run` (:func:`helpers.dfa_table._step` +
  :class:`helpers.dfa_table.LeanRMSprop`); mini-batches of 64 MNIST digits, data
  indexing and loss/accuracy bookkeeping included;
- ``matmul_ms``: the matrix products that step needs, and nothing else: the forward
  product of every layer, the weight-gradient product of every trained layer and the
  input-gradient product wherever the step sends a gradient down (backprop through a
  layer, a fixed readout's error, DFA's ``e B``), same shapes, same operand layouts
  (transposed views as ``nn.Linear`` uses them), same batch, each one
  ``torch.mm(a, b, out=c)``. Convolutions count as the matrix products of the same sizes
  (im2col: rows = batch x output positions, inner size = in-channels x kernel area);
- ``efficiency = matmul_ms / step_ms``: the fraction of the step spent at the speed of
  its own matrix products. 1 would be a step that costs nothing but its products.

Both sides run in one process, interleaved (round 1: step, products, step, products ...
for every network; then round 2 ...), and each number is the median over the rounds, so
that a change of the machine's load hits both. Times are the process's CPU time
(``time.process_time``) per step, which at one thread is what the step costs the core
even while other jobs share it; wall-clock medians are recorded beside them
(``*_wall``).

Where a network falls short of the target (efficiency >= 0.7 for every MLP at batch 64),
the record says what bounds it, measured: the optimiser's time per step on the real path
(optimiser step hooks), a ``torch.profiler`` split of the step into matrix products,
optimiser, activations, loss and the rest, the number of tensor operations per step with
the measured cost of dispatching one, and the page faults per step. It also times the
optimiser implementations PyTorch offers for the same update (for-loop, ``foreach``,
``fused``) and says which give bit-identical parameters.

    BOOK_DATA_DIR=/path/to/data python benchmarks/bench_throughput.py [--rounds 5]
        [--seconds 0.3] [--only NAME ...] [--no-profile]

The record goes to ``results/benchmarks/bench_throughput.json`` (``nets``: name ->
step_ms, matmul_ms, efficiency; ``min_mlp_efficiency``; ``bounds``; ``summary``;
``matmul_gflops``: the plain 1000 x 1000 @ 1000 x 1000 product on this machine). Not
part of the test suite: speed is only meaningful as a ratio measured in one process.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import helpers
from helpers import dfa, dfa_table, sparse
from helpers import local_errors as le
from helpers.results import _jsonable, environment_info, results_dir, write_json

LOAD_AT_START = os.getloadavg()
ROOT = Path(__file__).resolve().parents[1]
BATCH = 64
# efficiency every MLP should reach at batch 64: the book's long runs are bound by these
# steps
TARGET = 0.7
# the machine's 1-thread matrix-product speed the run-time estimates use
YARDSTICK_GFLOPS = 85.0

# --------------------------------------------------------------------------- GEMM lists
# A GEMM is (m, k, n, a_t, b_t): op(A) (m x k) @ op(B) (k x n); a_t / b_t: the operand
# is the transposed view of a contiguous tensor, as F.linear and its backward use them.


def linear_gemms(
    n: int, d_in: int, d_out: int, *, wgrad: bool = True, igrad: bool = True
) -> list[tuple]:
    """Forward ``x W^T``, weight gradient ``g^T x`` and input gradient ``g W`` of an
    (d_out x d_in) layer.
    """
    out = [(n, d_in, d_out, False, True)]
    if wgrad:
        out.append((d_out, n, d_in, True, False))
    if igrad:
        out.append((n, d_out, d_in, False, False))
    return out


def conv_gemms(
    n: int, c_in: int, c_out: int, k: int, h_out: int, w_out: int, *, igrad: bool
) -> list[tuple]:
    """The im2col matrix products of a k x k convolution: forward, weight gradient,
    input gradient.
    """
    rows, inner = n * h_out * w_out, c_in * k * k
    out = [(rows, inner, c_out, False, False), (c_out, rows, inner, False, False)]
    if igrad:
        out.append((rows, c_out, inner, False, False))
    return out


def gemms_of(model: nn.Module, forward: Callable[[], None], n: int) -> list[tuple]:
    """The GEMMs of one training step of ``model``, read from one forward pass
    (``forward()``).

    Every ``nn.Linear`` / ``nn.Conv2d`` (wrapped or not) gets its forward and
    weight-gradient product, and an input-gradient product when its input requires a
    gradient (i.e. the step sends a gradient below it); a
    :class:`helpers.local_errors.FixedReadout` gets a forward product and, when its
    input requires a gradient, an input-gradient product (its weights are not
    trained)."""
    found: list[tuple] = []

    def hook(module, args, output):
        x = args[0]
        needs = x.requires_grad
        if isinstance(module, nn.Linear):
            found.extend(
                linear_gemms(
                    n,
                    module.in_features,
                    module.out_features,
                    wgrad=module.weight.requires_grad,
                    igrad=needs,
                )
            )
        elif isinstance(module, le.FixedReadout):
            found.extend(
                linear_gemms(
                    n, module.in_features, module.out_features, wgrad=False, igrad=needs
                )
            )
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0]
            found.extend(
                conv_gemms(
                    n,
                    module.in_channels,
                    module.out_channels,
                    k,
                    output.shape[2],
                    output.shape[3],
                    igrad=needs,
                )
            )

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, le.FixedReadout))
    ]
    try:
        with torch.enable_grad():
            forward()
    finally:
        for h in handles:
            h.remove()
    return found


class Gemms:
    """The listed products with preallocated random operands; ``run(reps)`` does them
    ``reps`` times.
    """

    def __init__(self, gemms: list[tuple], seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.gemms = list(gemms)
        self.ops = []
        for m, k, n, a_t, b_t in self.gemms:
            a = torch.randn((k, m) if a_t else (m, k), generator=g)
            b = torch.randn((n, k) if b_t else (k, n), generator=g)
            self.ops.append(
                (a.t() if a_t else a, b.t() if b_t else b, torch.empty(m, n))
            )
        self.flop = sum(2.0 * m * k * n for m, k, n, _, _ in self.gemms)

    def run(self, reps: int) -> None:
        mm, ops = torch.mm, self.ops
        for _ in range(reps):
            for a, b, c in ops:
                mm(a, b, out=c)


# ----------------------------------------------------------------------------- networks
@dataclass
class Net:
    """One network's training step on its real code path.

    ``run(steps)`` trains ``steps`` mini-batches; ``optimizers`` are the torch
    optimisers it steps (their step hooks time the update), ``lean_opt`` the
    :class:`LeanRMSprop` of a table-run loop; ``gemms`` the matrix products of one step;
    ``params`` the number of trained parameters."""

    name: str
    chapter: int
    kind: str  # "mlp" or "cnn"
    what: str
    run: Callable[[int], None]
    gemms: list[tuple]
    params: int
    optimizer: str
    optimizers: list = field(default_factory=list)
    clock: Clock | None = None
    model: nn.Module | None = None
    # for a loop without a torch optimiser
    param_shapes: list = field(default_factory=list)


class Clock:
    """Accumulates CPU seconds between ``start()`` and ``stop()`` (used around optimiser
    steps).
    """

    def __init__(self):
        self.seconds, self.on, self._t = 0.0, False, 0.0

    def start(self, *_):
        if self.on:
            self._t = time.process_time()

    def stop(self, *_):
        if self.on:
            self.seconds += time.process_time() - self._t


def epoch_runner(
    model, X, y, optimizer, *, loss_fn=F.cross_entropy, step=None, seed=0
) -> Callable[[int], None]:
    """``run(steps)``: :func:`helpers.train_epoch` over the first ``steps`` mini-batches
    of (X, y).
    """
    gen = torch.Generator().manual_seed(seed)

    def run(steps: int) -> None:
        n = steps * BATCH
        if n > len(X):
            raise ValueError(f"{steps} steps need {n} rows; only {len(X)} loaded")
        helpers.train_epoch(
            model,
            X[:n],
            y[:n],
            optimizer,
            BATCH,
            loss_fn=loss_fn,
            step=step,
            generator=gen,
            bar=False,
        )

    return run


def n_params(params) -> int:
    return sum(p.numel() for p in params)


def hooked(net: Net) -> Net:
    """Attach a :class:`Clock` to the net's torch optimisers (pre/post step hooks)."""
    net.clock = net.clock or Clock()
    for opt in net.optimizers:
        opt.register_step_pre_hook(lambda o, a, k, c=net.clock: c.start())
        opt.register_step_post_hook(lambda o, a, k, c=net.clock: c.stop())
    return net


def ch3_nets(data) -> list[Net]:
    """Chapter 3: 784-1000x5-10 ReLU, Adam 1e-3, batch 64 (helpers.local_errors)."""
    X, y = data.X_train, data.y_train
    out = []
    # greedy: layer l alone (a 1000x1000 block and its fixed readout) on the frozen
    # output below it
    torch.manual_seed(0)
    net = le.LocalErrorNet()
    with torch.no_grad():
        H1 = net.blocks[0](X)  # the frozen representation entering layer 2
    model = nn.Sequential(net.blocks[1], net.readouts[1])
    opt = torch.optim.Adam(net.blocks[1].parameters(), lr=1e-3)
    out.append(
        Net(
            "ch3 greedy layer 1000x1000",
            3,
            "mlp",
            "one greedy step of layer 2 (1000->1000 ReLU + fixed 1000->10 readout) on "
            "layer 1's frozen output, "
            "as helpers.local_errors.train_greedy trains it (train_epoch, Adam)",
            epoch_runner(model, H1, y, opt),
            gemms_of(model, lambda: model(H1[:BATCH]), BATCH),
            n_params(net.blocks[1].parameters()),
            "Adam",
            [opt],
        )
    )
    # simultaneous local errors: the rule of helpers.local_errors.train_simultaneous
    torch.manual_seed(0)
    net = le.LocalErrorNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out.append(
        Net(
            "ch3 simultaneous 5x1000",
            3,
            "mlp",
            "all five layers at once, each on its own fixed readout's loss "
            "(the rule LocalSimultaneous, Adam)",
            epoch_runner(net, X, y, opt, step=le.LocalSimultaneous()),
            gemms_of(
                net,
                lambda n=net: le.local_losses(n, X[:BATCH], y[:BATCH], detach=True),
                BATCH,
            ),
            n_params(net.parameters()),
            "Adam",
            [opt],
        )
    )
    # end-to-end backprop (train_backprop: fit with the default step)
    torch.manual_seed(0)
    net = le.LocalErrorNet(trainable_head=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out.append(
        Net(
            "ch3 backprop 5x1000",
            3,
            "mlp",
            "end-to-end backprop, trainable head (train_backprop, Adam)",
            epoch_runner(net, X, y, opt),
            gemms_of(net, lambda n=net: n(X[:BATCH]), BATCH),
            n_params(net.parameters()),
            "Adam",
            [opt],
        )
    )
    return out


def lean_runner(hidden, rule, X, y, seed=0):
    """The inner loop of :func:`helpers.dfa_table.train_table_run` (same calls, same
    order).
    """
    T = F.one_hot(y, 10).to(X.dtype)
    layers, feedback = dfa_table.make_layers(
        hidden, rule, torch.Generator().manual_seed(seed)
    )
    Ws = [layer.weight.data for layer in layers]
    bs = [layer.bias.data for layer in layers]
    params = [t for pair in zip(Ws, bs) for t in pair]
    opt = dfa_table.LeanRMSprop(params, lr=1e-4, alpha=0.99, eps=1e-8, init=0.0)
    shuffle = torch.Generator().manual_seed(10_000 + seed)
    clock = Clock()

    def run(steps: int) -> None:
        n = steps * BATCH
        order = torch.randperm(n, generator=shuffle)
        wrong = torch.zeros((), dtype=torch.int64)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            grads, w, loss = dfa_table._step(
                Ws, bs, feedback, rule, X[idx], T[idx], y[idx]
            )
            clock.start()
            opt.step(grads)
            clock.stop()
            wrong += w
            loss_sum += loss
        if not math.isfinite(float(loss_sum)):
            raise helpers.TrainingDiverged(
                f"lean {rule} {hidden}: the loss became {float(loss_sum)}"
            )

    sizes = [784, *hidden, 10]
    gemms = []
    for layer, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        gemms += linear_gemms(BATCH, a, b, igrad=False)  # forward addmm and d^T H
    if rule == "bp":
        # d W, layers 2..L-1
        gemms += [(BATCH, b, a, False, False) for a, b in zip(sizes[1:-2], sizes[2:-1])]
        gemms.append((BATCH, 10, hidden[-1], False, False))  # e W_L
    else:
        gemms += [(BATCH, 10, h, False, False) for h in hidden]  # e B_l
    return run, gemms, params, clock


def autograd_runner(hidden, rule, X, y, seed=0):
    """Chapter 4's autograd path: tanh MLP, sigmoid + BCE, torch.optim.RMSprop,
    train_epoch.
    """
    torch.manual_seed(seed)
    sizes = [784, *hidden]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(hidden[-1], 10))
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.99, eps=1e-8)
    if rule == "dfa":
        step = dfa.DirectFeedbackAlignment(
            model, generator=torch.Generator().manual_seed(seed)
        )
        gemms = gemms_of(model, lambda: step.forward(X[:BATCH]), BATCH)
        # e @ [B_1 .. B_L]^T, one product
        gemms.append((BATCH, 10, sum(hidden), False, False))
    else:
        step = None
        gemms = gemms_of(model, lambda: model(X[:BATCH]), BATCH)
    return (
        epoch_runner(model, X, y, opt, loss_fn=dfa.bce_sigmoid_loss, step=step),
        gemms,
        n_params(model.parameters()),
        opt,
    )


def ch4_nets(data) -> list[Net]:
    """Chapter 4: Nøkland's table rows, tanh, RMSprop 1e-4, batch 64, backprop and
    DFA.
    """
    X, y = data.X_train, data.y_train
    out = []
    for arch, hidden in dfa_table.ARCHS.items():
        for rule in ("bp", "dfa"):
            run, gemms, params, clock = lean_runner(hidden, rule, X, y)
            out.append(
                Net(
                    f"ch4 lean {arch} {rule}",
                    4,
                    "mlp",
                    f"784-{'-'.join(map(str, hidden))}-10 tanh, {rule}: "
                    "dfa_table._step + LeanRMSprop "
                    "(the table runs' loop)",
                    run,
                    gemms,
                    n_params(params),
                    "LeanRMSprop",
                    clock=clock,
                    param_shapes=[p.shape for p in params],
                )
            )
    for arch, hidden in dfa_table.ARCHS.items():
        for rule in ("bp", "dfa"):
            run, gemms, n, opt = autograd_runner(hidden, rule, X, y)
            what = (
                "helpers.dfa.DirectFeedbackAlignment" if rule == "dfa" else "backprop"
            ) + " + torch.optim.RMSprop, train_epoch"
            out.append(
                Net(
                    f"ch4 autograd {arch} {rule}",
                    4,
                    "mlp",
                    f"784-{'-'.join(map(str, hidden))}-10 tanh, {what}",
                    run,
                    gemms,
                    n,
                    "RMSprop",
                    [opt],
                )
            )
    return out


# The paper nets of chapter 5 (book/05_sparse_representations.ipynb, ``paper_net``),
# with its defaults.
KW5 = {
    "k_inference_factor": 1.5,
    "boost_strength": 1.5,
    "boost_strength_factor": 0.85,
    "duty_cycle_period": 1000,
}


def paper_net(row: str) -> nn.Sequential:
    if row == "Dense CNN-1":
        layers = [
            nn.Conv2d(1, 30, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4320, 1000),
            nn.ReLU(),
            nn.Linear(1000, 10),
        ]
    elif row == "Sparse CNN-1":
        layers = [
            nn.Conv2d(1, 30, 5),
            nn.MaxPool2d(2),
            sparse.KWinners2d(30, 400, **KW5),
            nn.Flatten(),
            sparse.SparseWeights(nn.Linear(4320, 150), 0.3),
            sparse.KWinners(150, 50, **KW5),
            nn.Linear(150, 10),
        ]
    elif row == "Dense CNN-2":
        layers = [
            nn.Conv2d(1, 30, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(30, 30, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(480, 1000),
            nn.ReLU(),
            nn.Linear(1000, 10),
        ]
    elif row == "Sparse CNN-2":
        layers = [
            nn.Conv2d(1, 32, 5),
            nn.MaxPool2d(2),
            sparse.KWinners2d(32, 400, **KW5),
            nn.Conv2d(32, 64, 5),
            nn.MaxPool2d(2),
            sparse.KWinners2d(64, 300, **KW5),
            nn.Flatten(),
            sparse.SparseWeights(nn.Linear(1024, 700), 0.3),
            sparse.KWinners(700, 100, **KW5),
            nn.Linear(700, 10),
        ]
    else:
        raise ValueError(f"row={row!r} is not known")
    return nn.Sequential(*layers)


def ch5_nets(data) -> list[Net]:
    """Chapter 5: the paper's CNNs, SGD 0.01 momentum 0.5, sparse_step, batch 64
    (reported, no target).
    """
    X, y = data.X_train.reshape(-1, 1, 28, 28), data.y_train
    out = []
    for row in ("Dense CNN-1", "Sparse CNN-1", "Dense CNN-2", "Sparse CNN-2"):
        torch.manual_seed(0)
        net = paper_net(row)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
        gemms = gemms_of(net, lambda n=net: n(X[:BATCH]), BATCH)
        out.append(
            Net(
                f"ch5 {row}",
                5,
                "cnn",
                f"{row} (paper_net of chapter 5), sparse_step, SGD, train_epoch",
                epoch_runner(net, X, y, opt, step=sparse.sparse_step()),
                gemms,
                n_params(net.parameters()),
                "SGD",
                [opt],
                model=net,
            )
        )
    return out


def ch6_nets(data) -> list[Net]:
    """Chapter 6: 784-1000x3-10 nets, Adam, batch 64
    (book/06_learning_rules_compared.ipynb, train_rule).
    """
    X, y = data.X_train, data.y_train
    out = []

    def local_net(trainable_head):
        torch.manual_seed(0)
        return le.LocalErrorNet(
            784, 1000, 3, readout_std=0.01, trainable_head=trainable_head
        )

    net = local_net(True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out.append(
        Net(
            "ch6 backprop 3x1000",
            6,
            "mlp",
            "backprop (le.train_backprop, Adam)",
            epoch_runner(net, X, y, opt),
            gemms_of(net, lambda n=net: n(X[:BATCH]), BATCH),
            n_params(net.parameters()),
            "Adam",
            [opt],
        )
    )
    base = local_net(True)
    model = nn.Sequential(
        nn.Flatten(), *[m for block in base.blocks for m in block], base.readouts[-1]
    )
    step = dfa.DirectFeedbackAlignment(
        model, generator=torch.Generator().manual_seed(0), loss_fn=F.cross_entropy
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gemms = gemms_of(model, lambda: step.forward(X[:BATCH]), BATCH) + [
        (BATCH, 10, 3000, False, False)
    ]
    out.append(
        Net(
            "ch6 dfa 3x1000",
            6,
            "mlp",
            "DFA (DirectFeedbackAlignment, cross-entropy, Adam), train_epoch",
            epoch_runner(model, X, y, opt, step=step),
            gemms,
            n_params(model.parameters()),
            "Adam",
            [opt],
        )
    )
    # greedy layer 1 (784 -> 1000 + readout); its 1000x1000 layers cost what chapter 3's
    # greedy layer costs
    net = local_net(False)
    model = nn.Sequential(net.blocks[0], net.readouts[0])
    opt = torch.optim.Adam(net.blocks[0].parameters(), lr=1e-3)
    out.append(
        Net(
            "ch6 greedy layer 784x1000",
            6,
            "mlp",
            "greedy layer 1 (784->1000 ReLU + fixed readout), as train_greedy (Adam); "
            "layers 2-3 are "
            "'ch3 greedy layer 1000x1000'",
            epoch_runner(model, X, y, opt),
            gemms_of(model, lambda: model(X[:BATCH]), BATCH),
            n_params(net.blocks[0].parameters()),
            "Adam",
            [opt],
        )
    )
    net = local_net(False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out.append(
        Net(
            "ch6 simultaneous 3x1000",
            6,
            "mlp",
            "simultaneous local errors (the rule LocalSimultaneous, Adam)",
            epoch_runner(net, X, y, opt, step=le.LocalSimultaneous()),
            gemms_of(
                net,
                lambda n=net: le.local_losses(n, X[:BATCH], y[:BATCH], detach=True),
                BATCH,
            ),
            n_params(net.parameters()),
            "Adam",
            [opt],
        )
    )
    torch.manual_seed(0)
    KW6 = {
        "k_inference_factor": 1.0,
        "boost_strength": 1.5,
        "boost_strength_factor": 0.85,
    }
    layers, n_in = [nn.Flatten()], 784
    for _ in range(3):
        layers += [
            sparse.SparseWeights(nn.Linear(n_in, 1000), 0.3),
            sparse.KWinners(1000, 0.1, **KW6),
        ]
        n_in = 1000
    model = nn.Sequential(*layers, nn.Linear(n_in, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out.append(
        Net(
            "ch6 sparse 3x1000",
            6,
            "mlp",
            "sparse weights (density 0.3) + k-winners (10 %) in every layer, "
            "sparse_step, Adam",
            epoch_runner(model, X, y, opt, step=sparse.sparse_step()),
            gemms_of(model, lambda: model(X[:BATCH]), BATCH),
            n_params(model.parameters()),
            "Adam",
            [opt],
            model=model,
        )
    )
    return out


# ------------------------------------------------------------------------------- timing
def timed(fn: Callable[[int], None], reps: int) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, minor page faults) per repetition of ``fn(reps)``."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0, w0 = time.process_time(), time.perf_counter()
    fn(reps)
    c, w = time.process_time() - c0, time.perf_counter() - w0
    return (
        c / reps,
        w / reps,
        (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / reps,
    )


def calibrate(fn: Callable[[int], None], seconds: float, lo: int, hi: int) -> int:
    fn(2)  # warm-up (allocations, lazy init)
    t, _, _ = timed(fn, 3)
    return int(min(hi, max(lo, round(seconds / max(t, 1e-9)))))


def dispatch_cost_us() -> float:
    """CPU microseconds of one tiny tensor operation (dispatcher + Python call),
    ``torch.add(a, b, out=c)``.
    """
    a, b, c = torch.ones(1), torch.ones(1), torch.empty(1)

    def run(reps):
        for _ in range(reps):
            torch.add(a, b, out=c)

    run(1000)
    return statistics.median(timed(run, 20000)[0] for _ in range(5)) * 1e6


# ---------------------------------------------------------------------------- breakdown
MATMUL_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_convolution",
    "aten::convolution",
)
ACTIVATION_OPS = (
    "aten::relu",
    "aten::relu_",
    "aten::threshold_backward",
    "aten::tanh",
    "aten::tanh_",
    "aten::tanh_backward",
    "aten::max_pool2d_with_indices",
    "aten::max_pool2d_with_indices_backward",
)
LOSS_OPS = (
    "aten::_log_softmax",
    "aten::_log_softmax_backward_data",
    "aten::nll_loss_forward",
    "aten::nll_loss_backward",
    "aten::binary_cross_entropy_with_logits",
    "aten::sigmoid",
    "aten::one_hot",
    "aten::sigmoid_backward",
    "aten::binary_cross_entropy_with_logits_backward",
)


def profile_net(net: Net, steps: int, step_ms: float) -> dict:
    """torch.profiler split of a step into categories, as shares of the profiled time
    over ``steps`` steps, converted to ms of the unprofiled CPU ``step_ms``; the top
    non-matmul operations; the number of tensor operations per step. The profiler's
    clock is the wall clock, which other jobs stretch wherever they preempt this one:
    over many steps that averages out into the shares, not into the absolute times. Its
    own overhead per operation inflates the small operations a little."""
    prof = _profile_once(net, steps)
    total = prof["wall_us"]
    share = {k: v / total for k, v in prof["cats"].items()}
    return {
        "share_of_step": share,
        "ms_per_step": {k: v * step_ms for k, v in share.items()},
        "top_non_matmul_ops_ms": {k: v / total * step_ms for k, v in prof["top"]},
        "tensor_ops_per_step": prof["n_ops"] / steps,
        "profiled_steps": steps,
        "profiled_wall_ms_per_step": total * 1e-3 / steps,
    }


def _profile_once(net: Net, steps: int) -> dict:
    from torch.profiler import ProfilerActivity, profile, record_function

    hooks = []
    for m in net.model.modules() if net.model is not None else ():
        if isinstance(m, (sparse.KWinners, sparse.KWinners2d)):
            state = {}
            hooks.append(
                m.register_forward_pre_hook(
                    lambda mod, args, s=state: s.__setitem__(
                        "rf", record_function("k-winners").__enter__()
                    )
                )
            )
            hooks.append(
                m.register_forward_hook(
                    lambda mod, args, out, s=state: s.pop("rf").__exit__(
                        None, None, None
                    )
                )
            )
    lean = net.clock is not None and not net.optimizers
    if lean:  # mark LeanRMSprop.step in the profile through the loop's clock
        rf: list = []
        clock = net.clock
        orig_start, orig_stop = clock.start, clock.stop
        clock.start = lambda *a: rf.append(
            record_function("LeanRMSprop.step").__enter__()
        )
        clock.stop = lambda *a: rf.pop().__exit__(None, None, None)
    try:
        with (
            profile(activities=[ProfilerActivity.CPU]) as prof,
            record_function("steps"),
        ):
            net.run(steps)
    finally:
        for h in hooks:
            h.remove()
        if lean:
            clock.start, clock.stop = orig_start, orig_stop
    events = prof.events()
    total = sum(ev.cpu_time_total for ev in events if ev.name == "steps")
    cats = {
        "matmul": 0.0,
        "optimizer": 0.0,
        "zero_grad": 0.0,
        "activation": 0.0,
        "loss": 0.0,
        "k-winners": 0.0,
        "other tensor ops": 0.0,
    }
    by_op: dict[str, float] = {}
    n_ops, kwin_total, opt_total, zero_total = 0, 0.0, 0.0, 0.0
    for ev in events:  # annotations: their whole time, Python inside them included
        if ev.name == "k-winners":
            kwin_total += ev.cpu_time_total
        elif ev.name.startswith("Optimizer.step") or ev.name == "LeanRMSprop.step":
            opt_total += ev.cpu_time_total
        elif ev.name.startswith("Optimizer.zero_grad"):
            zero_total += ev.cpu_time_total
        if not ev.name.startswith("aten::"):
            continue
        anc, parent = [], ev.cpu_parent
        while parent is not None:
            anc.append(parent.name)
            parent = parent.cpu_parent
        if not any(a.startswith("aten::") for a in anc):
            # a top-level operation: one trip through Python (or autograd) and the
            # dispatcher
            n_ops += 1
        t = ev.self_cpu_time_total
        in_opt = any(
            a.startswith("Optimizer.step") or a == "LeanRMSprop.step" for a in anc
        )
        if (
            in_opt
            or any(a.startswith("Optimizer.zero_grad") for a in anc)
            or "k-winners" in anc
        ):
            # counted with the whole annotation (the optimiser, zero_grad, a k-winners
            # forward)
            pass
        elif ev.name in MATMUL_OPS:
            cats["matmul"] += t
        elif ev.name in ACTIVATION_OPS:
            cats["activation"] += t
        elif ev.name in LOSS_OPS:
            cats["loss"] += t
        else:
            cats["other tensor ops"] += t
        if not in_opt and ev.name not in MATMUL_OPS:
            by_op[ev.name] = by_op.get(ev.name, 0.0) + t
    # the forward of every k-winners layer, NumPy's winner selection included
    cats["k-winners"] = kwin_total
    cats["optimizer"], cats["zero_grad"] = opt_total, zero_total
    cats["python, autograd engine, profiler and the rest"] = max(
        0.0, total - sum(cats.values())
    )
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
    return {"wall_us": total, "cats": cats, "top": top, "n_ops": n_ops}


def optimizer_ms(net: Net, steps: int) -> float:
    """CPU ms per step inside the optimiser's update, on the real path (step hooks / the
    loop's clock).
    """
    if not net.optimizers and net.clock is None:
        return float("nan")
    if net.optimizers and net.clock is None:
        hooked(net)
    net.clock.seconds, net.clock.on = 0.0, True
    try:
        net.run(steps)
    finally:
        net.clock.on = False
    return net.clock.seconds * 1e3 / steps


# --------------------------------------------------------------------------- optimisers
VARIANTS = {
    "for-loop (PyTorch's CPU default)": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
}


def optimizer_variants(
    data, results: dict, rounds: int, seconds: float, check_steps: int = 10
) -> dict:
    """Whole training steps of a few nets with each implementation of their optimiser
    that PyTorch offers (the same update, written as a loop over tensors, as
    multi-tensor ``foreach`` kernels, or as one ``fused`` kernel): CPU ms per step
    (median of interleaved rounds), the efficiency it would give, and whether the
    parameters after ``check_steps`` steps from the same start are bit-identical to the
    default's (the for-loop on the CPU)."""
    cases = [
        ("ch3 greedy layer 1000x1000", ch3_nets),
        ("ch3 backprop 5x1000", ch3_nets),
        ("ch6 dfa 3x1000", ch6_nets),
        ("ch4 autograd 2x800 bp", ch4_nets),
    ]
    out = {}
    for name, builder in cases:
        if name not in results:
            continue
        nets, errors = {}, {}
        for label, flags in VARIANTS.items():
            net = next(n for n in builder(data) if n.name == name)
            cls = type(net.optimizers[0])
            if (
                flags["fused"]
                and "fused" not in inspect.signature(cls.__init__).parameters
            ):
                errors[label] = (
                    f"torch.optim.{cls.__name__} has no fused implementation"
                )
                continue
            for opt in net.optimizers:
                for group in opt.param_groups:
                    group.update(flags)
            try:
                # the same steps from the same start for every variant
                net.run(check_steps)
                nets[label] = net
            except (RuntimeError, TypeError, ValueError) as e:
                # e.g. no fused implementation of this optimiser
                errors[label] = f"{type(e).__name__}: {e}"

        # the parameters after the same check_steps steps
        after = {
            label: [
                p.detach().clone()
                for opt in net.optimizers
                for g in opt.param_groups
                for p in g["params"]
            ]
            for label, net in nets.items()
        }
        ref = after[next(iter(VARIANTS))]
        steps = calibrate(nets[next(iter(VARIANTS))].run, seconds, 3, 200)
        times = {label: [] for label in nets}
        for _ in range(rounds):
            for label, net in nets.items():
                times[label].append(timed(net.run, steps)[0])
        entry = {}
        for label in nets:
            mine = after[label]
            step_ms = statistics.median(times[label]) * 1e3
            entry[label] = {
                "step_ms": step_ms,
                "efficiency": results[name]["matmul_ms"] / step_ms,
                "bit_identical_to_default": all(
                    torch.equal(a, b) for a, b in zip(ref, mine)
                ),
                "max_abs_difference": max(
                    float((a - b).abs().max()) for a, b in zip(ref, mine)
                ),
            }
        for label, err in errors.items():
            entry[label] = {"not available": err}
        out[name] = {
            "optimizer": results[name]["optimizer"],
            "variants": entry,
            "check_steps": check_steps,
        }
    return out


def one_pass_ms(net: Net, reps: int = 20) -> float:
    """CPU ms of one elementwise pass over tensors shaped like the net's parameters
    (``_foreach_addcdiv_``: reads three arrays, writes one), the least a single-kernel
    update must do."""
    shapes = [
        p.shape for opt in net.optimizers for g in opt.param_groups for p in g["params"]
    ]
    shapes = shapes or list(net.param_shapes)
    p = [torch.zeros(s) for s in shapes]
    g = [torch.ones(s) for s in shapes]
    m = [torch.ones(s) for s in shapes]

    def run(r):
        for _ in range(r):
            torch._foreach_addcdiv_(p, g, m, value=-1e-4)

    run(3)
    return statistics.median(timed(run, reps)[0] for _ in range(3)) * 1e3


# --------------------------------------------------------------------------------- main
FIXES = {
    "optimizer": "an update in one pass over the parameters (a fused kernel) instead "
    "of one pass per operation",
    "python, autograd engine, profiler and the rest": "fewer, larger tensor operations "
    "per step (as the lean "
    "trainer of chapter 4 does with explicit products instead of autograd)",
    "k-winners": "a cheaper winner selection (helpers/sparse.py; see "
    "benchmarks/bench_kwinners.py)",
    "activation": "activations fused with the products around them",
    "other tensor ops": "fewer elementwise passes (bias, masks, copies) per step",
}


def bound_of(name: str, r: dict, b: dict, variants: dict | None) -> dict:
    """What the step spends beyond its matrix products, from the measurements, and the
    largest part.
    """
    step, mm = r["step_ms"], r["matmul_ms"]
    parts: dict[str, float] = {}
    if not math.isnan(b["optimizer_ms"]):
        parts["optimizer"] = b["optimizer_ms"]
    prof = b.get("profile")
    if prof:
        ms = prof["ms_per_step"]
        for key in (
            "activation",
            "loss",
            "k-winners",
            "other tensor ops",
            "zero_grad",
            "python, autograd engine, profiler and the rest",
        ):
            if ms[key] > 0:
                parts[key] = ms[key]
    main = max(parts, key=parts.get) if parts else None
    text = [
        f"step {step:.2f} ms, its matrix products alone {mm:.2f} ms (efficiency "
        f"{r['efficiency']:.2f})."
    ]
    if "optimizer" in parts:
        text.append(
            f"The {b['optimizer']} update takes {parts['optimizer']:.2f} ms "
            f"({100 * b['optimizer_share']:.0f} % "
            f"of the step; {b['parameters'] / 1e6:.2f} M parameters); without it the "
            "efficiency would be "
            f"{b['efficiency_without_optimizer']:.2f}. One elementwise pass over the "
            "parameters takes "
            f"{b['one_pass_update_ms']:.2f} ms: an update in one pass would give about "
            f"{b['efficiency_with_one_pass_update']:.2f} (estimate)."
        )
    if prof:
        others = ", ".join(
            f"{k} {v:.2f} ms"
            for k, v in parts.items()
            if k != "optimizer" and v >= 0.03 * step
        )
        text.append(
            "The rest (profiler shares of the step): "
            f"{others or 'no other part above 3 % of the step'}; "
            f"{prof['tensor_ops_per_step']:.0f} tensor "
            f"operations per step, {b['dispatch_us_per_op']:.1f} us of dispatch each "
            "at least."
        )
        text.append(
            f"Inside the step the products take {prof['ms_per_step']['matmul']:.2f} ms "
            f"(alone: {mm:.2f})."
        )
    if r.get("page_faults_per_step", 0) > 50:
        text.append(
            f"{r['page_faults_per_step']:.0f} page faults per step (fresh memory for "
            "temporaries)."
        )
    if variants:
        for label, v in variants["variants"].items():
            if "step_ms" in v and not label.startswith("for-loop"):
                text.append(
                    f"With the {label} {variants['optimizer']} the step takes "
                    f"{v['step_ms']:.2f} ms "
                    f"(efficiency {v['efficiency']:.2f}), "
                    + (
                        "bit-identical."
                        if v["bit_identical_to_default"]
                        else "not bit-identical (max |difference| "
                        f"{v['max_abs_difference']:.1e} after "
                        f"{variants['check_steps']} steps)."
                    )
                )
    return {
        "explanation": " ".join(text),
        "largest_non_matmul_part": main,
        "would_fix_it": FIXES.get(main),
        "ms_per_step": parts,
    }


def summarise(results: dict, breakdown: dict, bounds: dict) -> str:
    """A few sentences over all MLPs, from the measurements."""
    mlps = [k for k, r in results.items() if r["kind"] == "mlp"]
    if not mlps:
        return "No MLP measured."
    eff = {k: results[k]["efficiency"] for k in mlps}
    meet = [k for k in mlps if eff[k] >= TARGET]
    largest = {}
    for k in mlps:
        if k in bounds:
            largest.setdefault(bounds[k]["largest_non_matmul_part"], []).append(k)
    share = [
        breakdown[k]["optimizer_share"]
        for k in mlps
        if breakdown[k]["optimizer_share"] == breakdown[k]["optimizer_share"]
    ]
    without = [
        k for k in mlps if breakdown[k]["efficiency_without_optimizer"] >= TARGET
    ]
    lo, hi = min(eff, key=eff.get), max(eff, key=eff.get)
    text = [
        f"{len(meet)} of {len(mlps)} MLPs reach the target efficiency {TARGET} at "
        "batch 64" + (f" ({', '.join(meet)})." if meet else "."),
        f"Efficiencies range from {eff[lo]:.2f} ({lo}) to {eff[hi]:.2f} ({hi}).",
    ]
    below = [k for k in mlps if eff[k] < TARGET]
    for part, names in sorted(largest.items(), key=lambda kv: -len(kv[1])):
        text.append(
            f"The largest part of the step besides its matrix products is '{part}' for "
            f"{len(names)} of the "
            f"{len(below)} MLPs below the target."
        )
    if share:
        text.append(
            "The optimiser's update takes "
            f"{100 * min(share):.0f}-{100 * max(share):.0f} % of a step; "
            f"without it {len(without)} of {len(mlps)} MLPs would reach {TARGET}."
        )
    return " ".join(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds; medians are reported"
    )
    ap.add_argument(
        "--seconds",
        type=float,
        default=0.3,
        help="CPU seconds per timing (sets the steps per timing)",
    )
    ap.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="nets whose name contains one of these strings",
    )
    ap.add_argument(
        "--no-profile", action="store_true", help="skip the torch.profiler breakdown"
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (the target is for 1)"
    )
    ap.add_argument(
        "--max-steps",
        type=int,
        default=200,
        help="most steps per timing (memory: rows loaded)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch "
        f"{BATCH}, load {LOAD_AT_START}"
    )
    n_rows = BATCH * args.max_steps
    data = helpers.load_mnist(n_rows, 100, normalize="unit", flatten=True)
    nets = [*ch3_nets(data), *ch4_nets(data), *ch5_nets(data), *ch6_nets(data)]
    if args.only:
        nets = [n for n in nets if any(s in n.name for s in args.only)]
    big = Gemms([(1000, 1000, 1000, False, False)])
    mms = {n.name: Gemms(n.gemms) for n in nets}
    steps = {n.name: calibrate(n.run, args.seconds, 3, args.max_steps) for n in nets}
    reps = {n.name: calibrate(mms[n.name].run, args.seconds, 3, 2000) for n in nets}
    big_reps = calibrate(big.run, args.seconds, 3, 100)
    raw = {n.name: {"step": [], "matmul": []} for n in nets}
    raw_big = []
    for r in range(args.rounds):
        raw_big.append(timed(big.run, big_reps))
        for n in nets:
            raw[n.name]["step"].append(timed(n.run, steps[n.name]))
            raw[n.name]["matmul"].append(timed(mms[n.name].run, reps[n.name]))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    def med(xs, i):
        return statistics.median(x[i] for x in xs)

    results = {}
    for n in nets:
        s, m = raw[n.name]["step"], raw[n.name]["matmul"]
        step_ms, mm_ms = med(s, 0) * 1e3, med(m, 0) * 1e3
        results[n.name] = {
            "chapter": n.chapter,
            "kind": n.kind,
            "what": n.what,
            "step_ms": step_ms,
            "matmul_ms": mm_ms,
            "efficiency": mm_ms / step_ms,
            "step_ms_wall": med(s, 1) * 1e3,
            "matmul_ms_wall": med(m, 1) * 1e3,
            "efficiency_wall": med(m, 1) / med(s, 1),
            "matmul_gflop_per_step": mms[n.name].flop / 1e9,
            "matmul_gflops": mms[n.name].flop / (mm_ms * 1e-3) / 1e9,
            "n_gemms": len(n.gemms),
            "parameters": n.params,
            "optimizer": n.optimizer,
            "page_faults_per_step": med(s, 2),
            "steps_per_timing": steps[n.name],
            "matmul_reps_per_timing": reps[n.name],
            "step_ms_rounds": [x[0] * 1e3 for x in s],
            "matmul_ms_rounds": [x[0] * 1e3 for x in m],
            "meets_target": (mm_ms / step_ms >= TARGET) if n.kind == "mlp" else None,
        }
    gemm_gflops = 2e9 / statistics.median(x[0] for x in raw_big) / 1e9
    gemm_gflops_wall = 2e9 / statistics.median(x[1] for x in raw_big) / 1e9
    print(
        f"\n1000x1000 @ 1000x1000: {gemm_gflops:.1f} GFLOP/s (CPU time), "
        f"{gemm_gflops_wall:.1f} (wall)"
    )
    print(
        f"{'network':<34} {'step ms':>8} {'matmul ms':>9} {'eff.':>5} "
        f"{'mm GFLOP/s':>10} {'faults':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:<34} {r['step_ms']:8.3f} {r['matmul_ms']:9.3f} "
            f"{r['efficiency']:5.2f} "
            f"{r['matmul_gflops']:10.1f} {r['page_faults_per_step']:7.0f}",
            flush=True,
        )

    # what bounds each net: optimiser time on the real path, profile, dispatch cost
    dispatch = dispatch_cost_us()
    breakdown = {}
    for n in nets:
        r = results[n.name]
        b = {
            "optimizer": n.optimizer,
            "parameters": n.params,
            "dispatch_us_per_op": dispatch,
            "optimizer_ms": optimizer_ms(n, steps[n.name]),
            "one_pass_update_ms": one_pass_ms(n),
        }
        b["optimizer_share"] = b["optimizer_ms"] / r["step_ms"]
        b["efficiency_without_optimizer"] = r["matmul_ms"] / (
            r["step_ms"] - b["optimizer_ms"]
        )
        b["efficiency_with_one_pass_update"] = r["matmul_ms"] / (
            r["step_ms"] - b["optimizer_ms"] + b["one_pass_update_ms"]
        )
        if not args.no_profile:
            b["profile"] = profile_net(n, steps[n.name], r["step_ms"])
        breakdown[n.name] = b
    opt_var = optimizer_variants(data, results, args.rounds, args.seconds)
    for name, v in opt_var.items():
        print(
            name,
            {
                k: (round(x["step_ms"], 2), x["bit_identical_to_default"])
                if "step_ms" in x
                else "n/a"
                for k, x in v["variants"].items()
            },
        )
    bounds = {
        n.name: bound_of(
            n.name, results[n.name], breakdown[n.name], opt_var.get(n.name)
        )
        for n in nets
        if n.kind == "cnn" or results[n.name]["efficiency"] < TARGET
    }
    for name, b in bounds.items():
        print(f"{name}: {b['explanation']}", flush=True)
    mlp = [r["efficiency"] for r in results.values() if r["kind"] == "mlp"]
    min_eff = min(mlp) if mlp else None
    summary = summarise(results, breakdown, bounds)
    print(summary)
    record = {
        "benchmark": "bench_throughput",
        "ratio": min_eff,
        "ratio_means": "lowest efficiency over the MLPs: matrix-product time / "
        "training-step time, batch 64, 1 thread",
        "nets": results,
        "min_mlp_efficiency": min_eff,
        "target": TARGET,
        "target_reason": "the book's long runs are bound by these steps; at the target "
        "a step runs at >= 70 % of "
        "the speed of its own matrix products",
        "mlps_meeting_target": sorted(
            k for k, r in results.items() if r["meets_target"]
        ),
        "mlps_below_target": sorted(
            k for k, r in results.items() if r["meets_target"] is False
        ),
        "threads": torch.get_num_threads(),
        "matmul_gflops": gemm_gflops,
        "matmul_gflops_wall": gemm_gflops_wall,
        "matmul_gflops_means": "a plain 1000x1000 @ 1000x1000 float32 product, 1 "
        "thread, CPU time (wall: wall clock)",
        "yardstick_gflops": YARDSTICK_GFLOPS,
        "bounds": bounds,
        "summary": summary,
        "breakdown": breakdown,
        "optimizer_variants": opt_var,
        "cnn_note": "for the CNNs matmul_ms counts the im2col matrix products of the "
        "convolutions; oneDNN's "
        "convolutions can beat them, so an efficiency above 1 is possible there",
        "timing": "process CPU time per step (time.process_time; one thread, so the "
        "core's time whatever else "
        "runs), median of interleaved rounds; *_wall: the same with wall-clock time",
        "settings": {
            "rounds": args.rounds,
            "seconds_per_timing": args.seconds,
            "batch_size": BATCH,
            "threads": torch.get_num_threads(),
            "only": args.only,
            "profile": not args.no_profile,
            "data": "MNIST, pixels in [0, 1] (the cost does not depend on the values)",
        },
        "load_average": {"start": list(LOAD_AT_START), "end": list(os.getloadavg())},
        "command": " ".join(
            [
                Path(sys.argv[0]).as_posix() if sys.argv else "bench_throughput",
                *sys.argv[1:],
            ]
        ),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"
        ),
        **environment_info("cpu"),
    }
    target = write_json(
        results_dir(repo=ROOT) / "benchmarks" / "bench_throughput.json",
        _jsonable(record),
    )
    print(f"record written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
