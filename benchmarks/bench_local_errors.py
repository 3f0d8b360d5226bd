"""Benchmark: epoch times of local-error training on full MNIST, and the paper run they
imply.

What is timed (wall clock, ``helpers.fit``'s ``epoch_seconds``, i.e. the training pass
of one epoch without the evaluation after it):

- ``greedy layer 1``: one epoch of layer 1 (784 -> 1000) trained alone through its fixed
  readout;
- ``greedy layer 2``: one epoch of layer 2 (1000 -> 1000) on layer 1's frozen output
  (the representation is computed once before the epoch, as
  :func:`helpers.local_errors.train_greedy` does; layers 3-5 have the same shape and
  cost);
- ``simultaneous``: one epoch of all five layers at once, each on its own local loss;
- ``backprop``: one epoch of end-to-end backprop through the same network.

Each case also reports the CPU seconds of the process (all its threads) per epoch: with
``--threads 1`` that is close to the wall time on an idle core, whatever the machine's
load. ``--n-train`` times a class-stratified subset (the cost of a step does not depend
on it) and scales the times to 60,000 digits.

From these it prints an estimate of the chapter's paper profile: ``greedy 30 + 4 x 30``
layer epochs, ``30`` simultaneous and ``30`` backprop epochs for seed 0, plus
``table_epochs`` of each method for every extra seed (``--extra-seeds``,
``--table-epochs``), plus the 10-epoch single layer run. Evaluation, spectra and attacks
are not included (they take a minute or two).

    BOOK_DATA_DIR=/path/to/data python benchmarks/bench_local_errors.py [--threads N]
    [--epochs 1] [--n-train 6000]

The times and estimates are also written to
``results/benchmarks/bench_local_errors.json``.

Not part of the test suite: the numbers depend on the machine and on its load (printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import helpers
from helpers import local_errors as le
from helpers.results import start_benchmark


def main(argv=None) -> int:
    record = start_benchmark(__file__)  # notes the load average before any timing
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice)",
    )
    ap.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="epochs timed per case (the median is used)",
    )
    ap.add_argument(
        "--paper-epochs",
        type=int,
        default=30,
        help="epochs per layer / method of seed 0",
    )
    ap.add_argument(
        "--extra-seeds",
        type=int,
        default=2,
        help="seeds beyond the first for the table",
    )
    ap.add_argument(
        "--table-epochs",
        type=int,
        default=30,
        help="epochs per layer / method for extra seeds",
    )
    ap.add_argument(
        "--cases",
        default="greedy,simultaneous,backprop",
        help="comma-separated cases to time",
    )
    ap.add_argument(
        "--n-train",
        type=int,
        default=None,
        help="training digits timed (default: all 60,000)",
    )
    ap.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="test digits evaluated after each epoch (default: all)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()}"
    )
    data = helpers.load_mnist(args.n_train, args.n_test, normalize="half", flatten=True)
    print(data)
    # per-epoch times are given for the full training set
    scale = 60_000 / len(data.y_train)
    cases = args.cases.split(",")
    t, cpu = {}, {}

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    def timed(name, train, pick):
        """Wall seconds per epoch (training passes only) and the process's CPU/wall
        ratio over the call.
        """
        helpers.seed_everything(0)
        w0, c0 = time.perf_counter(), time.process_time()
        hist = train()
        ratio = (time.process_time() - c0) / (time.perf_counter() - w0)
        for label, h in pick(hist):
            t[label] = scale * median(h["epoch_seconds"])
            cpu[label] = t[label] * ratio

    if "greedy" in cases:
        timed(
            "greedy",
            lambda: le.train_greedy(
                le.LocalErrorNet(), data, epochs=args.epochs, layers=[1, 2]
            ),
            lambda h: [("greedy layer 1", h[1]), ("greedy layer 2", h[2])],
        )
    if "simultaneous" in cases:
        timed(
            "simultaneous",
            lambda: le.train_simultaneous(le.LocalErrorNet(), data, epochs=args.epochs),
            lambda h: [("simultaneous", h)],
        )
    if "backprop" in cases:
        timed(
            "backprop",
            lambda: le.train_backprop(
                le.LocalErrorNet(trainable_head=True), data, epochs=args.epochs
            ),
            lambda h: [("backprop", h)],
        )
    for name in t:
        print(
            f"{name:>16}: {t[name]:7.1f} s wall, {cpu[name]:7.1f} s CPU per epoch of "
            "60,000 digits"
        )
    print(f"load average at the end {os.getloadavg()}")
    estimates = {}
    if len(t) == 4:
        E, T, k = args.paper_epochs, args.table_epochs, args.extra_seeds
        for what, d in (("wall, this load", t), ("CPU seconds", cpu)):
            greedy = d["greedy layer 1"] + 4 * d["greedy layer 2"]
            seed0 = (
                E * (greedy + d["simultaneous"] + d["backprop"])
                + 10 * d["greedy layer 1"]
            )
            extra = k * T * (greedy + d["simultaneous"] + d["backprop"])
            estimates[what] = {
                "seed0_s": seed0,
                "extra_seeds_s": extra,
                "total_s": seed0 + extra,
            }
            print(
                f"estimate ({what}): seed 0 ({E} epochs each) {seed0 / 60:.0f} min, "
                f"{k} extra seed(s) at {T} "
                f"epochs {extra / 60:.0f} min, total {(seed0 + extra) / 60:.0f} min of "
                "training"
            )
    record.save(
        None,
        {"epoch_wall_s": t, "epoch_cpu_s": cpu, "paper_run_estimate": estimates},
        {
            "threads": torch.get_num_threads(),
            "epochs": args.epochs,
            "paper_epochs": args.paper_epochs,
            "extra_seeds": args.extra_seeds,
            "table_epochs": args.table_epochs,
            "cases": cases,
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
        },
        ratio_means="no ratio: epoch times per case, scaled to 60,000 digits",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
