"""Run one chapter over many seeds or configurations (a *sweep*), then summarise.

Each run is one papermill execution of the chapter with one point of the grid (the
Cartesian product of the ``--grid`` values); at most ``--jobs`` runs execute at once.
Every run keeps its own folder ``<out>/<run-id>/`` with the executed notebook, the
parameters it was given (``parameters.yaml``), its results file (``BOOK_RESULTS_DIR``
points there; smoke runs write to its ``smoke/`` subfolder), its log (``log.txt``) and
its record (``run.json``). A failed run is reported with the last lines of its error and
marked FAILED; the others go on, and the exit code is non-zero. At the end, every
numeric metric of the results files is summarised as mean ± std (sample std) over the
runs that differ only in the replicate parameters (``--over``, by default the grid
parameters named ``seed`` or ``seeds``), in ``summary.md`` and ``summary.json``.

    python tools/sweep.py 01_numpy_from_scratch --grid "seeds=[0],[1],[2]" \\
        -p profile smoke
    python tools/sweep.py 03_local_errors --grid "seeds=[0],[1],[2]" \\
        --grid lr=1e-3,1e-4 --jobs 2
    # the run ids, one per line:
    python tools/sweep.py 02_looking_inside --grid cnn_epochs=1..5 --list
    # one run (e.g. a cluster task):
    python tools/sweep.py 02_looking_inside --grid cnn_epochs=1..5 --out DIR \\
        --run-index 3
    # the summary of the runs present:
    python tools/sweep.py --summarize --out DIR

Values are YAML: ``lr=1e-3,1e-4`` (numbers, ``1e-3`` included), ``seeds=[0],[1]``
(lists), ``device=cpu,cuda`` (text), ``epochs=1..5`` (the integers 1 to 5). Exit codes:
0 every run succeeded, 1 a run failed or is missing, 2 the command cannot work (nothing
was run), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

import chapters
from chapters import UsageError
from helpers.results import write_json

ROOT = chapters.ROOT
SEED_NAMES = ("seed", "seeds")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -------------------------------------------------------------------------------------
# The grid


def parse_values(text: str) -> list:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``"[0],[1]"`` -> ``[[0], [1]]``; ``"0..3"`` ->
    ``[0, 1, 2, 3]``.
    """
    text = text.strip()
    span = re.fullmatch(r"(-?\d+)\s*\.\.\s*(-?\d+)", text)
    if span:
        first, last = int(span[1]), int(span[2])
        if last < first:
            raise UsageError(
                f"the range {text!r} is empty: write FIRST..LAST with FIRST <= LAST, "
                "e.g. 0..4"
            )
        return list(range(first, last + 1))
    try:
        values = chapters.load_yaml(f"[{text}]")
    except yaml.YAMLError as e:
        raise UsageError(
            f"cannot read the values {text!r} as YAML ({str(e).splitlines()[0]}); "
            f'write them comma-separated, e.g. 0.1,0.01 or "[0],[1]" for lists'
        ) from None
    return values


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["seed=0,1", "lr=1e-3,1e-4"]`` -> ``{"seed": [0, 1], "lr": [0.001, 0.0001]}``
    (order kept).
    """
    grid: dict[str, list] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise UsageError(
                f"--grid {item!r}: write NAME=V1,V2,... (e.g. --grid lr=1e-3,1e-4)"
            )
        if name in grid:
            raise UsageError(
                f"--grid {name} is given twice: give all its values in one --grid "
                f"{name}=V1,V2,..."
            )
        values = parse_values(text)
        if not values:
            raise UsageError(f"--grid {item!r} has no values: write {name}=V1,V2,...")
        ids = [format_value(v) for v in values]
        if len(set(ids)) < len(ids):
            raise UsageError(
                f"--grid {name} repeats a value ({', '.join(ids)}): give each value "
                "once"
            )
        grid[name] = values
    return grid


def expand(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid values; the first grid parameter varies slowest."""
    names = list(grid)
    return [
        dict(zip(names, combo))
        for combo in itertools.product(*(grid[n] for n in names))
    ]


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def run_id(point: dict[str, Any]) -> str:
    """``{"seed": 1, "lr": 0.001}`` -> ``"seed=1,lr=0.001"``."""
    return ",".join(f"{name}={format_value(v)}" for name, v in point.items())


