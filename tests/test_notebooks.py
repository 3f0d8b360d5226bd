"""What a reader meets in a chapter: outputs without progress residue, output blocks
no longer than a screen unless a cell says why, and code lines that fit the rendered
column.

*Reproducing the book* ("How to add things") documents the ``long-output`` cell tag and
``make format``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import chapters  # tools/chapters.py: the one chapter list
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters.notebooks()
DRAFTS = sorted((ROOT / "book" / "drafts").glob("*.ipynb"))

#: The longest code line the rendered column shows without cutting it (ruff's
#: line-length).
MAX_LINE = 88
#: The longest text output a cell may show (a screen) without the ``long-output`` tag.
MAX_OUTPUT_LINES = 40
#: The tag that allows a longer output, and the metadata key that must hold its reason.
LONG_TAG, LONG_REASON = "long-output", "long_output_reason"

#: Progress residue in a committed output: carriage returns (a bar redrawn in place),
#: cursor-movement codes, tqdm's bar glyphs and its rate suffix.
RESIDUE = re.compile(
    r"\r|\x1b\[|[\u2588\u2589\u258a\u258b\u258c\u258d\u258e\u258f]"
    r"|\|#{2,}|\d(?:it/s|s/it)\]|[ \d](?:it/s|s/it)\]"
)


def _id(path: Path) -> str:
    return path.relative_to(ROOT / "book").with_suffix("").as_posix()


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def output_text(output: dict) -> str:
    """The text a reader sees of one output: a stream, or the plain text of a result."""
    if output.get("output_type") == "stream":
        return _text(output.get("text"))
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    return _text(output.get("data", {}).get("text/plain"))


def residue(cells: list[dict]) -> list[str]:
    """One line per output that carries progress-bar residue (or is a live widget)."""
    found = []
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
                found.append(f"cell {i}: a widget output (a live progress bar?)")
                continue
            m = RESIDUE.search(output_text(output))
            if m:
                found.append(f"cell {i}: {m.group()!r} in {output_text(output)[:70]!r}")
    return found


def _screen_lines(text: str) -> int:
    """Lines a reader sees of a text: a carriage return redraws its line, adds none."""
    return len(text.rstrip("\n").split("\n")) if text.strip() else 0


def output_lines(outputs: list[dict]) -> int:
    """Lines a reader sees of a cell's outputs. Consecutive stream outputs are one block
    (the kernel splits a stream into pieces); a table (``text/html`` with ``<table``,
    e.g. a DataFrame) counts one line per row, as it is rendered; images count none."""
    n, stream = 0, ""
    for output in outputs:
        if output.get("output_type") == "stream":
            stream += output_text(output)
            continue
        n, stream = n + _screen_lines(stream), ""
        page = _text(output.get("data", {}).get("text/html"))
        n += (
            page.count("<tr")
            if "<table" in page
            else _screen_lines(output_text(output))
        )
    return n + _screen_lines(stream)


def long_outputs(cells: list[dict]) -> list[str]:
    """One line per cell whose outputs together exceed a screen without a reason."""
    found = []
    for i, cell in enumerate(cells):
        n = output_lines(cell.get("outputs", []))
        if n <= MAX_OUTPUT_LINES:
            continue
        meta = cell.get("metadata", {})
        reason = str(meta.get(LONG_REASON, "")).strip()
        if LONG_TAG in meta.get("tags", []) and reason:
            continue
        found.append(f"cell {i}: {n} lines of output")
    return found


def long_code_lines(cells: list[dict]) -> list[str]:
    """One line per code line longer than ``MAX_LINE`` characters."""
    return [
        f"cell {i}, line {j + 1}: {len(line)} characters"
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        for j, line in enumerate(_text(cell["source"]).splitlines())
        if len(line) > MAX_LINE
    ]


def _params(paths: list[Path]) -> list:
    """The notebooks as test parameters, named by their path under book/."""
    return [pytest.param(nb, id=_id(nb)) for nb in paths]


@pytest.mark.parametrize("nb_path", _params(CHAPTERS))
def test_committed_outputs_carry_no_progress_residue(nb_path):
    found = residue(_cells(nb_path))
    assert not found, (
        f"{nb_path.name} has progress bars in its outputs ({len(found)} outputs):\n- "
        + "\n- ".join(found[:8])
        + f"\nFix: rerun it with `make reproduce CHAPTER={nb_path.stem}` (no bars), "
        "or print one summary line per run instead of a bar"
    )


@pytest.mark.parametrize("nb_path", _params(CHAPTERS + DRAFTS))
def test_no_output_longer_than_a_screen_without_a_reason(nb_path):
    found = long_outputs(_cells(nb_path))
    assert not found, (
        f"{nb_path.name}: outputs longer than {MAX_OUTPUT_LINES} lines:\n- "
        + "\n- ".join(found)
        + f"\nFix: print less (a summary line, a table), or tag the cell `{LONG_TAG}` "
        f"and give the reason in its metadata key `{LONG_REASON}`"
    )


@pytest.mark.parametrize("nb_path", _params(CHAPTERS + DRAFTS))
def test_code_lines_fit_the_rendered_column(nb_path):
    found = long_code_lines(_cells(nb_path))
    assert not found, (
        f"{nb_path.name}: {len(found)} code lines longer than {MAX_LINE} "
        "characters:\n- "
        + "\n- ".join(found[:10])
        + "\nFix: `make format`, then shorten by hand the strings and comments it "
        "cannot break"
    )


@pytest.mark.parametrize("folder", ["helpers", "tools", "tests", "benchmarks"])
def test_package_and_tool_lines_fit_too(folder):
    found = [
        f"{p.relative_to(ROOT)}:{j + 1}: {len(line)} characters"
        for p in sorted((ROOT / folder).glob("*.py"))
        for j, line in enumerate(p.read_text().splitlines())
        if len(line) > MAX_LINE
    ]
    assert not found, (
        f"{len(found)} lines in {folder}/ longer than {MAX_LINE} characters:\n- "
        + "\n- ".join(found[:10])
        + "\nFix: `make format`, then shorten the rest by hand"
    )


# ------------------------------------------------- the checks above can fail, and pass
def _cell(source="", outputs=(), **metadata):
    return {
        "cell_type": "code",
        "source": source,
        "metadata": metadata,
        "outputs": list(outputs),
    }


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


@pytest.mark.parametrize(
    "text",
    [
        "\repochs:   0%|          | 0/10 [00:00<?, ?it/s]",
        "epochs: 100%|" + "\u2588" * 10 + "| 10/10",
        "epochs:  40%|####      | 4/10 [00:04<00:06,  1.02s/it]",
        "train: 12/100 [00:01<00:09, 9.81it/s]",
        "\x1b[A\x1b[Aepoch 3",
    ],
)
def test_residue_is_found(text):
    assert residue([_cell(outputs=[_stream(text)])]) == [
        f"cell 0: {RESIDUE.search(text).group()!r} in {text[:70]!r}"
    ]


def test_clean_outputs_and_long_blocks_with_a_reason_pass():
    clean = (
        "epoch 10: train acc 0.9812, test acc 0.9790 (12.3 s)\n| a | b |\n|---|---|\n"
    )
    assert residue([_cell(outputs=[_stream(clean)])]) == []
    widget = {
        "output_type": "display_data",
        "data": {"application/vnd.jupyter.widget-view+json": {}},
    }
    assert residue([_cell(outputs=[widget])]) == [
        "cell 0: a widget output (a live progress bar?)"
    ]
    screen = _stream("line\n" * MAX_OUTPUT_LINES)
    assert long_outputs([_cell(outputs=[screen])]) == []
    long = [
        _stream("line\n" * 30),
        _stream("line\n" * 11),
    ]  # one cell, two blocks: 41 lines
    assert long_outputs([_cell(outputs=long)]) == ["cell 0: 41 lines of output"]
    assert long_outputs([_cell(outputs=long, tags=[LONG_TAG])]) == [
        "cell 0: 41 lines of output"
    ]  # the tag without a reason is not enough
    tagged = _cell(outputs=long, tags=[LONG_TAG], **{LONG_REASON: "the whole table"})
    assert long_outputs([tagged]) == []


def test_long_code_lines_are_found():
    ok, bad = "x" * MAX_LINE, "y" * (MAX_LINE + 1)
    cells = [_cell(f"{ok}\n{bad}"), {"cell_type": "markdown", "source": bad}]
    assert long_code_lines(cells) == [f"cell 0, line 2: {MAX_LINE + 1} characters"]
