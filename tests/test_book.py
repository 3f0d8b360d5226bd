"""The rendered book: it builds without a single Sphinx warning, and its chapters follow
the conventions.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

import chapters  # tools/chapters.py: the one chapter list
import sync_links  # tools/sync_links.py
from helpers.params import parse_parameters_cell

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters.notebooks()


@pytest.mark.book
def test_book_builds_without_warnings(built_book):
    assert (built_book / "index.html").exists()
    for nb in CHAPTERS:
        assert (built_book / "book" / f"{nb.stem}.html").exists(), (
            f"{nb.name} was not rendered"
        )


def test_toc_has_the_four_numbered_parts_and_no_missing_file():
    """(That every chapter is in the table of contents is checked in
    tests/test_registration.py.)
    """
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    captions = [part["caption"] for part in toc["parts"]]
    assert captions[:4] == [
        "Part I: Foundations",
        "Part II: Learning without end-to-end backprop",
        "Part III: Sparse representations",
        "Part IV: Synthesis",
    ]
    assert all(part.get("numbered") for part in toc["parts"][:4])
    for f in files + [toc["root"]]:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), (
            f"{f} is in _toc.yml but missing"
        )


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
    defaults, why = parse_parameters_cell(params[0].source)
    assert defaults is not None, f"not a parameters cell: {why}"
    assert next(iter(defaults)) == "profile" and defaults["profile"] == "paper", (
        "the first parameter is profile, and its default is the paper's"
    )
    assert tagged("badges") and tagged("setup"), (
        "badges and setup cells (tools/sync_links.py)"
    )
    bib = [
        c
        for c in nb.cells
        if c.cell_type == "markdown" and "{bibliography}" in c.source
    ]
    assert not bib, (
        "chapters cite with {cite}`key`; the book's one bibliography is "
        "book/bibliography.md "
        "(a second {bibliography} directive makes Sphinx warn about duplicate "
        "citations)"
    )


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_notebook_is_a_paper_profile_run(nb_path):
    """The committed notebook carries the outputs of a papermill run of the paper
    profile that finished without error, and the results file (if the chapter writes
    one) is from it (its keys: tests/test_registration.py)."""
    nb = nbformat.read(nb_path, as_version=4)
    pm = nb.metadata.get("papermill")
    assert pm, (
        f"{nb_path.name} was not executed with papermill: run make reproduce "
        f"CHAPTER={nb_path.stem}"
    )
    assert pm.get("parameters", {}).get("profile", "paper") == "paper", (
        "a smoke-profile run was committed"
    )
    assert pm.get("exception") in (None, False), "the committed run raised an exception"
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "start_run(" not in code:
        return
    results = ROOT / "results" / f"{nb_path.stem}.json"
    assert results.exists(), f"{results} is missing: the paper-profile run writes it"
    record = json.loads(results.read_text())
    assert record["profile"] == "paper"
    # the run that wrote the JSON is the run whose outputs are committed
    printed = "".join(
        o.get("text", "")
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.output_type == "stream"
    )
    assert (
        "results written to" in printed
        and record["finished_utc"][:16] <= pm["end_time"][:16].replace(" ", "T") + "Z"
    )