def folder_name(rid: str) -> str:
    """The run id, with ``_`` for the characters that some file systems forbid."""
    return re.sub(r'[<>:"/\\|?*\s]', "_", rid) or "run"


def plan_runs(grid: dict[str, list]) -> list[dict[str, Any]]:
    runs = []
    for index, point in enumerate(expand(grid)):
        rid = run_id(point)
        runs.append(
            {"index": index, "id": rid, "folder": folder_name(rid), "params": point}
        )
    return runs


# -------------------------------------------------------------------------------------
# Cores (the chapter, its parameters and papermill's command line: tools/chapters.py)


def core_count() -> int:
    try:
        return len(
            os.sched_getaffinity(0)
        )  # the cores this process may use (SLURM, taskset, cgroups)
    except AttributeError:
        return os.cpu_count() or 1


# -------------------------------------------------------------------------------------
# Files


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def results_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.json", folder / "smoke" / f"{stem}.json"):
        if candidate.exists():
            return candidate
    return None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_lines(log: Path, limit: int = 15) -> list[str]:
    """The end of a failed run's log, from papermill's 'Exception encountered' line when
    present.
    """
    try:
        lines = _ANSI.sub("", log.read_text(errors="replace")).rstrip().splitlines()
    except OSError:
        return ["(no log)"]
    marks = [
        i
        for i, line in enumerate(lines)
        if "Exception encountered at" in line or line.startswith("Traceback")
    ]
    tail = lines[marks[-1] :] if marks else lines
    return tail[-limit:] if len(tail) > limit else tail


# -------------------------------------------------------------------------------------
# Running


class Sweep:
    def __init__(
        self,
        stem: str,
        notebook: Path,
        book: Path,
        out: Path,
        runs: list[dict],
        base: dict,
        extra: dict,
        threads: int,
        record: dict,
    ):
        self.stem, self.notebook, self.book, self.out = stem, notebook, book, out
        self.runs, self.base, self.extra, self.threads, self.record = (
            runs,
            base,
            extra,
            threads,
            record,
        )
        self.started = time.perf_counter()
        self.shared = (
            False  # one task of a scheduler array: other tasks may write beside it
        )

    def stamp(self) -> str:
        s = int(time.perf_counter() - self.started)
        return f"[{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}]"

    def start(self, run: dict) -> subprocess.Popen:
        folder = self.out / run["folder"]
        (folder / "smoke").mkdir(parents=True, exist_ok=True)
        for stale in (
            folder / f"{self.stem}.json",
            folder / "smoke" / f"{self.stem}.json",
            folder / "run.json",
        ):
            stale.unlink(
                missing_ok=True
            )  # a rerun never reports an older run's results
        parameters = {**self.base, **run["params"], **self.extra}
        (folder / "parameters.yaml").write_text(
            yaml.safe_dump(parameters, sort_keys=False)
        )
        output = folder / f"{self.stem}.ipynb"
        cmd = chapters.papermill(
            self.notebook, output, "-f", str(folder / "parameters.yaml"), cwd=self.book
        )
        env = chapters.env(
            BOOK_RESULTS_DIR=str(folder),
            **{name: str(self.threads) for name in THREAD_ENV},
        )
        run.update(
            status="running",
            started_utc=now_utc(),
            parameters=parameters,
            returncode=None,
            elapsed_s=None,
            notebook=str(output),
            log=str(folder / "log.txt"),
            results=None,
            command=shlex.join(cmd),
        )
        self.write_run(run)
        log = open(folder / "log.txt", "w")
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=(os.name == "posix"),
            )
        finally:
            log.close()
        run["_t0"] = time.perf_counter()
        return proc

    def finish(self, run: dict, returncode: int, stopped: bool = False) -> None:
        folder = self.out / run["folder"]
        found = results_file(folder, self.stem)
        run.update(
            returncode=returncode,
            elapsed_s=round(time.perf_counter() - run.pop("_t0"), 1),
            status="interrupted"
            if stopped
            else ("ok" if returncode == 0 else "FAILED"),
            results=str(found) if found else None,
            finished_utc=now_utc(),
        )
        self.write_run(run)

    def write_run(self, run: dict) -> None:
        write_json(
            self.out / run["folder"] / "run.json",
            {
                "chapter": self.stem,
                **{k: v for k, v in run.items() if not k.startswith("_")},
            },
        )

    def write_sweep(self) -> None:
        if self.shared:
            return  # run states live in each run's run.json; --summarize gathers them
        self.record["runs"] = [
            {k: v for k, v in r.items() if not k.startswith("_")} for r in self.runs
        ]
        write_json(self.out / "sweep.json", self.record)

    def report(self, run: dict, done: int, failed: int, total: int) -> None:
        tail = f"({done}/{total} finished, {failed} failed)"
        if run["status"] == "ok":
            note = "" if run["results"] else "; it wrote no results file"
            print(
                f"{self.stamp()} done  {run['id']}: ok in {run['elapsed_s']:.0f} "
                f"s{note} {tail}",
                flush=True,
            )
            return
        print(
            f"{self.stamp()} {run['status']} {run['id']} (exit {run['returncode']}) "
            "after "
            f"{run['elapsed_s']:.0f} s {tail}\n    notebook: {run['notebook']}\n    "
            f"log:      {run['log']}",
            flush=True,
        )
        for line in error_lines(Path(run["log"])):
            print(f"    | {line}", flush=True)

    def execute(self, todo: list[dict], jobs: int) -> None:
        """Run ``todo``, at most ``jobs`` at a time; Ctrl-C (or SIGTERM) stops every
        running run.
        """
        failed = 0

        def started(run, n_running):
            print(
                f"{self.stamp()} start {run['id']} (run {run['index'] + 1} of "
                f"{len(self.runs)}; "
                f"{n_running} running)",
                flush=True,
            )
            self.write_sweep()

        def ended(run, returncode, done):
            nonlocal failed
            self.finish(run, returncode)
            failed += run["status"] != "ok"
            self.report(run, done, failed, len(todo))
            self.write_sweep()

        def stopped(run, returncode):
            self.finish(run, returncode, stopped=True)

        try:
            run_parallel(todo, jobs, self.start, started, ended, stopped)
        except KeyboardInterrupt:
            for run in todo:
                run.setdefault("status", "not run")
            self.write_sweep()
            raise


