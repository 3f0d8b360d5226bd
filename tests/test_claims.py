"""helpers.claims: paths into results files, settings templates, the verdict rules and
classes, and the chapter tables (tiny hand-made registries and records)."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import claims as cl


# ------------------------------------------------------------------------ paths
def test_parse_path():
    assert cl.parse_path("metrics.greedy_layer_acc[0]") == [
        "metrics",
        "greedy_layer_acc",
        0,
    ]
    assert cl.parse_path('metrics.table1["7x240"].bp') == [
        "metrics",
        "table1",
        "7x240",
        "bp",
    ]
    assert cl.parse_path("a['0.5'].b[-1]") == ["a", "0.5", "b", -1]
    for bad in ("", ".a", "a..b", "a[x]", "a b", 'a["x"', "a.[0]", "a or b..c"):
        with pytest.raises(cl.ClaimsError):
            cl.parse_path(bad)


def test_resolve_missing_keys_and_alternatives():
    record = {
        "metrics": {"acc": [0.1, 0.2], "t": {"0.5": {"d": 3}}},
        "settings": {"seed": 4},
    }
    assert cl.resolve(record, "metrics.acc[1]") == 0.2
    assert cl.resolve(record, 'metrics.t["0.5"].d') == 3
    with pytest.raises(cl.MissingKey, match="metrics.acc has no entry 2"):
        cl.resolve(record, "metrics.acc[2]")
    with pytest.raises(cl.MissingKey, match="no key 'x'"):
        cl.resolve(record, 'metrics.t["0.5"].x')
    assert cl.resolve(record, "settings.seeds or settings.seed") == 4
    with pytest.raises(cl.MissingKey, match="no key 'seedz'"):
        cl.resolve(record, "settings.seeds or settings.seedz")


def test_settings_template():
    record = {"settings": {"epochs": 30, "seeds": [0, 1, 2], "lr": 0.001, "seed": 7}}
    assert (
        cl.fill_template(
            "{settings.epochs} epochs, seeds {settings.seeds} "
            "({settings.seeds|count}), lr {settings.lr}",
            record,
        )
        == "30 epochs, seeds 0, 1, 2 (3), lr 0.001"
    )
    assert cl.fill_template("{settings.seeds|seeds}", record) == "mean of seeds 0, 1, 2"
    assert (
        cl.fill_template("{settings.seeds|seeds}", {"settings": {"seeds": [4]}})
        == "seed 4"
    )
    # a chapter whose parameter is still `seed` (one integer): the same template works
    one = {"settings": {"seed": 7}}
    assert cl.fill_template("{settings.seeds or settings.seed|seeds}", one) == "seed 7"


# ------------------------------------------------------------------------ rules
@pytest.mark.parametrize(
    "rule,ours,source,other,spreads,expected",
    [
        ({"within": 0.3}, 98.2, 98.05, None, (None, None), "reproduced"),
        (
            {"within": 0.3},
            98.35,
            98.05,
            None,
            (None, None),
            "reproduced",
        ),  # inclusive bound
        (
            {"within": 0.3},
            97.5,
            98.05,
            None,
            (None, None),
            "not reproduced",
        ),  # no spreads
        (
            {"within": 0.3},
            97.5,
            98.05,
            None,
            (0.15, None),
            "partly",
        ),  # miss 0.25 <= 0.3
        (
            {"within": 0.3},
            97.5,
            98.05,
            None,
            (0.1, None),
            "not reproduced",
        ),  # 0.25 > 0.2
        ({"within": 0.3}, 97.5, 98.05, None, (0.1, 0.03), "partly"),  # 0.25 <= 0.26
        ({"at_least": 92}, 92.7, None, None, (None, None), "reproduced"),
        ({"at_least": 92}, 91.9, None, None, (None, None), "not reproduced"),
        ({"at_least": 92}, 91.9, None, None, (0.1, None), "partly"),
        ({"at_most": 1e-6}, 2e-11, None, None, (None, None), "reproduced"),
        ({"at_most": 0.5}, 0.61, None, None, (None, None), "not reproduced"),
        ({"more_than": "x"}, 0.93, None, 0.88, (None, None), "reproduced"),
        ({"more_than": "x"}, 0.88, None, 0.88, (None, None), "not reproduced"),
        ({"all_cases": True}, [12, 12], None, None, (None, None), "reproduced"),
        ({"all_cases": True}, [7, 12], None, None, (None, None), "partly"),
        ({"all_cases": True}, [6, 12], None, None, (None, None), "not reproduced"),
        ({"no_cases": True}, [0, 12], None, None, (None, None), "reproduced"),
        ({"no_cases": True}, [5, 12], None, None, (None, None), "partly"),
        ({"no_cases": True}, [6, 12], None, None, (None, None), "not reproduced"),
        ({"all_cases": True}, [0, 0], None, None, (None, None), cl.UNTESTABLE),
        ({"no_cases": True}, [0, 0], None, None, (None, None), cl.UNTESTABLE),
    ],
)
def test_verdict_rules(rule, ours, source, other, spreads, expected):
    assert cl.decide(rule, ours, source, other, *spreads) == expected


def test_bad_rules_and_missing_numbers_are_refused():
    with pytest.raises(cl.ClaimsError, match="exactly one"):
        cl.decide({"within": 1, "at_least": 2}, 1.0, 1.0)
    with pytest.raises(cl.ClaimsError, match="source's number"):
        cl.decide({"within": 1}, 1.0, None)
    with pytest.raises(cl.ClaimsError, match="missing"):
        cl.decide({"at_least": 92}, None)


# ---------------------------------------------------------------- judging claims
def claim(**kw):
    base = {
        "id": "09.x",
        "chapter": "09_x",
        "claim": "accuracy",
        "ours": "metrics.acc",
        "scale": 100,
        "unit": "%",
        "settings": "{settings.epochs} epochs",
        "source": {"name": "a paper", "value": 98.0},
        "verdict": {"within": 0.3, "why": "a reason"},
    }
    base.update(kw)
    return base


def record(**metrics):
    return {
        "profile": "paper",
        "settings": {"epochs": 5, "seeds": [0, 1]},
        "metrics": metrics,
    }


def test_a_claim_without_enough_points_is_not_testable(tmp_path):
    needs = {"path": "metrics.n_points", "at_least": 5, "why": "too few points"}
    c = claim(
        ours="metrics.rho_lo",
        scale=1,
        unit="",
        verdict={"more_than": 0, "than": "0"},
        needs=needs,
    )
    short = cl.judge(c, record(rho_lo=0.4, n_points=3))
    assert short.verdict == cl.UNTESTABLE
    assert "3 < 5: too few points" in short.note
    assert cl.judge(c, record(rho_lo=0.4, n_points=9)).verdict == "reproduced"
    assert cl.judge(c, record(rho_lo=-0.4, n_points=5)).verdict == "not reproduced"
    # an unknown field of needs, or a needs without its reason, is refused
    for i, bad in enumerate(
        ({**needs, "at_most": 3}, {"path": "metrics.n", "at_least": 5})
    ):
        with pytest.raises(cl.ClaimsError, match="needs|unknown field"):
            cl.load(write_registry(tmp_path / str(i), [claim(needs=bad)]))
    assert cl.UNTESTABLE in cl.VERDICTS


def test_judge_classes():
    assert cl.judge(claim(), record(acc=0.981)).verdict == "reproduced"
    v = cl.judge(claim(), record(acc=0.97))
    assert v.verdict == "not reproduced" and v.ours == "97.00 % (-1.00 points)"
    assert v.settings == "5 epochs"
    short = claim(budget={"source": 30, "ours": "settings.epochs"})
    assert cl.judge(short, record(acc=0.97)).verdict == "not run at the source's budget"
    assert cl.judge(short, record(acc=0.981)).verdict == "reproduced"  # short, and yet
    unverifiable = claim(
        source={"name": "n", "value": 92.3, "unverifiable": "never ran"}
    )
    assert cl.judge(unverifiable, record(acc=0.981)).verdict == "source unverifiable"
    spread = claim(ours_spread="metrics.acc_per_seed")
    v = cl.judge(spread, record(acc=0.9765, acc_per_seed=[0.975, 0.978]))
    assert v.verdict == "partly" and "±" in v.ours  # miss 0.05 <= 2 x 0.21


def test_missing_results_show_as_missing_never_as_a_pass():
    v = cl.judge(claim(), record(other=1.0))
    assert v.verdict == "result missing" and "no key 'acc'" in v.note
    assert cl.judge(claim(), record(acc=None)).verdict == "result missing"
    assert cl.judge(claim(), None).verdict == "not run yet"


def test_whose_claim_words_and_smoke_runs():
    ours = claim(whose="ours", verdict={"at_least": 97, "why": "our target"})
    assert cl.judge(ours, record(acc=0.98)).verdict == "holds"
    assert cl.judge(ours, record(acc=0.96)).verdict == "does not hold"
    target = claim(
        whose="target", verdict={"at_most": 1.5, "why": "our target"}, scale=1
    )
    assert cl.judge(target, record(acc=1.2)).verdict == "met"
    smoke = {**record(acc=0.981), "profile": "smoke"}
    assert (
        cl.judge(claim(), smoke).shown == "reproduced (smoke profile: not comparable)"
    )


# ---------------------------------------------------------------- registries and tables
def write_registry(tmp_path, claims, ratios=()):
    path = tmp_path / "helpers" / "claims.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"claims": list(claims), "ratios": list(ratios)}))
    return path


def test_load_checks_fields(tmp_path):
    ok = write_registry(tmp_path, [claim()])
    assert cl.load(ok)["claims"][0]["id"] == "09.x"
    with pytest.raises(cl.ClaimsError, match="09_x"):
        cl.load(ok, chapters=["01_other"])
    for bad, message in (
        (claim(verdict={"within": 0.3}), "why"),
        (
            claim(verdict={"within": 0.3, "why": "w", "partly_within": 1}),
            "partly_within",
        ),
        (claim(whose="theirs"), "whose"),
        (claim(source={"name": "n"}), "numeric source.value"),
    ):
        (tmp_path / "helpers" / "claims.yml").write_text(
            yaml.safe_dump({"claims": [bad]})
        )
        with pytest.raises(cl.ClaimsError, match=message):
            cl.load(ok)


def test_table_renders_the_three_kinds(tmp_path):
    reg = write_registry(
        tmp_path,
        [
            claim(),
            claim(
                id="09.ours",
                whose="ours",
                verdict={"at_least": 97, "why": "our reason"},
            ),
            claim(
                id="09.target",
                whose="target",
                ours="metrics.diff",
                scale=1,
                unit="",
                format=".1e",
                verdict={"at_most": 1e-6, "why": "rounding"},
            ),
        ],
        ratios=[
            {
                "id": "r",
                "what": "A / B time",
                "chapter": "09_x",
                "path": "metrics.ratio",
                "target": {"at_most": 1.5},
                "why": "a speed reason",
            }
        ],
    )
    results = tmp_path / "09_x.json"
    results.write_text(json.dumps(record(acc=0.981, diff=2e-11, ratio=0.7)))
    text = cl.table("09_x", results, registry=reg)
    assert isinstance(text, cl.Table) and text._repr_markdown_() == str(text)
    assert "**The sources' claims**" in text and "**reproduced**" in text
    assert "**Our own claims**" in text and "**holds**" in text and "our reason" in text
    assert "**Our engineering targets**" in text and "2.0e-11" in text
    assert "0.70×" in text and "a speed reason" in text
    assert cl.PARTLY_RULE in text
    with pytest.raises(cl.ClaimsError, match="no claim"):
        cl.table("08_none", results, registry=reg)
    assert cl.source_value("09.x", reg) == 98.0


def test_the_book_registry_loads():
    reg = cl.load()
    assert reg["claims"] and all(
        c.get("whose", "source") in cl.WHOSE for c in reg["claims"]
    )
