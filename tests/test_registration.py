"""Every chapter is registered everywhere the book needs it, and its committed results
file has every key the book reads. A chapter is a notebook ``book/NN_<name>.ipynb``
(``tools/chapters.py`` finds it: the tools, the smoke run and the scoreboard pages need
nothing more); the places below need a line each, and a chapter that misses one fails
here with the place and the fix named. *Reproducing the book* ("How to add things")
lists the same places."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import chapters  # tools/chapters.py (tests/conftest.py puts tools/ on sys.path)
import scoreboard as sb  # tools/scoreboard.py
from helpers import runs

ROOT = Path(__file__).resolve().parents[1]
STEMS = chapters.stems()

#: The metrics each chapter's results file (``results/<stem>.json``, key ``metrics``)
#: must have.
RESULTS_KEYS = {
    "01_numpy_from_scratch": [
        "simple_test_acc",
        "advanced_test_acc",
        "torch_parity_max_abs_diff",
        "numpy_vs_torch_epoch_time_ratio",
    ],
    "02_looking_inside": [
        "mlp_test_acc",
        "cnn_test_acc",
        "knn_acc_pixels_2d",
        "knn_acc_hidden_2d",
        "trustworthiness_hidden",
        "silhouette_hidden",
        "tsne_seconds_2000",
    ],
    "03_local_errors": [
        "greedy_layer_acc",
        "greedy_layer_acc_mean",
        "greedy_layer_acc_std",
        "simultaneous_layer_acc",
        "backprop_acc",
        "epochs_by_seed",
        "alpha_fits",
        "alpha_perturbed",
        "relations",
        "saturation",
        "fgsm_acc_per_layer",
        "gaussian_acc_per_layer",
    ],
    "04_feedback_alignment": [
        "exp1_bp_test_err",
        "exp1_dfa_test_err",
        "exp1_dfa_scaled_test_err",
        "exp2_bp_test_err",
        "exp2_dfa_test_err",
        "table1",
        "alignment_deg_final",
        "dfa_vs_bp_step_time_ratio",
    ],
    "05_sparse_representations": [
        "notebook_table",
        "paper_table",
        "kwinners_vs_relu_time_ratio",
    ],
    "06_learning_rules_compared": [
        "test_acc",
        "epoch_time_ratio",
        "noise_score",
        "fgsm_acc",
        "alpha_per_layer",
        "knn_acc_last_hidden",
    ],
    "07_claims_on_fashion_mnist": [
        "claims",
        "noise_score",
        "alpha_relation",
        "lr_check",
        "cpu_hours",
    ],
}

#: Chapters without a claim in helpers/claims.yml, and why.
NO_CLAIMS = {
    "06_learning_rules_compared": "it compares the learning rules with each other on "
    "one budget; it reproduces "
    "no source's number",
    "07_claims_on_fashion_mnist": "it reruns other chapters' claims on a second "
    "data set; its verdicts say whether a claim travels (holds, holds weaker, does not "
    "hold), not whether a source's number is reproduced; its own table gives them, and "
    "the scoreboard lists it",
}


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def registration_gaps(
    root: Path,
    stem: str,
    results_keys=RESULTS_KEYS,
    grids=runs.GRIDS,
    no_claims=NO_CLAIMS,
) -> list[str]:
    """The places of the repository at ``root`` where chapter ``stem`` is not
    registered, each with its fix.
    """
    gaps = []
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if f"book/{stem}" not in [
        c["file"] for part in toc["parts"] for c in part.get("chapters", [])
    ]:
        gaps.append(f"_toc.yml: add `- file: book/{stem}` to the chapters of its part")
    if not re.search(
        rf"^\|.*\{{doc\}}`{stem}`.*\|", (root / "book" / "intro.md").read_text(), re.M
    ):
        gaps.append(
            f"book/intro.md: add a row with {{doc}}`{stem}` to the table of chapters"
        )
    if not re.search(
        rf"^\|.*\|\s*`{stem}`\s*\|", (root / "README.md").read_text(), re.M
    ):
        gaps.append(f"README.md: add a row with `{stem}` to the table of chapters")
    registry = yaml.safe_load((root / "helpers" / "claims.yml").read_text())
    if stem not in no_claims and stem not in {
        c.get("chapter") for c in registry.get("claims", [])
    }:
        gaps.append(
            "helpers/claims.yml: add the chapter's claims (the source and its number, "
            "the path of ours in "
            f"results/{stem}.json, the verdict rule), or name the chapter in NO_CLAIMS "
            "in "
            f"tests/test_registration.py with the reason it has none"
        )
    if stem not in results_keys:
        gaps.append(
            "RESULTS_KEYS in tests/test_registration.py: list the metrics "
            f"results/{stem}.json must have"
        )
    trains_runs = (
        "runs.ensure(" in notebook_code(root / "book" / f"{stem}.ipynb")
        or (root / "results" / "runs" / stem).is_dir()
    )
    if trains_runs and stem not in grids:
        gaps.append(
            f'helpers.runs.GRIDS: add "{stem}": ["helpers.<module>:<grid>"] (the '
            "chapter trains run "
            f"records: results/runs/{stem}/)"
        )
    others = [
        s for s in chapters.stems(root / "book") if s != stem and s[:2] == stem[:2]
    ]
    if others:
        gaps.append(
            f"book/{stem}.ipynb: chapter number {stem[:2]} is also "
            f"{', '.join(others)}; renumber one"
        )
    return gaps


@pytest.mark.parametrize("stem", STEMS)
def test_every_chapter_is_registered_everywhere(stem):
    gaps = registration_gaps(ROOT, stem)
    assert not gaps, f"{stem} is not registered in:\n- " + "\n- ".join(gaps)


def test_the_registries_name_only_chapters_that_exist():
    # a new chapter's grid is registered while the chapter is still a draft
    drafts = {p.stem for p in (ROOT / "book" / "drafts").glob("*.ipynb")}
    for where, names, known in (
        ("RESULTS_KEYS in tests/test_registration.py", RESULTS_KEYS, set(STEMS)),
        ("NO_CLAIMS in tests/test_registration.py", NO_CLAIMS, set(STEMS)),
        ("helpers.runs.GRIDS", runs.GRIDS, set(STEMS) | drafts),
    ):
        unknown = sorted(set(names) - known)
        assert not unknown, (
            f"{where} names {unknown}, not chapters (book/NN_<name>.ipynb): {STEMS}"
        )
    claimed = {c["chapter"] for c in sb.load_registry(sb.Repo(ROOT))["claims"]}
    stale = sorted(set(NO_CLAIMS) & claimed)
    assert not stale, (
        f"{stale} have claims in helpers/claims.yml now: remove them from NO_CLAIMS"
    )


def test_a_new_chapter_missing_from_every_place_is_named_and_passes_once_registered(
    repo_copy,
):
    """The check above can fail: a new chapter with run records, registered nowhere, is
    refused with every place named; registered in each, it passes."""
    root = repo_copy
    stem = "08_new_rule"
    nb = json.loads(chapters.notebooks()[0].read_text())
    nb["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": ["records = runs.ensure(GRID.specs(P))"],
        }
    )
    (root / "book" / f"{stem}.ipynb").write_text(json.dumps(nb))

    gaps = registration_gaps(root, stem)
    assert [g.split(":")[0] for g in gaps] == [
        "_toc.yml",
        "book/intro.md",
        "README.md",
        "helpers/claims.yml",
        "RESULTS_KEYS in tests/test_registration.py",
        "helpers.runs.GRIDS",
    ]

    toc = root / "_toc.yml"
    last = "      - file: book/07_claims_on_fashion_mnist\n"
    toc.write_text(toc.read_text().replace(last, f"{last}      - file: book/{stem}\n"))
    with open(root / "book" / "intro.md", "a") as f:
        f.write(f"\n| | {{doc}}`{stem}` | A new rule |\n")
    with open(root / "README.md", "a") as f:
        f.write(f"\n| IV | `{stem}` | a new rule |\n")
    registry = yaml.safe_load((root / "helpers" / "claims.yml").read_text())
    registry["claims"].append({"id": "08.acc", "chapter": stem})
    (root / "helpers" / "claims.yml").write_text(yaml.safe_dump(registry))
    assert (
        registration_gaps(
            root,
            stem,
            results_keys={**RESULTS_KEYS, stem: ["test_acc"]},
            grids={**runs.GRIDS, stem: ["helpers.new_table:TABLE"]},
        )
        == []
    )
    (root / "book" / "08_other.ipynb").write_text(json.dumps(nb))
    assert "chapter number 08 is also 08_other" in "".join(
        registration_gaps(root, stem)
    )


# ------------------------------------------------------------------------- results keys
REGISTRY = sb.load_registry(sb.Repo(ROOT))


def _results_files() -> list[tuple[str, list[str], list[dict], str]]:
    """(results file, metrics it must have, ratios read from it, the command that writes
    it), per file.
    """
    files = []
    for stem in STEMS:
        paths = [f"metrics.{k}" for k in RESULTS_KEYS.get(stem, [])]
        paths += [
            p
            for c in REGISTRY["claims"]
            if c["chapter"] == stem
            for p in sb.claim_paths(c)
        ]
        ratios = [r for r in REGISTRY.get("ratios", []) if r.get("chapter") == stem]
        files.append(
            (f"results/{stem}.json", paths, ratios, f"make reproduce CHAPTER={stem}")
        )
    for r in REGISTRY.get("ratios", []):
        if "benchmark" in r:
            files.append(
                (f"results/benchmarks/{r['benchmark']}.json", [], [r], r["command"])
            )
    return files


@pytest.mark.parametrize(
    "rel, paths, ratios, command",
    _results_files(),
    ids=[f[0] for f in _results_files()],
)
def test_committed_results_have_every_key_the_book_reads(rel, paths, ratios, command):
    """RESULTS_KEYS and every path helpers/claims.yml reads (claims, their settings,
    ratios), in the committed file.
    """
    file = ROOT / rel
    assert file.exists(), f"{rel} is missing: run `{command}` and commit it"
    record = json.loads(file.read_text())
    missing = []
    for path in paths:
        try:
            sb.resolve(record, path)
        except sb.MissingKey as e:
            missing.append(f"{path} ({e})")
    for r in ratios:
        try:
            sb.resolve(record, r["path"])
            sb.fill_template(r.get("settings", ""), record)
        except sb.MissingKey as e:
            missing.append(f"ratio {r['id']}: {e}")
    assert not missing, (
        f"{rel} lacks "
        + "; ".join(missing)
        + f". Fix: run `{command}`, or correct helpers/claims.yml / RESULTS_KEYS"
    )