def run_parallel(
    todo: list,
    jobs: int,
    start,
    started=None,
    ended=None,
    stopped=None,
    tick=None,
    tick_s: float = 60.0,
) -> None:
    """The scheduler: ``start(item) -> Popen`` for each item, at most ``jobs`` processes
    at once.

    ``started(item, n_running)`` after a start, ``ended(item, returncode, n_done)`` when
    a process exits; ``tick(running_items)`` every ``tick_s`` seconds while processes
    run; on Ctrl-C (or SIGTERM, see ``_sigterm``) every running process group is
    stopped, ``stopped(item, returncode)`` is called for each, and KeyboardInterrupt
    propagates.
    """
    pending, running = list(todo), []
    done = 0
    last_tick = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                item = pending.pop(0)
                running.append((item, start(item)))
                if started:
                    started(item, len(running))
            time.sleep(0.2)
            for pair in list(running):
                item, proc = pair
                if proc.poll() is None:
                    continue
                running.remove(pair)
                done += 1
                if ended:
                    ended(item, proc.returncode, done)
            if tick and running and time.perf_counter() - last_tick >= tick_s:
                last_tick = time.perf_counter()
                tick([item for item, _ in running])
    except KeyboardInterrupt:
        for item, proc in running:
            code = _stop(proc)
            if stopped:
                stopped(item, code)
        raise


def _stop(proc: subprocess.Popen) -> int:
    """Stop a run (papermill and its kernel, which share a session) and return its exit
    code.
    """
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        return proc.wait(timeout=10)
    except ProcessLookupError:
        return proc.wait()
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        return proc.wait()


def _sigterm(signum, frame):
    raise KeyboardInterrupt


