"""Chapter 7's runs: the book's headline claims on MNIST and on Fashion-MNIST, as one
grid of run records, and the one rule that turns two gaps into a verdict.

Every run is one *piece* of one claim, on one data set, for one seed. A piece calls the
trainer of the chapter that made the claim, unchanged, with the data set in its
configuration:

* ``dfa`` (claim 1, Nøkland): :func:`helpers.dfa_table.train_table_run`, chapter 4's
  protocol (tanh MLP, sigmoid outputs with the binary cross-entropy summed over the
  batch, RMSprop 1e-4, batch 64), backprop and DFA, for the widths in ``dfa_archs``;
* ``local`` (claims 2 and 4, Mostafa et al. and Jiang et al.):
  :func:`helpers.local_table.train_local_run`, chapter 3's 5 x 1000 ReLU net trained
  greedily, simultaneously or by backprop (Adam 1e-3, batch 64), with its analysis
  (per-layer accuracy, alpha, Gaussian noise, FGSM);
* ``sparse`` (claim 3, Ahmad & Scheinkman):
  :func:`helpers.sparse_table.train_table_run`, Dense and Sparse CNN-1 at the paper
  code's configuration, noise test every epoch;
* ``blog`` (claim 3's second check): :func:`train_blog_pair`, the blog post's one-epoch
  dense and sparse CNNs (chapter 5).

Each claim keeps its source's learning rate. The *learning-rate check* (piece
``lrcheck``, Fashion-MNIST and the first seed only) asks whether that rate suits
Fashion-MNIST: every rule of every claim is trained at the source's rate divided and
multiplied by ``lrcheck_step`` for a short budget, on the training set minus ``n_val``
held-out training images, and scored on those (the trainers' optional ``n_val``); the
test set plays no part. :func:`lr_check` reads the runs, :func:`lr_tilt` says whether
the source's rate favours one rule of a pair.

The noise of claim 3 is the paper's: a fraction of each image's pixels set to a "white"
value on the [0, 1] scale before normalisation. The paper's value is MNIST's mean plus
two standard deviations (:data:`helpers.attacks.WHITE_PIXEL`); Fashion-MNIST's runs use
Fashion-MNIST's own mean plus two standard deviations (:data:`WHITE`), so that the
noise is as bright *relative to its data set* as the paper's.

:func:`gap_bootstrap` gives a difference of two means over seeds with a bootstrap
interval, and :func:`verdict` is the chapter's one rule from gaps to verdicts;
:func:`shown` is that rule's test on one data set's interval (applied to MNIST's too, to
say whether a claim held there in the same run); :func:`format_gap` and
:func:`verdict_text` write gaps and verdicts the same way in the chapter and on the
scoreboard.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from . import claims, dfa_table, local_table, runs, sparse, sparse_table
from .attacks import WHITE_PIXEL
from .data import DataError, load_mnist
from .params import ParameterError
from .spectrum import accuracy_standard_error
from .train import seed_everything, train_epoch

__all__ = [
    "EPOCH_SECONDS",
    "GAP_FORMATS",
    "TABLE",
    "UNTESTABLE",
    "VERDICTS",
    "WHITE",
    "blog_cnn",
    "choose_dataset",
    "format_gap",
    "gap_bootstrap",
    "held_out_acc",
    "lr_check",
    "lr_factors",
    "lr_tilt",
    "parse_arch",
    "shown",
    "train_blog_pair",
    "train_claim_run",
    "verdict",
    "verdict_text",
]

#: The noise's white value on the [0, 1] pixel scale, per data set: the training set's
#: mean pixel plus two standard deviations (MNIST: the paper's 0.1307 + 2 * 0.3081;
#: Fashion-MNIST: 0.2860 + 2 * 0.3530, measured on its 60,000 training images).
WHITE = {"mnist": WHITE_PIXEL, "fashion_mnist": 0.2860 + 2 * 0.3530}

#: The three verdicts, from best to worst.
VERDICTS = ("holds", "holds weaker", "does not hold")
#: The verdict of a claim the run leaves too little to judge on (e.g. too few good fits
#: of alpha for a rank correlation), the registry's phrase: no gap is measured, and
#: :func:`verdict_text` says why.
UNTESTABLE = claims.UNTESTABLE

#: The noise levels of the paper's noise score (0, 0.05, ..., 0.5).
NOISE_LEVELS = sparse_table.NOISE_LEVELS

#: The two rows of the paper's Table 1 that claim 3 compares.
SPARSE_ROWS = ("Dense CNN-1", "Sparse CNN-1")

_PIECES = ("dfa", "local", "sparse", "blog", "lrcheck")


def parse_arch(arch: str) -> list[int]:
    """``"3x400"`` -> ``[400, 400, 400]`` (hidden layers x units)."""
    try:
        depth, width = (int(v) for v in arch.lower().split("x"))
    except ValueError:
        raise ParameterError(
            f"arch={arch!r} is not 'layers x units', e.g. '1x800' or '3x400'"
        ) from None
    if depth < 1 or width < 1:
        raise ParameterError(f"arch={arch!r} needs at least one layer of one unit")
    return [width] * depth


# ------------------------------------------------------------- the blog post's pair
def blog_cnn(kind: str, k: int = 100, density: float = 0.5) -> nn.Sequential:
    """The blog post's CNN of chapter 5: conv 1->30 5x5, max-pool 2, ReLU (``"dense"``)
    or k-winners of ``k`` of the 4320 units without boosting (``"sparse"``), fc 4320 ->
    300, ReLU, fc 300 -> 10. The sparse net keeps ``density`` of the conv and fc1
    weights, from PyTorch's default initialisation with the masked weights zeroed.
    Weights and masks come from torch's global RNG (seed it first)."""
    if kind == "dense":
        layers = [
            nn.Conv2d(1, 30, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4320, 300),
        ]
    elif kind == "sparse":
        conv = sparse.SparseWeights2d(nn.Conv2d(1, 30, 5), density, init=None)
        fc1 = sparse.SparseWeights(nn.Linear(4320, 300), density, init=None)
        kw = {"boost_strength": 0.0, "k_inference_factor": 1.0}
        layers = [
            conv,
            nn.MaxPool2d(2),
            sparse.KWinners2d(30, k, **kw),
            nn.Flatten(),
            fc1,
        ]
    else:
        raise ParameterError(f"kind={kind!r} is not known; use 'dense' or 'sparse'")
    return nn.Sequential(*layers, nn.ReLU(), nn.Linear(300, 10))


