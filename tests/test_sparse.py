"""Tests of helpers.sparse: k-winners (1-D and 2-D), duty cycles, boosting, sparse weights, pixel noise.

Tiny hand-made inputs with exact expected values, in the manner of nupic.torch's tests.
"""

import math

import pytest
import torch
from torch import nn

import helpers
from helpers import sparse
from helpers.sparse import KWinners, KWinners2d, SparseWeights, SparseWeights2d

BACKENDS = ["numpy", "torch"]


def t(rows, **kw):
    return torch.tensor(rows, dtype=torch.float32, **kw)


# --------------------------------------------------------------------------- resolve_k / inference_k
def test_resolve_k_counts_fractions_and_errors():
    assert sparse.resolve_k(3, 10) == 3
    assert sparse.resolve_k(0, 10) == 0 and sparse.resolve_k(10, 10) == 10
    assert sparse.resolve_k(0.25, 10) == 2  # round(2.5) = 2: Python's round, halves to even
    assert sparse.resolve_k(0.35, 10) == 4 and sparse.resolve_k(1.0, 7) == 7 and sparse.resolve_k(0.0, 7) == 0
    with pytest.raises(ValueError, match=r"k=11 is larger than the layer's n=10 units; use k <= n"):
        sparse.resolve_k(11, 10)
    with pytest.raises(ValueError, match=r"k=-1 is negative"):
        sparse.resolve_k(-1, 10)
    with pytest.raises(ValueError, match=r"fraction .* must be in \[0, 1\]; pass an int"):
        sparse.resolve_k(1.5, 10)
    with pytest.raises(TypeError, match="must be an int"):
        sparse.resolve_k(True, 10)
    with pytest.raises(TypeError):
        sparse.resolve_k("3", 10)


def test_inference_k_rounds_halves_up_as_the_papers_python_2_and_caps_at_n():
    assert sparse.inference_k(100, 1.5, 4320) == 150
    assert sparse.inference_k(3, 1.5, 10) == 5  # Python 2's round(4.5) = 5 (Python 3's: 4)
    assert sparse.inference_k(5, 1.5, 10) == 8  # round(7.5) = 8 in both
    assert sparse.inference_k(8, 1.5, 10) == 10  # capped at n
    assert sparse.inference_k(4, 1.0, 10) == 4
    # the paper's Table 1 layers: k = 400, 300, 50, 100 at factor 1.5
    assert [sparse.inference_k(k, 1.5, n) for k, n in ((400, 4320), (300, 1024), (50, 150), (100, 700))] == \
        [600, 450, 75, 150]
    with pytest.raises(ValueError, match="k_inference_factor"):
        sparse.inference_k(4, 0.0, 10)


def test_round_half_up_is_python_2s_round_for_non_negative_numbers():
    assert [sparse.round_half_up(v) for v in (0.0, 0.5, 1.5, 2.5, 4.5, 4.4999999, 7.0, 7.51)] == \
        [0, 1, 2, 3, 5, 4, 7, 8]
    # floor(x + 0.5) would give 1 here: 0.49999999999999994 + 0.5 rounds up to 1.0 in floating point
    assert sparse.round_half_up(0.49999999999999994) == 0


# --------------------------------------------------------------------------- winner sets
@pytest.mark.parametrize("backend", BACKENDS)
def test_winner_mask_exact_sets(backend):
    x = t([[1.0, 5.0, 3.0, 2.0, -1.0], [-4.0, -2.0, -3.0, -1.0, -5.0]])
    got = sparse.winner_mask(x, 2, backend=backend)
    assert got.tolist() == [[False, True, True, False, False], [False, True, False, True, False]]
    got = sparse.winner_mask(x, 3, backend=backend)
    assert got.tolist() == [[False, True, True, True, False], [False, True, True, True, False]]


def test_kwinners_without_boosting_keeps_original_values_of_the_k_largest():
    x = t([[1.0, 5.0, 3.0, 2.0, -1.0], [0.5, -2.0, 7.0, 6.0, 6.5]])
    y = sparse.kwinners(x, 2)
    assert torch.equal(y, t([[0.0, 5.0, 3.0, 0.0, 0.0], [0.0, 0.0, 7.0, 0.0, 6.5]]))
    # negative winners keep their (negative) values: k-winners is not a ReLU
    y = sparse.kwinners(t([[-3.0, -1.0, -2.0]]), 1)
    assert torch.equal(y, t([[0.0, -1.0, 0.0]]))


