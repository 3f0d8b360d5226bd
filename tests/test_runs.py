"""Run records (helpers.runs, tools/runs.py): records, staleness, resume after SIGKILL,
--print.

The runs here are real runs of a registered trainer (Nøkland's table trainer,
``helpers.dfa_table``) on a tiny generated MNIST-shaped folder, a few seconds each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import dfa_table, runs
from helpers.data import load_mnist


ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "runs.py"
GOLDEN = ROOT / "tests" / "golden" / "dfa_table_smoke_record.json"
TRAINER = "helpers.dfa_table:train_table_run"


def config(**changes) -> dict:
    base = {
        "arch": "1x32",
        "hidden": [32],
        "rule": "dfa",
        "seed": 3,
        "lr": 1e-3,
        "rms_alpha": 0.99,
        "rms_eps": 1e-8,
        "rms_init": 0.0,
        "batch_size": 64,
        "max_epochs": 4,
        "stop_train_err": 1e-4,
        "n_train": 640,
        "n_test": 200,
        "dataset": "mnist",
    }
    return {**base, **changes}


def spec(name="tiny", **changes) -> runs.RunSpec:
    return runs.RunSpec("99_runs_test", name, TRAINER, config(**changes), "smoke")


def test_a_missing_run_is_trained_and_its_record_has_every_field(places, capsys):
    s = spec()
    records = runs.ensure([s], verbose=False)
    record = records["tiny"]
    path = places / "results" / "smoke" / "runs" / "99_runs_test" / "tiny.json"
    assert path.exists() and json.loads(path.read_text()) == record
    for key in (
        "config",
        "curves",
        "metrics",
        "wall_s",
        "cpu_s",
        "device",
        "threads",
        "versions",
        "git_commit",
        "git_dirty",
        "trainer_source_sha256",
        "cpu",
        "fingerprint",
        "trainer",
        "numerics",
        "data",
        "started_utc",
        "finished_utc",
    ):
        assert key in record, key
    assert (
        record["config"] == s.config
        and record["trainer"] == TRAINER
        and record["numerics"] == "1"
    )
    assert record["curves"]["epoch"] == [1, 2, 3, 4] and record["epochs_run"] == 4
    assert record["metrics"]["test_err_last"] == record["curves"]["test_err"][-1]
    assert record["data"]["n_train"] == 640 and len(record["data"]["sha256_16"]) == 16
    assert record["cpu_s"] > 0 and record["threads"] >= 1


def test_n_val_trains_on_the_rest_and_scores_on_held_out_training_images(places):
    """With ``n_val`` in its configuration a run trains on the training set minus
    ``n_val`` images and scores on those (``RunContext.data``); the test set plays no
    part. Without it, the run is as before (the golden record below)."""
    s = spec("held-out", n_val=160)
    r = runs.train(s, verbose=False)
    assert (r["data"]["n_train"], r["data"]["n_test"]) == (480, 160)
    assert r["data"]["test_set"] == "160 held-out training images"
    full = load_mnist(640, 200, normalize="unit", flatten=True)
    held = full.holdout(160, seed=runs.VAL_SEED)
    assert r["data"]["sha256_16"] == runs.data_fingerprint(held)
    # the last epoch's error, recomputed from the saved weights on the held-out images
    state = torch.load(runs.checkpoint_path(s), weights_only=True)["objects"]
    layers, _ = dfa_table.make_layers([32], "dfa", torch.Generator())
    layers.load_state_dict(state["layers"])
    Ws, bs = [m.weight.data for m in layers], [m.bias.data for m in layers]
    err = dfa_table._test_error(Ws, bs, held.X_test, held.y_test)
    assert err == r["curves"]["test_err"][-1] == r["metrics"]["test_err_last"]
    plain = runs.train(spec(), verbose=False)
    assert plain["data"]["n_test"] == 200 and "test_set" not in plain["data"]
    assert plain["data"]["sha256_16"] == runs.data_fingerprint(full)


def test_a_finished_record_is_loaded_not_retrained(places, monkeypatch, capsys):
    runs.ensure([spec()], verbose=False)
    monkeypatch.setattr(
        runs, "train", lambda *a, **k: pytest.fail("a finished run was trained again")
    )
    records = runs.ensure([spec()])
    out = capsys.readouterr().out
    assert "1 of 1 runs loaded" in out and "tiny: trained" in out
    assert records["tiny"]["name"] == "tiny"


def test_a_stale_record_stops_with_its_name_and_fields_unless_retraining_is_asked(
    places,
):
    first = runs.ensure([spec()], verbose=False)["tiny"]
    changed = spec(lr=3e-3)
    with pytest.raises(runs.StaleRecordError) as err:
        runs.ensure([changed], verbose=False)
    message = str(err.value)
    assert (
        "tiny.json" in message
        and "config.lr: 0.001 -> 0.003" in message
        and "retrain_stale" in message
    )
    again = runs.ensure([changed], retrain_stale=True, verbose=False)["tiny"]
    assert again["config"]["lr"] == 3e-3 and again["curves"] != first["curves"]


def test_a_new_numerics_version_makes_records_stale(places, monkeypatch):
    runs.ensure([spec()], verbose=False)
    monkeypatch.setattr(dfa_table.train_table_run, "numerics", "2")
    ((state, reasons),) = [(st, r) for _, st, _, r in runs.status([spec()])]
    assert state == "stale" and any(
        "numerics" in r and "'1' -> '2'" in r for r in reasons
    )


def test_a_damaged_record_is_reported_with_the_fix(places):
    path = runs.record_path(spec())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(runs.StaleRecordError, match="not valid JSON.*delete it"):
        runs.status([spec()])


def _final_state(s: runs.RunSpec) -> dict:
    return torch.load(runs.checkpoint_path(s), weights_only=True)


def test_a_killed_run_resumes_bit_identical_to_an_uninterrupted_one(places, tmp_path):
    """SIGKILL a run in a subprocess after its third checkpoint, resume it, compare with
    a clean run.
    """
    long = spec(
        "long",
        hidden=[64, 64],
        rule="bp",
        max_epochs=30,
        stop_train_err=0.0,
        n_train=5000,
    )
    code = (
        "import json,sys; from helpers import runs; d=json.load(open(sys.argv[1]));"
        "runs.train(runs.RunSpec(**d), verbose=False)"
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "chapter": long.chapter,
                "name": long.name,
                "trainer": long.trainer,
                "config": long.config,
                "profile": long.profile,
            }
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(spec_file)], env=env, cwd=ROOT
    )
    ckpt = runs.checkpoint_path(long)
    deadline = time.time() + 120
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                killed_after = torch.load(ckpt, weights_only=True)["epoch"]
            except Exception:  # being replaced at this instant
                killed_after = None
            if killed_after and killed_after >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (
        "the run finished before it could be killed: make it longer"
    )
    assert not runs.record_path(long).exists()
    torch.set_num_threads(1)
    resumed = runs.train(long, verbose=False)
    assert resumed["resumed_after_epochs"] and resumed["resumed_after_epochs"][0] >= 3
    resumed_state = _final_state(long)

    # the same run, uninterrupted, in another cache and results folder
    os.environ["BOOK_CACHE_DIR"] = str(tmp_path / "cache2")
    os.environ["BOOK_RESULTS_DIR"] = str(tmp_path / "results2")
    clean = runs.train(long, verbose=False)
    clean_state = _final_state(long)
    assert clean["resumed_after_epochs"] == []
    untimed = {"epoch_seconds": None}
    assert (
        resumed["curves"] | untimed == clean["curves"] | untimed
        and resumed["metrics"] == clean["metrics"]
    )
    assert resumed["fingerprint"] == clean["fingerprint"]
    for key, tensor in clean_state["objects"]["layers"].items():
        assert torch.equal(tensor, resumed_state["objects"]["layers"][key]), key
    for key, tensor in clean_state["objects"]["optimizer"].items():
        assert torch.equal(tensor, resumed_state["objects"]["optimizer"][key]), key


def test_a_refactor_that_keeps_the_numerics_keeps_the_committed_smoke_record(places):
    """The committed smoke-size record (tests/golden/) is rerun and must come out bit
    for bit the same on the kind of CPU that made it: a change that alters the numbers
    must bump the trainer's ``numerics`` (and this record). Another CPU or another
    PyTorch computes other last bits (other kernels), so there the rerun must agree to
    float32 rounding, and two reruns bit for bit."""
    golden = json.loads(GOLDEN.read_text())
    s = runs.RunSpec(
        golden["chapter"],
        golden["name"],
        golden["trainer"],
        golden["config"],
        golden["profile"],
    )
    assert runs.check_record(s, golden) == [], (
        "the golden record is stale: regenerate it (see its 'how')"
    )
    torch.set_num_threads(1)
    again = runs.train(s, verbose=False)
    assert again["data"]["sha256_16"] == golden["data"]["sha256_16"]
    assert again["fingerprint"] == golden["fingerprint"]
    untimed = {"epoch_seconds": None}
    same_platform = (
        again["cpu"] == golden["cpu"]
        and again["versions"]["torch"] == golden["versions"]["torch"]
    )
    if same_platform:
        assert again["curves"] | untimed == golden["curves"] | untimed
        assert again["metrics"] == golden["metrics"]
    else:
        for key, values in golden["curves"].items():
            if key != "epoch_seconds":
                assert again["curves"][key] == pytest.approx(
                    values, rel=1e-4, abs=1e-6
                ), key
        runs.record_path(s).unlink()
        runs.checkpoint_path(s).unlink()
        twice = runs.train(s, verbose=False)
        assert twice["curves"] | untimed == again["curves"] | untimed


def _tool(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_the_tool_lists_prints_and_trains_the_missing_runs(places):
    out = _tool("04_feedback_alignment", "-p", "profile", "smoke", "--list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("missing ") == 6 and "to train: 6 run(s)" in out.stdout
    printed = _tool(
        "04_feedback_alignment",
        "-p",
        "profile",
        "smoke",
        "-y",
        "table_archs: [1x800]",
        "--print",
    )
    lines = printed.stdout.strip().splitlines()
    commands = [line for line in lines if line.startswith("python tools/runs.py")]
    assert commands == [
        f"python tools/runs.py 04_feedback_alignment --run 1x800-{r}-seed0 -y "
        "'table_archs: "
        f"[1x800]' -p profile smoke --threads 1 --device cpu"
        for r in ("bp", "dfa")
    ]
    one = subprocess.run(
        commands[0].replace("python", sys.executable, 1),
        shell=True,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert one.returncode == 0, one.stdout + one.stderr
    after = _tool(
        "04_feedback_alignment",
        "-p",
        "profile",
        "smoke",
        "-y",
        "table_archs: [1x800]",
        "--print",
    )
    assert [
        line for line in after.stdout.splitlines() if line.startswith("python")
    ] == commands[1:]
    listed = _tool(
        "04_feedback_alignment",
        "-p",
        "profile",
        "smoke",
        "-y",
        "table_archs: [1x800]",
        "--list",
    )
    assert (
        "done     1x800-bp-seed0" in listed.stdout
        and "missing  1x800-dfa-seed0" in listed.stdout
    )


def test_the_tool_names_a_wrong_parameter_and_a_chapter_without_runs(places):
    bad = _tool("04_feedback_alignment", "-p", "seedz", "1", "--list")
    assert bad.returncode == 2 and "seedz" in bad.stderr and "seeds" in bad.stderr
    none = _tool("01_numpy_from_scratch", "--list")
    assert none.returncode == 2 and "registers no grid" in none.stderr


@pytest.mark.parametrize("chapter", sorted(runs.GRIDS))
def test_committed_records_match_their_chapter(chapter):
    """Every committed record is current (not stale) and belongs to a run of its
    chapter's grid.
    """
    sys.path.insert(0, str(ROOT / "tools"))
    import runs as runs_tool  # tools/runs.py

    import chapters

    # the draft of a chapter under rework
    notebook = chapters.parameters_notebook(chapter)
    specs = runs_tool.chapter_specs(chapter, runs_tool.notebook_defaults(notebook))
    folder = ROOT / "results" / "runs" / chapter
    names = {s.name for s in specs}
    orphans = sorted(p.stem for p in folder.glob("*.json") if p.stem not in names)
    assert not orphans, f"records of {chapter} that its grid no longer has: {orphans}"
    for s in specs:
        path = ROOT / "results" / "runs" / chapter / f"{s.name}.json"
        if path.exists():
            reasons = runs.check_record(s, json.loads(path.read_text()))
            assert not reasons, f"{path} is stale: {reasons}"


def test_every_grid_default_is_its_chapter_parameter_default():
    sys.path.insert(0, str(ROOT / "tools"))
    import runs as runs_tool

    import chapters

    for chapter in runs.GRIDS:
        defaults = runs_tool.notebook_defaults(chapters.parameters_notebook(chapter))
        for grid in runs.grids_of(chapter):
            for name, value in grid.defaults.items():
                assert name in defaults, (
                    f"{chapter}: the grid reads {name}, not a chapter parameter"
                )
                assert defaults[name] == value, (
                    f"{chapter}: {name} is {defaults[name]!r} in the chapter, "
                    f"{value!r} in the grid"
                )


def test_the_scheduler_runs_at_most_jobs_at_once_and_reports_progress():
    sys.path.insert(0, str(ROOT / "tools"))
    import sweep

    events, ticks, peak = [], [], [0]
    running = set()

    def start(i):
        running.add(i)
        peak[0] = max(peak[0], len(running))
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])

    def ended(i, code, n_done):
        running.discard(i)
        events.append((i, code, n_done))

    sweep.run_parallel(
        [0, 1, 2],
        2,
        start,
        ended=ended,
        tick=lambda items: ticks.append(list(items)),
        tick_s=0.1,
    )
    assert sorted(e[0] for e in events) == [0, 1, 2] and all(e[1] == 0 for e in events)
    assert [e[2] for e in events] == [1, 2, 3] and peak[0] == 2
    assert ticks and all(1 <= len(t) <= 2 for t in ticks)


def test_a_chapter_under_rework_takes_its_grid_from_its_draft(tmp_path):
    import chapters

    book = tmp_path / "book"
    (book / "drafts").mkdir(parents=True)
    (book / "07_new.ipynb").write_text("{}")
    assert chapters.parameters_notebook("07_new", book) == book / "07_new.ipynb"
    (book / "drafts" / "07_new.ipynb").write_text("{}")
    assert (
        chapters.parameters_notebook("07_new", book) == book / "drafts" / "07_new.ipynb"
    )
    with pytest.raises(chapters.UsageError, match="no chapter"):
        chapters.parameters_notebook("08_missing", book)