@runs.trainer(numerics="1")
def train_blog_pair(config: dict, ctx: runs.RunContext) -> dict:
    """One net of the blog post's pair (``config["kind"]``), trained by SGD for
    ``epochs`` with the book's training epoch, then scored with the paper's noise
    (white value ``white_pixel`` on the [0, 1] scale) on the same noisy test images for
    every net of a seed. With ``n_val``: trained on the rest of the training set and
    scored on ``n_val`` held-out training images instead of the test set."""
    data = ctx.data(
        n_train=config["n_train"],
        n_test=config["n_test"],
        dataset=config["dataset"],
        n_val=config.get("n_val"),
    )
    seed_everything(config["seed"])
    net = blog_cnn(config["kind"], config["k"], config["density"]).to(ctx.device)
    opt = torch.optim.SGD(
        net.parameters(), lr=config["lr"], momentum=config["momentum"]
    )
    shuffle = torch.Generator().manual_seed(config["seed"])
    epoch = ctx.restore(model=net, optimizer=opt, shuffle=shuffle)
    step = sparse.sparse_step()
    while epoch < config["epochs"]:
        start = time.process_time()
        loss, acc = train_epoch(
            net,
            data.X_train,
            data.y_train,
            opt,
            config["batch_size"],
            step=step,
            generator=shuffle,
            bar=False,
        )
        epoch += 1
        ctx.log(
            epoch=epoch,
            train_loss=loss,
            train_acc=100 * acc,
            epoch_cpu_seconds=round(time.process_time() - start, 3),
        )
        ctx.checkpoint(epoch, model=net, optimizer=opt, shuffle=shuffle)
    correct = sparse.noise_correct(
        net,
        data,
        config["noise_levels"],
        where="unit",
        white=config["white_pixel"],
        seed=config["noise_seed"],
        batch_size=1000,
    )
    n = len(data.y_test)
    return {
        "acc": 100 * correct[0] / n,
        "noise_acc": [100 * c / n for c in correct],
        "noise_score": int(sum(correct)),
    }


# ---------------------------------------------------------------- the chapter's trainer
_TRAINERS = {
    "dfa": dfa_table.train_table_run,
    "local": local_table.train_local_run,
    "sparse": sparse_table.train_table_run,
    "blog": train_blog_pair,
}