def test_boosting_changes_the_winners_but_not_the_values():
    x = t([[1.0, 0.9, 0.8, 0.1]])
    duty = t([1.0, 1.0, 0.0, 0.0])
    boost = sparse.boost_factors(duty, 0.5, 1.0)  # exp(-0.5) for units 0, 1; exp(0.5) for units 2, 3
    torch.testing.assert_close(boost, t([math.exp(-0.5)] * 2 + [math.exp(0.5)] * 2))
    # boosted: 0.607, 0.546, 1.319, 0.165 -> winners {2, 0}; unboosted winners are {0, 1}
    assert torch.equal(sparse.kwinners(x, 2), t([[1.0, 0.9, 0.0, 0.0]]))
    assert torch.equal(sparse.kwinners(x, 2, boost), t([[1.0, 0.0, 0.8, 0.0]]))
    # strength 0: factors of exactly 1
    assert torch.equal(sparse.boost_factors(duty, 0.5, 0.0), torch.ones(4))


def test_kwinners_module_boosts_with_its_duty_cycles():
    m = KWinners(4, 2, boost_strength=1.0, k_inference_factor=1.0)
    m.duty_cycles.copy_(t([1.0, 1.0, 0.0, 0.0]))
    x = t([[1.0, 0.9, 0.8, 0.1]])
    m.eval()
    assert torch.equal(m(x), t([[1.0, 0.0, 0.8, 0.0]]))  # eval mode boosts too, and changes no state
    assert m.samples_seen == 0 and torch.equal(m.duty_cycles, t([1.0, 1.0, 0.0, 0.0]))
    m.train()
    assert torch.equal(m(x), t([[1.0, 0.0, 0.8, 0.0]]))
    # one sample, so T = 1 and the duty cycles become this sample's wins
    assert torch.equal(m.duty_cycles, t([1.0, 0.0, 1.0, 0.0]))
    assert m.win_counts.tolist() == [1, 0, 1, 0]


def test_kwinners2d_global_and_local_exact_sets():
    x = t([[[[9.0, 1.0], [2.0, 3.0]], [[8.0, 7.0], [0.0, 0.5]]]])  # (1, 2, 2, 2)
    glob = sparse.kwinners2d(x, 3)  # 9, 8, 7 win among all 8 units
    assert torch.equal(glob, t([[[[9.0, 0.0], [0.0, 0.0]], [[8.0, 7.0], [0.0, 0.0]]]]))
    loc = sparse.kwinners2d(x, 1, local=True)  # the larger channel at every location
    assert torch.equal(loc, t([[[[9.0, 0.0], [2.0, 3.0]], [[0.0, 7.0], [0.0, 0.0]]]]))
    # per-channel boost: channel 0 damped by exp(-2) (9, 1, 2, 3 -> 1.22, 0.14, 0.27, 0.41), so locally
    # channel 1 wins where it was 8, 7 and 0.5, and channel 0 keeps only the location where channel 1 is 0
    boost = t([math.exp(-2.0), 1.0])
    assert torch.equal(sparse.kwinners2d(x, 1, boost, local=True), t([[[[0.0, 0.0], [2.0, 0.0]], [[8.0, 7.0], [0.0, 0.5]]]]))
    # globally: boosted channel 0 is 9e^-2 = 1.22, 0.14, 0.27, 0.41 -> winners 8, 7 and 9
    assert torch.equal(sparse.kwinners2d(x, 3, boost), glob)
    assert torch.equal(sparse.kwinners2d(x, 2, boost), t([[[[0.0, 0.0], [0.0, 0.0]], [[8.0, 7.0], [0.0, 0.0]]]]))


def reference_kwinners(x, k, boost=None):
    """A slow, obviously correct reference: per sample, a stable sort of the boosted values."""
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
        x = torch.randint(-3, 4, (7, n), generator=g).float()  # few distinct values: many ties
        boost = torch.rand(n, generator=g) + 0.5 if trial % 2 else None
        scores = x if boost is None else x * boost
        mask = sparse.winner_mask(scores, k, backend=backend)
        assert torch.equal(x * mask, reference_kwinners(x, k, boost)), (trial, n, k)
        assert mask.sum(1).tolist() == [k] * 7


def test_backends_agree_on_every_dim_and_tie_rule():
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64):
        x = torch.randint(0, 5, (3, 6, 4, 5), generator=g).to(dtype)
        for dim in (0, 1, 2, 3, -1):
            for k in (0, 1, 3, x.shape[dim]):
                for ties in (True, False):
                    a = sparse.winner_mask(x, k, dim, break_ties=ties, backend="numpy")
                    b = sparse.winner_mask(x, k, dim, break_ties=ties, backend="torch")
                    assert torch.equal(a, b), (dtype, dim, k, ties)


