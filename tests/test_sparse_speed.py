"""helpers.sparse_speed: the alternating timer and chapter 5's speed measurements, on
one or two rounds.
"""

from __future__ import annotations

import time

import pytest
import torch

from helpers import sparse
from helpers import sparse_speed as ss


def test_time_rounds_warms_up_alternates_and_reports_seconds_per_call():
    calls = []

    def slow():
        calls.append("slow")
        time.sleep(0.002)

    def fast():
        calls.append("fast")

    t = ss.time_rounds({"slow": slow, "fast": fast}, repeats=3, inner=2)
    assert calls[:6] == ["slow"] * 3 + ["fast"] * 3  # warm-up: 3 calls each
    # 3 rounds of 2 calls each, alternating
    assert calls[6:] == (["slow"] * 2 + ["fast"] * 2) * 3
    assert (
        set(t) == {"slow", "fast"} and t["slow"] >= 0.002 and 0 <= t["fast"] < t["slow"]
    )


@pytest.mark.parametrize(
    "shape, make",
    [
        ((4, 20), lambda: sparse.KWinners(20, 5, boost_strength=1.5)),
        ((2, 3, 4, 4), lambda: sparse.KWinners2d(3, 10, boost_strength=1.5)),
    ],
)
def test_activation_ratio_times_relu_and_kwinners_on_one_tensor(shape, make):
    r = ss.activation_ratio(shape, make, repeats=1, inner=1)
    assert set(r) == {"relu_s", "kwinners_s", "ratio"}
    assert (
        r["relu_s"] > 0
        and r["kwinners_s"] > 0
        and r["ratio"] == r["kwinners_s"] / r["relu_s"]
    )


def test_every_case_makes_a_kwinners_module_for_its_shape():
    for name, (shape, make) in ss.CASES.items():
        kw = make()
        assert isinstance(kw, (sparse.KWinners, sparse.KWinners2d)), name
        assert kw(torch.randn(*shape)).shape == shape, name


def test_selection_times_each_backend():
    t = ss.selection_times(repeats=1, inner=1)
    assert set(t) == {"numpy", "torch"} and all(v > 0 for v in t.values())


def test_source_cnn_shapes_and_network_ratio(monkeypatch):
    x = torch.randn(2, 1, 28, 28)
    for activation in ("relu", "kwinners"):
        assert ss.source_cnn(activation)(x).shape == (2, 10)
    assert isinstance(ss.source_cnn("kwinners")[2], sparse.KWinners2d)
    stepped = {}

    # the timer is tested above; here each SGD step runs once
    def one_call_each(fns, repeats, inner):
        assert (repeats, inner) == (5, 2)
        for name, fn in fns.items():
            net = fn.__defaults__[0]
            before = [p.detach().clone() for p in net.parameters()]
            fn()
            stepped[name] = all(
                not torch.equal(b, p) for b, p in zip(before, net.parameters())
            )
        return {"relu": 0.5, "kwinners": 2.0}

    monkeypatch.setattr(ss, "time_rounds", one_call_each)
    assert ss.network_ratio(repeats=5, inner=2) == {
        "relu_s": 0.5,
        "kwinners_s": 2.0,
        "ratio": 4.0,
    }
    # every parameter of both nets was updated
    assert stepped == {"relu": True, "kwinners": True}