_LABELS = ("piece", "data", "inner_numerics", "of", "lr_factor")


@runs.trainer(numerics="1")
def train_claim_run(config: dict, ctx: runs.RunContext) -> dict:
    """One piece x data set x seed: the claim's own trainer (see the module docstring;
    a learning-rate check, ``lrcheck``: the trainer of the piece it checks, ``of``) with
    the configuration minus this grid's labels (``piece``, ``data``,
    ``inner_numerics``, ``of``, ``lr_factor``)."""
    piece = config["piece"]
    trainer = config.get("of") if piece == "lrcheck" else piece
    if trainer not in _TRAINERS:
        raise ParameterError(
            f"piece={piece!r} (of={config.get('of')!r}) is not known; allowed: "
            f"{_PIECES}, a 'lrcheck' of one of the others"
        )
    inner = {k: v for k, v in config.items() if k not in _LABELS}
    return _TRAINERS[trainer](inner, ctx)


def _local_config(p: dict, network: str, seed: int, dataset: str, epochs: int) -> dict:
    q = dict(local_table.DEFAULTS)
    q.update(
        seeds=[seed],
        epochs=epochs,
        n_train=p["n_train"],
        n_test=p["n_test"],
        width=p["width"],
        probe_epochs=p["probe_epochs"],
        rank_range=p["rank_range"],
        n_pgd=p["n_pgd"],
        pgd_steps=p["pgd_steps"],
    )
    config = next(c for c in local_table._expand(q) if c["network"] == network)
    config["dataset"] = dataset
    return config


def _pieces(p: dict, seed: int, dataset: str, epochs: dict) -> list[dict]:
    """Every piece of every claim for one seed and data set, ``epochs[piece]`` epochs
    each (greedy local errors: per layer), as ``{"piece": ..., **configuration}``."""
    out = []
    for arch in p["dfa_archs"]:
        for rule in ("bp", "dfa"):
            c = dfa_table._expand(
                {
                    "seeds": [seed],
                    "table_archs": ["1x800"],
                    "table_rules": [rule],
                    "table_lr": p["dfa_lr"],
                    "batch_size": p["batch_size"],
                    "table_max_epochs": epochs["dfa"],
                    "n_train": p["n_train"],
                    "n_test": p["n_test"],
                }
            )[0]
            c.update(arch=arch, hidden=parse_arch(arch), dataset=dataset)
            out.append({"piece": "dfa", **c})
    for network in local_table.NETWORKS:
        c = _local_config(p, network, seed, dataset, epochs["local"])
        out.append({"piece": "local", **c})
    for row in SPARSE_ROWS:
        c = sparse_table.row_config(
            row,
            seed,
            epochs=epochs["sparse"],
            n_train=p["n_train"],
            n_test=p["n_test"],
        )
        c.update(dataset=dataset, white_pixel=WHITE[dataset])
        out.append({"piece": "sparse", **c})
    for kind in ("dense", "sparse"):
        c = {
            "kind": kind,
            "seed": seed,
            "k": 100,
            "density": 0.5,
            "lr": 0.01,
            "momentum": 0.5,
            "batch_size": 64,
            "epochs": epochs["blog"],
            "n_train": p["n_train"],
            "n_test": p["n_test"],
            "dataset": dataset,
            "white_pixel": WHITE[dataset],
            "noise_levels": list(NOISE_LEVELS),
            "noise_seed": seed,
        }
        out.append({"piece": "blog", **c})
    return out


def lr_factors(step: float) -> list[float]:
    """The learning-rate check's multiples of a source's rate: ``[1/step, 1, step]``."""
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 1:
        raise ParameterError(
            f"lrcheck_step={step!r} must be a number above 1 (the check tries each "
            "source's rate divided and multiplied by it), e.g. 3"
        )
    return [1 / step, 1.0, float(step)]


