"""Run chapter notebooks in the smoke profile, as tests.

For each chapter, papermill writes a temporary copy beside the original
(``book/_smoke_<stem>.ipynb``) with ``profile = "smoke"`` injected, without executing
it; then ``pytest --nbval-lax --nbval-current-env`` executes the copies (a cell that
raises, including a failed ``assert``, fails the test; outputs are not compared). The
copies are removed afterwards.

    python tools/run_smoke.py                        # every chapter
    python tools/run_smoke.py 03_local_errors        # some chapters
    python tools/run_smoke.py --pytest -x -q         # the rest goes to pytest
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import chapters


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/run_smoke.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chapters.add_chapters_argument(p)
    p.add_argument(
        "--pytest",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="ARG",
        help="the rest of the command line is passed to pytest",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    copies = []
    try:
        for source in args.chapters or chapters.notebooks():
            copy = source.with_name(f"_smoke_{source.stem}.ipynb")
            subprocess.run(
                chapters.papermill(
                    source, copy, "-p", "profile", "smoke", execute=False
                ),
                check=True,
            )
            copies.append(copy)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-cell-timeout=600",
            "-p",
            "no:cacheprovider",
            "-o",
            "testpaths=",
            *map(str, copies),
            *args.pytest,
        ]
        return subprocess.run(cmd, cwd=chapters.ROOT, env=chapters.env()).returncode
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
