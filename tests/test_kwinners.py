"""Tests of helpers.kwinners: k-winners (1-D and 2-D), duty cycles, boosting,
diagnostics.

Tiny hand-made inputs with exact expected values, in the manner of nupic.torch's tests.
"""

import math

import pytest
import torch
from torch import nn

from helpers import kwinners
from helpers.kwinners import KWinners, KWinners2d

BACKENDS = ["numpy", "torch"]


def t(rows, **kw):
    return torch.tensor(rows, dtype=torch.float32, **kw)


# -------------------------------------------------------------- resolve_k / inference_k
def test_resolve_k_counts_fractions_and_errors():
    assert kwinners.resolve_k(3, 10) == 3
    assert kwinners.resolve_k(0, 10) == 0 and kwinners.resolve_k(10, 10) == 10
    assert (
        kwinners.resolve_k(0.25, 10) == 2
    )  # round(2.5) = 2: Python's round, halves to even
    assert (
        kwinners.resolve_k(0.35, 10) == 4
        and kwinners.resolve_k(1.0, 7) == 7
        and kwinners.resolve_k(0.0, 7) == 0
    )
    with pytest.raises(
        ValueError, match=r"k=11 is larger than the layer's n=10 units; use k <= n"
    ):
        kwinners.resolve_k(11, 10)
    with pytest.raises(ValueError, match=r"k=-1 is negative"):
        kwinners.resolve_k(-1, 10)
    with pytest.raises(
        ValueError, match=r"fraction .* must be in \[0, 1\]; pass an int"
    ):
        kwinners.resolve_k(1.5, 10)
    with pytest.raises(TypeError, match="must be an int"):
        kwinners.resolve_k(True, 10)
    with pytest.raises(TypeError):
        kwinners.resolve_k("3", 10)


def test_inference_k_rounds_halves_up_as_the_papers_python_2_and_caps_at_n():
    assert kwinners.inference_k(100, 1.5, 4320) == 150
    assert (
        kwinners.inference_k(3, 1.5, 10) == 5
    )  # Python 2's round(4.5) = 5 (Python 3's: 4)
    assert kwinners.inference_k(5, 1.5, 10) == 8  # round(7.5) = 8 in both
    assert kwinners.inference_k(8, 1.5, 10) == 10  # capped at n
    assert kwinners.inference_k(4, 1.0, 10) == 4
    # the paper's Table 1 layers: k = 400, 300, 50, 100 at factor 1.5
    assert [
        kwinners.inference_k(k, 1.5, n)
        for k, n in ((400, 4320), (300, 1024), (50, 150), (100, 700))
    ] == [600, 450, 75, 150]
    with pytest.raises(ValueError, match="k_inference_factor"):
        kwinners.inference_k(4, 0.0, 10)


def test_round_half_up_is_python_2s_round_for_non_negative_numbers():
    assert [
        kwinners.round_half_up(v)
        for v in (0.0, 0.5, 1.5, 2.5, 4.5, 4.4999999, 7.0, 7.51)
    ] == [0, 1, 2, 3, 5, 4, 7, 8]
    # floor(x + 0.5) would give 1 here: 0.49999999999999994 + 0.5 rounds up to 1.0 in
    # floating point
    assert kwinners.round_half_up(0.49999999999999994) == 0


# -------------------------------------------------------------------------- winner sets
@pytest.mark.parametrize("backend", BACKENDS)
def test_winner_mask_exact_sets(backend):
    x = t([[1.0, 5.0, 3.0, 2.0, -1.0], [-4.0, -2.0, -3.0, -1.0, -5.0]])
    got = kwinners.winner_mask(x, 2, backend=backend)
    assert got.tolist() == [
        [False, True, True, False, False],
        [False, True, False, True, False],
    ]
    got = kwinners.winner_mask(x, 3, backend=backend)
    assert got.tolist() == [
        [False, True, True, True, False],
        [False, True, True, True, False],
    ]