def _lrcheck(p: dict) -> list[dict]:
    """The learning-rate check: every piece on Fashion-MNIST for the first seed, at each
    of :func:`lr_factors` times its source's rate, trained on the training set minus
    ``n_val`` images and scored on those, for the check's short budget. Only what the
    check reads is kept of each trainer's tests: no noise levels beyond 0, no
    perturbations or attacks beyond the smallest PGD, one epoch of linear probes."""
    epochs = {
        "dfa": p["lrcheck_dfa_epochs"],
        "local": p["lrcheck_local_epochs"],
        "sparse": p["lrcheck_sparse_epochs"],
        "blog": p["blog_epochs"],
    }
    lean = {
        "local": {
            "gaussian_sigmas": [],
            "fgsm_eps": [],
            "pgd_steps": 1,
            "n_pgd": min(100, p["n_val"]),
            "probe_epochs": 1,
        },
        "sparse": {"noise_levels": [0.0]},
        "blog": {"noise_levels": [0.0]},
    }
    out = []
    for factor in lr_factors(p["lrcheck_step"]):
        for c in _pieces(p, p["seeds"][0], p["fashion_dataset"], epochs):
            piece = c.pop("piece")
            c.update(lean.get(piece, {}), lr=c["lr"] * factor, n_val=p["n_val"])
            if "track_layers" in c:
                c["track_layers"] = []
            label = {"piece": "lrcheck", "of": piece, "lr_factor": factor}
            out.append({**label, "data": "fashion", "inner_numerics": None, **c})
    return out


def _expand(p: dict) -> list[dict]:
    datasets = {"mnist": "mnist", "fashion": p["fashion_dataset"]}
    epochs = {
        "dfa": p["dfa_epochs"],
        "local": p["local_epochs"],
        "sparse": p["sparse_epochs"],
        "blog": p["blog_epochs"],
    }
    out = []
    for seed in p["seeds"]:
        for data, dataset in datasets.items():
            for c in _pieces(p, seed, dataset, epochs):
                piece = c.pop("piece")
                out.append({"piece": piece, "data": data, "inner_numerics": None, **c})
    out += _lrcheck(p)
    for c in out:
        c["inner_numerics"] = _TRAINERS[c.get("of", c["piece"])].numerics
    return out


def _name(c: dict) -> str:
    piece, tail = c["piece"], f"{c['data']}-seed{c['seed']}"
    if piece == "lrcheck":
        return f"lrcheck-x{c['lr_factor']:.3g}-" + _name({**c, "piece": c["of"]})
    if piece == "dfa":
        return f"dfa-{c['arch']}-{c['rule']}-{tail}"
    if piece == "local":
        return f"local-{c['network']}-{tail}"
    if piece == "sparse":
        return f"{sparse_table._SLUG[c['row']]}-{tail}"
    return f"blog-{c['kind']}-{tail}"


#: The blog post's pair, CPU seconds at 1 thread: one training epoch on 60,000 images
#: (dense, sparse), and the 11-level noise test on 10,000. Measured on Fashion-MNIST
#: on the book's shared 2-core machine (2026-12-01, nice 10, both cores busy with other
#: runs) as one epoch on 6,000 images times 10 (1.42 and 1.64 s); the noise test and
#: the data loading are what remains of the runs' 24.9 and 23.6 CPU-s.
EPOCH_SECONDS = {"blog-dense": 14.2, "blog-sparse": 16.4, "blog-noise": 21.0}

#: Measured CPU time over each trainer's own estimate (its ``_cost``), per piece, from
#: the same session: runs on Fashion-MNIST of 2 epochs (DFA: all 60,000 images, 1x800
#: and 3x400, backprop and DFA: 1.18, 1.17, 1.14, 0.67), of 1 epoch on 6,000 images
#: with the whole analysis on 2,000 test images (local errors: greedy, simultaneous,
#: backprop: 0.67, 0.67, 0.66), of 2 epochs on 6,000 images with the noise test on
#: 2,000 (Dense and Sparse CNN-1: 0.97, 0.85); the factor is their mean.
COST_FACTOR = {"dfa": 1.04, "local": 0.67, "sparse": 0.91}

#: The same for the learning-rate check's runs, measured on 2026-12-01 (same machine,
#: nice 10, both cores busy) on one run per piece at the source's rate, 50,000
#: training and 10,000 held-out images: DFA 1x800 backprop, 10 epochs, 28.5 CPU-s;
#: Sparse CNN-1, 2 epochs, 72.2; greedy local errors, 2 epochs per layer, 99.4. (The
#: local factor is near 1 here because the check's analysis is small: chapter 3's
#: estimate of its training is close; :data:`COST_FACTOR`'s 0.67 came from runs whose
#: cost was mostly their analysis.)
LRCHECK_COST_FACTOR = {"dfa": 1.14, "local": 0.99, "sparse": 1.06}


