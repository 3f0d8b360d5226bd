"""The sparse net of Ahmad & Scheinkman (2019), "How can we be so dense?", in one
namespace.

Its pieces live in their own modules: k-winners in :mod:`helpers.kwinners`, sparse
weights in :mod:`helpers.sparse_weights`, the pixel noise in :mod:`helpers.attacks` and
the noise score in :mod:`helpers.metrics`. This module gathers them for the chapters
that build the net, and adds its learning rule, :class:`SparseNet`::

    from helpers import sparse

    net = nn.Sequential(
        nn.Conv2d(1, 30, 5), nn.MaxPool2d(2),
        sparse.KWinners2d(30, k=100),  # 100 winners of 30*12*12 per digit
        nn.Flatten(),
        sparse.SparseWeights(nn.Linear(4320, 300), density=0.5),
        sparse.KWinners(300, k=50), nn.Linear(300, 10),
    )
    history = helpers.fit(net, data, opt, epochs, batch_size, step=sparse.SparseNet())
    score = sparse.noise_score(
        net, data
    )  # correct digits summed over noise 0, 0.05, ..., 0.5
"""

from __future__ import annotations

# the pieces, re-exported under their own names
# (``sparse.KWinners is kwinners.KWinners``)
from .attacks import WHITE_PIXEL, add_pixel_noise  # noqa: F401
from .kwinners import (  # noqa: F401
    WIN_RULES,
    KWinners,
    KWinners2d,
    binary_entropy,
    boost_factors,
    duty_cycle_entropy,
    inference_factor,
    inference_k,
    kwinners,
    kwinners2d,
    kwinners_modules,
    max_duty_cycle_entropy,
    resolve_k,
    round_half_up,
    units_never_won,
    update_boost_strength,
    update_duty_cycles,
    winner_mask,
)
from .metrics import noise_correct, noise_score  # noqa: F401
from .sparse_weights import (  # noqa: F401
    KeepSparse,
    SparseWeights,
    SparseWeights2d,
    fan_in_mask,
    floor_division_init_,
    rezero_after_step,
    rezero_sparse_weights,
    sparse_init_,
    sparse_step,
)


class SparseNet(KeepSparse):
    """The sparse net's learning rule: backprop that keeps the sparse weights sparse
    (:class:`~helpers.sparse_weights.KeepSparse`) and decays the boost strength of every
    k-winners module once per epoch, after the epoch's evaluation
    (:func:`~helpers.kwinners.update_boost_strength`)."""

    name = "sparse"

    def on_epoch_end(self, model, epoch, history) -> None:
        update_boost_strength(model)