def test_kwinners_without_boosting_keeps_original_values_of_the_k_largest():
    x = t([[1.0, 5.0, 3.0, 2.0, -1.0], [0.5, -2.0, 7.0, 6.0, 6.5]])
    y = kwinners.kwinners(x, 2)
    assert torch.equal(y, t([[0.0, 5.0, 3.0, 0.0, 0.0], [0.0, 0.0, 7.0, 0.0, 6.5]]))
    # negative winners keep their (negative) values: k-winners is not a ReLU
    y = kwinners.kwinners(t([[-3.0, -1.0, -2.0]]), 1)
    assert torch.equal(y, t([[0.0, -1.0, 0.0]]))


def test_boosting_changes_the_winners_but_not_the_values():
    x = t([[1.0, 0.9, 0.8, 0.1]])
    duty = t([1.0, 1.0, 0.0, 0.0])
    boost = kwinners.boost_factors(
        duty, 0.5, 1.0
    )  # exp(-0.5) for units 0, 1; exp(0.5) for units 2, 3
    torch.testing.assert_close(boost, t([math.exp(-0.5)] * 2 + [math.exp(0.5)] * 2))
    # boosted: 0.607, 0.546, 1.319, 0.165 -> winners {2, 0}; unboosted winners are {0,
    # 1}
    assert torch.equal(kwinners.kwinners(x, 2), t([[1.0, 0.9, 0.0, 0.0]]))
    assert torch.equal(kwinners.kwinners(x, 2, boost), t([[1.0, 0.0, 0.8, 0.0]]))
    # strength 0: factors of exactly 1
    assert torch.equal(kwinners.boost_factors(duty, 0.5, 0.0), torch.ones(4))


def test_kwinners_module_boosts_with_its_duty_cycles():
    m = KWinners(4, 2, boost_strength=1.0, k_inference_factor=1.0)
    m.duty_cycles.copy_(t([1.0, 1.0, 0.0, 0.0]))
    x = t([[1.0, 0.9, 0.8, 0.1]])
    m.eval()
    assert torch.equal(
        m(x), t([[1.0, 0.0, 0.8, 0.0]])
    )  # eval mode boosts too, and changes no state
    assert m.samples_seen == 0 and torch.equal(m.duty_cycles, t([1.0, 1.0, 0.0, 0.0]))
    m.train()
    assert torch.equal(m(x), t([[1.0, 0.0, 0.8, 0.0]]))
    # one sample, so T = 1 and the duty cycles become this sample's wins
    assert torch.equal(m.duty_cycles, t([1.0, 0.0, 1.0, 0.0]))
    assert m.win_counts.tolist() == [1, 0, 1, 0]


def test_kwinners2d_global_and_local_exact_sets():
    x = t([[[[9.0, 1.0], [2.0, 3.0]], [[8.0, 7.0], [0.0, 0.5]]]])  # (1, 2, 2, 2)
    glob = kwinners.kwinners2d(x, 3)  # 9, 8, 7 win among all 8 units
    assert torch.equal(glob, t([[[[9.0, 0.0], [0.0, 0.0]], [[8.0, 7.0], [0.0, 0.0]]]]))
    loc = kwinners.kwinners2d(x, 1, local=True)  # the larger channel at every location
    assert torch.equal(loc, t([[[[9.0, 0.0], [2.0, 3.0]], [[0.0, 7.0], [0.0, 0.0]]]]))
    # per-channel boost: channel 0 damped by exp(-2) (9, 1, 2, 3 -> 1.22, 0.14, 0.27,
    # 0.41), so locally channel 1 wins where it was 8, 7 and 0.5, and channel 0 keeps
    # only the location where channel 1 is 0
    boost = t([math.exp(-2.0), 1.0])
    assert torch.equal(
        kwinners.kwinners2d(x, 1, boost, local=True),
        t([[[[0.0, 0.0], [2.0, 0.0]], [[8.0, 7.0], [0.0, 0.5]]]]),
    )
    # globally: boosted channel 0 is 9e^-2 = 1.22, 0.14, 0.27, 0.41 -> winners 8, 7 and
    # 9
    assert torch.equal(kwinners.kwinners2d(x, 3, boost), glob)
    assert torch.equal(
        kwinners.kwinners2d(x, 2, boost),
        t([[[[0.0, 0.0], [0.0, 0.0]], [[8.0, 7.0], [0.0, 0.0]]]]),
    )