def _cost(c: dict, factors: dict = COST_FACTOR) -> float:
    """CPU seconds at 1 thread: the claim's own trainer's estimate times the factor
    measured on this machine (``factors``, :data:`COST_FACTOR`); the blog pair from its
    measured epoch. A learning-rate check costs what its piece costs on ``n_train -
    n_val`` training and ``n_val`` test images, times :data:`LRCHECK_COST_FACTOR`; the
    noise tests in proportion to their levels."""
    piece = c["piece"]
    if piece == "lrcheck":
        n_val = c["n_val"]
        c = {
            **c,
            "piece": c["of"],
            "n_train": (c["n_train"] or 60_000) - n_val,
            "n_test": n_val,
        }
        return _cost(c, LRCHECK_COST_FACTOR)
    if "noise_levels" in c:  # the costs below are those of the paper's 11 levels
        tests = len(c["noise_levels"]) / len(NOISE_LEVELS)
        c = {**c, "n_test": (c["n_test"] or 10_000) * tests}
    if piece == "dfa":
        return factors["dfa"] * dfa_table._cost(c)
    if piece == "local":
        return factors["local"] * local_table._cost(c)
    if piece == "sparse":
        return factors["sparse"] * sparse_table._cost(c)
    n, nt = (c["n_train"] or 60_000) / 60_000, (c["n_test"] or 10_000) / 10_000
    t = EPOCH_SECONDS[f"blog-{c['kind']}"]
    return c["epochs"] * n * t + nt * EPOCH_SECONDS["blog-noise"]


#: The chapter's parameters the grid reads, with their paper-profile values.
DEFAULTS = {
    "seeds": [0, 1, 2],
    "n_train": None,
    "n_test": None,
    "fashion_dataset": "fashion_mnist",
    "dfa_archs": ["1x800", "3x400"],
    "dfa_lr": 1e-4,
    "batch_size": 64,
    "dfa_epochs": 100,
    "local_epochs": 10,
    "width": 1000,
    "probe_epochs": 5,
    "rank_range": [10, 500],
    "n_pgd": 500,
    "pgd_steps": 20,
    "sparse_epochs": 5,
    "blog_epochs": 1,
    "n_val": 10_000,
    "lrcheck_step": 3.0,
    "lrcheck_dfa_epochs": 10,
    "lrcheck_local_epochs": 2,
    "lrcheck_sparse_epochs": 2,
}

#: The chapter's grid: every claim's pieces on MNIST and on Fashion-MNIST, every seed;
#: and the learning-rate check on Fashion-MNIST, first seed.
TABLE = runs.Grid(
    chapter="07_claims_on_fashion_mnist",
    trainer=train_claim_run,
    defaults=DEFAULTS,
    smoke={
        "seeds": [0, 1],
        "n_train": 300,
        "n_test": 200,
        "dfa_epochs": 2,
        "local_epochs": 1,
        "width": 48,
        "probe_epochs": 1,
        "rank_range": [2, 30],
        "n_pgd": 100,
        "pgd_steps": 2,
        "sparse_epochs": 1,
        "blog_epochs": 1,
        "n_val": 100,
        "lrcheck_dfa_epochs": 1,
        "lrcheck_local_epochs": 1,
        "lrcheck_sparse_epochs": 1,
    },
    expand=_expand,
    name=_name,
    cost=_cost,
)