# --------------------------------------------------------------------------- ties
@pytest.mark.parametrize("backend", BACKENDS)
def test_tie_rule_lowest_index_wins_or_all_tied_win(backend):
    x = t([[2.0, 2.0, 2.0, 1.0], [1.0, 3.0, 3.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    exact = sparse.winner_mask(x, 2, backend=backend)
    assert exact.tolist() == [[True, True, False, False], [False, True, True, False], [True, True, False, False]]
    every = sparse.winner_mask(x, 2, break_ties=False, backend=backend)
    assert every.tolist() == [[True, True, True, False], [False, True, True, True], [True, True, True, True]]


def test_tie_rule_in_2d_lowest_flat_index_or_lowest_channel():
    x = torch.ones(1, 3, 2, 2)
    glob = sparse.kwinners2d(x, 5)  # flat order c0(4 units), c1 (4 units), c2: the first five win
    assert glob.flatten().tolist() == [1.0] * 5 + [0.0] * 7
    loc = sparse.kwinners2d(x, 2, local=True)  # channels 0 and 1 at every location
    assert loc[0, :, 0, 0].tolist() == [1.0, 1.0, 0.0] and loc.sum() == 8
    m = KWinners2d(3, 5, boost_strength=0.0, break_ties=False)
    assert torch.equal(m(x), x)  # every unit is tied with the 5th value: all win


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("make", [
    lambda: (KWinners(6, 2, boost_strength=1.0), torch.randn(5, 6)),
    lambda: (KWinners2d(3, 7, boost_strength=1.0), torch.randn(4, 3, 3, 3)),
    lambda: (KWinners2d(3, 2, local=True, boost_strength=1.0), torch.randn(4, 3, 3, 3)),
])
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
    assert torch.autograd.gradcheck(lambda z: sparse.kwinners(z, 3), (x,))


# --------------------------------------------------------------------------- k = 0, k = n, errors
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
    assert torch.equal(KWinners2d(3, 12)(z), z) and torch.equal(KWinners2d(3, 3, local=True)(z), z)


def test_k_larger_than_n_and_bad_shapes_stop_with_clear_messages():
    with pytest.raises(ValueError, match=r"k=5 is larger than the layer's n=4 units; use k <= n"):
        KWinners(4, 5)
    with pytest.raises(ValueError, match=r"k=-2 is negative"):
        KWinners(4, -2)
    with pytest.raises(ValueError, match=r"k=4 is larger than the layer's n=3 units; use k <= n"):
        KWinners2d(3, 4, local=True)
    with pytest.raises(ValueError, match=r"k=-1 is negative"):
        KWinners2d(3, -1)
    glob = KWinners2d(3, 50)  # the spatial size is unknown until the first batch
    with pytest.raises(ValueError, match=r"k=50 is larger than the layer's n=48 units; use k <= n \(n = C\*H\*W = 3\*4\*4\)"):
        glob(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"KWinners\(n=4\) expects input of shape \(batch, 4\); got shape \(2, 5\)"):
        KWinners(4, 2)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 3, height, width\); got shape \(2, 4, 5, 5\)"):
        KWinners2d(3, 2)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 5\)"):
        KWinners2d(3, 2)(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="boost_strength"):
        KWinners(4, 2, boost_strength=-1.0)
    with pytest.raises(ValueError, match="boost_strength_factor"):
        KWinners(4, 2, boost_strength_factor=1.5)
    with pytest.raises(ValueError, match="duty_cycle_period"):
        KWinners(4, 2, duty_cycle_period=0)


# --------------------------------------------------------------------------- duty cycles
def test_duty_cycles_exact_after_one_and_more_steps():
    m = KWinners(5, 2, boost_strength=0.0, duty_cycle_period=6)
    x1 = t([[5, 4, 0, 0, 0], [5, 0, 4, 0, 0], [0, 5, 4, 0, 0], [5, 0, 0, 0, 4]])
    m(x1)  # wins per unit: [3, 2, 2, 0, 1] in 4 samples; T = 4
    torch.testing.assert_close(m.duty_cycles, t([3, 2, 2, 0, 1]) / 4, rtol=0, atol=1e-7)
    assert m.samples_seen == 4 and m.win_counts.tolist() == [3, 2, 2, 0, 1]
    x2 = t([[0, 0, 0, 5, 4], [0, 0, 0, 5, 4], [0, 0, 0, 5, 4], [0, 0, 0, 5, 4]])
    m(x2)  # wins [0, 0, 0, 4, 4]; 8 samples seen, T = min(6, 8) = 6: d = (d * (6 - 4) + w) / 6
    expected = (t([3, 2, 2, 0, 1]) / 4 * 2 + t([0, 0, 0, 4, 4])) / 6
    torch.testing.assert_close(m.duty_cycles, expected, rtol=0, atol=1e-7)
    assert m.win_counts.tolist() == [3, 2, 2, 4, 5]
    # the pure function, including a batch larger than the period: d becomes the batch's win rate
    d = sparse.update_duty_cycles(torch.tensor([0.5]), torch.tensor([3.0]), batch_size=10, samples_seen=40, period=4)
    assert torch.equal(d, torch.tensor([0.3]))
    d = sparse.update_duty_cycles(torch.tensor([0.5]), torch.tensor([1.0]), batch_size=2, samples_seen=4, period=1000)
    assert torch.equal(d, torch.tensor([0.5]))  # (0.5 * 2 + 1) / 4: the exact mean over 4 samples


def test_positive_wins_count_outputs_above_zero_not_winners():
    x = t([[3, -1, -2, -5], [1, 2, 0, -1], [0, 0, 0, 0]])  # winners (k = 2): {0, 1} in every row
    winners = KWinners(4, 2, boost_strength=0.0, wins="winners")
    positive = KWinners(4, 2, boost_strength=0.0, wins="positive")
    assert torch.equal(winners(x), positive(x))  # the outputs are the same ...
    # ... the duty cycles are not: -1 (row 0) and the zeros of row 2 won but are not > 0
    torch.testing.assert_close(winners.duty_cycles, t([3, 3, 0, 0]) / 3, rtol=0, atol=0)
    torch.testing.assert_close(positive.duty_cycles, t([2, 1, 0, 0]) / 3, rtol=0, atol=0)
    assert positive.win_counts.tolist() == [2, 1, 0, 0] and winners.win_counts.tolist() == [3, 3, 0, 0]
    with pytest.raises(ValueError, match="wins='some' is not known; use 'winners'.*or 'positive'"):
        KWinners(4, 2, wins="some")
    with pytest.raises(ValueError, match="wins="):
        KWinners2d(2, 2, wins=True)


def test_positive_wins_in_2d_count_locations_above_zero_per_channel():
    # channel 0: 2, -1, -3, -4; channel 1: -0.5, -2, -6, -7; the 3 global winners: 2, -0.5, -1
    x = t([[[[2.0, -1.0], [-3.0, -4.0]], [[-0.5, -2.0], [-6.0, -7.0]]]])
    winners = KWinners2d(2, 3, boost_strength=0.0)
    positive = KWinners2d(2, 3, boost_strength=0.0, wins="positive")
    assert torch.equal(winners(x), positive(x))
    assert torch.equal(winners.duty_cycles, t([0.5, 0.25]))  # 2 of 4 locations, 1 of 4
    assert torch.equal(positive.duty_cycles, t([0.25, 0.0]))  # only the 2 is > 0
    assert positive.win_counts.tolist() == [1, 0]


def papers_duty_cycles(batches, period, two_d=False):
    """The duty-cycle update of the paper's k_winners modules, step by step, on given outputs."""
    d, seen = None, 0
    for out in batches:
        batch = out.shape[0]
        seen += batch
        p = min(period, seen)
        if two_d:
            counts = out.gt(0).sum(dim=(0, 2, 3), dtype=torch.float) / float(out.shape[2] * out.shape[3])
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
    m = KWinners2d(3, 7, boost_strength=1.5, duty_cycle_period=10, wins="positive") if two_d else \
        KWinners(6, 2, boost_strength=1.5, duty_cycle_period=10, wins="positive")
    outputs = []
    for batch in (4, 4, 3, 4, 1, 4):  # the period is reached in the third batch
        x = torch.randn(batch, 3, 3, 3, generator=g) if two_d else torch.randn(batch, 6, generator=g)
        outputs.append(m(x - 0.3).detach())  # shifted: some winners are negative
        assert torch.equal(m.duty_cycles, papers_duty_cycles(outputs, 10, two_d)), len(outputs)
    assert m.samples_seen == 20


def test_eval_boost_with_the_papers_target_density_picks_the_same_winners():
    g = torch.Generator().manual_seed(0)
    m = KWinners(150, 50, boost_strength=1.5, k_inference_factor=1.5).eval()
    m.duty_cycles.copy_(torch.rand(150, generator=g) * 0.6)
    x = torch.randn(64, 150, generator=g)
    # the paper's code boosts in eval mode with k_inference / n as the target density
    boost = sparse.boost_factors(m.duty_cycles, m.k_inference / m.n, m.boost_strength)
    assert torch.equal(m(x), sparse.kwinners(x, m.k_inference, boost))


def test_duty_cycles_2d_are_per_channel_fractions_of_locations():
    x = t([[[[9.0, 1.0], [2.0, 3.0]], [[8.0, 7.0], [0.0, 0.5]]]])
    g = KWinners2d(2, 3, boost_strength=0.0)
    g(x)  # channel 0 wins 1 of 4 locations, channel 1 wins 2
    assert torch.equal(g.duty_cycles, t([0.25, 0.5])) and g.win_counts.tolist() == [1, 2]
    loc = KWinners2d(2, 1, local=True, boost_strength=0.0)
    loc(torch.cat([x, x]))  # two samples; channel 0 wins 3 of 4 locations in each
    assert torch.equal(loc.duty_cycles, t([0.75, 0.25])) and loc.win_counts.tolist() == [6, 2]
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
    assert (g(torch.rand(3, 2, 4, 4) + 0.1) != 0).sum((1, 2, 3)).tolist() == [5, 5, 5]  # 4.5 rounds up


def test_fraction_k():
    m = KWinners(40, 0.1)
    assert m.k == 4 and m.k_inference == 6
    g = KWinners2d(3, 0.25)
    assert g.ks(4, 4) == (48, 12, 18)
    assert (g(torch.randn(2, 3, 4, 4)) != 0).sum((1, 2, 3)).tolist() == [12, 12]


# --------------------------------------------------------------------------- boost decay
def test_boost_strength_decays_once_per_call_on_every_module():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), KWinners2d(2, 4, boost_strength=1.5, boost_strength_factor=0.85),
                        nn.Flatten(), nn.Linear(2 * 4 * 4, 6), KWinners(6, 2, boost_strength=2.0, boost_strength_factor=0.5))
    assert sparse.update_boost_strength(net) == 2
    assert net[1].boost_strength == pytest.approx(1.5 * 0.85) and net[4].boost_strength == 1.0
    sparse.update_boost_strength(net)
    assert net[1].boost_strength == pytest.approx(1.5 * 0.85**2) and net[4].boost_strength == 0.5
    assert sparse.update_boost_strength(nn.Linear(2, 2)) == 0


