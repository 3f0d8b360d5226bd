"""Run chapters in the paper profile with papermill, in place.

The executed notebook replaces ``book/<stem>.ipynb`` only when the whole run succeeded,
and the same run writes ``results/<stem>.json``, so the committed notebook and the results
file always come from one run; after a successful run the scoreboard pages are regenerated
(``tools/scoreboard.py``). Extra papermill arguments (``-p device cuda``; lists with ``-y "seeds: [0]"``) are recorded
by papermill in an injected-parameters cell, visible in the executed notebook.

    python tools/reproduce.py 03_local_errors -p device cuda
    python tools/reproduce.py                      # every chapter, in order
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def main(argv: list[str]) -> int:
    stems = []
    while argv and not argv[0].startswith("-"):
        stem = argv.pop(0).removesuffix(".ipynb").removeprefix("book/")
        if not (BOOK / f"{stem}.ipynb").exists():
            chapters = sorted(p.stem for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
            print(f"no chapter book/{stem}.ipynb; chapters: {chapters}", file=sys.stderr)
            return 2
        stems.append(stem)
    args = argv
    stems = stems or sorted(p.stem for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
    env = {**os.environ, "BOOK_PLAIN_PROGRESS": "1"}
    for stem in stems:
        source = BOOK / f"{stem}.ipynb"
        running = BOOK / f"_running_{stem}.ipynb"
        start = time.perf_counter()
        print(f"== {stem}: papermill, paper profile {' '.join(args)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "papermill", str(source), str(running), "--cwd", str(BOOK),
             "-k", "python3", "--log-output", "--request-save-on-cell-execute", *args],
            env=env,
        )
        if result.returncode != 0:
            print(f"== {stem} FAILED after {time.perf_counter() - start:.0f} s; the committed notebook "
                  f"is unchanged, the failed run is in {running.relative_to(ROOT)}", flush=True)
            return result.returncode
        os.replace(running, source)
        print(f"== {stem} done in {time.perf_counter() - start:.0f} s", flush=True)
    return update_scoreboard()


def update_scoreboard() -> int:
    """Regenerate the scoreboard and performance pages (and the README tables) from the new results."""
    print("== scoreboard: python tools/scoreboard.py", flush=True)
    code = subprocess.run([sys.executable, str(ROOT / "tools" / "scoreboard.py")]).returncode
    if code != 0:
        print("== the run succeeded and its notebook and results file are in place, but the scoreboard could not "
              "be regenerated (message above); fix that, then run `python tools/scoreboard.py`", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