# ------------------------------------------------------------------ gaps and verdicts
def gap_bootstrap(
    a, b, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> dict:
    """``mean(a) - mean(b)`` with a bootstrap percentile interval: the seeds of ``a``
    and of ``b`` resampled with replacement, each group on its own (the runs of two
    methods are independent). Returns ``{"gap", "ci95", "n_a", "n_b"}``.

    With 3 seeds per group a resample takes one of only 10 distinct means per group, so
    the interval is coarse, and it is narrower than the truth when the seeds' spread is
    underestimated; it says whether a gap is larger than what the seeds do, no more.
    """
    av, bv = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if len(av) < 1 or len(bv) < 1:
        raise ValueError("a and b need at least one value each (one per seed)")
    if not (np.all(np.isfinite(av)) and np.all(np.isfinite(bv))):
        raise ValueError("a and b must be finite numbers")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ParameterError(f"n_boot={n_boot!r} must be an integer >= 100")
    if not 0 < level < 1:
        raise ParameterError(f"level={level!r} must be in (0, 1), e.g. 0.95")
    rng = np.random.default_rng(seed)
    ma = av[rng.integers(0, len(av), size=(n_boot, len(av)))].mean(1)
    mb = bv[rng.integers(0, len(bv), size=(n_boot, len(bv)))].mean(1)
    lo, hi = np.quantile(ma - mb, [(1 - level) / 2, (1 + level) / 2])
    return {
        "gap": float(av.mean() - bv.mean()),
        "ci95": [float(lo), float(hi)],
        "n_a": len(av),
        "n_b": len(bv),
    }


def verdict(
    kind: str,
    mnist_gap: float,
    fashion_gap: float,
    fashion_ci: tuple[float, float],
    limit: float | None = None,
) -> dict:
    """The chapter's one rule: does a claim measured on MNIST hold on Fashion-MNIST?

    ``kind`` says what the claim asserts about its gap:

    * ``"advantage"``: the gap is positive (sparse minus dense noise score; a rank
      correlation). *does not hold* when Fashion-MNIST's interval reaches 0 or below
      (no advantage shown); *holds* when its interval reaches MNIST's gap (the advantage
      is not shown to be smaller than on MNIST); else *holds weaker*;
    * ``"close"``: the gap is small (a rule's test error minus backprop's, in points).
      *does not hold* when Fashion-MNIST's interval lies above ``limit`` (the largest
      gap still called close); else *holds* when its interval reaches down to MNIST's
      gap, or to 0 if that is negative (the gap is not shown to be larger than on
      MNIST); else *holds weaker*.

    Returns ``{"verdict", "ratio"}``, ``ratio`` being Fashion-MNIST's gap over MNIST's
    when MNIST's gap is positive, the claim's direction (how many times MNIST's gap
    Fashion-MNIST's is); None otherwise: a ratio to a gap of 0 or of the other sign
    says nothing (a DFA error 0.01 points *below* backprop's on MNIST and 0.7 above
    on Fashion-MNIST would give -70).
    """
    gaps = (mnist_gap, fashion_gap)
    if not all(math.isfinite(float(v)) for v in gaps):
        raise ValueError(f"the gaps must be finite numbers, got {gaps}")
    is_shown = shown(kind, fashion_ci, limit)  # it checks the interval, kind and limit
    lo, hi = (float(v) for v in fashion_ci)
    if not is_shown:
        out = "does not hold"
    elif (hi >= mnist_gap) if kind == "advantage" else (lo <= max(mnist_gap, 0.0)):
        out = "holds"
    else:
        out = "holds weaker"
    ratio = float(fashion_gap) / float(mnist_gap) if mnist_gap > 0 else None
    return {"verdict": out, "ratio": ratio}


def shown(kind: str, ci, limit: float | None = None) -> bool:
    """Whether one data set's interval of a gap is consistent with the claim, by the
    test :func:`verdict` applies to Fashion-MNIST: an ``"advantage"`` is shown when the
    interval lies above 0; a ``"close"`` gap when the interval reaches down to ``limit``
    or below. Applied to MNIST's interval (with MNIST's own limit), it says whether the
    claim held on MNIST in the same run, the starting point of the question "does it
    travel"."""
    lo, hi = (float(v) for v in ci)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"ci={ci!r} must be (low, high), finite, with low <= high")
    if kind == "advantage":
        return lo > 0
    if kind == "close":
        if limit is None or not math.isfinite(limit) or limit < 0:
            raise ParameterError(
                f"limit={limit!r}: a 'close' claim needs the largest gap still called "
                "close, a number >= 0"
            )
        return lo <= limit
    raise ParameterError(f"kind={kind!r} is not known; use 'advantage' or 'close'")


#: How a gap is written, per unit: test-error points and rank correlations to two
#: decimals; a noise score (correct test images summed over the noise levels) to the
#: image, with thousands separators.
GAP_FORMATS = {
    "test-error points": "+.2f",
    "noise score": "+,.0f",
    "Spearman ρ": "+.2f",
}


