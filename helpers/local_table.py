"""Chapter 3's networks at the source's budget, as a grid of run records.

One run is one network type (``greedy``, ``simultaneous`` or ``backprop``) times one
seed, trained with :mod:`helpers.local_errors`' own training functions, called as the
chapter always called them:

* the network is ``LocalErrorNet(784, width, depth, readout_std)`` built right after
  ``helpers.seed_everything(seed)`` (backprop: ``trainable_head=True``); the mini-batch
  order comes from ``torch.Generator().manual_seed(seed)``; Adam, ``lr``,
  ``batch_size``;
* greedy: :func:`~helpers.local_errors.train_greedy` once per layer (``layers=[l]``),
  ``epochs`` epochs each, on the same generator; simultaneous and backprop:
  :func:`~helpers.local_errors.train_simultaneous` /
  :func:`~helpers.local_errors.train_backprop` for ``epochs`` epochs; backprop's hidden
  layers are then read by :func:`~helpers.local_errors.linear_probes` (``probe_epochs``
  epochs, generator seeded with ``seed``).

A run checkpoints after every epoch (greedy: every epoch of every layer) and resumes
from the last one, bit-identical on the CPU to an uninterrupted run. When training ends,
the run analyses its final network and stores everything the chapter needs, so that the
chapter can be rebuilt from the records alone, on a machine that never held the weights:

* ``curves`` (one entry per epoch; greedy: per layer-epoch, with ``layer``):
  ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` at full float precision,
  ``weight_change`` (the relative Frobenius change of the trained weight matrices over
  the epoch), ``epoch_seconds``; simultaneous adds every layer's test accuracy
  (``layer_test_acc``). Greedy also follows the spectrum of the layers in
  ``track_layers`` before their training (epoch 0) and after every epoch (``track_*``:
  alpha, R^2, participation ratio, total variance);
* ``metrics``: each layer's test accuracy (through its own readout; backprop: its linear
  probe) and the network's output accuracy; per layer, the spectrum of the test digits'
  representation (alpha, R^2, fitted ranks, participation ratio, dead units ... and the
  eigenvalues at log-spaced ranks, for figures); alpha of the representation of the
  perturbed digits at every Gaussian sigma and FGSM epsilon; the accuracy under Gaussian
  noise, FGSM and PGD; and the saturation of each layer's softmax on the training digits
  (:func:`~helpers.local_errors.layer_saturation`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from . import attacks, runs
from . import local_errors as le
from . import spectrum as sp
from .data import Data, stratified_indices
from .metrics import accuracy_under_attack, layer_accuracies
from .params import ParameterError
from .train import evaluate, seed_everything

__all__ = [
    "NETWORKS",
    "TABLE",
    "train_local_run",
    "analyse_network",
    "spectrum_fit",
    "log_ranks",
]

#: The network types of the grid, in the chapter's order.
NETWORKS = ("greedy", "simultaneous", "backprop")
#: Eigenvalues kept per spectrum in a record (at log-spaced ranks, for the figures).
SPECTRUM_POINTS = 120
#: Test digits attacked, and the generator seed of their noise, are the same for every
#: run of a seed; the subsets (spectrum, PGD) are the same for every run.
SUBSET_SEED = 0


# --------------------------------------------------------------------------- spectra
def log_ranks(n: int, points: int = SPECTRUM_POINTS) -> list[int]:
    """About ``points`` ranks from 1 to ``n``, evenly spaced on a log axis (all of them
    if n is small).
    """
    if n < 1:
        raise ValueError(f"n={n} must be a positive number of eigenvalues")
    if n <= points:
        return list(range(1, n + 1))
    return sorted({int(round(r)) for r in np.geomspace(1, n, num=points)})


def spectrum_fit(spectrum: np.ndarray, rank_range) -> dict:
    """alpha (least squares over ``rank_range``), its R^2 and ranks, the participation
    ratio, the positive eigenvalues and the total variance of one spectrum.

    When too few positive eigenvalues remain in the rank range the fit is not made:
    ``alpha``, ``r2`` and ``log_amplitude`` are None and ``fit_error`` says why.
    """
    out = {
        "participation_ratio": None,
        "n_positive": sp.available_ranks(spectrum),
        "total_variance": float(np.sum(spectrum)),
    }
    if out["total_variance"] > 0:
        out["participation_ratio"] = sp.participation_ratio(spectrum)
    try:
        fit = sp.fit_powerlaw_alpha(spectrum, tuple(rank_range))
    except ParameterError as e:
        return {
            **out,
            "alpha": None,
            "r2": None,
            "log_amplitude": None,
            "rank_lo": None,
            "rank_hi": None,
            "fit_error": str(e),
        }
    return {
        **out,
        "alpha": fit.alpha,
        "r2": fit.r2,
        "log_amplitude": fit.log_amplitude,
        "rank_lo": fit.rank_lo,
        "rank_hi": fit.rank_hi,
        "fit_error": None,
    }


def _layer_spectrum(net: le.LocalErrorNet, X: torch.Tensor, layer: int) -> np.ndarray:
    return sp.eigenspectrum(le.layer_representations(net, X, layer))


# --------------------------------------------------------------------------- analysis
def _batched(
    fn, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """``fn(X_batch, y_batch)`` over batches of rows, concatenated (attacks batch by
    batch).
    """
    return torch.cat(
        [
            fn(X[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(X), batch_size)
        ]
    )


def _layer_models(
    net: le.LocalErrorNet, probes: list[nn.Module] | None
) -> dict[int, nn.Module]:
    """Each layer as a classifier: the network cut after it, with its readout (or its
    probe).
    """
    layers = range(1, net.depth + 1)
    if probes is None:
        return {l: net.truncated(l) for l in layers}
    return {l: net.truncated(l, probes[l - 1]) for l in layers}


def analyse_network(
    net: le.LocalErrorNet,
    data: Data,
    config: dict,
    probes: list[nn.Module] | None = None,
) -> dict:
    """Everything the chapter reads of one trained network (see the module docstring).

    ``config`` gives ``seed``, ``rank_range``, ``n_spectrum``, ``gaussian_sigmas``,
    ``fgsm_eps``, ``pgd_eps``, ``pgd_steps`` and ``n_pgd``; ``probes`` are backprop's
    linear probes (None: each layer is read through its own readout).
    """
    seed = config["seed"]
    X, y = data.X_test, data.y_test
    y_np = y.cpu().numpy()
    n_test = len(y)
    for name in ("n_spectrum", "n_pgd"):
        if config[name] is not None and config[name] > n_test:
            raise ParameterError(
                f"{name}={config[name]} is more than the {n_test} test digits: lower "
                "it "
                f"(or use more test digits, n_test)"
            )
    spec_idx = (
        np.arange(n_test)
        if config["n_spectrum"] is None
        else stratified_indices(y_np, config["n_spectrum"], seed=SUBSET_SEED)
    )
    spec_idx = torch.as_tensor(spec_idx, device=X.device)
    X_spec = X[spec_idx]
    rank_range = config["rank_range"]
    models = _layer_models(net, probes)
    layers = list(models)
    out: dict = {"n_test": n_test, "n_spectrum_digits": len(spec_idx)}

    # the clean test digits: accuracy, spectrum, eigenvalues for the figures
    spectra, eig_values = {}, {}
    ranks = log_ranks(max(net.widths))
    for layer, H in le.layer_representations(net, X_spec).items():
        s = sp.eigenspectrum(H)
        spectra[layer] = {
            **spectrum_fit(s, rank_range),
            "dead_units": int((H.max(0).values <= 0).sum()),
            "n_components_95": sp.n_components(s) if s.sum() > 0 else None,
        }
        eig_values[layer] = [float(s[r - 1]) if r <= len(s) else None for r in ranks]
        del H
    out["spectra"] = spectra
    out["eigenvalues"] = {"ranks": ranks, "layers": eig_values}

    # perturbed test digits: accuracy, and alpha of each layer's representation of them
    robust = {
        l: {"clean": evaluate(models[l], X, y)[1], "gaussian": {}, "fgsm": {}}
        for l in layers
    }
    perturbed = {l: {"gaussian": {}, "fgsm": {}} for l in layers}
    for sigma in config["gaussian_sigmas"]:
        # one draw per sigma, the same for every layer
        gen = torch.Generator().manual_seed(seed)
        X_noisy = _batched(
            lambda xb, yb: attacks.gaussian_noise(xb, data, sigma, generator=gen), X, y
        )
        for l in layers:
            robust[l]["gaussian"][sigma] = evaluate(models[l], X_noisy, y)[1]
            perturbed[l]["gaussian"][sigma] = spectrum_fit(
                _layer_spectrum(net, X_noisy[spec_idx], l), rank_range
            )
        del X_noisy
    for eps in config["fgsm_eps"]:
        for l in layers:
            X_adv = _batched(
                lambda xb, yb: attacks.fgsm(models[l], xb, yb, data, eps), X, y
            )
            robust[l]["fgsm"][eps] = evaluate(models[l], X_adv, y)[1]
            perturbed[l]["fgsm"][eps] = spectrum_fit(
                _layer_spectrum(net, X_adv[spec_idx], l), rank_range
            )
            del X_adv
    pgd_idx = torch.as_tensor(
        stratified_indices(y_np, config["n_pgd"], seed=SUBSET_SEED), device=X.device
    )
    X_pgd, y_pgd = X[pgd_idx], y[pgd_idx]
    for l in layers:
        r = robust[l]
        r["pgd_subset_clean"] = evaluate(models[l], X_pgd, y_pgd)[1]
        r["pgd_subset_fgsm"] = accuracy_under_attack(
            models[l], X_pgd, y_pgd, "fgsm", data, eps=config["pgd_eps"]
        )
        r["pgd"] = accuracy_under_attack(
            models[l],
            X_pgd,
            y_pgd,
            "pgd",
            data,
            eps=config["pgd_eps"],
            steps=config["pgd_steps"],
            generator=torch.Generator().manual_seed(seed),
        )
    out["robustness"] = robust
    out["alpha_perturbed"] = perturbed
    out["n_pgd_digits"] = len(pgd_idx)
    return out


# --------------------------------------------------------------------------- training
class _OptimizerSlot:
    """The optimiser of the layer (or network) being trained, as one checkpointable
    object.

    ``ctx.restore`` puts the saved state in ``saved``; the training function's
    ``on_optimizer`` hook hands each new optimiser to :meth:`attach`, which loads
    ``saved`` into it when the run resumes in the middle of that optimiser's training
    (greedy: of that layer).
    """

    def __init__(self):
        self.optimizer: torch.optim.Optimizer | None = None
        self.saved: dict | None = None

    def state_dict(self) -> dict:
        return self.optimizer.state_dict() if self.optimizer is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.saved = state

    def attach(self, optimizer: torch.optim.Optimizer, resume: bool) -> None:
        self.optimizer = optimizer
        if resume:
            if not self.saved:
                raise RuntimeError(
                    "resuming in the middle of a training, but the checkpoint holds no "
                    "optimiser state: delete the checkpoint and train the run again"
                )
            optimizer.load_state_dict(self.saved)
        self.saved = None


def _relative_change(weight: torch.Tensor, before: torch.Tensor) -> float:
    norm = float(before.norm())
    return float((weight.detach() - before).norm()) / norm if norm > 0 else float("nan")


def _track(
    ctx: runs.RunContext,
    net: le.LocalErrorNet,
    X_spec: torch.Tensor,
    layer: int,
    epoch: int,
    rank_range,
) -> None:
    f = spectrum_fit(_layer_spectrum(net, X_spec, layer), rank_range)
    ctx.log(
        track_layer=layer,
        track_epoch=epoch,
        track_alpha=f["alpha"],
        track_r2=f["r2"],
        track_participation_ratio=f["participation_ratio"],
        track_total_variance=f["total_variance"],
    )


def _epoch_values(hist: dict) -> dict:
    return {
        k: hist[k][-1] for k in ("train_loss", "train_acc", "test_loss", "test_acc")
    }


def _train_greedy(net, data, config, ctx, X_spec) -> None:
    E, seed = config["epochs"], config["seed"]
    gen = torch.Generator().manual_seed(seed)
    slot = _OptimizerSlot()
    done = ctx.restore(net=net, optimizer=slot, batches=gen)
    first, first_skip = done // E + 1, done % E
    track = set(config["track_layers"])
    for layer in range(first, net.depth + 1):
        skip = first_skip if layer == first else 0
        if layer in track and skip == 0:
            _track(ctx, net, X_spec, layer, 0, config["rank_range"])
        weight = net.blocks[layer - 1][0].weight
        before = [weight.detach().clone()]

        def on_epoch_end(l, epoch, hist, weight=weight, before=before):
            change = _relative_change(weight, before[0])
            before[0] = weight.detach().clone()
            ctx.log(
                layer=l,
                epoch=epoch,
                **_epoch_values(hist),
                weight_change=change,
                epoch_seconds=hist["epoch_seconds"][-1],
            )
            if l in track:
                _track(ctx, net, X_spec, l, epoch, config["rank_range"])
            ctx.checkpoint((l - 1) * E + epoch, net=net, optimizer=slot, batches=gen)

        le.train_greedy(
            net,
            data,
            epochs=E,
            lr=config["lr"],
            batch_size=config["batch_size"],
            layers=[layer],
            generator=gen,
            on_epoch_end=on_epoch_end,
            start_epoch=skip,
            on_optimizer=lambda l, opt, resume=skip > 0: slot.attach(opt, resume),
        )


def _train_whole(net, data, config, ctx) -> None:
    """Simultaneous or backprop: one optimiser for the whole network, checkpoints every
    epoch.
    """
    E, seed = config["epochs"], config["seed"]
    gen = torch.Generator().manual_seed(seed)
    slot = _OptimizerSlot()
    done = ctx.restore(net=net, optimizer=slot, batches=gen)
    if done >= E:
        return
    weights = [block[0].weight for block in net.blocks]
    before = [w.detach().clone() for w in weights]

    def on_epoch_end(epoch, hist):
        changes = [_relative_change(w, b) for w, b in zip(weights, before)]
        before[:] = [w.detach().clone() for w in weights]
        extra = (
            {"layer_test_acc": hist["layer_test_acc"][-1]}
            if "layer_test_acc" in hist
            else {}
        )
        ctx.log(
            epoch=epoch,
            **_epoch_values(hist),
            **extra,
            weight_change=changes,
            epoch_seconds=hist["epoch_seconds"][-1],
        )
        ctx.checkpoint(epoch, net=net, optimizer=slot, batches=gen)

    train = (
        le.train_simultaneous
        if config["network"] == "simultaneous"
        else le.train_backprop
    )
    train(
        net,
        data,
        epochs=E,
        lr=config["lr"],
        batch_size=config["batch_size"],
        generator=gen,
        on_epoch_end=on_epoch_end,
        start_epoch=done,
        on_optimizer=lambda opt: slot.attach(opt, done > 0),
    )


@runs.trainer(numerics="1")
def train_local_run(config: dict, ctx: runs.RunContext) -> dict:
    """One network type x seed of chapter 3 (see the module docstring): train, then
    analyse.

    An optional ``n_val`` in the configuration trains on the rest of the training set
    and puts ``n_val`` held-out training images in the test set's place
    (:meth:`helpers.runs.RunContext.data`): every test metric is then a held-out one.
    """
    network, seed = config["network"], config["seed"]
    if network not in NETWORKS:
        raise ParameterError(f"network={network!r} is not known; allowed: {NETWORKS}")
    data = ctx.data(
        n_train=config["n_train"],
        n_test=config["n_test"],
        normalize=tuple(config["norm"]),
        flatten=True,
        dataset=config["dataset"],
        n_val=config.get("n_val"),
    )
    seed_everything(seed)
    net = le.LocalErrorNet(
        784,
        config["width"],
        config["depth"],
        readout_std=config["readout_std"],
        trainable_head=network == "backprop",
    ).to(ctx.device)
    wall = time.perf_counter()
    if network == "greedy":
        spec_n = config["n_spectrum"]
        spec_idx = (
            np.arange(len(data.y_test))
            if spec_n is None
            else stratified_indices(data.y_test.cpu().numpy(), spec_n, seed=SUBSET_SEED)
        )
        X_spec = data.X_test[torch.as_tensor(spec_idx, device=data.X_test.device)]
        _train_greedy(net, data, config, ctx, X_spec)
    else:
        _train_whole(net, data, config, ctx)
    train_s = time.perf_counter() - wall
    probes, metrics = None, {"network": network, "seed": seed}
    if network == "backprop":
        probes, probe_acc = le.linear_probes(
            net,
            data,
            epochs=config["probe_epochs"],
            lr=config["lr"],
            batch_size=config["batch_size"],
            generator=torch.Generator().manual_seed(seed),
        )
        metrics["layer_acc"] = probe_acc
        metrics["output_acc"] = evaluate(net, data.X_test, data.y_test)[1]
        metrics["output_saturation"] = _head_saturation(net, data)
    else:
        metrics["layer_acc"] = layer_accuracies(net, data.X_test, data.y_test)
        metrics["output_acc"] = metrics["layer_acc"][-1]
        metrics["saturation"] = {
            l: s
            for l, s in enumerate(
                le.layer_saturation(net, data.X_train, data.y_train), start=1
            )
        }
    wall = time.perf_counter()
    metrics.update(analyse_network(net, data, config, probes))
    metrics["train_seconds_this_session"] = round(train_s, 2)
    metrics["analysis_seconds"] = round(time.perf_counter() - wall, 2)
    return metrics


def _head_saturation(net: le.LocalErrorNet, data: Data) -> dict:
    """:func:`~helpers.local_errors.layer_saturation` of the network's output (its
    trained head).
    """
    return le.layer_saturation(net, data.X_train, data.y_train)[-1]


# --------------------------------------------------------------------------- the grid
def _expand(p: dict) -> list[dict]:
    out = []
    for network in NETWORKS:
        for seed in p["seeds"]:
            c = {
                "network": network,
                "seed": seed,
                "width": p["width"],
                "depth": p["depth"],
                "readout_std": p["readout_std"],
                "epochs": p["epochs"],
                "lr": p["lr"],
                "batch_size": p["batch_size"],
                "n_train": p["n_train"],
                "n_test": p["n_test"],
                "norm": p["norm"],
                "dataset": "mnist",
                "rank_range": p["rank_range"],
                "n_spectrum": p["n_spectrum"],
                "gaussian_sigmas": p["gaussian_sigmas"],
                "fgsm_eps": p["fgsm_eps"],
                "pgd_eps": p["pgd_eps"],
                "pgd_steps": p["pgd_steps"],
                "n_pgd": p["n_pgd"],
            }
            if network == "greedy":
                c["track_layers"] = p["track_layers"]
            if network == "backprop":
                c["probe_epochs"] = p["probe_epochs"]
            out.append(c)
    return out


#: Effective speeds at 1 thread, FLOP/s, from CPU times measured on the book's 2-core
#: CPU (2026-12, shared with other runs): one epoch of greedy layer 1 took 6.4 CPU-s
#: (2.0e11 FLOP in mini-batches of 64), one of greedy layer 2 with its frozen input 8.4
#: CPU-s (3.7e11 FLOP), one simultaneous epoch 33 CPU-s (1.3e12 FLOP), one backprop
#: epoch 36 CPU-s (1.7e12 FLOP); one spectrum of 10,000 digits x 1000 units 0.77 CPU-s;
#: the analysis of one network (45 spectra, FGSM and PGD on batches of 1,000 digits) 124
#: CPU-s.
TRAIN_FLOPS_PER_S = 36e9
SPECTRUM_FLOPS_PER_S = 35e9
ATTACK_FLOPS_PER_S = 70e9


def _cost(c: dict) -> float:
    """CPU seconds at 1 thread: training FLOPs at :data:`TRAIN_FLOPS_PER_S`, spectra at
    :data:`SPECTRUM_FLOPS_PER_S`, attacks and the other reads at
    :data:`ATTACK_FLOPS_PER_S`."""
    n, nt = c["n_train"] or 60_000, c["n_test"] or 10_000
    ns = c["n_spectrum"] or nt
    w, d, E = c["width"], c["depth"], c["epochs"]
    sizes = [784] + [w] * d
    # multiply-adds per digit and layer
    m = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    if c["network"] == "greedy":
        train = E * sum(4 * n * ml + 2 * nt * ml for ml in m) + sum(
            2 * (n + nt) * sum(m[:l]) for l in range(d)
        )
    elif c["network"] == "simultaneous":
        train = E * (4 * n * sum(m) + 4 * nt * sum(m))
    else:
        train = E * (4 * n * sum(m) + 2 * n * sum(m[1:]) + 2 * nt * sum(m)) + 2 * (
            n + nt
        ) * sum(m)
    spectrum = 2 * ns * w * w + 10 * w**3
    n_spectra = d * (1 + len(c["gaussian_sigmas"]) + len(c["fgsm_eps"]))
    n_spectra += (E + 1) * len(c.get("track_layers", []))
    reads = sum(
        (len(c["fgsm_eps"]) * 6 * nt + (c["pgd_steps"] + 1) * 6 * c["n_pgd"])
        * sum(m[:l])
        for l in range(1, d + 1)
    ) + 2 * n * sum(m)
    return (
        train / TRAIN_FLOPS_PER_S
        + reads / ATTACK_FLOPS_PER_S
        + n_spectra * spectrum / SPECTRUM_FLOPS_PER_S
    )


#: The chapter's parameters the grid reads, with their paper-profile values.
DEFAULTS = {
    "seeds": [0, 1, 2],
    "epochs": 30,
    "n_train": None,
    "n_test": None,
    "norm": [0.5, 0.5],
    "width": 1000,
    "depth": 5,
    "readout_std": 0.01,
    "batch_size": 64,
    "lr": 1e-3,
    "probe_epochs": 5,
    "rank_range": [10, 500],
    "n_spectrum": None,
    "track_layers": [1, 3, 5],
    "gaussian_sigmas": [0.1, 0.3, 0.5, 0.8],
    "fgsm_eps": [0.01, 0.02, 0.05, 0.1],
    "pgd_eps": 0.05,
    "pgd_steps": 20,
    "n_pgd": 2000,
}

#: The chapter's grid: every network type x seed at the source's budget.
TABLE = runs.Grid(
    chapter="03_local_errors",
    trainer=train_local_run,
    defaults=DEFAULTS,
    smoke={
        "n_train": 500,
        "n_test": 300,
        "width": 48,
        "epochs": 2,
        "seeds": [0, 1, 2],
        "probe_epochs": 1,
        "rank_range": [2, 30],
        "n_pgd": 100,
        "pgd_steps": 2,
    },
    expand=_expand,
    name=lambda c: f"{c['network']}-seed{c['seed']}",
    cost=_cost,
)
