"""Run chapter notebooks in the smoke profile, as tests.

For each chapter, papermill writes a temporary copy beside the original
(``book/_smoke_<stem>.ipynb``) with ``profile = "smoke"`` injected, without executing it;
then ``pytest --nbval-lax --nbval-current-env`` executes the copies (a cell that raises,
including a failed ``assert``, fails the test; outputs are not compared). The copies are
removed afterwards.

    python tools/run_smoke.py                        # every chapter
    python tools/run_smoke.py 03_local_errors        # some chapters
    python tools/run_smoke.py -- -x                  # extra pytest arguments after --
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    stems = argv or sorted(p.stem for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
    copies = []
    try:
        for stem in stems:
            source = BOOK / f"{stem}.ipynb"
            if not source.exists():
                print(f"no chapter {source.relative_to(ROOT)}; chapters: "
                      f"{sorted(p.stem for p in BOOK.glob('[0-9][0-9]_*.ipynb'))}", file=sys.stderr)
                return 2
            copy = BOOK / f"_smoke_{stem}.ipynb"
            subprocess.run(
                [sys.executable, "-m", "papermill", str(source), str(copy), "--prepare-only",
                 "-p", "profile", "smoke", "--log-level", "WARNING"],
                check=True,
            )
            copies.append(copy)
        env = {**os.environ, "BOOK_PLAIN_PROGRESS": "1"}
        cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
               "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-o", "testpaths=",
               *map(str, copies), *extra]
        return subprocess.run(cmd, cwd=ROOT, env=env).returncode
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