def reference_kwinners(x, k, boost=None):
    """A slow, obviously correct reference: per sample, a stable sort of the boosted
    values.
    """
    scores = x if boost is None else x * boost
    y = torch.zeros_like(x)
    for i in range(len(x)):
        order = sorted(range(x.shape[1]), key=lambda j: (-float(scores[i, j]), j))[:k]
        y[i, order] = x[i, order]
    return y


@pytest.mark.parametrize("backend", BACKENDS)
def test_vectorised_winners_match_a_per_sample_reference_with_ties(backend):
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        n = int(torch.randint(1, 40, (1,), generator=g))
        k = int(torch.randint(0, n + 1, (1,), generator=g))
        x = torch.randint(
            -3, 4, (7, n), generator=g
        ).float()  # few distinct values: many ties
        boost = torch.rand(n, generator=g) + 0.5 if trial % 2 else None
        scores = x if boost is None else x * boost
        mask = kwinners.winner_mask(scores, k, backend=backend)
        assert torch.equal(x * mask, reference_kwinners(x, k, boost)), (trial, n, k)
        assert mask.sum(1).tolist() == [k] * 7


def test_backends_agree_on_every_dim_and_tie_rule():
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64):
        x = torch.randint(0, 5, (3, 6, 4, 5), generator=g).to(dtype)
        for dim in (0, 1, 2, 3, -1):
            for k in (0, 1, 3, x.shape[dim]):
                for ties in (True, False):
                    a = kwinners.winner_mask(
                        x, k, dim, break_ties=ties, backend="numpy"
                    )
                    b = kwinners.winner_mask(
                        x, k, dim, break_ties=ties, backend="torch"
                    )
                    assert torch.equal(a, b), (dtype, dim, k, ties)