def format_gap(value: float | None, unit: str, ci=None) -> str:
    """A gap in its unit's format (:data:`GAP_FORMATS`), with its interval when given:
    ``format_gap(0.4321, "test-error points", (0.1, 0.8))`` is ``"+0.43 [+0.10,
    +0.80]"``; a gap that was not measured (None: a claim not testable in the run) is
    ``"—"``."""
    if unit not in GAP_FORMATS:
        raise ValueError(f"unit={unit!r} is not known; use one of {list(GAP_FORMATS)}")
    if value is None:
        return "—"
    fmt = GAP_FORMATS[unit]
    text = format(float(value), fmt)
    if ci is not None:
        lo, hi = ci
        text += f" [{float(lo):{fmt}}, {float(hi):{fmt}}]"
    return text


def verdict_text(claim: dict) -> str:
    """A claim's verdict as one phrase; *holds weaker* with the ratio of its gaps
    (Fashion-MNIST's over MNIST's); and, when the claim was not shown on MNIST in the
    same run (``claim["mnist_shown"]`` False, see :func:`shown`), that too, since then
    the question is not whether the claim travels. A claim the run could not test
    (:data:`UNTESTABLE`) gives its reason, ``claim["why"]``."""
    text = claim["verdict"]
    if text == UNTESTABLE:
        return f"{text} ({claim['why']})"
    if text == "holds weaker" and claim.get("ratio") is not None:
        text += f", ratio of the gaps {claim['ratio']:.2f}"
    if claim.get("mnist_shown") is False:
        either = " either" if claim["verdict"] == "does not hold" else ""
        text += f"; not shown on MNIST in this run{either}"
    return text


# ------------------------------------------------------------- the learning-rate check
def _rule(c: dict) -> str:
    of = c["of"]
    if of == "dfa":
        return f"{c['arch']} {'backprop' if c['rule'] == 'bp' else 'DFA'}"
    if of == "local":
        return c["network"]
    if of == "sparse":
        return c["row"]
    return f"blog post's {c['kind']} CNN"


def held_out_acc(record: dict) -> float:
    """A learning-rate check run's accuracy (%) on its held-out training images, at its
    last epoch: DFA/backprop ``1 - test_err_last``; local errors the network's output
    (greedy: the last layer through its readout); the CNNs the noise-free accuracy."""
    c, m = record["config"], record["metrics"]
    of = c["of"]
    if of == "dfa":
        return 100 * (1 - m["test_err_last"])
    if of == "local":
        return 100 * m["output_acc"]
    if of == "sparse":
        return m["acc_last"]
    return m["acc"]


def lr_check(records, z: float = 0.0) -> dict:
    """The learning-rate check, per claim piece and rule: ``{piece: {rule: {"acc":
    {factor: held-out accuracy (%)}, "lr": {factor: learning rate}, "best": factor,
    "gain": points, "se": points, "n_val": images}}}``, from the records of the
    ``lrcheck`` runs (others in ``records`` are ignored; a dict of records by name or a
    list).

    ``best`` is the factor (of the source's rate, 1) with the highest held-out accuracy,
    but another rate counts as better than the source's only when it beats it by more
    than ``z`` standard errors of the difference of two accuracies on the ``n_val``
    images, ``se = 100 sqrt(2 p (1 - p) / n_val)`` at the source's accuracy ``p``
    (``z = 0``: any gain; a tie goes to the source's rate); ``gain`` is the best's
    accuracy minus the source's (0 when the source's rate is best).
    """
    if isinstance(records, dict):
        records = records.values()
    if not (isinstance(z, (int, float)) and math.isfinite(z) and z >= 0):
        raise ParameterError(f"z={z!r} must be a number >= 0, e.g. 2")
    out: dict = {}
    for r in records:
        c = r["config"]
        if c.get("piece") != "lrcheck":
            continue
        entry = out.setdefault(c["of"], {}).setdefault(
            _rule(c), {"acc": {}, "lr": {}, "n_val": r["data"]["n_test"]}
        )
        entry["acc"][c["lr_factor"]] = held_out_acc(r)
        entry["lr"][c["lr_factor"]] = c["lr"]
    for piece, rules in out.items():
        for rule, e in rules.items():
            if 1.0 not in e["acc"]:
                raise ValueError(
                    f"{piece} {rule}: no run at the source's rate (factor 1) among "
                    f"{sorted(e['acc'])}"
                )
            p = e["acc"][1.0] / 100
            # the standard error of a difference of two such accuracies
            e["se"] = 100 * math.sqrt(2) * accuracy_standard_error(p, e["n_val"])
            better = {
                f: a
                for f, a in e["acc"].items()
                if f != 1.0 and a - e["acc"][1.0] > z * e["se"]
            }
            # the highest accuracy; on a tie, the rate nearer the source's
            e["best"] = max(
                better, key=lambda f: (better[f], -abs(math.log(f))), default=1.0
            )
            e["gain"] = e["acc"][e["best"]] - e["acc"][1.0]
    return out


