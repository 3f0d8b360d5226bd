"""One JSON record per benchmark run: ``results/benchmarks/<name>.json``.

Every benchmark calls :func:`write_record` at its end with its headline ratio (or ``None``), its timings and its
settings; the record adds the load average at the start and at the end (speed on a shared machine depends on
it), the command line, the time, and the package versions and git commit from
``helpers.results.environment_info``. ``tools/scoreboard.py`` reads these records for the performance page.
``BOOK_RESULTS_DIR`` moves the folder, as it does for the chapters' results.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from helpers.results import _jsonable, environment_info, results_dir, write_json  # noqa: E402

LOAD_AT_START = os.getloadavg()  # taken when the benchmark imports this module, before any timing


def record_dir() -> Path:
    """``results/benchmarks`` of this repository (wherever the benchmark is started from), or of ``BOOK_RESULTS_DIR``."""
    return results_dir(repo=ROOT) / "benchmarks"


def write_record(name: str, ratio: float | None, timings: dict[str, Any], settings: dict[str, Any],
                 ratio_means: str = "") -> Path:
    """Write ``results/benchmarks/<name>.json`` atomically and return its path.

    ``ratio``: the benchmark's headline ratio (``None`` when it has none); ``ratio_means``: one line saying which
    time is divided by which; ``timings``: the measured seconds (medians and raw lists); ``settings``: every
    option that changes the measurement (threads, repeats, sizes ...).
    """
    record = {
        "benchmark": name,
        "ratio": ratio,
        "ratio_means": ratio_means,
        "timings": timings,
        "settings": settings,
        "load_average": {"start": list(LOAD_AT_START), "end": list(os.getloadavg())},
        "command": " ".join([Path(sys.argv[0]).as_posix() if sys.argv else name, *sys.argv[1:]]),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **environment_info("cpu"),
    }
    target = write_json(record_dir() / f"{name}.json", _jsonable(record))
    print(f"record written to {target}")
    return target