# --------------------------------------------------------------------------- ties
@pytest.mark.parametrize("backend", BACKENDS)
def test_tie_rule_lowest_index_wins_or_all_tied_win(backend):
    x = t([[2.0, 2.0, 2.0, 1.0], [1.0, 3.0, 3.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    exact = kwinners.winner_mask(x, 2, backend=backend)
    assert exact.tolist() == [
        [True, True, False, False],
        [False, True, True, False],
        [True, True, False, False],
    ]
    every = kwinners.winner_mask(x, 2, break_ties=False, backend=backend)
    assert every.tolist() == [
        [True, True, True, False],
        [False, True, True, True],
        [True, True, True, True],
    ]


def test_tie_rule_in_2d_lowest_flat_index_or_lowest_channel():
    x = torch.ones(1, 3, 2, 2)
    glob = kwinners.kwinners2d(
        x, 5
    )  # flat order c0(4 units), c1 (4 units), c2: the first five win
    assert glob.flatten().tolist() == [1.0] * 5 + [0.0] * 7
    loc = kwinners.kwinners2d(x, 2, local=True)  # channels 0 and 1 at every location
    assert loc[0, :, 0, 0].tolist() == [1.0, 1.0, 0.0] and loc.sum() == 8
    m = KWinners2d(3, 5, boost_strength=0.0, break_ties=False)
    assert torch.equal(m(x), x)  # every unit is tied with the 5th value: all win


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "make",
    [
        lambda: (KWinners(6, 2, boost_strength=1.0), torch.randn(5, 6)),
        lambda: (KWinners2d(3, 7, boost_strength=1.0), torch.randn(4, 3, 3, 3)),
        lambda: (
            KWinners2d(3, 2, local=True, boost_strength=1.0),
            torch.randn(4, 3, 3, 3),
        ),
    ],
)
def test_gradient_reaches_the_winners_only(make):
    torch.manual_seed(0)
    m, x = make()
    m.duty_cycles.uniform_(0, 1)  # a boost that changes the winners
    x.requires_grad_(True)
    y = m(x)
    upstream = torch.randn_like(y)
    (y * upstream).sum().backward()
    winners = y.detach() != 0
    assert torch.equal(x.grad, torch.where(winners, upstream, torch.zeros(())))
    assert torch.equal(y.detach()[winners], x.detach()[winners])


def test_gradcheck_in_float64():
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: kwinners.kwinners(z, 3), (x,))


# ----------------------------------------------------------------- k = 0, k = n, errors
def test_k_zero_gives_zeros_and_k_n_the_identity():
    x = torch.randn(4, 5, requires_grad=True)
    m0 = KWinners(5, 0)
    y0 = m0(x)
    assert torch.equal(y0, torch.zeros(4, 5))
    y0.sum().backward()
    assert torch.equal(x.grad, torch.zeros(4, 5))
    assert torch.equal(m0.duty_cycles, torch.zeros(5))
    x.grad = None
    mn = KWinners(5, 5)
    yn = mn(x)
    assert torch.equal(yn, x.detach())
    yn.sum().backward()
    assert torch.equal(x.grad, torch.ones(4, 5))
    assert torch.equal(mn.duty_cycles, torch.ones(5))
    z = torch.randn(2, 3, 2, 2)
    assert torch.equal(KWinners2d(3, 0)(z), torch.zeros_like(z))
    assert torch.equal(KWinners2d(3, 12)(z), z) and torch.equal(
        KWinners2d(3, 3, local=True)(z), z
    )


def test_k_larger_than_n_and_bad_shapes_stop_with_clear_messages():
    with pytest.raises(
        ValueError, match=r"k=5 is larger than the layer's n=4 units; use k <= n"
    ):
        KWinners(4, 5)
    with pytest.raises(ValueError, match=r"k=-2 is negative"):
        KWinners(4, -2)
    with pytest.raises(
        ValueError, match=r"k=4 is larger than the layer's n=3 units; use k <= n"
    ):
        KWinners2d(3, 4, local=True)
    with pytest.raises(ValueError, match=r"k=-1 is negative"):
        KWinners2d(3, -1)
    glob = KWinners2d(3, 50)  # the spatial size is unknown until the first batch
    with pytest.raises(
        ValueError,
        match=r"k=50 is larger than the layer's n=48 units; use k <= n "
        r"\(n = C\*H\*W = 3\*4\*4\)",
    ):
        glob(torch.randn(2, 3, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"KWinners\(n=4\) expects input of shape \(batch, 4\); "
        r"got shape \(2, 5\)",
    ):
        KWinners(4, 2)(torch.randn(2, 5))
    with pytest.raises(
        ValueError,
        match=r"expects input of shape \(batch, 3, height, width\); "
        r"got shape \(2, 4, 5, 5\)",
    ):
        KWinners2d(3, 2)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 5\)"):
        KWinners2d(3, 2)(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="boost_strength"):
        KWinners(4, 2, boost_strength=-1.0)
    with pytest.raises(ValueError, match="boost_strength_factor"):
        KWinners(4, 2, boost_strength_factor=1.5)
    with pytest.raises(ValueError, match="duty_cycle_period"):
        KWinners(4, 2, duty_cycle_period=0)


# -------------------------------------------------------------------------- duty cycles
def test_duty_cycles_exact_after_one_and_more_steps():
    m = KWinners(5, 2, boost_strength=0.0, duty_cycle_period=6)
    x1 = t([[5, 4, 0, 0, 0], [5, 0, 4, 0, 0], [0, 5, 4, 0, 0], [5, 0, 0, 0, 4]])
    m(x1)  # wins per unit: [3, 2, 2, 0, 1] in 4 samples; T = 4
    torch.testing.assert_close(m.duty_cycles, t([3, 2, 2, 0, 1]) / 4, rtol=0, atol=1e-7)
    assert m.samples_seen == 4 and m.win_counts.tolist() == [3, 2, 2, 0, 1]
    x2 = t([[0, 0, 0, 5, 4], [0, 0, 0, 5, 4], [0, 0, 0, 5, 4], [0, 0, 0, 5, 4]])
    # wins [0, 0, 0, 4, 4]; 8 samples seen, T = min(6, 8) = 6: d = (d * (6 - 4) + w) / 6
    m(x2)
    expected = (t([3, 2, 2, 0, 1]) / 4 * 2 + t([0, 0, 0, 4, 4])) / 6
    torch.testing.assert_close(m.duty_cycles, expected, rtol=0, atol=1e-7)
    assert m.win_counts.tolist() == [3, 2, 2, 4, 5]
    # the pure function, including a batch larger than the period: d becomes the batch's
    # win rate
    d = kwinners.update_duty_cycles(
        torch.tensor([0.5]),
        torch.tensor([3.0]),
        batch_size=10,
        samples_seen=40,
        period=4,
    )
    assert torch.equal(d, torch.tensor([0.3]))
    d = kwinners.update_duty_cycles(
        torch.tensor([0.5]),
        torch.tensor([1.0]),
        batch_size=2,
        samples_seen=4,
        period=1000,
    )
    assert torch.equal(
        d, torch.tensor([0.5])
    )  # (0.5 * 2 + 1) / 4: the exact mean over 4 samples


def test_positive_wins_count_outputs_above_zero_not_winners():
    x = t(
        [[3, -1, -2, -5], [1, 2, 0, -1], [0, 0, 0, 0]]
    )  # winners (k = 2): {0, 1} in every row
    winners = KWinners(4, 2, boost_strength=0.0, wins="winners")
    positive = KWinners(4, 2, boost_strength=0.0, wins="positive")
    assert torch.equal(winners(x), positive(x))  # the outputs are the same ...
    # ... the duty cycles are not: -1 (row 0) and the zeros of row 2 won but are not > 0
    torch.testing.assert_close(winners.duty_cycles, t([3, 3, 0, 0]) / 3, rtol=0, atol=0)
    torch.testing.assert_close(
        positive.duty_cycles, t([2, 1, 0, 0]) / 3, rtol=0, atol=0
    )
    assert positive.win_counts.tolist() == [
        2,
        1,
        0,
        0,
    ] and winners.win_counts.tolist() == [3, 3, 0, 0]
    with pytest.raises(
        ValueError, match="wins='some' is not known; use 'winners'.*or 'positive'"
    ):
        KWinners(4, 2, wins="some")
    with pytest.raises(ValueError, match="wins="):
        KWinners2d(2, 2, wins=True)


def test_positive_wins_in_2d_count_locations_above_zero_per_channel():
    # channel 0: 2, -1, -3, -4; channel 1: -0.5, -2, -6, -7; the 3 global winners: 2,
    # -0.5, -1
    x = t([[[[2.0, -1.0], [-3.0, -4.0]], [[-0.5, -2.0], [-6.0, -7.0]]]])
    winners = KWinners2d(2, 3, boost_strength=0.0)
    positive = KWinners2d(2, 3, boost_strength=0.0, wins="positive")
    assert torch.equal(winners(x), positive(x))
    assert torch.equal(winners.duty_cycles, t([0.5, 0.25]))  # 2 of 4 locations, 1 of 4
    assert torch.equal(positive.duty_cycles, t([0.25, 0.0]))  # only the 2 is > 0
    assert positive.win_counts.tolist() == [1, 0]


def papers_duty_cycles(batches, period, two_d=False):
    """The duty-cycle update of the paper's k_winners modules, step by step, on given
    outputs.
    """
    d, seen = None, 0
    for out in batches:
        batch = out.shape[0]
        seen += batch
        p = min(period, seen)
        if two_d:
            counts = out.gt(0).sum(dim=(0, 2, 3), dtype=torch.float) / float(
                out.shape[2] * out.shape[3]
            )
        else:
            counts = out.gt(0).sum(dim=0, dtype=torch.float)
        d = torch.zeros_like(counts) if d is None else d
        d.mul_(p - batch)
        d.add_(counts)
        d.div_(p)
    return d


@pytest.mark.parametrize("two_d", [False, True])
def test_positive_wins_give_the_papers_duty_cycles_bit_for_bit(two_d):
    g = torch.Generator().manual_seed(0)
    m = (
        KWinners2d(3, 7, boost_strength=1.5, duty_cycle_period=10, wins="positive")
        if two_d
        else KWinners(6, 2, boost_strength=1.5, duty_cycle_period=10, wins="positive")
    )
    outputs = []
    for batch in (4, 4, 3, 4, 1, 4):  # the period is reached in the third batch
        x = (
            torch.randn(batch, 3, 3, 3, generator=g)
            if two_d
            else torch.randn(batch, 6, generator=g)
        )
        outputs.append(m(x - 0.3).detach())  # shifted: some winners are negative
        assert torch.equal(m.duty_cycles, papers_duty_cycles(outputs, 10, two_d)), len(
            outputs
        )
    assert m.samples_seen == 20


def test_eval_boost_with_the_papers_target_density_picks_the_same_winners():
    g = torch.Generator().manual_seed(0)
    m = KWinners(150, 50, boost_strength=1.5, k_inference_factor=1.5).eval()
    m.duty_cycles.copy_(torch.rand(150, generator=g) * 0.6)
    x = torch.randn(64, 150, generator=g)
    # the paper's code boosts in eval mode with k_inference / n as the target density
    boost = kwinners.boost_factors(m.duty_cycles, m.k_inference / m.n, m.boost_strength)
    assert torch.equal(m(x), kwinners.kwinners(x, m.k_inference, boost))


def test_duty_cycles_2d_are_per_channel_fractions_of_locations():
    x = t([[[[9.0, 1.0], [2.0, 3.0]], [[8.0, 7.0], [0.0, 0.5]]]])
    g = KWinners2d(2, 3, boost_strength=0.0)
    g(x)  # channel 0 wins 1 of 4 locations, channel 1 wins 2
    assert torch.equal(g.duty_cycles, t([0.25, 0.5])) and g.win_counts.tolist() == [
        1,
        2,
    ]
    loc = KWinners2d(2, 1, local=True, boost_strength=0.0)
    loc(torch.cat([x, x]))  # two samples; channel 0 wins 3 of 4 locations in each
    assert torch.equal(
        loc.duty_cycles, t([0.75, 0.25])
    ) and loc.win_counts.tolist() == [6, 2]
    # the target density of a global layer is k / (C*H*W): boost factors use it
    assert g.ks(2, 2) == (8, 3, 5)  # k_inference: 3 * 1.5 = 4.5, rounded up


def test_eval_mode_uses_the_inference_factor_and_changes_no_state():
    m = KWinners(10, 4, k_inference_factor=1.5, boost_strength=0.0)
    assert m.k == 4 and m.k_inference == 6
    x = torch.arange(20.0).reshape(2, 10) + 1
    m.train()
    assert (m(x) != 0).sum(1).tolist() == [4, 4]
    duty = m.duty_cycles.clone()
    m.eval()
    y = m(x)
    assert (y != 0).sum(1).tolist() == [6, 6] and torch.equal(y[0, 4:], x[0, 4:])
    assert torch.equal(m.duty_cycles, duty) and m.samples_seen == 2
    assert KWinners(10, 8, k_inference_factor=1.5).k_inference == 10
    g = KWinners2d(2, 3, k_inference_factor=1.5, boost_strength=0.0).eval()
    assert (g(torch.rand(3, 2, 4, 4) + 0.1) != 0).sum((1, 2, 3)).tolist() == [
        5,
        5,
        5,
    ]  # 4.5 rounds up


def test_fraction_k():
    m = KWinners(40, 0.1)
    assert m.k == 4 and m.k_inference == 6
    g = KWinners2d(3, 0.25)
    assert g.ks(4, 4) == (48, 12, 18)
    assert (g(torch.randn(2, 3, 4, 4)) != 0).sum((1, 2, 3)).tolist() == [12, 12]


# -------------------------------------------------------------------------- boost decay
def test_boost_strength_decays_once_per_call_on_every_module():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        KWinners2d(2, 4, boost_strength=1.5, boost_strength_factor=0.85),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 6),
        KWinners(6, 2, boost_strength=2.0, boost_strength_factor=0.5),
    )
    assert kwinners.update_boost_strength(net) == 2
    assert (
        net[1].boost_strength == pytest.approx(1.5 * 0.85)
        and net[4].boost_strength == 1.0
    )
    kwinners.update_boost_strength(net)
    assert (
        net[1].boost_strength == pytest.approx(1.5 * 0.85**2)
        and net[4].boost_strength == 0.5
    )
    assert kwinners.update_boost_strength(nn.Linear(2, 2)) == 0