def lr_tilt(check: dict, rule: str, baseline: str, z: float = 0.0) -> dict:
    """Does the source's rate favour one rule of a pair? From one piece of
    :func:`lr_check`: ``tilt`` is ``rule``'s gain minus ``baseline``'s, in points of
    held-out accuracy, i.e. how much more ``rule`` would gain than ``baseline`` if each
    took its best rate (positive: the comparison at the source's rate is tilted against
    ``rule``; negative: in its favour; 0: the source's rate is the best for both, or
    both gain the same).

    ``noise`` is ``z`` standard errors of that difference of two gains (each gain a
    difference of two accuracies, standard error ``se`` of :func:`lr_check`; the choice
    of the best of three rates is not corrected for). Returns ``{"tilt", "noise",
    "favours", "sentence"}``, ``favours`` being the rule the source's rate favours:
    None when the tilt is 0 or within the noise."""
    if not (isinstance(z, (int, float)) and math.isfinite(z) and z >= 0):
        raise ParameterError(f"z={z!r} must be a number >= 0, e.g. 2")
    a, b = check[rule], check[baseline]
    tilt = a["gain"] - b["gain"]
    noise = z * math.hypot(a["se"], b["se"])
    leans = None if tilt == 0 else baseline if tilt > 0 else rule
    favours = None if abs(tilt) <= noise else leans

    def where(e, name):
        if e["best"] == 1.0:
            return f"{name} does best at the source's rate ({e['lr'][1.0]:.2g})"
        return (
            f"{name} scores {e['gain']:.1f} points higher at "
            f"{e['lr'][e['best']]:.2g} than at the source's {e['lr'][1.0]:.2g}"
        )

    if a["best"] == 1.0 and b["best"] == 1.0:
        sentence = (
            f"the source's rate ({a['lr'][1.0]:.2g}) is the best of the three for both "
            f"{rule} and {baseline}"
        )
    else:
        sentence = f"{where(a, rule)}; {where(b, baseline)}"
        if leans is None:
            sentence += ": both gain the same, the source's rate favours neither"
        elif favours is None:
            sentence += (
                f": at the source's rate the comparison leans towards {leans} by "
                f"{abs(tilt):.1f} points of held-out accuracy, within the check's "
                f"noise ({noise:.1f} points, {z:g} standard errors of a difference of "
                "two gains), so it favours neither measurably"
            )
        else:
            sentence += (
                f": at the source's rate the comparison favours {favours} by about "
                f"{abs(tilt):.1f} points of held-out accuracy (the check's noise: "
                f"{noise:.1f})"
            )
    return {"tilt": tilt, "noise": noise, "favours": favours, "sentence": sentence}


# --------------------------------------------------------------------------- the data
def choose_dataset(
    profile: str, dataset: str = "fashion_mnist"
) -> tuple[str, str | None]:
    """The data set the chapter's second column can use: ``(dataset, None)`` when it can
    be loaded (``BOOK_DATA_DIR``, the cache, or a download). When it cannot, the smoke
    profile falls back to MNIST, returning ``("mnist", warning)``, so that every line of
    the chapter still runs; the paper profile stops with a :class:`DataError` that says
    where to put the files."""
    if dataset == "mnist":
        return dataset, None
    try:
        load_mnist(1, 1, dataset=dataset)
    except DataError as e:
        where = (
            "put Fashion-MNIST's four files (train-images-idx3-ubyte, ...) in "
            "<folder>/FashionMNIST/raw/ and set BOOK_DATA_DIR=<folder>, or run once "
            "with a network connection (torchvision downloads it into the cache)"
        )
        if profile != "smoke":
            raise DataError(f"{e} This chapter needs it: {where}.") from None
        return "mnist", (
            f"{dataset} is missing ({e}). The smoke profile runs MNIST in its place, "
            f"so every 'Fashion-MNIST' number below is MNIST's; to use it, {where}."
        )
    return dataset, None
