"""Train a chapter's grid of runs (its run records), in parallel, resumably.

    python tools/runs.py 04_feedback_alignment  # status, then train what is missing
    python tools/runs.py 04_feedback_alignment --list  # status: done / stale / missing
    python tools/runs.py 04_feedback_alignment --print  # a command per missing run
    python tools/runs.py 04_feedback_alignment -y "seeds: [0, 1, 2]" --jobs 2
    python tools/runs.py 04_feedback_alignment --run 7x240-dfa-seed0  # one run, here

The grid comes from the chapter's parameters cell (paper profile unless ``-p profile
smoke``) and the grids registered for the chapter in ``helpers.runs.GRIDS``. Each run
writes its record to ``results/runs/<chapter>/<run>.json`` and checkpoints after every
epoch into the cache folder (``BOOK_CACHE_DIR``), so an interrupted command loses at
most one epoch per run: run it again. Stale records (their configuration no longer
matches) are listed and kept unless ``--retrain-stale``. Every run gets 1 thread unless
``--threads``; at most ``--jobs`` runs at once (default: one per core). Exit codes: 0
all runs done, 1 a run failed or a record is stale, 2 the command cannot work, 130
interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import chapters
import sweep  # the scheduler
from chapters import UsageError, notebook_defaults

ROOT = chapters.ROOT


def chapter_specs(stem: str, params: dict):
    from helpers import runs

    grids = runs.grids_of(stem)
    if not grids:
        raise UsageError(
            f"{stem} registers no grid of runs (helpers.runs.GRIDS); chapters with "
            "runs: "
            f"{', '.join(sorted(runs.GRIDS)) or '(none)'}"
        )
    profile = params.get("profile", "paper")
    return [spec for grid in grids for spec in grid.specs(params, profile)]


def log_path(spec) -> Path:
    from helpers import runs

    return runs.checkpoint_path(spec).with_suffix(".log")


def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 2000))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""
    except OSError:
        return ""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/runs.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("chapter", help="chapter stem, e.g. 04_feedback_alignment")
    chapters.add_parameter_options(p)
    p.add_argument(
        "--list", action="store_true", help="print the status of every run and stop"
    )
    p.add_argument(
        "--print",
        action="store_true",
        help="print one shell command per run to train, and stop",
    )
    p.add_argument("--run", metavar="NAME", help="train this one run in this process")
    p.add_argument(
        "--retrain-stale",
        action="store_true",
        help="train stale runs again (their records are replaced)",
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="runs at once (default: one per core)"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads per run (default 1)"
    )
    p.add_argument("--device", default="cpu", help="device of every run (default cpu)")
    p.add_argument("--book", type=Path, default=chapters.BOOK, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        return _main(args)
    except UsageError as e:
        print(f"runs: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:
    from helpers import runs

    # a new chapter may exist only as a draft (book/drafts/<stem>.ipynb) until its run
    name = args.chapter.removesuffix(".ipynb").split("/")[-1]
    notebook = chapters.parameters_notebook(name, args.book.resolve())
    stem = notebook.stem
    if notebook.parent.name == "drafts":
        print(
            f"== {stem} is under rework: the grid comes from "
            f"{notebook.relative_to(ROOT)}"
        )
    params = notebook_defaults(notebook)
    overrides = chapters.given_parameters(args)
    chapters.check_names(overrides, list(params), "-p/-y")
    params.update(overrides)
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: give a positive number of runs at once")
    if args.threads < 1:
        raise UsageError(f"--threads {args.threads}: give a positive number of threads")
    specs = chapter_specs(stem, params)
    passed = chapters.papermill_args(args)

    if args.run:
        spec = next((s for s in specs if s.name == args.run), None)
        if spec is None:
            raise UsageError(
                f"--run {args.run}: no such run in {stem}'s grid; runs: "
                f"{', '.join(s.name for s in specs)}"
            )
        runs.train(spec, device=args.device, threads=args.threads)
        return 0

    states = runs.status(specs)
    print(
        f"== {stem}: {len(specs)} runs ({specs[0].profile} profile); records in "
        f"{runs.record_path(specs[0]).parent}"
    )
    total = 0.0
    todo = []
    for spec, state, record, reasons in states:
        if state == "done":
            line = f"done     {spec.name}  ({runs._describe(record)})"
        else:
            cost, how = runs.estimate_cost(spec, states)
            total += cost or 0.0
            line = (
                f"{state:8s} {spec.name}  "
                f"(~{runs.format_seconds(cost)} of one core: {how})"
            )
            if state == "missing" or args.retrain_stale:
                todo.append(spec)
        print("  " + line)
        for reason in reasons:
            print(f"             {reason}")
    n_stale = sum(state == "stale" for _, state, _, _ in states)
    if todo:
        print(
            f"   to train: {len(todo)} run(s), ~{runs.format_seconds(total)} of one "
            "core in all"
        )
    if n_stale and not args.retrain_stale:
        print(f"   {n_stale} stale record(s) kept: --retrain-stale trains them again")
    if args.list:
        return 1 if n_stale else 0
    if args.print:
        for spec in todo:
            print(
                shlex.join(
                    [
                        "python",
                        "tools/runs.py",
                        stem,
                        "--run",
                        spec.name,
                        *passed,
                        "--threads",
                        str(args.threads),
                        "--device",
                        args.device,
                    ]
                )
            )
        return 0
    if not todo:
        return 1 if n_stale else 0

    jobs = min(args.jobs or sweep.core_count(), len(todo))
    started_at = time.perf_counter()
    items = [{"spec": s, "log": log_path(s)} for s in todo]

    def start(item):
        item["log"].parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            stem,
            "--run",
            item["spec"].name,
            *passed,
            "--threads",
            str(args.threads),
            "--device",
            args.device,
        ]
        env = {**os.environ, **{name: str(args.threads) for name in sweep.THREAD_ENV}}
        with open(item["log"], "a") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                start_new_session=(os.name == "posix"),
            )
        item["t0"] = time.perf_counter()
        return proc

    def stamp():
        s = int(time.perf_counter() - started_at)
        return f"[{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}]"

    def started(item, n_running):
        print(
            f"{stamp()} start {item['spec'].name} ({n_running} running); log "
            f"{item['log']}",
            flush=True,
        )

    failed = []

    def ended(item, code, n_done):
        minutes = (time.perf_counter() - item["t0"]) / 60
        if code == 0:
            print(
                f"{stamp()} done  {item['spec'].name} in {minutes:.1f} min "
                f"({n_done}/{len(items)})",
                flush=True,
            )
        else:
            failed.append(item["spec"].name)
            print(
                f"{stamp()} FAILED {item['spec'].name} (exit {code}) after "
                f"{minutes:.1f} min; log "
                f"{item['log']}:",
                flush=True,
            )
            for line in sweep.error_lines(item["log"]):
                print(f"    | {line}", flush=True)

    def stopped(item, code):
        print(
            f"{stamp()} stopped {item['spec'].name}; its checkpoint keeps the last "
            "finished epoch",
            flush=True,
        )

    def tick(running):
        for item in running:
            print(
                f"{stamp()}   "
                f"{last_line(item['log']) or item['spec'].name + ': starting'}",
                flush=True,
            )

    signal.signal(signal.SIGTERM, sweep._sigterm)
    print(
        f"== training {len(items)} run(s), {jobs} at a time, {args.threads} thread(s) "
        "each",
        flush=True,
    )
    try:
        sweep.run_parallel(
            items, jobs, start, started, ended, stopped, tick, tick_s=120
        )
    except KeyboardInterrupt:
        print("== interrupted: run the same command again to resume", flush=True)
        return 130
    print(
        f"== {len(items) - len(failed)} of {len(items)} run(s) done in "
        f"{(time.perf_counter() - started_at) / 60:.1f} min"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed or n_stale else 0


if __name__ == "__main__":
    sys.exit(main())
