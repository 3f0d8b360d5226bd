"""What every tool in ``tools/`` knows about the chapters: which they are, their
parameters, how papermill runs them.

A chapter is a notebook ``book/NN_<name>.ipynb`` (two digits, an underscore, a name);
:func:`stems` is the one chapter list of the tools (``reproduce.py``, ``run_smoke.py``,
``sweep.py``, ``runs.py``, ``scoreboard.py``, ``sync_links.py``) and of the tests. Its
``parameters`` cell is read with :func:`notebook_defaults`; papermill's ``-p NAME
VALUE`` / ``-y YAML`` options are declared by :func:`add_parameter_options`, read by
:func:`given_parameters` and passed on by :func:`papermill_args`; :func:`papermill` is
the one papermill command line. The tools are scripts: each imports this module as
``import chapters`` (its folder comes first on ``sys.path`` when it runs).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from helpers.params import parse_parameters_cell

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
# book/NN_<name>.ipynb; the tools' copies (_smoke_*, _running_*) do not match
GLOB = "[0-9][0-9]_*.ipynb"


class UsageError(Exception):
    """The command cannot work; the message names the problem and the fix (the tools
    exit with code 2).
    """


# ------------------------------------------------------------------------- the chapters
def notebooks(book: Path = BOOK) -> list[Path]:
    """The chapter notebooks of ``book``, in chapter order."""
    return sorted(Path(book).glob(GLOB))


def stems(book: Path = BOOK) -> list[str]:
    """The chapters' names, in order: ``["01_numpy_from_scratch", "02_looking_inside",
    ...]``.
    """
    return [path.stem for path in notebooks(book)]


def notebook(stem: str, book: Path = BOOK) -> Path:
    """The notebook of chapter ``stem`` (``03_local_errors``,
    ``book/03_local_errors.ipynb`` and ``03_local_errors.ipynb`` all name it);
    :class:`UsageError` listing the chapters when there is none.
    """
    name = stem.removesuffix(".ipynb").split("/")[-1]
    path = Path(book) / f"{name}.ipynb"
    if not path.exists():
        raise UsageError(
            f"no chapter {path}; chapters: {', '.join(stems(book)) or '(none)'}"
        )
    return path


#: Chapters under rework: ``book/drafts/<stem>.ipynb`` is the next version of a chapter,
#: not built
#: and not tested as a chapter, whose run records are trained (``tools/runs.py``) before
#: its
#: paper-profile run replaces ``book/<stem>.ipynb``.
DRAFTS = BOOK / "drafts"


def parameters_notebook(stem: str, book: Path = BOOK) -> Path:
    """The notebook whose parameters define chapter ``stem``'s grid of runs: its draft
    when the chapter is under rework (``book/drafts/<stem>.ipynb``), else the chapter
    itself.
    """
    draft = Path(book) / "drafts" / f"{stem}.ipynb"
    return draft if draft.exists() else notebook(stem, book)


def notebook_defaults(path: Path) -> dict[str, Any]:
    """The defaults of the notebook's ``parameters`` cell, in order, read by the one
    parser of parameters cells (:func:`helpers.params.parse_parameters_cell`)."""
    cells = json.loads(Path(path).read_text())["cells"]
    cell = next(
        (c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])),
        None,
    )
    if cell is None:
        raise UsageError(f"{Path(path).name} has no cell tagged 'parameters'")
    source = cell["source"]
    defaults, why = parse_parameters_cell(
        "".join(source) if isinstance(source, list) else source
    )
    if defaults is None:
        raise UsageError(
            f"{Path(path).name}: its 'parameters' cell cannot be read: {why}; write "
            "one 'name = literal  # comment' per parameter (see book/reproducing.md)"
        )
    return defaults


def parameter_names(path: Path) -> list[str]:
    """The names assigned in the notebook's ``parameters`` cell, in order."""
    return list(notebook_defaults(path))


