"""tools/sweep.py on a tiny generated chapter: grid, parallel runs, failures, the
cluster round trip.

The chapter (``99_tiny``) imports the helpers and writes a results file whose metric is
``x * 2 + seed``, so every expected mean and std is known exactly; a negative ``x``
makes it raise at once (as a chapter's parameter check would). Each papermill run costs
a few seconds (mostly importing PyTorch), so the parallel and the failure tests share
one sweep.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import chapters  # tools/chapters.py (tests/conftest.py puts tools/ on sys.path)
import sweep  # tools/sweep.py

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "sweep.py"

PARAMETERS = """\
profile = "paper"  # "paper" or "smoke"
seed = 0  # the replicate
x = 1.0  # the configuration; negative: the notebook raises
threads = None  # PyTorch CPU threads (the sweep sets it)"""

BODY = """\
if x < 0:
    raise ValueError(f"x={x} is not allowed: the tiny chapter needs x >= 0")
import os
import helpers

run = helpers.start_run(
    "99_tiny", dict(profile=profile, seed=seed, x=x, threads=threads)
)
run.save({"metric": x * 2 + seed, "per_layer": [x, 10 * seed], "name": "text",
          "missing": None, "threads": threads,
          "omp": int(os.environ["OMP_NUM_THREADS"])})"""


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("book")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny"),
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(BODY),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "99_tiny.ipynb")
    return folder