# -------------------------------------------------------------------------------------
# Summary


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves with dotted paths: ``{"acc": [0.9, 0.8]}`` -> ``{"acc.0": 0.9,
    "acc.1": 0.8}``.
    """
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    elif (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    ):
        out[prefix] = float(value)
    return out


def run_metrics(run: dict) -> dict[str, float]:
    record = read_json(Path(run["results"])) if run.get("results") else None
    if not record:
        return {}
    metrics = flatten(record.get("metrics") or {})
    if isinstance(record.get("wall_time_s"), (int, float)):
        metrics["wall_time_s"] = float(record["wall_time_s"])
    return metrics


def select(names: list[str], wanted: list[str] | None) -> list[str]:
    """Metric names equal to a wanted name or below it (``acc`` selects ``acc.0``,
    ``acc.1``, ...).
    """
    if not wanted:
        return names
    return [n for n in names if any(n == w or n.startswith(w + ".") for w in wanted)]


def fmt(mean: float, std: float | None) -> str:
    return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"


def summarize(
    record: dict, out: Path, over: list[str], wanted: list[str] | None
) -> tuple[dict, str]:
    """The summary (a dict for summary.json) and its markdown text."""
    runs = record["runs"]
    grid = record.get("grid") or {}
    config_names = [n for n in grid if n not in over]
    groups: dict[str, dict] = {}
    for run in runs:
        config = {n: run["params"][n] for n in config_names}
        key = run_id(config) or "all runs"
        group = groups.setdefault(
            key, {"config": config, "runs": [], "ok": [], "failed": [], "values": {}}
        )
        group["runs"].append(run["id"])
        if run.get("status") == "ok":
            group["ok"].append(run["id"])
            for name, v in run_metrics(run).items():
                group["values"].setdefault(name, []).append(v)
        else:
            group["failed"].append(run["id"])
    all_names: list[str] = []
    for group in groups.values():
        all_names += [n for n in group["values"] if n not in all_names]
    names = select(all_names, wanted)
    unmatched = [w for w in wanted or [] if not select(all_names, [w])]

    configurations = []
    for key, group in groups.items():
        stats = {}
        for name in names:
            vals = group["values"].get(name, [])
            if vals:
                mean = sum(vals) / len(vals)
                std = (
                    math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
                    if len(vals) > 1
                    else None
                )
                stats[name] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
        configurations.append(
            {
                "name": key,
                "config": group["config"],
                "runs": group["runs"],
                "n_ok": len(group["ok"]),
                "failed": group["failed"],
                "metrics": stats,
            }
        )
    summary = {
        "chapter": record.get("chapter"),
        "out": str(out),
        "command": record.get("command"),
        "grid": grid,
        "over": over,
        "std": "sample standard deviation (n - 1)",
        "configurations": configurations,
        "runs": [
            {
                k: r.get(k)
                for k in (
                    "index",
                    "id",
                    "status",
                    "returncode",
                    "elapsed_s",
                    "notebook",
                    "results",
                    "log",
                )
            }
            for r in runs
        ],
    }

    lines = [
        f"# Sweep of {record.get('chapter')}",
        "",
        f"Command: `{record.get('command')}`",
        "",
        f"Folder: `{out}`",
        "",
        "## Runs",
        "",
        "| # | run | status | time (s) | exit code |",
        "| ---: | --- | --- | ---: | ---: |",
    ]
    for r in runs:
        status = r.get("status", "missing")
        elapsed = "" if r.get("elapsed_s") is None else f"{r['elapsed_s']:.0f}"
        rc = "" if r.get("returncode") is None else str(r["returncode"])
        lines.append(
            f"| {r['index']} | `{r['id']}` | "
            f"{status if status == 'ok' else f'**{status}**'} "
            f"| {elapsed} | {rc} |"
        )
    bad = [r for r in runs if r.get("status") != "ok"]
    if bad:
        lines += [
            "",
            "Not ok: "
            + "; ".join(
                f"`{r['id']}` {r.get('status', 'missing')}"
                + (f" (log: `{r['log']}`)" if r.get("log") else "")
                for r in bad
            ),
        ]
    over_text = ", ".join(over) if over else "nothing (each configuration is one run)"
    lines += [
        "",
        "## Metrics",
        "",
        "Mean ± sample std over the runs of each configuration (replicates over: "
        f"{over_text}); "
        "n is the number of successful runs.",
    ]
    if unmatched:
        lines += [
            "",
            f"No metric matches {', '.join(unmatched)}; the metrics are: "
            f"{', '.join(all_names) or '(none)'}.",
        ]
    if not names:
        lines += ["", "No numeric metrics: no successful run wrote a results file."]
    else:
        heads = []
        for c in configurations:
            head = f"{c['name']} (n={c['n_ok']}"
            head += f", {len(c['failed'])} FAILED)" if c["failed"] else ")"
            heads.append(head)
        lines += [
            "",
            "| metric | " + " | ".join(heads) + " |",
            "| --- |" + " ---: |" * len(heads),
        ]
        for name in names:
            cells = []
            for c in configurations:
                s = c["metrics"].get(name)
                if s is None:
                    cells.append("FAILED" if not c["n_ok"] else "")
                else:
                    cells.append(
                        fmt(s["mean"], s["std"])
                        + (f" (n={s['n']})" if s["n"] != c["n_ok"] else "")
                    )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return summary, "\n".join(lines) + "\n"


def write_summary(
    record: dict, out: Path, over: list[str], wanted: list[str] | None
) -> int:
    summary, text = summarize(record, out, over, wanted)
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(text)
    print("\n" + text, flush=True)
    print(
        f"summary written to {out / 'summary.md'} and {out / 'summary.json'}",
        flush=True,
    )
    return 0 if all(r.get("status") == "ok" for r in record["runs"]) else 1


def collect(out: Path) -> dict:
    """The sweep record of ``out`` with every run's state read from its ``run.json``."""
    record = read_json(out / "sweep.json")
    if not record:
        raise UsageError(
            f"{out / 'sweep.json'} is missing or unreadable: give the --out folder of "
            "a sweep"
        )
    for run in record["runs"]:
        state = read_json(out / run["folder"] / "run.json")
        if state:
            run.update({k: v for k, v in state.items() if k != "chapter"})
            if run.get("status") == "running":
                # started, never recorded an end (killed, or still running)
                run["status"] = "unfinished"
        else:
            run.update(
                status="missing",
                returncode=None,
                elapsed_s=None,
                results=None,
                log=None,
            )
    return record