# ------------------------------------------------------- a temporary k-inference factor
def test_inference_factor_changes_eval_winners_inside_the_block_only():
    net = nn.Sequential(
        KWinners(10, 2, k_inference_factor=1.0, boost_strength=0.0),
        nn.Identity(),
        KWinners(10, 4, k_inference_factor=1.0, boost_strength=0.0),
    ).eval()
    x = torch.arange(1.0, 11.0).repeat(3, 1)  # the largest values are the last units
    assert (net(x) != 0).sum(1).tolist() == [2, 2, 2]
    with kwinners.inference_factor(net, 2.0) as modules:
        assert modules == [net[0], net[2]]
        assert [m.k_inference for m in modules] == [4, 8] and [
            m.k for m in modules
        ] == [2, 4]
        assert (net[0](x) != 0).sum(1).tolist() == [4, 4, 4]
        assert torch.equal(
            net[0](x)[0], torch.tensor([0.0] * 6 + [7.0, 8.0, 9.0, 10.0])
        )
        assert (net(x) != 0).sum(1).tolist() == [
            4,
            4,
            4,
        ]  # 4 of the first layer's winners pass (8 allowed)
    assert [m.k_inference for m in modules] == [2, 4] and [
        m.k_inference_factor for m in modules
    ] == [1.0, 1.0]
    assert (net(x) != 0).sum(1).tolist() == [2, 2, 2]


