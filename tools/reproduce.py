"""Run chapters in the paper profile with papermill, in place.

The executed notebook replaces ``book/<stem>.ipynb`` only when the whole run succeeded,
and the same run writes ``results/<stem>.json``, so the committed notebook and the
results file always come from one run; after a successful run the scoreboard pages are
regenerated (``tools/scoreboard.py``). Parameters given with ``-p device cuda`` (lists
with ``-y "seeds: [0]"``) are recorded by papermill in an injected-parameters cell,
visible in the executed notebook.

    python tools/reproduce.py 03_local_errors -p device cuda
    python tools/reproduce.py                      # every chapter, in order
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import chapters

ROOT = chapters.ROOT


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/reproduce.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chapters.add_chapters_argument(p)
    chapters.add_parameter_options(p, "every chapter run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    extra = chapters.papermill_args(args)
    for source in args.chapters or chapters.notebooks():
        stem = source.stem
        running = source.with_name(f"_running_{stem}.ipynb")
        start = time.perf_counter()
        print(f"== {stem}: papermill, paper profile {' '.join(extra)}", flush=True)
        # the committed outputs show summary lines, not progress bars
        result = subprocess.run(
            chapters.papermill(source, running, *extra),
            env=chapters.env(BOOK_PROGRESS="none"),
        )
        if result.returncode != 0:
            print(
                f"== {stem} FAILED after {time.perf_counter() - start:.0f} s; the "
                "committed notebook "
                f"is unchanged, the failed run is in {running.relative_to(ROOT)}",
                flush=True,
            )
            return result.returncode
        os.replace(running, source)
        print(f"== {stem} done in {time.perf_counter() - start:.0f} s", flush=True)
    return update_scoreboard()


def update_scoreboard() -> int:
    """Regenerate the scoreboard and performance pages (and the README tables) from the
    new results.
    """
    print("== scoreboard: python tools/scoreboard.py", flush=True)
    code = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("scoreboard.py"))]
    ).returncode
    if code != 0:
        print(
            "== the run succeeded and its notebook and results file are in place, but "
            "the scoreboard could not "
            "be regenerated (message above); fix that, then run `python "
            "tools/scoreboard.py`",
            flush=True,
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