def add_chapters_argument(parser: argparse.ArgumentParser) -> None:
    """Chapter stems as the positional arguments, read into ``args.chapters`` as
    notebooks (an unknown chapter stops the command with exit code 2 and the list of
    chapters); ``args.chapters or notebooks()`` gives every chapter when none is named.
    """

    def chapter(stem: str) -> Path:
        try:
            return notebook(stem)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parser.add_argument(
        "chapters",
        nargs="*",
        type=chapter,
        metavar="CHAPTER",
        help="chapter stems, e.g. 03_local_errors (default: every chapter)",
    )


# --------------------------------------------------------------------------- parameters
class _Loader(yaml.SafeLoader):
    """YAML without dates (as papermill reads ``-y``), and ``1e-3`` read as a number."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def resolve_p(value: str) -> Any:
    """A ``-p`` value as papermill reads it: True/False/None, an int, a float, else
    text.
    """
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def add_parameter_options(
    parser: argparse.ArgumentParser, for_what: str = "the chapter"
) -> None:
    """papermill's ``-p NAME VALUE`` and ``-y YAML``, as ``args.parameters`` and
    ``args.parameters_yaml``.
    """
    parser.add_argument(
        "-p",
        "--parameters",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=f"a parameter of {for_what}, as papermill's -p",
    )
    parser.add_argument(
        "-y",
        "--parameters-yaml",
        action="append",
        default=[],
        metavar="YAML",
        help=f"parameters of {for_what} as YAML, as papermill's -y "
        '(e.g. "seeds: [0, 1]")',
    )


def given_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The values of ``-y`` texts, then of ``-p NAME VALUE`` pairs (``-p`` wins, as in
    papermill).
    """
    given: dict[str, Any] = {}
    for text in args.parameters_yaml:
        try:
            mapping = load_yaml(text)
        except yaml.YAMLError as e:
            raise UsageError(
                f"-y {text!r} is not YAML ({str(e).splitlines()[0]})"
            ) from None
        if not isinstance(mapping, dict):
            raise UsageError(f'-y {text!r} must be a mapping, e.g. -y "seeds: [0, 1]"')
        given.update(mapping)
    for name, value in args.parameters:
        given[name] = resolve_p(value)
    return given


def papermill_args(args: argparse.Namespace) -> list[str]:
    """``-y`` and ``-p`` as they were given, to pass on to papermill or to another
    tool's command line.
    """
    return [
        *(a for text in args.parameters_yaml for a in ("-y", text)),
        *(a for name, value in args.parameters for a in ("-p", name, value)),
    ]


def check_names(names, known: list[str], what: str) -> None:
    """:class:`UsageError` for every name not in ``known``, with the closest known name
    as a hint.
    """
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = [
            f"{n} -> {close[0]}?"
            for n in unknown
            if (close := difflib.get_close_matches(n, known, 1, 0.7))
        ]
        hint = f" (did you mean: {'; '.join(hints)})" if hints else ""
        raise UsageError(
            f"{what} {', '.join(unknown)}: not in the chapter's parameters cell{hint}; "
            f"its parameters are: {', '.join(known)}"
        )


# ---------------------------------------------------------------------------- papermill
def papermill(
    source: Path, output: Path, *args: str, cwd: Path = BOOK, execute: bool = True
) -> list[str]:
    """The papermill command line of every tool: ``source`` executed into ``output``
    with the python3 kernel in the folder ``cwd``, the cell outputs logged as they come
    and the notebook saved after every cell; ``args`` are more papermill options
    (``-p``, ``-y``, ``-f``). ``execute=False``: only write ``output`` with the
    parameters injected (``--prepare-only``).
    """
    how = (
        [
            "--cwd",
            str(cwd),
            "-k",
            "python3",
            "--log-output",
            "--request-save-on-cell-execute",
        ]
        if execute
        else ["--prepare-only", "--log-level", "WARNING"]
    )
    return [sys.executable, "-m", "papermill", str(source), str(output), *how, *args]


def env(**extra: str) -> dict[str, str]:
    """The environment of a chapter run: this one, with plain-text progress lines
    instead of bars.
    """
    return {**os.environ, "BOOK_PLAIN_PROGRESS": "1", **extra}
