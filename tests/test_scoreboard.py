"""The reproduction scoreboard (tools/scoreboard.py, tools/claims.yml): registry, staleness, verdict rules and
results paths. Tests that change files work on copies in tmp_path, never on the repository. (That the committed
results files have every key the registry reads is checked in tests/test_registration.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scoreboard as sb  # tools/scoreboard.py

ROOT = Path(__file__).resolve().parents[1]

REPO = sb.Repo(ROOT)
REGISTRY = sb.load_registry(REPO)
CLAIMS = REGISTRY["claims"]


# ----------------------------------------------------------------------------------------------- the registry
def test_registry_claims_name_existing_chapters_and_bib_keys():
    known = set(REPO.chapters())
    keys = sb.bib_keys(ROOT)
    assert CLAIMS, "tools/claims.yml registers no claim"
    for c in CLAIMS:
        assert c["chapter"] in known, f"claim {c['id']}: no notebook book/{c['chapter']}.ipynb"
        cite = c["source"].get("cite")
        assert cite is None or cite in keys, f"claim {c['id']}: {cite!r} is not a key of book/references.bib"
        assert c["source"].get("name"), f"claim {c['id']}: the source has no name"
    assert len({c["id"] for c in CLAIMS}) == len(CLAIMS), "claim ids must be unique"


def test_registry_covers_the_issues_targets():
    ids = {c["id"] for c in CLAIMS}
    for needed in ("01.simple_acc", "01.advanced_acc", "01.parity", "03.greedy_layer1", "03.greedy_layer5",
                   "03.single_layer", "04.table1_7x240_bp", "04.table1_2x800_dfa", "05.paper_sparse_cnn2_noise"):
        assert needed in ids


def test_committed_pages_and_readme_are_not_stale(capsys):
    code = sb.main(["--check"])
    assert code == 0, capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- unit tests
def test_parse_path():
    assert sb.parse_path("metrics.greedy_layer_acc[0]") == ["metrics", "greedy_layer_acc", 0]
    assert sb.parse_path('metrics.table1["7x240"].bp') == ["metrics", "table1", "7x240", "bp"]
    assert sb.parse_path("a['0.5'].b[-1]") == ["a", "0.5", "b", -1]
    for bad in ("", ".a", "a..b", "a[x]", "a b", 'a["x"', "a.[0]"):
        with pytest.raises(sb.ScoreboardError):
            sb.parse_path(bad)


def test_resolve_and_missing_keys():
    record = {"metrics": {"acc": [0.1, 0.2], "t": {"0.5": {"d": 3}}}}
    assert sb.resolve(record, "metrics.acc[1]") == 0.2
    assert sb.resolve(record, 'metrics.t["0.5"].d') == 3
    with pytest.raises(sb.MissingKey, match="metrics.acc has no entry 2"):
        sb.resolve(record, "metrics.acc[2]")
    with pytest.raises(sb.MissingKey, match="no key 'x'"):
        sb.resolve(record, 'metrics.t["0.5"].x')


@pytest.mark.parametrize("rule,ours,source,other,expected", [
    ({"within": 0.3, "partly_within": 1.0}, 98.2, 98.05, None, "reproduced"),
    ({"within": 0.3, "partly_within": 1.0}, 97.5, 98.05, None, "partly"),
    ({"within": 0.3, "partly_within": 1.0}, 96.0, 98.05, None, "not reproduced"),
    ({"within": 0.3}, 97.5, 98.05, None, "not reproduced"),
    ({"within": 0.3}, 98.35, 98.05, None, "reproduced"),  # the bound is inclusive
    ({"at_least": 92}, 92.7, None, None, "reproduced"),
    ({"at_least": 92, "partly_at_least": 90}, 91.0, None, None, "partly"),
    ({"at_least": 92}, 91.9, None, None, "not reproduced"),
    ({"at_most": 1e-6}, 2e-11, None, None, "reproduced"),
    ({"at_most": 1.3, "partly_at_most": 2}, 1.5, None, None, "partly"),
    ({"at_most": 0.5}, 0.61, None, None, "not reproduced"),
    ({"more_than": "x"}, 0.93, None, 0.88, "reproduced"),
    ({"more_than": "x"}, 0.88, None, 0.88, "not reproduced"),
    ({"all_cases": True}, [12, 12], None, None, "reproduced"),
    ({"all_cases": True}, [7, 12], None, None, "partly"),
    ({"all_cases": True}, [6, 12], None, None, "not reproduced"),
    ({"no_cases": True}, [0, 12], None, None, "reproduced"),
    ({"no_cases": True}, [5, 12], None, None, "partly"),
    ({"no_cases": True}, [6, 12], None, None, "not reproduced"),
    ({"at_least": 92}, None, None, None, "not reproduced"),
])
def test_verdict_rules(rule, ours, source, other, expected):
    assert sb.decide(rule, ours, source, other) == expected


def test_bad_rules_are_refused():
    with pytest.raises(sb.ScoreboardError, match="exactly one"):
        sb.decide({"within": 1, "at_least": 2}, 1.0, 1.0)
    with pytest.raises(sb.ScoreboardError, match="source's number"):
        sb.decide({"within": 1}, 1.0, None)


def test_settings_template():
    record = {"settings": {"epochs": 30, "seeds": [0, 1, 2], "lr": 0.001}}
    assert sb.fill_template("{settings.epochs} epochs, seeds {settings.seeds} ({settings.seeds|count}), lr "
                            "{settings.lr}", record) == "30 epochs, seeds 0, 1, 2 (3), lr 0.001"
    assert sb.fill_template("{settings.seeds|seeds}", record) == "mean of seeds 0, 1, 2"
    assert sb.fill_template("{settings.seeds|seeds}", {"settings": {"seeds": [4]}}) == "seed 4"


# ----------------------------------------------------------------------------------------------- copies of the repo
# (the fixture repo_copy, in tests/conftest.py, copies the files the generator reads and writes to tmp_path)
def run(root: Path, *args: str) -> int:
    return sb.main(["--root", str(root), *args])


def test_copy_is_up_to_date(repo_copy):
    assert run(repo_copy, "--check") == 0


def test_stale_readme_fails_check(repo_copy, capsys):
    readme = repo_copy / "README.md"
    start = "<!-- scoreboard:start -->\n"
    readme.write_text(readme.read_text().replace(start, start + "a hand-typed line\n", 1))
    assert run(repo_copy, "--check") == 1
    assert "README.md" in capsys.readouterr().err
    assert run(repo_copy) == 0  # the generator repairs it
    assert run(repo_copy, "--check") == 0


def test_stale_page_fails_check_and_check_writes_nothing(repo_copy, capsys):
    page = repo_copy / "book" / "scoreboard.md"
    page.write_text("# Reproduction scoreboard\n\nhand-typed\n")
    assert run(repo_copy, "--check") == 1
    assert "book/scoreboard.md" in capsys.readouterr().err
    assert page.read_text() == "# Reproduction scoreboard\n\nhand-typed\n"


def test_readme_without_markers_fails(repo_copy, capsys):
    readme = repo_copy / "README.md"
    readme.write_text(readme.read_text().replace("<!-- scoreboard:start -->", ""))
    assert run(repo_copy) == 2
    assert "<!-- scoreboard:start -->" in capsys.readouterr().err


def _first_claim_with_results(root: Path):
    for c in CLAIMS:
        if (root / "results" / f"{c['chapter']}.json").exists() and not isinstance(c["ours"], list):
            return c
    pytest.skip("no committed results file yet")


def test_results_file_lacking_a_key_stops_the_generator(repo_copy, capsys):
    claim = _first_claim_with_results(repo_copy)
    file = repo_copy / "results" / f"{claim['chapter']}.json"
    record = json.loads(file.read_text())
    parts = sb.parse_path(claim["ours"])
    target = record
    for p in parts[:-1]:
        target = target[p]
    del target[parts[-1]]
    file.write_text(json.dumps(record))
    before = (repo_copy / "book" / "scoreboard.md").read_text()
    assert run(repo_copy) == 2
    err = capsys.readouterr().err
    assert f"results/{claim['chapter']}.json" in err and claim["ours"] in err
    assert f"make reproduce CHAPTER={claim['chapter']}" in err
    assert (repo_copy / "book" / "scoreboard.md").read_text() == before  # nothing written
    assert run(repo_copy, "--check") == 2


def test_missing_results_file_is_not_run_yet_unless_strict(repo_copy, capsys):
    claim = _first_claim_with_results(repo_copy)
    (repo_copy / "results" / f"{claim['chapter']}.json").unlink()
    assert run(repo_copy, "--check") == 1  # the pages now differ: the chapter is "not run yet"
    assert run(repo_copy) == 0
    assert sb.NOT_RUN in (repo_copy / "book" / "scoreboard.md").read_text()
    assert run(repo_copy, "--strict") == 2
    assert f"make reproduce CHAPTER={claim['chapter']}" in capsys.readouterr().err


def test_source_number_must_match_the_chapters_copy(repo_copy, capsys):
    claims_file = repo_copy / "tools" / "claims.yml"
    checked = [c for c in CLAIMS if c["source"].get("check") and (repo_copy / "results" / f"{c['chapter']}.json").exists()]
    if not checked:
        pytest.skip("no committed results file with a source check")
    c = checked[0]
    text = claims_file.read_text()
    old = f"value: {c['source']['value']},"
    assert old in text
    claims_file.write_text(text.replace(old, f"value: {c['source']['value'] + 1},", 1))
    assert run(repo_copy) == 2
    assert c["id"] in capsys.readouterr().err


def test_unknown_bib_key_or_chapter_is_refused(repo_copy):
    claims_file = repo_copy / "tools" / "claims.yml"
    text = claims_file.read_text()
    claims_file.write_text(text.replace("cite: nokland2016dfa", "cite: nokland2099", 1))
    with pytest.raises(sb.ScoreboardError, match="nokland2099"):
        sb.load_registry(sb.Repo(repo_copy))
    claims_file.write_text(text.replace("chapter: 01_numpy_from_scratch", "chapter: 01_nope", 1))
    with pytest.raises(sb.ScoreboardError, match="01_nope"):
        sb.load_registry(sb.Repo(repo_copy))
    claims_file.write_text(text.replace("{within: 0.3, partly_within: 1.0}", "{within: 0.3, partly_withn: 1.0}", 1))
    with pytest.raises(sb.ScoreboardError, match="partly_withn"):
        sb.load_registry(sb.Repo(repo_copy))


def test_pages_are_myst_with_known_citations():
    keys = sb.bib_keys(ROOT)
    known = set(REPO.chapters())
    import re
    for name, title in (("scoreboard.md", "# Reproduction scoreboard"), ("performance.md", "# Performance report")):
        text = (ROOT / "book" / name).read_text()
        assert text.startswith(title + "\n")
        assert text.count("\n# ") == 0, f"{name} must have one top-level title"
        for key in re.findall(r"\{cite\}`([^`]+)`", text):
            assert key in keys, f"{name} cites {key!r}, not in references.bib"
        for doc in re.findall(r"\{doc\}`[^<`]*<([^>]+)>`", text):
            assert doc in known, f"{name} links to {doc!r}"