# --------------------------------------------------------------------------- a temporary k-inference factor
def test_inference_factor_changes_eval_winners_inside_the_block_only():
    net = nn.Sequential(KWinners(10, 2, k_inference_factor=1.0, boost_strength=0.0), nn.Identity(),
                        KWinners(10, 4, k_inference_factor=1.0, boost_strength=0.0)).eval()
    x = torch.arange(1.0, 11.0).repeat(3, 1)  # the largest values are the last units
    assert (net(x) != 0).sum(1).tolist() == [2, 2, 2]
    with sparse.inference_factor(net, 2.0) as modules:
        assert modules == [net[0], net[2]]
        assert [m.k_inference for m in modules] == [4, 8] and [m.k for m in modules] == [2, 4]
        assert (net[0](x) != 0).sum(1).tolist() == [4, 4, 4]
        assert torch.equal(net[0](x)[0], torch.tensor([0.0] * 6 + [7.0, 8.0, 9.0, 10.0]))
        assert (net(x) != 0).sum(1).tolist() == [4, 4, 4]  # 4 of the first layer's winners pass (8 allowed)
    assert [m.k_inference for m in modules] == [2, 4] and [m.k_inference_factor for m in modules] == [1.0, 1.0]
    assert (net(x) != 0).sum(1).tolist() == [2, 2, 2]


