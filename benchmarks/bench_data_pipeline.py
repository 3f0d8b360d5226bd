"""Benchmark: the textbook torchvision data path against the helpers' tensor path.

One training epoch of a 784-1000-10 ReLU MLP (Adam, lr 1e-3, batch 64) on full MNIST,
fed (a) by ``torchvision.datasets.MNIST`` + ``ToTensor`` / ``Normalize`` +
``DataLoader`` (``num_workers=0``, shuffled), and (b) by ``helpers.load_mnist`` +
``helpers.batches``. Both run in this one process, from the same initial weights,
alternating (a, b, a, b ...) so that machine noise hits both; the ratio of median epoch
times is printed, with the test accuracy after each epoch so that "same accuracy within
noise" can be checked.

    BOOK_DATA_DIR=/path/to/data python benchmarks/bench_data_pipeline.py [--repeats 3]
    [--threads 2] [--adam fused]

Both paths use the same optimizer (by default PyTorch's fused Adam, which performs the
same update as the default one with fewer kernel launches): the difference between them
is the data path alone.

The ratio, timings and settings are also written to
``results/benchmarks/bench_data_pipeline.json`` (read by ``tools/scoreboard.py`` for the
performance page).

Not part of the test suite: it measures speed, and speed is only meaningful as a ratio.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch
from torch import nn

import helpers
from helpers.data import NORMALIZATIONS
from helpers.results import start_benchmark

BATCH = 64


def make_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10)
    )


def make_adam(params, fused: bool) -> torch.optim.Optimizer:
    """Adam, lr 1e-3; ``fused``: PyTorch's single-kernel implementation (same update,
    less overhead).
    """
    return (
        torch.optim.Adam(params, lr=1e-3, fused=True)
        if fused
        else torch.optim.Adam(params, lr=1e-3)
    )


def train_one_epoch(net, batches_iter, fused: bool):
    opt = make_adam(net.parameters(), fused)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for xb, yb in batches_iter:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xb), yb).backward()
        opt.step()
    return time.perf_counter() - start


def textbook_loader(root: str):
    import torchvision
    from torchvision import transforms

    mean, std = NORMALIZATIONS["standard"]
    tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((mean,), (std,))]
    )
    train = torchvision.datasets.MNIST(root, train=True, download=False, transform=tf)
    return torch.utils.data.DataLoader(
        train, batch_size=BATCH, shuffle=True, num_workers=0
    )


def main() -> int:
    record = start_benchmark(__file__)  # notes the load average before any timing
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="epochs per path (alternating)"
    )
    parser.add_argument(
        "--adam",
        choices=("fused", "default"),
        default="fused",
        help="Adam implementation, the same for both paths (fused: less optimizer "
        "overhead, so the epoch time is closer to what the data path and the model "
        "cost)",
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = os.environ.get("BOOK_DATA_DIR")
    if not root:
        print(
            "set BOOK_DATA_DIR to a folder with MNIST/raw/*-ubyte (torchvision's "
            "layout): the textbook "
            "path reads the same files",
            file=sys.stderr,
        )
        return 2
    # the tensor path's one-off load, timed separately below
    data = helpers.load_mnist(root=root)
    t0 = time.perf_counter()
    helpers.load_mnist(root=root)
    load_s = time.perf_counter() - t0
    loader = textbook_loader(root)
    init = make_net(0)

    times = {"textbook": [], "tensor": []}
    accs = {"textbook": [], "tensor": []}
    for r in range(args.repeats):
        for path in ("textbook", "tensor"):
            net = copy.deepcopy(init)
            torch.manual_seed(100 + r)
            if path == "textbook":
                seconds = train_one_epoch(net, loader, args.adam == "fused")
            else:
                seconds = train_one_epoch(
                    net,
                    helpers.batches(data.X_train, data.y_train, BATCH),
                    args.adam == "fused",
                )
            _, acc = helpers.evaluate(net, data.X_test, data.y_test)
            times[path].append(seconds)
            accs[path].append(acc)
            print(
                f"repeat {r + 1}/{args.repeats}  {path:8s}  epoch {seconds:6.2f} s  "
                f"test acc {acc:.4f}",
                flush=True,
            )

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["textbook"] / med["tensor"]
    print()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
        f"784-1000-10 ReLU MLP, Adam ({args.adam})"
    )
    print(f"tensor path one-off load of MNIST into memory: {load_s:.2f} s")
    for k in times:
        print(
            f"{k:8s}: median epoch {med[k]:.2f} s; test acc "
            f"{statistics.mean(accs[k]):.4f} "
            f"(range {min(accs[k]):.4f}-{max(accs[k]):.4f})"
        )
    print(f"RATIO textbook / tensor epoch time: {ratio:.2f}x  (target >= 4x)")
    record.save(
        ratio,
        {
            "median_epoch_s": med,
            "epoch_s": times,
            "test_acc": accs,
            "tensor_one_off_load_s": load_s,
        },
        {
            "repeats": args.repeats,
            "adam": args.adam,
            "threads": torch.get_num_threads(),
            "batch_size": BATCH,
            "model": "784-1000-10 ReLU MLP",
            "n_train": len(data.y_train),
        },
        ratio_means="median epoch time, torchvision DataLoader path / "
        "helpers tensor path",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