# -------------------------------------------------------------------------------------
# Command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/sweep.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Values are YAML: lr=1e-3,1e-4; "seeds=[0],[1]"; device=cpu,cuda; '
        "epochs=1..5.\n",
    )
    p.add_argument(
        "chapter",
        nargs="?",
        help="chapter stem, e.g. 03_local_errors (not needed with --summarize)",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a swept parameter and its values; several --grid give their "
        "Cartesian product",
    )
    chapters.add_parameter_options(p, "every run (fixed)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="runs at once (default: the number of cores)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per run (default: cores // runs at once): the chapter's "
        "`threads` parameter when it has one, and OMP/MKL/OPENBLAS_NUM_THREADS",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="sweep folder (default: sweeps/<chapter>-<UTC time>)",
    )
    p.add_argument(
        "--over",
        default=None,
        help="comma-separated grid parameters that are replicates, averaged over in "
        "the summary (default: those named seed or seeds); --over '' averages over "
        "nothing",
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metrics to summarise (a name selects its "
        "sub-metrics too: acc selects acc.0, acc.1, ...)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print the runs as INDEX<tab>RUN-ID and stop",
    )
    p.add_argument(
        "--run-index",
        type=int,
        default=None,
        metavar="I",
        help="run only run I into --out "
        "(e.g. a SLURM array task: $SLURM_ARRAY_TASK_ID)",
    )
    p.add_argument(
        "--summarize",
        action="store_true",
        help="only summarise the runs present in --out",
    )
    p.add_argument(
        "--book", type=Path, default=chapters.BOOK, help=argparse.SUPPRESS
    )  # the tests' notebooks
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        return _main(args, argv)
    except UsageError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2


def _over(args, grid: dict) -> list[str]:
    if args.over is None:
        return [n for n in grid if n in SEED_NAMES]
    over = [n.strip() for n in args.over.split(",") if n.strip()]
    missing = [n for n in over if n not in grid]
    if missing:
        raise UsageError(
            f"--over {', '.join(missing)}: not a grid parameter; the grid has "
            f"{', '.join(grid)}"
        )
    return over


def _without_run_index(argv: list[str]) -> list[str]:
    """The command line shared by every task of an array: ``--run-index I`` left out."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--run-index":
            skip = True
        elif not a.startswith("--run-index="):
            out.append(a)
    return out


def _main(args, argv: list[str]) -> int:
    wanted = (
        [m.strip() for m in args.metrics.split(",") if m.strip()]
        if args.metrics
        else None
    )
    if args.summarize:
        if args.out is None:
            raise UsageError("--summarize needs --out DIR, the folder of the sweep")
        record = collect(args.out)
        over = (
            _over(args, record.get("grid") or {})
            if args.over is not None
            else record.get("over", [])
        )
        return write_summary(record, args.out, over, wanted)

    if not args.chapter:
        raise UsageError(
            "give a chapter, e.g. python tools/sweep.py 03_local_errors --grid "
            "'seeds=[0],[1],[2]'"
        )
    book = args.book.resolve()
    notebook = chapters.notebook(args.chapter, book)
    stem = notebook.stem
    known = chapters.parameter_names(notebook)
    if not args.grid:
        raise UsageError(
            "the grid is empty: give at least one --grid NAME=V1,V2,... "
            f"with NAME among the chapter's parameters: {', '.join(known)}"
        )
    grid = parse_grid(args.grid)
    chapters.check_names(grid, known, "--grid")
    base = chapters.given_parameters(args)
    chapters.check_names(base, known, "-p/-y")
    both = [n for n in grid if n in base]
    if both:
        raise UsageError(
            f"{', '.join(both)} is both fixed (-p/-y) and swept (--grid): keep one"
        )
    over = _over(args, grid)
    runs = plan_runs(grid)

    if args.list:
        for run in runs:
            print(f"{run['index']}\t{run['id']}")
        return 0

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: give a positive number of runs at once")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: give a positive number of threads")
    if args.run_index is not None:
        if args.out is None:
            raise UsageError(
                "--run-index needs --out DIR, the same folder for every run of the "
                "sweep"
            )
        if not 0 <= args.run_index < len(runs):
            raise UsageError(
                f"--run-index {args.run_index}: the sweep has runs 0 to "
                f"{len(runs) - 1} "
                f"(see --list)"
            )
    cores = core_count()
    jobs = 1 if args.run_index is not None else min(args.jobs or cores, len(runs))
    threads = args.threads or max(1, cores // jobs)
    extra = (
        {"threads": threads}
        if "threads" in known and "threads" not in base and "threads" not in grid
        else {}
    )

    out = (
        args.out
        or ROOT
        / "sweeps"
        / f"{stem}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%d-%H%M%S}"
    )
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    previous = read_json(out / "sweep.json")
    if previous and (
        previous.get("chapter") != stem
        or [r["id"] for r in previous.get("runs", [])] != [r["id"] for r in runs]
    ):
        raise UsageError(
            f"{out} holds another sweep ({previous.get('chapter')}, "
            f"{len(previous.get('runs', []))} runs): choose another --out"
        )
    command = shlex.join(["python", "tools/sweep.py", *_without_run_index(argv)])
    record = {
        "chapter": stem,
        "notebook": str(notebook),
        "command": command,
        "created_utc": now_utc(),
        "grid": grid,
        "over": over,
        "fixed_parameters": base,
        "jobs": jobs,
        "threads_per_run": threads,
        "cores": cores,
        "runs": runs,
    }
    sweep = Sweep(stem, notebook, book, out, runs, base, extra, threads, record)
    signal.signal(signal.SIGTERM, _sigterm)

    if args.run_index is not None:
        if not previous:
            # the plan; the runs' states go to their run.json (tasks may run at once)
            sweep.write_sweep()
        run = runs[args.run_index]
        print(
            f"== {stem}: run {run['index']} of 0..{len(runs) - 1}, {run['id']}, into "
            f"{out / run['folder']}; "
            f"{threads} thread(s)",
            flush=True,
        )
        sweep.shared = True
        try:
            sweep.execute([run], 1)
        except KeyboardInterrupt:
            return 130
        return 0 if run["status"] == "ok" else 1

    print(
        f"== {stem}: {len(runs)} runs, {jobs} at a time, {threads} thread(s) each, "
        f"into {out}",
        flush=True,
    )
    try:
        sweep.execute(runs, jobs)
    except KeyboardInterrupt:
        print(
            f"== interrupted; the runs so far are in {out} (a summary of them: "
            f"python tools/sweep.py --summarize --out {shlex.quote(str(out))})",
            flush=True,
        )
        return 130
    failed = [r for r in runs if r["status"] != "ok"]
    print(
        f"== {len(runs) - len(failed)} of {len(runs)} runs ok in "
        f"{time.perf_counter() - sweep.started:.0f} s"
        + (f"; FAILED: {', '.join(r['id'] for r in failed)}" if failed else ""),
        flush=True,
    )
    status = write_summary(collect(out), out, over, wanted)
    return 1 if failed else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