def test_inference_factor_caps_at_n_covers_2d_and_restores_after_an_exception():
    m1, m2 = (
        KWinners(5, 2, k_inference_factor=1.5),
        KWinners2d(2, 3, k_inference_factor=1.0),
    )
    net = nn.ModuleList([m1, m2])
    with pytest.raises(RuntimeError, match="inside"):
        with kwinners.inference_factor(net, 10.0):
            assert m1.k_inference == 5  # k * 10 = 20, capped at n = 5
            assert m2.ks(2, 2) == (8, 3, 8)
            assert (m2.eval()(torch.randn(1, 2, 2, 2)) != 0).sum() == 8
            raise RuntimeError("inside")
    assert m1.k_inference == 3 and m1.k_inference_factor == 1.5
    assert m2.k_inference_factor == 1.0 and m2.ks(2, 2) == (8, 3, 3)


def test_inference_factor_keeps_a_hand_set_k_inference_and_refuses_bad_input():
    m = KWinners(10, 2)
    m.k_inference = 7  # set by hand, not from the factor
    with kwinners.inference_factor(m, 1.0):
        assert m.k_inference == 2
    assert m.k_inference == 7
    for bad in (0, -1.0, float("nan"), "2"):
        with pytest.raises(ValueError, match="k_inference_factor"):
            with kwinners.inference_factor(m, bad):
                pass
        assert m.k_inference == 7 and m.k_inference_factor == 1.5
    with pytest.raises(ValueError, match="no KWinners"):
        with kwinners.inference_factor(nn.Linear(3, 3), 1.5):
            pass