def run_tool(
    book: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args, "--book", str(book)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def six_runs(book, tmp_path_factory):
    """x in (-1, 1, 2) times seed in (0, 1), two runs at a time: the two x=-1 runs
    fail.
    """
    out = tmp_path_factory.mktemp("sweep") / "out"
    result = run_tool(
        book,
        "99_tiny",
        "--grid",
        "x=-1,1,2",
        "--grid",
        "seed=0,1",
        "--jobs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
    )
    return out, result


def test_grid_expansion_ids_and_values():
    grid = sweep.parse_grid(
        ["seed=0..2", "lr=1e-3,0.01", "seeds=[0],[1, 2]", "device=cpu,'1'"]
    )
    assert grid == {
        "seed": [0, 1, 2],
        "lr": [0.001, 0.01],
        "seeds": [[0], [1, 2]],
        "device": ["cpu", "1"],
    }
    runs = sweep.plan_runs({"seed": [0, 1], "lr": [1e-3, 1e-2]})
    assert [r["id"] for r in runs] == [
        "seed=0,lr=0.001",
        "seed=0,lr=0.01",
        "seed=1,lr=0.001",
        "seed=1,lr=0.01",
    ]
    assert [r["index"] for r in runs] == [0, 1, 2, 3] and runs[3]["params"] == {
        "seed": 1,
        "lr": 0.01,
    }
    assert sweep.run_id({"seeds": [1, 2], "path": "a/b"}) == "seeds=[1,2],path=a/b"
    assert sweep.folder_name("seeds=[1,2],path=a/b") == "seeds=[1,2],path=a_b"
    assert sweep.flatten({"a": [1, {"b": 2.5}], "s": "x", "n": None, "t": True}) == {
        "a.0": 1.0,
        "a.1.b": 2.5,
    }
    for bad in (["seed"], ["seed="], ["seed=1,1"], ["seed=0", "seed=1"], ["seed=3..1"]):
        with pytest.raises(chapters.UsageError):
            sweep.parse_grid(bad)


def test_parallel_runs_keep_notebooks_results_and_summarise(six_runs):
    out, result = six_runs
    assert "4 of 6 runs ok" in result.stdout, result.stdout + result.stderr
    ids = ["x=1,seed=0", "x=1,seed=1", "x=2,seed=0", "x=2,seed=1"]
    for rid in ids:
        assert (out / rid / "99_tiny.ipynb").exists() and (
            out / rid / "log.txt"
        ).exists()
        record = json.loads((out / rid / "99_tiny.json").read_text())
        x, seed = (int(kv.split("=")[1]) for kv in rid.split(","))
        assert (
            record["metrics"]["metric"] == x * 2 + seed
            and record["settings"]["seed"] == seed
        )
        # --threads reached the run
        assert record["metrics"]["threads"] == 1 and record["metrics"]["omp"] == 1
        assert json.loads((out / rid / "run.json").read_text())["status"] == "ok"
    assert result.stdout.count(" start ") == 6 and result.stdout.count(" done ") == 4
    assert "2 running" in result.stdout and "3 running" not in result.stdout  # --jobs 2
    plan = json.loads((out / "sweep.json").read_text())
    assert [r["id"] for r in plan["runs"]] == ["x=-1,seed=0", "x=-1,seed=1", *ids]
    assert plan["over"] == ["seed"] and plan["jobs"] == 2

    summary = json.loads((out / "summary.json").read_text())
    configs = {c["name"]: c for c in summary["configurations"]}
    assert list(configs) == ["x=-1", "x=1", "x=2"]
    m1, m2 = configs["x=1"]["metrics"]["metric"], configs["x=2"]["metrics"]["metric"]
    # x * 2 + seed over seeds 0, 1
    assert (m1["mean"], m1["n"], m2["mean"]) == (2.5, 2, 4.5)
    # sample std
    assert math.isclose(m1["std"], math.sqrt(0.5)) and math.isclose(
        m2["std"], math.sqrt(0.5)
    )
    assert (
        configs["x=1"]["metrics"]["per_layer.1"]["mean"] == 5.0
        and "name" not in configs["x=1"]["metrics"]
    )
    text = (out / "summary.md").read_text()
    assert "| metric | x=-1 (n=0, 2 FAILED) | x=1 (n=2) | x=2 (n=2) |" in text
    assert (
        "| metric | FAILED | 2.5 ± 0.71 | 4.5 ± 0.71 |" in text
        and "| metric | FAILED | 2.5 ± 0.71 |" in result.stdout
    )


def test_failed_run_is_reported_not_dropped(six_runs):
    out, result = six_runs
    assert result.returncode == 1, result.stdout + result.stderr
    for rid in ("x=-1,seed=0", "x=-1,seed=1"):
        assert f"FAILED {rid} (exit 1)" in result.stdout
        assert (
            str(out / rid / "99_tiny.ipynb") in result.stdout
            and (out / rid / "99_tiny.ipynb").exists()
        )
        assert not (out / rid / "99_tiny.json").exists()
    # the error itself, in the report
    assert "ValueError: x=-1 is not allowed" in result.stdout
    assert (
        "4 of 6 runs ok" in result.stdout
        and "FAILED: x=-1,seed=0, x=-1,seed=1" in result.stdout
    )
    runs = {r["id"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert (
        runs["x=-1,seed=1"]["status"] == "FAILED"
        and runs["x=-1,seed=1"]["returncode"] == 1
    )
    assert "| 1 | `x=-1,seed=1` | **FAILED** |" in (out / "summary.md").read_text()


def test_list_run_index_summarize_round_trip(book, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["99_tiny", "--grid", "seed=0..2", "-y", "x: 1.5", "-p", "profile", "smoke"]
    assert sweep.main([*args, "--list", "--book", str(book)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "0\tseed=0",
        "1\tseed=1",
        "2\tseed=2",
    ]
    # two array tasks at once, as a scheduler would start them; run 1 never runs
    tasks = [
        subprocess.Popen(
            [
                sys.executable,
                str(TOOL),
                *args,
                "--book",
                str(book),
                "--out",
                str(out),
                "--run-index",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (0, 2)
    ]
    for task in tasks:
        log = task.communicate(timeout=120)[0]
        assert task.returncode == 0, log
    assert (
        not (out / "seed=1").exists()
        and (out / "seed=2" / "smoke" / "99_tiny.json").exists()
    )
    plan = json.loads((out / "sweep.json").read_text())
    assert "--run-index" not in plan["command"] and len(plan["runs"]) == 3
    assert sweep.main(["--summarize", "--out", str(out)]) == 1  # run 1 is missing
    assert "| 1 | `seed=1` | **missing** |" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    (config,) = summary["configurations"]
    assert config["n_ok"] == 2 and config["failed"] == ["seed=1"]
    # 1.5 * 2 + seed, seeds 0 and 2
    assert config["metrics"]["metric"]["values"] == [3.0, 5.0]
    assert "| metric | 4 ± 1.4 |" in (out / "summary.md").read_text()
    assert (
        sweep.main(
            [
                "99_tiny",
                "--grid",
                "seed=0,1",
                "--out",
                str(out),
                "--run-index",
                "0",
                "--book",
                str(book),
            ]
        )
        == 2
    )
    assert "holds another sweep" in capsys.readouterr().err


def test_the_chapter_list_parameters_and_papermill_command(book, tmp_path):
    """tools/chapters.py, which every tool uses: chapters by file name, the parameters
    cell, -p/-y, papermill.
    """
    # the tools' temporary copies are not chapters
    (book / "_smoke_99_tiny.ipynb").write_text("{}")
    try:
        assert chapters.stems(book) == ["99_tiny"] and chapters.notebooks(book) == [
            book / "99_tiny.ipynb"
        ]
    finally:
        (book / "_smoke_99_tiny.ipynb").unlink()
    assert chapters.notebook("book/99_tiny.ipynb", book) == book / "99_tiny.ipynb"
    with pytest.raises(
        chapters.UsageError, match="no chapter .*98_nothing.ipynb; chapters: 99_tiny"
    ):
        chapters.notebook("98_nothing", book)
    nb = book / "99_tiny.ipynb"
    assert chapters.parameter_names(nb) == ["profile", "seed", "x", "threads"]
    assert chapters.notebook_defaults(nb) == {
        "profile": "paper",
        "seed": 0,
        "x": 1.0,
        "threads": None,
    }
    parser = __import__("argparse").ArgumentParser()
    chapters.add_parameter_options(parser)
    args = parser.parse_args(
        ["-p", "x", "2", "-y", "seed: 3\nx: 1e-3", "-p", "profile", "smoke"]
    )
    # -p wins over -y
    assert chapters.given_parameters(args) == {"seed": 3, "x": 2, "profile": "smoke"}
    assert chapters.papermill_args(args) == [
        "-y",
        "seed: 3\nx: 1e-3",
        "-p",
        "x",
        "2",
        "-p",
        "profile",
        "smoke",
    ]
    with pytest.raises(chapters.UsageError, match="seedz -> seed"):
        chapters.check_names(["seedz"], chapters.parameter_names(nb), "-p/-y")
    cmd = chapters.papermill(nb, tmp_path / "out.ipynb", "-p", "x", "2", cwd=book)
    assert cmd[:5] == [
        sys.executable,
        "-m",
        "papermill",
        str(nb),
        str(tmp_path / "out.ipynb"),
    ]
    assert cmd[-2:] == ["x", "2"] and "--cwd" in cmd and "--prepare-only" not in cmd
    assert "--prepare-only" in chapters.papermill(
        nb, tmp_path / "out.ipynb", execute=False
    )
    chosen = __import__("argparse").ArgumentParser()
    # reproduce.py and run_smoke.py: the book's chapters by name
    chapters.add_chapters_argument(chosen)
    assert chosen.parse_args(["book/01_numpy_from_scratch.ipynb"]).chapters == [
        chapters.notebooks()[0]
    ]
    assert chosen.parse_args([]).chapters == []  # (the tools then take every chapter)
    with pytest.raises(SystemExit) as stop:
        chosen.parse_args(["98_nothing"])
    assert stop.value.code == 2
    bad = nbformat.read(nb, as_version=4)
    bad.cells[1].source += "\nlr = 1 / 3  # not a literal"
    nbformat.write(bad, tmp_path / "98_bad.ipynb")
    with pytest.raises(
        chapters.UsageError, match="cannot be read: the value of lr is not a literal"
    ):
        chapters.notebook_defaults(tmp_path / "98_bad.ipynb")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["99_tiny", "--grid", "lr=0.1,0.2"],
            "--grid lr: not in the chapter's parameters cell; its parameters are: "
            "profile, seed, x, threads",
        ),
        (
            ["99_tiny", "-p", "epochs", "3", "--grid", "seed=0,1"],
            "-p/-y epochs: not in the chapter's parameters cell",
        ),
        (["99_tiny"], "the grid is empty"),
        (["98_nothing", "--grid", "seed=0,1"], "no chapter"),
        (
            ["99_tiny", "--grid", "seed=0,1", "--run-index", "0"],
            "--run-index needs --out",
        ),
        (
            ["99_tiny", "--grid", "seed=0,1", "-p", "seed", "2"],
            "both fixed (-p/-y) and swept",
        ),
    ],
)
def test_unusable_command_exits_2_with_message(book, tmp_path, capsys, args, message):
    out = [] if "--run-index" in args else ["--out", str(tmp_path / "never")]
    assert sweep.main([*args, *out, "--book", str(book)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
