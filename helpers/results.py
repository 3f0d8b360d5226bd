"""Writing ``results/<notebook-stem>.json``: metrics, settings, wall time, device,
versions.

A chapter starts a run right after resolving its parameters and saves at the end::

    run = start_run("01_numpy_from_scratch", P)
    ...
    run.save({"simple_test_acc": 0.92}, data=data)

The file is written atomically (a temporary file in the same folder, then a rename),
so an interrupted run never leaves half a JSON file behind. Smoke-profile runs write
to ``results/smoke/`` so that tests never overwrite the paper-profile results.

A benchmark (``benchmarks/<name>.py``) records its timings the same way, in
``results/benchmarks/<name>.json``::

    record = start_benchmark(__file__)  # first thing in main(): notes the load average
    ...
    record.save(ratio, timings, settings, ratio_means="median step time, A / B")
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "results_dir",
    "save_results",
    "load_results",
    "start_run",
    "Run",
    "environment_info",
    "write_json",
    "start_benchmark",
    "Benchmark",
]

_PACKAGES = (
    "numpy",
    "torch",
    "torchvision",
    "scikit-learn",
    "matplotlib",
    "beyond-backprop-helpers",
)


def _repo_root() -> Path | None:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "helpers").is_dir():
            return folder
    return None


def results_dir(profile: str = "paper", *, repo: Path | None = None) -> Path:
    """``BOOK_RESULTS_DIR``, else ``<repo>/results`` (``repo`` found from the working
    directory unless given), else ``./results``; smoke runs go to its ``smoke/``
    subfolder."""
    base = os.environ.get("BOOK_RESULTS_DIR")
    root = Path(base) if base else ((repo or _repo_root() or Path.cwd()) / "results")
    return root / "smoke" if profile == "smoke" else root


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing value is honest
    if isinstance(value, (torch.device, Path)):
        return str(value)
    return value


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=_repo_root() or Path.cwd(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_info(device: str | torch.device | None = None) -> dict[str, Any]:
    """Versions of Python and the key packages, the device, CPU threads, and the git
    commit.
    """
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {
        "device": str(device) if device is not None else None,
        "device_name": None,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }
    if device is not None and torch.device(device).type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def save_results(
    stem: str,
    metrics: dict[str, Any],
    params: Any,
    *,
    wall_time_s: float | None = None,
    device: str | torch.device | None = None,
    data: Any = None,
) -> Path:
    """Write ``results/<stem>.json`` atomically and return its path.

    ``data`` (a :class:`helpers.data.Data`) records which data set, source and sizes the
    numbers come from, so that a run on the embedded sample can never pass for a full
    run.
    """
    if not stem or "/" in stem or stem.endswith(".json"):
        raise ValueError(
            f"stem={stem!r} must be a notebook stem such as '01_numpy_from_scratch'"
        )
    settings = params.as_dict() if hasattr(params, "as_dict") else dict(params)
    profile = settings.get("profile", "paper")
    device = device if device is not None else settings.get("device")
    record = {
        "notebook": stem,
        "profile": profile,
        "metrics": _jsonable(metrics),
        "settings": _jsonable(settings),
        "data": None
        if data is None
        else {
            "dataset": data.dataset,
            "source": data.source,
            "is_sample": data.is_sample,
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
            "mean": data.mean,
            "std": data.std,
        },
        "wall_time_s": wall_time_s,
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"
        ),
        **_jsonable(environment_info(device)),
    }
    return write_json(results_dir(profile) / f"{stem}.json", record)


def write_json(path: Path, record: Any) -> Path:
    """Write ``record`` (already JSON-able: see ``_jsonable``) to ``path`` atomically: a
    temporary file in the same folder (created if missing), then a rename, so an
    interrupted run never leaves half a file behind. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_results(stem: str, profile: str = "paper") -> dict[str, Any]:
    """Read ``results/<stem>.json`` back (as written by :func:`save_results`)."""
    path = results_dir(profile) / f"{stem}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the notebook {stem}.ipynb first (make "
            "reproduce)"
        )
    return json.loads(path.read_text())


class Run:
    """A chapter's run: remembers its start time so that ``save`` records the wall
    time.
    """

    def __init__(self, stem: str, params: Any):
        self.stem, self.params = stem, params
        self.started = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def save(self, metrics: dict[str, Any], data: Any = None) -> Path:
        """Write the results file; pass the chapter's ``data`` so that its source is
        recorded.
        """
        path = save_results(
            self.stem,
            metrics,
            self.params,
            wall_time_s=round(self.elapsed_s, 2),
            data=data,
        )
        print(f"results written to {path}")
        return path


def start_run(stem: str, params: Any) -> Run:
    """Start timing a chapter's run; call ``.save(metrics)`` at its end."""
    return Run(stem, params)


class Benchmark:
    """A benchmark's record: ``results/benchmarks/<name>.json`` of the repository the
    script is in.

    Made by :func:`start_benchmark`, which notes the load average (speed on a shared
    machine depends on it); :meth:`save` adds the load average at the end, the command
    line, the time, the package versions and the git commit (:func:`environment_info`).
    ``BOOK_RESULTS_DIR`` moves the folder, as it does for the chapters' results.
    ``tools/scoreboard.py`` reads these records.
    """

    def __init__(self, script: str | Path):
        path = Path(script).resolve()
        self.name, self.repo = path.stem, path.parents[1]
        self.load_at_start = os.getloadavg()

    @property
    def folder(self) -> Path:
        """``results/benchmarks`` of the script's repository, wherever the benchmark was
        started from.
        """
        return results_dir(repo=self.repo) / "benchmarks"

    def save(
        self,
        ratio: float | None,
        timings: dict[str, Any],
        settings: dict[str, Any],
        ratio_means: str = "",
    ) -> Path:
        """Write the record atomically and return its path.

        ``ratio``: the benchmark's headline ratio (``None`` when it has none);
        ``ratio_means``: one line saying which time is divided by which; ``timings``:
        the measured seconds (medians and raw lists); ``settings``: every option that
        changes the measurement (threads, repeats, sizes ...).
        """
        record = {
            "benchmark": self.name,
            "ratio": ratio,
            "ratio_means": ratio_means,
            "timings": timings,
            "settings": settings,
            "load_average": {
                "start": list(self.load_at_start),
                "end": list(os.getloadavg()),
            },
            "command": " ".join(
                [Path(sys.argv[0]).as_posix() if sys.argv else self.name, *sys.argv[1:]]
            ),
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(
                timespec="seconds"
            ),
            **environment_info("cpu"),
        }
        target = write_json(self.folder / f"{self.name}.json", _jsonable(record))
        print(f"record written to {target}")
        return target


def start_benchmark(script: str | Path) -> Benchmark:
    """Start the record of the benchmark in the file ``script`` (pass ``__file__``): its
    name is the file's name, its record goes to ``results/benchmarks/<name>.json`` of
    the script's repository; call ``.save(...)`` at the end."""
    return Benchmark(script)