def test_state_dict_round_trip_keeps_duty_cycles_and_boost_strength():
    m = KWinners(5, 2)
    m(torch.randn(3, 5))
    m.update_boost_strength()
    m2 = KWinners(5, 2)
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.duty_cycles, m.duty_cycles) and torch.equal(
        m2.win_counts, m.win_counts
    )
    assert m2.boost_strength == m.boost_strength and m2.samples_seen == 3


# -------------------------------------------------------------------------- diagnostics
def test_duty_cycle_entropy_and_units_that_never_won():
    assert kwinners.binary_entropy(torch.tensor([0.0, 0.5, 1.0])).tolist() == [
        0.0,
        1.0,
        0.0,
    ]
    assert kwinners.duty_cycle_entropy(torch.tensor([0.5, 0.5, 0.0, 1.0])) == 2.0
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert kwinners.max_duty_cycle_entropy(4, 0.25) == pytest.approx(4 * h)
    m = KWinners(5, 2, boost_strength=0.0)
    m(t([[5, 4, 0, 0, 0], [5, 0, 4, 0, 0], [0, 5, 4, 0, 0], [5, 0, 0, 0, 4]]))
    assert kwinners.units_never_won(m) == 1  # unit 3
    expected = float(kwinners.binary_entropy(t([0.75, 0.5, 0.5, 0.0, 0.25])).sum())
    assert kwinners.duty_cycle_entropy(m) == pytest.approx(expected)
    with pytest.raises(TypeError):
        kwinners.units_never_won(nn.ReLU())
