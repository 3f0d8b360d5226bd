"""The rendered book: it builds without a single Sphinx warning, and its chapters follow the conventions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sync_links  # noqa: E402
from conftest import build  # noqa: E402

CHAPTERS = sync_links.chapters(ROOT)

#: results/<stem>.json keys each chapter's issue asks for (checked once the chapter writes results).
REQUIRED_KEYS = {
    "01_numpy_from_scratch": ["simple_test_acc", "advanced_test_acc", "torch_parity_max_abs_diff",
                              "numpy_vs_torch_epoch_time_ratio"],
    "02_looking_inside": ["mlp_test_acc", "cnn_test_acc", "knn_acc_pixels_2d", "knn_acc_hidden_2d",
                          "trustworthiness_hidden", "silhouette_hidden", "tsne_seconds_2000"],
    "03_local_errors": ["greedy_layer_acc", "simultaneous_layer_acc", "backprop_acc", "alpha_per_layer",
                        "fgsm_acc_per_layer", "gaussian_acc_per_layer"],
    "04_feedback_alignment": ["exp1_bp_test_err", "exp1_dfa_test_err", "exp1_dfa_scaled_test_err",
                              "exp2_bp_test_err", "exp2_dfa_test_err", "table1", "alignment_deg_final",
                              "dfa_vs_bp_step_time_ratio"],
    "05_sparse_representations": ["notebook_table", "paper_table", "kwinners_vs_relu_time_ratio"],
    "06_learning_rules_compared": ["test_acc", "epoch_time_ratio", "noise_score", "fgsm_acc", "alpha_per_layer",
                                   "knn_acc_last_hidden"],
}


@pytest.mark.book
def test_book_builds_without_warnings(built_book):
    assert (built_book / "index.html").exists()
    for nb in CHAPTERS:
        assert (built_book / "book" / f"{nb.stem}.html").exists(), f"{nb.name} was not rendered"


@pytest.mark.book
def test_a_warning_fails_the_build(tmp_path):
    """The -W switch really turns a warning into a failure (so the test above can fail)."""
    copy = tmp_path / "src"
    copy.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "book", copy / "book", ignore=shutil.ignore_patterns("_smoke_*", "_running_*"))
    intro = copy / "book" / "intro.md"
    intro.write_text(intro.read_text() + "\nSee {doc}`no_such_chapter`.\n")
    result = build(copy, tmp_path / "out")
    assert result.returncode != 0
    assert "no_such_chapter" in result.stdout + result.stderr


def test_toc_lists_every_chapter_and_nothing_missing():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    captions = [part["caption"] for part in toc["parts"]]
    assert captions[:4] == ["Part I: Foundations", "Part II: Learning without end-to-end backprop",
                            "Part III: Sparse representations", "Part IV: Synthesis"]
    assert all(part.get("numbered") for part in toc["parts"][:4])
    assert sorted(f"book/{nb.stem}" for nb in CHAPTERS) == sorted(f for f in files if re.match(r"book/\d\d_", f))
    for f in files + [toc["root"]]:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"{f} is in _toc.yml but missing"


def test_badges_and_install_cells_match_config():
    stale = {nb.name: sync_links.stale_cells(nb, ROOT) for nb in CHAPTERS}
    assert not any(stale.values()), f"run python tools/sync_links.py: {stale}"
    url = sync_links.colab_url(ROOT / "book" / "01_numpy_from_scratch.ipynb", ROOT)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert url.endswith(f"/blob/{config['branch']}/book/01_numpy_from_scratch.ipynb")
    assert config["url"].split("github.com/")[1] in url


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_conventions(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    tagged = lambda tag: [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    params = tagged("parameters")
    assert len(params) == 1, "exactly one papermill 'parameters' cell"
    lines = [ln for ln in params[0].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0].startswith('profile = "paper"'), "the default profile is the paper's"
    for ln in lines:
        assert re.match(r"^\w+ = .+  # \S", ln), f"each parameter needs a one-line comment: {ln!r}"
    assert tagged("badges") and tagged("setup"), "badges and setup cells (tools/sync_links.py)"
    bib = [c for c in nb.cells if c.cell_type == "markdown" and "{bibliography}" in c.source]
    assert not bib, ("chapters cite with {cite}`key`; the book's one bibliography is book/bibliography.md "
                     "(a second {bibliography} directive makes Sphinx warn about duplicate citations)")


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_notebook_is_a_paper_profile_run(nb_path):
    """The committed notebook carries the outputs of a papermill run of the paper profile
    that finished without error, and the results file (if the chapter writes one) is from it."""
    nb = nbformat.read(nb_path, as_version=4)
    pm = nb.metadata.get("papermill")
    assert pm, f"{nb_path.name} was not executed with papermill: run make reproduce CHAPTER={nb_path.stem}"
    assert pm.get("parameters", {}).get("profile", "paper") == "paper", "a smoke-profile run was committed"
    assert pm.get("exception") in (None, False), "the committed run raised an exception"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "start_run(" not in code:
        return
    results = ROOT / "results" / f"{nb_path.stem}.json"
    assert results.exists(), f"{results} is missing: the paper-profile run writes it"
    record = json.loads(results.read_text())
    assert record["profile"] == "paper"
    missing = [k for k in REQUIRED_KEYS.get(nb_path.stem, []) if k not in record["metrics"]]
    assert not missing, f"{results.name} lacks {missing}"
    # the run that wrote the JSON is the run whose outputs are committed
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
    assert f"results written to" in printed and record["finished_utc"][:16] <= pm["end_time"][:16].replace(" ", "T") + "Z"
