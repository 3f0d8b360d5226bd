"""Benchmark: one epoch of chapter 1's advanced model in helpers.numpy_nn against
PyTorch on the CPU.

The model is Dense(784->398) -> BatchNorm -> LeakyReLU(0) -> Dense(398->10) with a fused
softmax-cross-entropy, trained with Adam (lr 1e-3), on full MNIST with pixels in [0, 1].
Both frameworks start from the same weights and see the same batches, in the same dtype,
in this one process; their epochs alternate (NumPy, PyTorch, NumPy, ...) so that machine
noise hits both, and the ratio of the median epoch times is printed. An epoch is the
training loop only.

    BOOK_DATA_DIR=/path/to/data python benchmarks/bench_numpy_vs_torch.py [--epochs 3]
        [--dtype float32] [--batch-size 100] [--threads 1] [--n-train 60000]

``--threads 1`` (the default) gives both libraries one thread: on a shared machine, both
ran several times slower with two threads than with one while chapter 1 was written.

The timings are also written to ``results/benchmarks/bench_numpy_vs_torch.json`` (read
by ``tools/scoreboard.py`` for the performance page).

Not part of the test suite: it measures speed, and speed is only meaningful as a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import helpers
from helpers import numpy_nn as nn
from helpers.results import start_benchmark


def numpy_model(dtype, seed: int) -> nn.SequentialModel:
    rng = np.random.default_rng(seed)
    model = nn.SequentialModel(
        [
            nn.Dense(784, 398, "kaiming", rng=rng, dtype=dtype),
            nn.BatchNorm(398, dtype=dtype),
            nn.LeakyReLU(0.0),
            nn.Dense(398, 10, "kaiming", rng=rng, dtype=dtype),
            nn.Softmax(),
        ]
    )
    model.compile(nn.Adam(1e-3), nn.CategoricalCrossentropy())
    return model


def torch_model(
    np_model: nn.SequentialModel, dtype: torch.dtype
) -> torch.nn.Sequential:
    d1, bn, _, d2, _ = np_model.layers
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 398),
        torch.nn.BatchNorm1d(398),
        torch.nn.LeakyReLU(0.0),
        torch.nn.Linear(398, 10),
    ).to(dtype)
    with torch.no_grad():
        for lin, d in ((net[0], d1), (net[3], d2)):
            lin.weight.copy_(torch.from_numpy(d.W.value.T.copy()))
            lin.bias.copy_(torch.from_numpy(d.b.value))
        net[1].weight.copy_(torch.from_numpy(bn.gamma.value))
        net[1].bias.copy_(torch.from_numpy(bn.beta.value))
    return net


def main(argv=None) -> int:
    record = start_benchmark(__file__)  # notes the load average before any timing
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=3, help="timed epochs per framework"
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads of both libraries (OpenBLAS via threadpoolctl, "
        "torch.set_num_threads); 0 keeps each library's default",
    )
    parser.add_argument(
        "--n-train", type=int, default=None, help="training digits (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        # NumPy's BLAS, for the rest of the process
        threadpool_limits(limits=args.threads, user_api="blas")

    data = helpers.load_mnist(args.n_train, 100, normalize="unit", flatten=True)
    dtype_np = np.dtype(args.dtype)
    dtype_t = getattr(torch, args.dtype)
    X = data.X_train.numpy().astype(dtype_np)
    y = data.y_train.numpy()
    Y = np.eye(10, dtype=dtype_np)[y]
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)

    np_net = numpy_model(dtype_np, args.seed)
    t_net = torch_model(numpy_model(np.float64, args.seed), dtype_t)
    t_opt = torch.optim.Adam(t_net.parameters(), lr=1e-3)
    rng = np.random.default_rng(args.seed)
    times: dict[str, list[float]] = {"numpy": [], "pytorch": []}
    bs = args.batch_size
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(X))
        start = time.perf_counter()
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            np_net.train_on_batch(X[idx], Y[idx])
        times["numpy"].append(time.perf_counter() - start)

        order_t = torch.from_numpy(order)
        t_net.train()
        start = time.perf_counter()
        for i in range(0, len(order_t), bs):
            idx = order_t[i : i + bs]
            t_opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(t_net(X_t[idx]), y_t[idx]).backward()
            t_opt.step()
        times["pytorch"].append(time.perf_counter() - start)
        print(
            f"epoch {epoch}: numpy {times['numpy'][-1]:.2f} s, pytorch "
            f"{times['pytorch'][-1]:.2f} s",
            flush=True,
        )

    ratio = statistics.median(times["numpy"]) / statistics.median(times["pytorch"])
    print(
        f"{args.dtype}, batch {bs}, {len(X)} digits ({data.source}), "
        f"{torch.get_num_threads()} PyTorch threads, "
        "BLAS threads "
        f"{[i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']}"
    )
    print(
        f"median epoch: numpy {statistics.median(times['numpy']):.2f} s, "
        f"pytorch {statistics.median(times['pytorch']):.2f} s"
    )
    print(f"NumPy / PyTorch epoch-time ratio: {ratio:.2f}")
    record.save(
        ratio,
        {
            "median_epoch_s": {k: statistics.median(v) for k, v in times.items()},
            "epoch_s": times,
        },
        {
            "epochs": args.epochs,
            "dtype": args.dtype,
            "batch_size": bs,
            "threads": args.threads or "default",
            "n_train": len(X),
            "data_source": data.source,
            "seed": args.seed,
        },
        ratio_means="median epoch time, NumPy framework / PyTorch",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
