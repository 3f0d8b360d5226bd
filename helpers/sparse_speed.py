"""What a k-winners layer costs: timed against a ReLU in one process (chapter 5's speed
test).

The chapter and ``benchmarks/bench_kwinners.py`` both call these functions. Every timing
alternates the activations (ReLU, k-winners, ReLU, ...) in rounds, so that the machine's
load hits both, and reports the median round:

- :func:`time_rounds`: median seconds per call of each function, in alternating rounds;
- :func:`activation_ratio`: forward + backward of ``nn.ReLU()`` and of a k-winners
  module on the same tensor, in training mode with boosting on (boost factors, winner
  selection, masked output and gradient, duty-cycle update all count); the cases of
  :data:`CASES`;
- :func:`selection_times`: the winner selection alone, with each backend of
  :func:`helpers.kwinners.winner_mask` (NumPy's introselect, ``torch.topk``);
- :func:`network_ratio`: one SGD step of the blog post's whole CNN (:func:`source_cnn`)
  with either activation, which is what the activation's cost means for training time.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import nn

from . import kwinners

__all__ = [
    "CASES",
    "time_rounds",
    "activation_ratio",
    "selection_times",
    "source_cnn",
    "network_ratio",
]

#: name -> (input shape, a function that makes the k-winners module); batch 64, boost
#: strength 1.5: ``1d`` the source's layer (30 * 12 * 12 units); ``2d`` the same units
#: as feature maps (global); ``2d-local`` 3 of 30 channels per location.
CASES: dict[str, tuple[tuple[int, ...], Callable[[], nn.Module]]] = {
    "1d": ((64, 4320), lambda: kwinners.KWinners(4320, 100, boost_strength=1.5)),
    "2d": ((64, 30, 12, 12), lambda: kwinners.KWinners2d(30, 100, boost_strength=1.5)),
    "2d-local": (
        (64, 30, 12, 12),
        lambda: kwinners.KWinners2d(30, 3, local=True, boost_strength=1.5),
    ),
}


def time_rounds(
    fns: dict[str, Callable[[], object]], repeats: int, inner: int
) -> dict[str, float]:
    """Median seconds per call of every function, measured in alternating rounds.

    Each function is called 3 times first (warm-up); then ``repeats`` rounds, each
    calling every function ``inner`` times in turn. Returns
    ``{name: median over the rounds of (round time / inner)}``.
    """
    for fn in fns.values():  # warm-up
        for _ in range(3):
            fn()
    rounds = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            rounds[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(v) for name, v in rounds.items()}


def activation_ratio(
    shape, make_kwinners, repeats: int, inner: int, seed: int = 0
) -> dict[str, float]:
    """Forward + backward of ReLU and of a k-winners module on the same tensor of
    ``shape``.

    ``make_kwinners()`` returns the module (as in :data:`CASES`); its duty cycles are
    spread around the target density first, so that boosting changes the winners.
    Returns seconds per call (``relu_s``, ``kwinners_s``) and their ``ratio`` (k-winners
    / ReLU).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g).requires_grad_(True)
    upstream = torch.randn(*shape, generator=g)
    relu, kw = nn.ReLU(), make_kwinners().train()
    n, k = (kw.n, kw.k) if x.dim() == 2 else kw.ks(*shape[2:])[:2]
    # duty cycles spread around the target k/n, so that boosting changes the winners
    with torch.no_grad():
        kw.duty_cycles.uniform_(0, 2 * k / n, generator=g)

    def step(act):
        def run():
            x.grad = None
            act(x).backward(upstream)

        return run

    t = time_rounds({"relu": step(relu), "kwinners": step(kw)}, repeats, inner)
    return {
        "relu_s": t["relu"],
        "kwinners_s": t["kwinners"],
        "ratio": t["kwinners"] / t["relu"],
    }


def selection_times(repeats: int, inner: int) -> dict[str, float]:
    """Seconds per call of the winner selection alone (k = 100 of 4320, batch 64), per
    backend (``numpy``, ``torch``)."""
    x = torch.randn(64, 4320, generator=torch.Generator().manual_seed(1))
    return time_rounds(
        {
            b: (lambda b=b: kwinners.winner_mask(x, 100, backend=b))
            for b in ("numpy", "torch")
        },
        repeats,
        inner,
    )


def source_cnn(activation: str) -> nn.Sequential:
    """The blog post's CNN for (N, 1, 28, 28) inputs: conv 1->30 5x5, max-pool 2,
    ``activation`` ("relu", or k-winners with k = 100 of 4320 and no boosting), fc
    4320->300, ReLU, fc 300->10."""
    act = (
        nn.ReLU()
        if activation == "relu"
        else kwinners.KWinners2d(30, 100, boost_strength=0.0, k_inference_factor=1.0)
    )
    return nn.Sequential(
        nn.Conv2d(1, 30, 5),
        nn.MaxPool2d(2),
        act,
        nn.Flatten(),
        nn.Linear(4320, 300),
        nn.ReLU(),
        nn.Linear(300, 10),
    )


def network_ratio(repeats: int, inner: int) -> dict[str, float]:
    """One SGD step (forward, loss, backward, update; lr 0.01, momentum 0.5) of
    :func:`source_cnn` on a batch of 64, per activation: seconds per step (``relu_s``,
    ``kwinners_s``) and their ``ratio``."""
    g = torch.Generator().manual_seed(2)
    xb, yb = (
        torch.randn(64, 1, 28, 28, generator=g),
        torch.randint(0, 10, (64,), generator=g),
    )
    fns = {}
    for name in ("relu", "kwinners"):
        torch.manual_seed(0)
        net = source_cnn(name).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)

        def run(net=net, opt=opt):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()

        fns[name] = run
    t = time_rounds(fns, repeats, inner)
    return {
        "relu_s": t["relu"],
        "kwinners_s": t["kwinners"],
        "ratio": t["kwinners"] / t["relu"],
    }
