"""Benchmark: k-winners forward + backward against a ReLU on the same tensor.

The timed code is :mod:`helpers.sparse_speed` (chapter 5 runs the same functions).
What is timed, per case, in training mode: ``y = act(x); y.backward(g)`` with ``act``
either ``nn.ReLU()`` or a ``helpers.sparse`` k-winners module (boosting on, so the boost
factors, the winner selection, the masked output, the masked gradient and the duty-cycle
update all count). Cases:

- ``1d``: ``KWinners(4320, k=100)`` on (64, 4320): the source's layer (30*12*12 units,
  batch 64);
- ``2d``: ``KWinners2d(30, k=100)`` on (64, 30, 12, 12): the same units as feature maps
  (global);
- ``2d-local``: ``KWinners2d(30, k=3, local=True)`` on (64, 30, 12, 12): 3 of 30
  channels per location.

Both activations run in this one process, alternating (ReLU, k-winners, ReLU, ...) for
``--repeats`` rounds of ``--inner`` calls each, so that machine noise hits both; the
ratio of the median round times is printed (the issue's target: k-winners <= 1.5x ReLU).
For context it also prints (a) the winner selection alone with each backend of
:func:`helpers.sparse.winner_mask` (NumPy's introselect vs ``torch.topk``), and (b) one
SGD step of the source's whole CNN (conv 1->30 5x5, max-pool 2, ReLU | k-winners k=100
of 4320, fc 4320->300, fc 300->10, batch 64), which is what the activation's cost means
for training time.

    python benchmarks/bench_kwinners.py [--repeats 7] [--inner 30] [--threads N]

The timings are also written to ``results/benchmarks/bench_kwinners.json`` (headline
ratio: the ``2d`` case), read by ``tools/scoreboard.py`` for the performance page.

Not part of the test suite: it measures speed, and speed is only meaningful as a ratio.
"""

from __future__ import annotations

import argparse
import sys

import torch

from helpers.results import start_benchmark

# chapter 5's speed test
from helpers.sparse_speed import CASES, activation_ratio, network_ratio, selection_times

TARGET = 1.5


def main() -> int:
    record = start_benchmark(__file__)  # notes the load average before any timing
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="alternating rounds per activation"
    )
    parser.add_argument("--inner", type=int, default=30, help="calls per round")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads"
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} "
        f"rounds x {args.inner} calls, "
        f"median round; forward + backward in training mode (boost strength 1.5)"
    )
    results = {}
    for name in args.cases:
        shape, make = CASES[name]
        r = activation_ratio(shape, make, args.repeats, args.inner)
        results[name] = r
        print(
            f"{name:9s} {str(shape):17s} ReLU {r['relu_s'] * 1e3:7.3f} ms   k-winners "
            f"{r['kwinners_s'] * 1e3:7.3f} ms   "
            f"RATIO k-winners / ReLU: {r['ratio']:5.2f}x  (target <= {TARGET}x: "
            f"{'met' if r['ratio'] <= TARGET else 'MISSED'})",
            flush=True,
        )
    sel = selection_times(args.repeats, args.inner)
    print(
        f"winner selection alone, (64, 4320), k=100: numpy {sel['numpy'] * 1e3:.3f} "
        "ms, torch.topk "
        f"{sel['torch'] * 1e3:.3f} ms ({sel['torch'] / sel['numpy']:.1f}x)"
    )
    net = network_ratio(args.repeats, max(1, args.inner // 3))
    print(
        f"source CNN, one SGD step of batch 64: ReLU {net['relu_s'] * 1e3:.2f} ms, "
        "k-winners "
        f"{net['kwinners_s'] * 1e3:.2f} ms, RATIO {net['ratio']:.2f}x"
    )
    headline = "2d" if "2d" in results else args.cases[0]
    record.save(
        results[headline]["ratio"],
        {"activation": results, "selection_s": sel, "source_cnn_sgd_step": net},
        {
            "repeats": args.repeats,
            "inner": args.inner,
            "threads": torch.get_num_threads(),
            "cases": args.cases,
            "headline_case": headline,
            "boost_strength": 1.5,
        },
        ratio_means="median forward + backward time, k-winners / ReLU, "
        f"case {headline}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