def test_inference_factor_caps_at_n_covers_2d_and_restores_after_an_exception():
    m1, m2 = KWinners(5, 2, k_inference_factor=1.5), KWinners2d(2, 3, k_inference_factor=1.0)
    net = nn.ModuleList([m1, m2])
    with pytest.raises(RuntimeError, match="inside"):
        with sparse.inference_factor(net, 10.0):
            assert m1.k_inference == 5  # k * 10 = 20, capped at n = 5
            assert m2.ks(2, 2) == (8, 3, 8)
            assert (m2.eval()(torch.randn(1, 2, 2, 2)) != 0).sum() == 8
            raise RuntimeError("inside")
    assert m1.k_inference == 3 and m1.k_inference_factor == 1.5
    assert m2.k_inference_factor == 1.0 and m2.ks(2, 2) == (8, 3, 3)


def test_inference_factor_keeps_a_hand_set_k_inference_and_refuses_bad_input():
    m = KWinners(10, 2)
    m.k_inference = 7  # set by hand, not from the factor
    with sparse.inference_factor(m, 1.0):
        assert m.k_inference == 2
    assert m.k_inference == 7
    for bad in (0, -1.0, float("nan"), "2"):
        with pytest.raises(ValueError, match="k_inference_factor"):
            with sparse.inference_factor(m, bad):
                pass
        assert m.k_inference == 7 and m.k_inference_factor == 1.5
    with pytest.raises(ValueError, match="no KWinners"):
        with sparse.inference_factor(nn.Linear(3, 3), 1.5):
            pass


def test_state_dict_round_trip_keeps_duty_cycles_and_boost_strength():
    m = KWinners(5, 2)
    m(torch.randn(3, 5))
    m.update_boost_strength()
    m2 = KWinners(5, 2)
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.duty_cycles, m.duty_cycles) and torch.equal(m2.win_counts, m.win_counts)
    assert m2.boost_strength == m.boost_strength and m2.samples_seen == 3


