"""Benchmark: one training step with direct feedback alignment against one with
backprop.

For each architecture, the same tanh MLP (sigmoid outputs, binary cross-entropy,
RMSprop, batch 64) takes training steps on MNIST-sized random inputs (the data do not
change the cost) with backprop, DFA (:class:`helpers.dfa.DirectFeedbackAlignment`) and
FA (:class:`helpers.dfa.FeedbackAlignment`), in one process, alternating in rounds
(bp, dfa, fa, bp, dfa, fa ...) so that machine noise hits all of them. It prints the
median time per step of each rule and the ratios DFA / BP and FA / BP, and the implied
seconds per epoch of 60,000 digits.

    python benchmarks/bench_dfa_step.py [--arch 784-400-400-400-10 784-800-10] [--steps
    200] [--rounds 5]

The timings are also written to ``results/benchmarks/bench_dfa_step.json`` (headline
ratio: DFA / BP of the first architecture), read by ``tools/scoreboard.py`` for the
performance page.

Not part of the test suite: speed is only meaningful as a ratio measured in one process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

from helpers import dfa
from helpers.results import start_benchmark

BATCH = 64


def make_net(sizes: list[int], seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def time_steps(model, step, X, y, steps: int) -> float:
    """Seconds per step (mean over ``steps``) of zero-grad, ``step`` and an RMSprop
    update.
    """
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    n = len(X) // BATCH
    start = time.perf_counter()
    for i in range(steps):
        j = i % n
        xb, yb = X[j * BATCH : (j + 1) * BATCH], y[j * BATCH : (j + 1) * BATCH]
        opt.zero_grad(set_to_none=True)
        step(model, xb, yb)
        opt.step()
    return (time.perf_counter() - start) / steps


def bp_step(model, xb, yb):
    out = model(xb)
    loss = dfa.bce_sigmoid_loss(out, yb)
    loss.backward()
    return loss, out


def bench(sizes: list[int], steps: int, rounds: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(BATCH * 50, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (BATCH * 50,), generator=g)
    nets = {name: make_net(sizes) for name in ("bp", "dfa", "fa")}
    steps_of = {
        "bp": bp_step,
        "dfa": dfa.DirectFeedbackAlignment(nets["dfa"]),
        "fa": dfa.FeedbackAlignment(nets["fa"]),
    }
    for name in nets:  # warm-up
        time_steps(nets[name], steps_of[name], X, y, 20)
    times = {name: [] for name in nets}
    for _ in range(rounds):
        for name in nets:
            times[name].append(time_steps(nets[name], steps_of[name], X, y, steps))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    record = start_benchmark(__file__)  # notes the load average before any timing
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--arch",
        nargs="+",
        default=[
            "784-400-400-400-10",
            "784-240-240-240-240-240-240-240-10",
            "784-800-10",
            "784-800-800-10",
            "784-50-50-50-10",
        ],
    )
    ap.add_argument("--steps", type=int, default=200, help="steps per timing")
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="alternating rounds; the median is reported",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: PyTorch's choice)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
        f"{args.steps} steps x {args.rounds} rounds"
    )
    print(
        f"{'architecture':<36} {'BP ms':>7} {'DFA ms':>7} {'FA ms':>7} {'DFA/BP':>7} "
        f"{'FA/BP':>7} {'BP s/epoch':>10}"
    )
    per_arch = {}
    for arch in args.arch:
        sizes = [int(s) for s in arch.split("-")]
        t = bench(sizes, args.steps, args.rounds)
        per_arch[arch] = {
            "step_s_median": t,
            "dfa_vs_bp": t["dfa"] / t["bp"],
            "fa_vs_bp": t["fa"] / t["bp"],
        }
        print(
            f"{arch:<36} {t['bp'] * 1e3:7.2f} {t['dfa'] * 1e3:7.2f} "
            f"{t['fa'] * 1e3:7.2f} "
            f"{t['dfa'] / t['bp']:7.3f} {t['fa'] / t['bp']:7.3f} "
            f"{t['bp'] * 60000 / BATCH:10.1f}",
            flush=True,
        )
    record.save(
        per_arch[args.arch[0]]["dfa_vs_bp"],
        per_arch,
        {
            "arch": args.arch,
            "steps": args.steps,
            "rounds": args.rounds,
            "threads": torch.get_num_threads(),
            "batch_size": BATCH,
        },
        ratio_means="median step time, DFA / backprop, first architecture "
        f"({args.arch[0]})",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
