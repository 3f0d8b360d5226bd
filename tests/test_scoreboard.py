"""The reproduction scoreboard (tools/scoreboard.py, helpers/claims.yml): registry,
pages, staleness. The verdict engine it calls is tested in tests/test_claims.py.
Tests that change files work on copies in tmp_path, never on the repository. (That
the committed results files have every key the registry reads is checked in
tests/test_registration.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scoreboard as sb  # tools/scoreboard.py

from helpers import claims as cl

ROOT = Path(__file__).resolve().parents[1]

REPO = sb.Repo(ROOT)
REGISTRY = sb.load_registry(REPO)
CLAIMS = REGISTRY["claims"]


# ------------------------------------------------------------------------- the registry
def test_registry_claims_name_existing_chapters_and_bib_keys():
    known = set(REPO.chapters())
    keys = cl._bib_keys(ROOT)
    assert CLAIMS, "helpers/claims.yml registers no claim"
    for c in CLAIMS:
        assert c["chapter"] in known, (
            f"claim {c['id']}: no notebook book/{c['chapter']}.ipynb"
        )
        src = c.get("source") or {}
        assert src.get("cite") is None or src["cite"] in keys, (
            f"claim {c['id']}: {src['cite']!r} is not a key of book/references.bib"
        )
        if c.get("whose", "source") == "source":
            assert src.get("name"), f"claim {c['id']}: the source has no name"
    assert len({c["id"] for c in CLAIMS}) == len(CLAIMS), "claim ids must be unique"


def test_registry_covers_the_chapters_targets():
    ids = {c["id"] for c in CLAIMS}
    for needed in (
        "01.simple_acc",
        "01.advanced_acc",
        "01.parity",
        "03.greedy_layer1",
        "03.greedy_layer5",
        "03.single_layer",
        "04.table1_7x240_bp",
        "04.table1_2x800_dfa",
        "05.paper_sparse_cnn2_noise",
    ):
        assert needed in ids


def test_scoreboard_lists_sources_claims_ours_apart_targets_on_performance_page():
    page = (ROOT / "book" / "scoreboard.md").read_text()
    sources, _, ours = page.partition("## The book's own claims")
    perf = (ROOT / "book" / "performance.md").read_text()
    for c in CLAIMS:
        whose = c.get("whose", "source")
        text = cl.cell(c["claim"])
        in_sources, in_ours, in_perf = text in sources, text in ours, text in perf
        expected = {
            "source": (True, False, False),
            "ours": (False, True, False),
            "target": (False, False, True),
        }[whose]
        assert (in_sources, in_ours, in_perf) == expected, f"claim {c['id']} ({whose})"
    verdicts, _ = sb.judge_all(REPO, REGISTRY)
    counted = sb.summary_line([v for v in verdicts if v.whose == "source"])
    assert counted in page
    n = sum(
        int(part.split()[0])
        for part in counted.split(": ", 1)[1].rstrip(".").split(", ")
    )
    assert n == sum(c.get("whose", "source") == "source" for c in CLAIMS)


def test_no_page_speaks_of_an_issue_tracker():
    for rel in (
        "book/scoreboard.md",
        "book/performance.md",
        "README.md",
        "helpers/claims.yml",
    ):
        text = (ROOT / rel).read_text().lower()
        assert "issue" not in text, f"{rel} mentions an issue; a reader has no tracker"


def test_committed_pages_and_readme_are_not_stale(capsys):
    code = sb.main(["--check"])
    assert code == 0, capsys.readouterr().err


# ------------------------------------------------------------------- copies of the repo
# (the fixture repo_copy, in tests/conftest.py, copies the files the generator reads and
# writes to tmp_path)
def run(root: Path, *args: str) -> int:
    return sb.main(["--root", str(root), *args])


def test_copy_is_up_to_date(repo_copy):
    assert run(repo_copy, "--check") == 0


def test_stale_readme_fails_check(repo_copy, capsys):
    readme = repo_copy / "README.md"
    start = "<!-- scoreboard:start -->\n"
    readme.write_text(
        readme.read_text().replace(start, start + "a hand-typed line\n", 1)
    )
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
        if (root / "results" / f"{c['chapter']}.json").exists() and not isinstance(
            c["ours"], list
        ):
            return c
    pytest.skip("no committed results file yet")


def test_results_file_lacking_a_key_shows_the_claim_as_missing(repo_copy, capsys):
    claim = _first_claim_with_results(repo_copy)
    file = repo_copy / "results" / f"{claim['chapter']}.json"
    record = json.loads(file.read_text())
    parts = cl.parse_path(claim["ours"])
    target = record
    for p in parts[:-1]:
        target = target[p]
    del target[parts[-1]]
    file.write_text(json.dumps(record))
    assert run(repo_copy, "--check") == 1  # the page changes: the claim is missing now
    assert run(repo_copy) == 0
    err = capsys.readouterr().err
    assert claim["id"] in err and f"make reproduce CHAPTER={claim['chapter']}" in err
    rows = [
        line
        for line in (repo_copy / "book" / "scoreboard.md").read_text().splitlines()
        if line.startswith("|") and claim["claim"] in line
    ]
    assert rows and all("result missing" in line for line in rows)
    before = (repo_copy / "book" / "scoreboard.md").read_text()
    assert run(repo_copy, "--strict") == 2  # --strict refuses it, and writes nothing
    assert (repo_copy / "book" / "scoreboard.md").read_text() == before


def test_missing_results_file_is_not_run_yet_unless_strict(repo_copy, capsys):
    claim = _first_claim_with_results(repo_copy)
    (repo_copy / "results" / f"{claim['chapter']}.json").unlink()
    # the pages now differ: the chapter is "not run yet"
    assert run(repo_copy, "--check") == 1
    assert run(repo_copy) == 0
    assert sb.NOT_RUN in (repo_copy / "book" / "scoreboard.md").read_text()
    assert run(repo_copy, "--strict") == 2
    assert f"make reproduce CHAPTER={claim['chapter']}" in capsys.readouterr().err


def test_unknown_bib_key_or_chapter_is_refused(repo_copy):
    claims_file = repo_copy / "helpers" / "claims.yml"
    text = claims_file.read_text()
    claims_file.write_text(text.replace("cite: nokland2016dfa", "cite: nokland2099", 1))
    with pytest.raises(sb.ScoreboardError, match="nokland2099"):
        sb.load_registry(sb.Repo(repo_copy))
    claims_file.write_text(
        text.replace("chapter: 01_numpy_from_scratch", "chapter: 01_nope", 1)
    )
    with pytest.raises(sb.ScoreboardError, match="01_nope"):
        sb.load_registry(sb.Repo(repo_copy))
    claims_file.write_text(
        text.replace(
            "verdict: {within: 0.3, why:",
            "verdict: {within: 0.3, partly_within: 1, why:",
            1,
        )
    )
    with pytest.raises(sb.ScoreboardError, match="partly_within"):
        sb.load_registry(sb.Repo(repo_copy))


def test_pages_are_myst_with_known_citations():
    keys = cl._bib_keys(ROOT)
    known = set(REPO.chapters())
    import re

    for name, title in (
        ("scoreboard.md", "# Reproduction scoreboard"),
        ("performance.md", "# Performance report"),
    ):
        text = (ROOT / "book" / name).read_text()
        assert text.startswith(title + "\n")
        assert text.count("\n# ") == 0, f"{name} must have one top-level title"
        for key in re.findall(r"\{cite\}`([^`]+)`", text):
            assert key in keys, f"{name} cites {key!r}, not in references.bib"
        for doc in re.findall(r"\{doc\}`[^<`]*<([^>]+)>`", text):
            assert doc in known | {"performance", "scoreboard"}, (
                f"{name} links to {doc!r}"
            )


def test_a_chapter_in_preparation_is_named_without_a_link():
    # its run records are listed before its notebook exists in book/: no broken link
    assert sb.chapter_label("07_x", "book", published=False) == "7 (in preparation)"
    assert sb.chapter_label("07_x", "book") == "{doc}`7 <07_x>`"
    assert sb.chapter_label("07_x", "readme") == "[7](book/07_x.ipynb)"


def _travel_repo(repo_copy) -> tuple[sb.Repo, Path]:
    """The copy with a results file of chapter 7 with three claims: two in different
    units, one the run could not test."""
    stem = sb.TRAVEL[0]
    claims = {
        "dfa_1x800": {
            "label": "DFA ≈ backprop, 1x800 tanh",
            "unit": "test-error points",
            "mnist_gap": 0.25,
            "mnist_gap_ci95": [0.1, 0.4],
            "fashion_gap": 1.5,
            "fashion_gap_ci95": [1.2, 1.8],
            "verdict": "holds weaker",
            "ratio": 6.0,
            "seeds": [0, 1, 2],
        },
        "sparse_cnn1": {
            "label": "sparse > dense noise score, Table 1 (CNN-1)",
            "unit": "noise score",
            "mnist_gap": 20_000.0,
            "mnist_gap_ci95": [15_000.0, 25_000.0],
            "fashion_gap": -1_234.4,
            "fashion_gap_ci95": [-3_000.0, 500.0],
            "verdict": "does not hold",
            "ratio": -0.06,
            "seeds": [0, 1, 2],
        },
        "alpha_simultaneous": {
            "label": "faster decay, higher accuracy (simultaneous)",
            "unit": "Spearman ρ",
            **{k: None for k in ("mnist_gap", "mnist_gap_ci95", "fashion_gap")},
            **{k: None for k in ("fashion_gap_ci95", "ratio", "mnist_shown")},
            "verdict": "not testable in our run",
            "why": "3 good fits on MNIST; a rank correlation needs 5",
            "seeds": [0, 1, 2],
        },
    }
    file = repo_copy / "results" / f"{stem}.json"
    file.write_text(json.dumps({"metrics": {"claims": claims}}))
    return sb.Repo(repo_copy), file


def test_the_claims_rerun_on_fashion_mnist_are_listed_as_the_chapter_judged_them(
    repo_copy,
):
    repo, file = _travel_repo(repo_copy)
    table = sb.travel_table(repo, "book")
    rows = [line for line in table.splitlines() if line.startswith("| {doc}")]
    assert rows[0] == (
        "| {doc}`7 <07_claims_on_fashion_mnist>` | DFA ≈ backprop, 1x800 tanh | "
        "test-error points | +0.25 [+0.10, +0.40] | +1.50 [+1.20, +1.80] | "
        "**holds weaker, ratio of the gaps 6.00** | 0, 1, 2 |"
    )
    assert "| -1,234 [-3,000, +500] | **does not hold** |" in rows[1]
    assert rows[2].endswith(
        "| Spearman ρ | — | — | **not testable in our run (3 good fits on MNIST; a "
        "rank correlation needs 5)** | 0, 1, 2 |"
    )
    assert run(repo_copy) == 0
    page = (repo_copy / "book" / "scoreboard.md").read_text()
    assert "## Do the claims travel?" in page and rows[0] in page
    readme = (repo_copy / "README.md").read_text()
    assert "[7](book/07_claims_on_fashion_mnist.ipynb) | DFA ≈ backprop" in readme

    file.unlink()  # not run yet: one row that says so
    assert sb.NOT_RUN in sb.travel_table(repo, "book")
    file.write_text(json.dumps({"metrics": {"claims": {"x": {"label": "x"}}}}))
    with pytest.raises(sb.ScoreboardError, match="make reproduce CHAPTER=07_claims"):
        sb.travel_table(repo, "book")
    (repo_copy / "book" / f"{sb.TRAVEL[0]}.ipynb").unlink()  # no such chapter: no table
    assert sb.travel_table(repo, "book") is None