# --------------------------------------------------------------------------- diagnostics
def test_duty_cycle_entropy_and_units_that_never_won():
    assert sparse.binary_entropy(torch.tensor([0.0, 0.5, 1.0])).tolist() == [0.0, 1.0, 0.0]
    assert sparse.duty_cycle_entropy(torch.tensor([0.5, 0.5, 0.0, 1.0])) == 2.0
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert sparse.max_duty_cycle_entropy(4, 0.25) == pytest.approx(4 * h)
    m = KWinners(5, 2, boost_strength=0.0)
    m(t([[5, 4, 0, 0, 0], [5, 0, 4, 0, 0], [0, 5, 4, 0, 0], [5, 0, 0, 0, 4]]))
    assert sparse.units_never_won(m) == 1  # unit 3
    expected = float(sparse.binary_entropy(t([0.75, 0.5, 0.5, 0.0, 0.25])).sum())
    assert sparse.duty_cycle_entropy(m) == pytest.approx(expected)
    with pytest.raises(TypeError):
        sparse.units_never_won(nn.ReLU())


# --------------------------------------------------------------------------- sparse weights
def test_fan_in_mask_has_the_same_count_per_unit():
    g = torch.Generator().manual_seed(0)
    mask = sparse.fan_in_mask(7, 20, 0.3, g)
    assert mask.shape == (7, 20) and mask.sum(1).tolist() == [6] * 7
    assert len({tuple(r.tolist()) for r in mask}) > 1  # units draw their inputs independently
    assert sparse.fan_in_mask(3, 10, 1.0).all()
    with pytest.raises(ValueError, match=r"density=0.01 keeps round\(0.01 \* 20\) = 0"):
        sparse.fan_in_mask(3, 20, 0.01)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        sparse.fan_in_mask(3, 20, 0.0)


def test_sparse_weights_linear_and_conv_masks():
    g = torch.Generator().manual_seed(0)
    lin = SparseWeights(nn.Linear(20, 7), 0.3, generator=g)
    assert lin.n_nonzero == 6 and (lin.weight != 0).sum(1).tolist() == [6] * 7
    conv = SparseWeights2d(nn.Conv2d(3, 4, 3), 0.5, generator=g)  # fan-in 27: round(13.5) = 14
    assert conv.n_nonzero == 14 and (conv.weight != 0).reshape(4, -1).sum(1).tolist() == [14] * 4
    assert conv(torch.randn(2, 3, 5, 5)).shape == (2, 4, 3, 3)
    with pytest.raises(TypeError, match="wraps a torch.nn.Linear, got Conv2d; use SparseWeights2d"):
        SparseWeights(nn.Conv2d(1, 1, 1), 0.5)


def fit_sparse_net(plug: str, optimizer: str):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 12, generator=g) * 2
    y = torch.arange(150) % 3
    X = centers[y] + torch.randn(150, 12, generator=g)
    data = helpers.Data(X[:120], y[:120], X[120:], y[120:], mean=0.0, std=1.0, source="synthetic")
    net = nn.Sequential(SparseWeights(nn.Linear(12, 16), 0.25, generator=g), KWinners(16, 4),
                        SparseWeights(nn.Linear(16, 3), 0.5, generator=g))
    opt = (torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3) if optimizer == "sgd"
           else torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3))
    kwargs = dict(on_epoch_end=lambda epoch, h: sparse.update_boost_strength(net))
    if plug == "hook":
        sparse.rezero_after_step(opt, net)
    elif plug == "step":
        kwargs["step"] = sparse.sparse_step()
    hist = helpers.fit(net, data, opt, epochs=3, batch_size=16, **kwargs)
    return net, hist


@pytest.mark.parametrize("plug", ["hook", "step"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_nonzero_count_per_unit_is_exact_after_training(plug, optimizer):
    net, hist = fit_sparse_net(plug, optimizer)
    assert (net[0].weight != 0).sum(1).tolist() == [3] * 16  # round(0.25 * 12)
    assert (net[2].weight != 0).sum(1).tolist() == [8] * 3
    assert torch.equal(net[0].weight != 0, net[0].weight_mask)
    assert hist["test_acc"][-1] > 0.6  # it learns (chance: 1/3)
    assert net[1].boost_strength == pytest.approx(1.5 * 0.85**3)


def test_without_rezeroing_the_masked_weights_drift():
    net, _ = fit_sparse_net("none", "sgd")
    assert (net[0].weight != 0).sum() > 3 * 16
    assert sparse.rezero_sparse_weights(net) == 2
    assert (net[0].weight != 0).sum(1).tolist() == [3] * 16


def test_sparse_init_uses_the_effective_fan_in():
    g = torch.Generator().manual_seed(0)
    layer = SparseWeights(nn.Linear(1000, 500), 0.2, generator=g)  # 200 non-zero inputs per unit
    w = layer.weight.detach()
    bound = 1 / math.sqrt(200)
    nz = w[w != 0]
    assert nz.numel() == 500 * 200 and float(nz.abs().max()) <= bound
    assert float(nz.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    # the pre-activations have the variance of PyTorch's dense default (1/3 for unit inputs) ...
    x = torch.randn(2000, 1000, generator=g)
    with torch.no_grad():
        sparse_var = float((x @ w.T).var())
        dense_var = float((x @ nn.Linear(1000, 500).weight.T).var())
        naive = nn.Linear(1000, 500)  # ... while masking PyTorch's default keeps only density * 1/3
        naive_var = float((x @ (naive.weight * layer.weight_mask).T).var())
    assert sparse_var == pytest.approx(1 / 3, rel=0.05) and dense_var == pytest.approx(1 / 3, rel=0.05)
    assert naive_var == pytest.approx(0.2 / 3, rel=0.05)
    he = SparseWeights(nn.Linear(1000, 10), 0.2, init="kaiming", generator=g)
    w_he = he.weight.detach().abs().max()
    assert float(w_he) <= math.sqrt(6 / 200) and float(w_he) > bound
    kept = nn.Linear(10, 4)
    before = kept.weight.detach().clone()
    sw = SparseWeights(kept, 0.5, init=None, generator=g)
    assert torch.equal(sw.weight, before * sw.weight_mask)


def test_loading_a_state_dict_brings_its_mask():
    a = SparseWeights(nn.Linear(10, 4), 0.5, generator=torch.Generator().manual_seed(0))
    b = SparseWeights(nn.Linear(10, 4), 0.5, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.weight_mask, b.weight_mask)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.weight.fill_(1.0)
    b.rezero_weights()
    assert torch.equal(b.weight != 0, a.weight_mask)


def test_floor_division_init_zeroes_the_layer_it_draws():
    torch.manual_seed(0)
    fc1 = nn.Linear(4320, 300)
    got = sparse.floor_division_init_(fc1, 0.5)
    assert got["fan"] == 2160 and got["weight_bound"] == 0.0 and got["bias_bound"] == 0.0
    assert got["nonzero_weights"] == 0 and got["nonzero_biases"] == 0
    assert not fc1.weight.any() and not fc1.bias.any()
    assert got["weight_bound_with_slash"] == pytest.approx(1 / math.sqrt(2160))
    assert got["bias_bound_with_slash"] == pytest.approx(1 / math.sqrt(2160))
    # fan 1: the weight bound is still 0 (gain 0.577 // 1 = 0), the bias bound is 1 // 1 = 1
    tiny = sparse.floor_division_init_(nn.Linear(2, 3), 0.5)
    assert tiny["fan"] == 1 and tiny["weight_bound"] == 0.0 and tiny["bias_bound"] == 1.0
    assert tiny["nonzero_weights"] == 0 and tiny["nonzero_biases"] == 3
    # a gain above sqrt(fan) survives the floor division (2 // 1 = 2)
    assert sparse.floor_division_init_(nn.Linear(2, 3), 0.5, gain=2.0)["nonzero_weights"] == 6
    with pytest.raises(TypeError, match="nn.Linear, got Conv2d"):
        sparse.floor_division_init_(nn.Conv2d(1, 2, 3), 0.5)
    with pytest.raises(ValueError, match="density=0"):
        sparse.floor_division_init_(nn.Linear(4, 2), 0)


def test_the_papers_mask_counts_equal_ours_for_the_table_1_layers():
    # the paper's code zeroes int(round((1 - density) * fan_in)) weights per unit; we keep
    # round(density * fan_in): the same numbers for every sparse layer of its Table 1
    for fan_in in (4320, 1024):
        assert fan_in - int(round((1 - 0.3) * fan_in)) == int(round(0.3 * fan_in))
        layer = SparseWeights(nn.Linear(fan_in, 5), 0.3, init=None)
        assert layer.n_nonzero == fan_in - int(round(0.7 * fan_in))
        # init=None: the default init's bound, 1/sqrt of the full fan-in, is kept
        assert float(layer.weight.detach().abs().max()) <= 1 / math.sqrt(fan_in)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rezeroing_before_each_forward_as_the_paper_equals_masking_the_gradients(momentum):
    """The paper's SparseWeights zeroes the masked weights before every training forward pass (and
    after each epoch) and leaves their gradients alone; sparse_step masks the gradients. With SGD
    the kept weights and every forward pass are the same bit for bit."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(40, 12, generator=g), torch.randint(0, 3, (40,), generator=g)
    torch.manual_seed(1)
    ours = nn.Sequential(SparseWeights(nn.Linear(12, 8), 0.25, init=None), nn.ReLU(), nn.Linear(8, 3))
    papers = nn.Sequential(SparseWeights(nn.Linear(12, 8), 0.25, init=None), nn.ReLU(), nn.Linear(8, 3))
    papers.load_state_dict(ours.state_dict())
    opts = [torch.optim.SGD(net.parameters(), lr=0.1, momentum=momentum) for net in (ours, papers)]
    step = sparse.sparse_step()
    for i in range(0, 40, 8):
        xb, yb = X[i:i + 8], y[i:i + 8]
        opts[0].zero_grad()
        _, out_ours = step(ours, xb, yb)
        opts[0].step()
        opts[1].zero_grad()
        papers[0].rezero_weights()  # the paper's forward: rezero when training, then the layer
        out = papers(xb)
        torch.nn.functional.cross_entropy(out, yb).backward()
        opts[1].step()
        assert torch.equal(out, out_ours)
    papers[0].rezero_weights()  # the paper's postEpoch
    for a, b in zip(ours.parameters(), papers.parameters()):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- noise
LEVELS = [i / 20 for i in range(11)]


def test_noise_sets_exactly_int_level_times_784_pixels_per_image():
    x = torch.zeros(6, 1, 28, 28)
    counts = []
    for level in LEVELS + [0.8, 1.0]:
        noisy = sparse.add_pixel_noise(x, level, torch.Generator().manual_seed(0))
        changed = (noisy != x).reshape(6, -1).sum(1)
        assert changed.tolist() == [int(level * 784)] * 6
        counts.append(int(changed[0]))
        assert noisy.shape == x.shape and float(noisy.min()) >= 0 and float(noisy.max()) <= 1
        assert torch.equal(noisy[noisy != 0], torch.full((6 * int(level * 784),), sparse.WHITE_PIXEL))
    assert counts == [0, 39, 78, 117, 156, 196, 235, 274, 313, 352, 392, 627, 784]
    flat = sparse.add_pixel_noise(torch.rand(4, 784), 0.3, torch.Generator().manual_seed(0))
    assert flat.shape == (4, 784) and float(flat.max()) <= 1
    assert sparse.WHITE_PIXEL == pytest.approx(0.7469)


def test_noise_is_reproducible_with_a_generator_and_independent_per_image():
    x = torch.zeros(5, 784)
    a = sparse.add_pixel_noise(x, 0.2, torch.Generator().manual_seed(3))
    b = sparse.add_pixel_noise(x, 0.2, torch.Generator().manual_seed(3))
    c = sparse.add_pixel_noise(x, 0.2, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple((row != 0).nonzero().flatten().tolist()) for row in a}) == 5
    assert torch.equal(x, torch.zeros(5, 784))  # the input is not modified


def test_noise_scales_unit_and_normalized():
    with pytest.raises(ValueError, match="looks normalised. Pass where='normalized'"):
        sparse.add_pixel_noise(torch.full((2, 784), -0.42), 0.1)
    z = torch.full((2, 784), -0.42)
    noisy = sparse.add_pixel_noise(z, 0.1, torch.Generator().manual_seed(0), where="normalized")
    assert sorted(set(noisy.flatten().tolist())) == pytest.approx([-0.42, sparse.WHITE_PIXEL])
    with pytest.raises(ValueError, match=r"level=1.5 must be a fraction"):
        sparse.add_pixel_noise(torch.zeros(2, 784), 1.5)
    with pytest.raises(ValueError, match="where='pixels' is not known"):
        sparse.add_pixel_noise(torch.zeros(2, 784), 0.1, where="pixels")


class Recorder(nn.Module):
    """Predicts class 0 and records the inputs it was shown."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        out = torch.zeros(len(x), 10)
        out[:, 0] = 1
        return out


def test_noise_score_counts_correct_digits_and_applies_the_paper_noise_before_normalisation():
    g = torch.Generator().manual_seed(0)
    X01 = torch.rand(30, 1, 28, 28, generator=g)
    mean, std = 0.1307, 0.3081
    y = torch.arange(30) % 3  # 10 digits of class 0
    data = helpers.Data((X01 - mean) / std, y, (X01 - mean) / std, y, mean=mean, std=std, source="synthetic")
    rec = Recorder().train()
    assert sparse.noise_correct(rec, data, [0.0, 0.1, 0.5], batch_size=7) == [10, 10, 10]
    assert rec.training  # mode restored
    assert sparse.noise_score(rec, data) == 110  # 11 default levels
    # where="unit": the white pixel, normalised, i.e. the paper's noise followed by the normalisation
    rec = Recorder()
    sparse.noise_correct(rec, data, [0.25], batch_size=30, seed=5)
    paper = (sparse.add_pixel_noise(X01, 0.25, torch.Generator().manual_seed(5)) - mean) / std
    torch.testing.assert_close(rec.seen[0], paper)
    assert int(((rec.seen[0] - 2.0).abs() < 1e-5).reshape(30, -1).sum(1).min()) >= 196  # white = 2.0 after normalisation
    # where="normalized": the source's way, 0.7469 written into the normalised inputs
    rec = Recorder()
    sparse.noise_correct(rec, data, [0.25], batch_size=30, seed=5, where="normalized")
    source = sparse.add_pixel_noise(data.X_test, 0.25, torch.Generator().manual_seed(5), where="normalized")
    assert torch.equal(rec.seen[0], source)
    assert int((rec.seen[0] == sparse.WHITE_PIXEL).reshape(30, -1).sum(1).min()) >= 196
