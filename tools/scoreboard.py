"""The reproduction scoreboard and the performance report, generated from
``results/*.json``.

A thin caller of :mod:`helpers.claims` (the registry ``helpers/claims.yml``, the paths
into the
results files, the verdicts): this file only lays out the pages. It writes

- ``book/scoreboard.md``: the sources' claims with their verdicts, counted by verdict
  class, the book's own claims in their own table, and whether the claims rerun on a
  second data set travel (chapter 7's verdicts, :data:`TRAVEL`);
- ``book/performance.md``: each chapter's paper-profile wall time, our engineering
  targets
  (parity, speed ratios) and the cost of the run records;
- the same tables into ``README.md``, between ``<!-- scoreboard:start -->`` /
  ``<!-- scoreboard:end -->`` and ``<!-- performance:start -->`` / ``<!--
  performance:end -->``.

Nothing in these pages is typed by hand: a number comes from a results file or it is
not shown.

    python tools/scoreboard.py            # write the pages (make scoreboard)
    python tools/scoreboard.py --check    # exit 1 if a page or the README is stale
    python tools/scoreboard.py --results-dir results/smoke --out /tmp/sb   # smoke
    results

A chapter without a results file is listed as "not run yet"; a claim whose key is
missing
from its results file is listed as "result missing" and named on stderr. ``--strict``
makes both errors.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chapters

from helpers import claims as cl
from helpers import fashion_table as ft
from helpers.claims import (  # noqa: F401  (the tests read paths through these names)
    MissingKey,
    claim_paths,
    fill_template,
    resolve,
)

ROOT = chapters.ROOT
MARKERS = {
    "scoreboard": ("<!-- scoreboard:start -->", "<!-- scoreboard:end -->"),
    "performance": ("<!-- performance:start -->", "<!-- performance:end -->"),
}
NOT_RUN = cl.NOT_RUN
cell = cl.cell  # text safe inside a Markdown table cell


class ScoreboardError(Exception):
    """A registry or results file the scoreboard cannot use; the message says what to
    do."""


@dataclass
class Repo:
    """Where things are: the repository root, the results folder read, and the folder
    the pages go to."""

    root: Path = ROOT
    results: Path | None = None
    out: Path | None = None

    def __post_init__(self):
        self.root = Path(self.root)
        self.results = Path(self.results) if self.results else self.root / "results"
        self.out = Path(self.out) if self.out else None

    @property
    def claims_file(self) -> Path:
        return self.root / "helpers" / "claims.yml"

    def page(self, name: str) -> Path:
        return (self.out / name) if self.out else self.root / "book" / name

    @property
    def readme_in(self) -> Path:
        return self.root / "README.md"

    @property
    def readme_out(self) -> Path:
        return (self.out / "README.md") if self.out else self.root / "README.md"

    def chapters(self) -> list[str]:
        return chapters.stems(self.root / "book")

    def results_file(self, stem: str) -> Path:
        return self.results / f"{stem}.json"

    def benchmark_file(self, name: str) -> Path:
        return self.results / "benchmarks" / f"{name}.json"

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


def load_registry(repo: Repo) -> dict[str, Any]:
    """``helpers/claims.yml`` of ``repo``, checked (:func:`helpers.claims.load`)."""
    try:
        return cl.load(repo.claims_file, chapters=repo.chapters())
    except cl.ClaimsError as e:
        raise ScoreboardError(str(e)) from None


def load_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ScoreboardError(
            f"{path} is not valid JSON ({e}); rerun the run that writes it"
        ) from None


def _fix(stem: str) -> str:
    return f"make reproduce CHAPTER={stem}"


# ------------------------------------------------------------------------ pages
def chapter_title(repo: Repo, stem: str) -> str:
    try:
        nb = json.loads(
            (repo.root / "book" / f"{stem}.ipynb").read_text(encoding="utf-8")
        )
    except (OSError, json.JSONDecodeError):
        return stem
    for c in nb.get("cells", []):
        if c.get("cell_type") == "markdown":
            for line in "".join(c.get("source", [])).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return stem


def injected_parameters(repo: Repo, stem: str) -> list[str]:
    """The papermill overrides recorded in the committed notebook's injected-parameters
    cell."""
    try:
        nb = json.loads(
            (repo.root / "book" / f"{stem}.ipynb").read_text(encoding="utf-8")
        )
    except (OSError, json.JSONDecodeError):
        return []
    for c in nb.get("cells", []):
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            return [
                ln.strip()
                for ln in "".join(c.get("source", [])).splitlines()
                if ln.strip() and not ln.strip().startswith("#")
            ]
    return []


def reproduce_command(repo: Repo, stem: str) -> str:
    """The command that reruns a chapter as committed: its papermill overrides become
    ARGS."""
    args = []
    for line in injected_parameters(repo, stem):
        name, _, expr = line.partition("=")
        name, expr = name.strip(), expr.strip()
        try:
            value = ast.literal_eval(expr)
        except (ValueError, SyntaxError):
            value = expr
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            args.append(f"-p {name} {value}")
        else:
            args.append(f'-y "{name}: {json.dumps(value)}"')
    return _fix(stem) + (f" ARGS='{' '.join(args)}'" if args else "")


def utc_text(stamp: str | None) -> str:
    """An ISO UTC time stamp as the tables show it: ``2026-12-01 22:25:10``."""
    return (stamp or "—").replace("T", " ").replace("+00:00", "")


def chapter_label(stem: str, style: str, published: bool = True) -> str:
    """The chapter's number, linked to it; a chapter in preparation (its run records
    exist, its notebook is still a draft) gets no link."""
    number = str(int(stem[:2]))
    if not published:
        return f"{number} (in preparation)"
    return (
        f"{{doc}}`{number} <{stem}>`"
        if style == "book"
        else f"[{number}](book/{stem}.ipynb)"
    )


def judge_all(
    repo: Repo, reg: dict[str, Any], strict: bool = False
) -> tuple[list[cl.Verdict], list[str]]:
    """Every claim judged on its chapter's results file, and the notes for stderr."""
    verdicts, notes, cache = [], [], {}
    for c in reg["claims"]:
        stem = c["chapter"]
        if stem not in cache:
            cache[stem] = load_json(repo.results_file(stem))
            if cache[stem] is None:
                notes.append(
                    f"{repo.rel(repo.results_file(stem))} does not exist: its "
                    f"claims are listed as '{NOT_RUN}' (fix: `{_fix(stem)}`)"
                )
        try:
            v = cl.judge(c, cache[stem])
        except cl.ClaimsError as e:
            raise ScoreboardError(f"claim {c['id']}: {e}") from None
        if v.verdict == cl.MISSING:
            notes.append(
                f"{repo.rel(repo.results_file(stem))} lacks what claim {c['id']} "
                f"reads ({v.note}): listed as '{cl.MISSING}'. Fix: rerun the "
                f"chapter (`{_fix(stem)}`), or correct helpers/claims.yml"
            )
        verdicts.append(v)
    if strict and notes:
        raise ScoreboardError("; ".join(notes))
    return verdicts, notes


def summary_line(verdicts: list[cl.Verdict]) -> str:
    """How many of the sources' claims fall in each verdict class."""
    counts = {k: sum(v.verdict == k for v in verdicts) for k in cl.VERDICTS}
    parts = [f"{counts[k]} {k}" for k in cl.VERDICTS if counts[k]]
    return f"{len(verdicts)} claims of the sources: " + ", ".join(parts) + "."


def sources_table(verdicts: list[cl.Verdict], style: str) -> str:
    rows = cl.source_rows(
        verdicts,
        "book" if style == "book" else "readme",
        chapter_column=lambda c: chapter_label(c["chapter"], style),
    )
    return cl.markdown_table(["Ch.", *cl.SOURCE_HEAD], rows)


def ours_table(verdicts: list[cl.Verdict], style: str) -> str:
    rows = cl.ours_rows(verdicts, lambda c: chapter_label(c["chapter"], style))
    return cl.markdown_table(["Ch.", *cl.OURS_HEAD], rows)


#: Chapters that rerun other chapters' claims on a second data set. Their results
#: file's ``metrics.claims`` (claim -> label, unit, the gap on each data set with its
#: interval, verdict, seeds) is listed as the chapter wrote it: the verdict rule is the
#: chapter's (``helpers.fashion_table.verdict``), not the registry's.
TRAVEL = ("07_claims_on_fashion_mnist",)
TRAVEL_HEAD = [
    "Ch.",
    "Claim",
    "Gap in",
    "MNIST gap [95 % CI]",
    "Fashion-MNIST gap [95 % CI]",
    "Verdict on Fashion-MNIST",
    "Seeds",
]


def travel_table(repo: Repo, style: str) -> str | None:
    """The verdicts of the :data:`TRAVEL` chapters, one row per claim (None when the
    book has no such chapter)."""
    rows = []
    for stem in (s for s in TRAVEL if s in repo.chapters()):
        label = chapter_label(stem, style)
        record = load_json(repo.results_file(stem))
        if record is None:
            rows.append([label, NOT_RUN, "", "", "", "", ""])
            continue
        try:
            found = resolve(record, "metrics.claims")
            for c in found.values():
                unit = c["unit"]
                rows.append(
                    [
                        label,
                        c["label"],
                        unit,
                        ft.format_gap(c["mnist_gap"], unit, c["mnist_gap_ci95"]),
                        ft.format_gap(c["fashion_gap"], unit, c["fashion_gap_ci95"]),
                        f"**{ft.verdict_text(c)}**",
                        ", ".join(str(s) for s in c["seeds"]),
                    ]
                )
        except (MissingKey, KeyError, ValueError, AttributeError) as e:
            raise ScoreboardError(
                f"{repo.rel(repo.results_file(stem))}: its claims cannot be read "
                f"({e}); rerun the chapter (`{_fix(stem)}`)"
            ) from None
    return cl.markdown_table(TRAVEL_HEAD, rows) if rows else None


def of(verdicts: list[cl.Verdict], whose: str) -> list[cl.Verdict]:
    return [v for v in verdicts if v.whose == whose]


def generated_note(what: str) -> str:
    return (
        f"*Generated by `python tools/scoreboard.py` (`make scoreboard`) from {what}; "
        "never edit it by hand. `python tools/scoreboard.py --check`, run by the "
        "tests, "
        "fails when it is stale.*"
    )


def scoreboard_block(
    verdicts: list[cl.Verdict], style: str, travel: str | None = None
) -> str:
    travel_part = (
        [] if travel is None else ["Do the claims travel to Fashion-MNIST?", travel]
    )
    return "\n\n".join(
        [
            summary_line(of(verdicts, "source")),
            sources_table(of(verdicts, "source"), style),
            "The book's own claims (not a source's; never scored against one):",
            ours_table(of(verdicts, "ours"), style),
            *travel_part,
        ]
    )


HOW_VERDICTS = f"""\
## How verdicts are decided

Each row is one claim of a chapter's source, registered once in `helpers/claims.yml`
with the source's number, the key of our number in `results/<chapter>.json` (written by
the chapter's paper-profile run) and a rule. The chapters render their reproduction
tables from the same registry with the same code (`helpers.claims`), so a chapter and
this page cannot disagree.

- **within ±t** of the source's number, **≥ x**, **≤ x**: *reproduced* if the rule
  holds.
  Where the source fixes t or x (its own bar, its own bound) it is the source's;
  otherwise it
  is our target, and the rule column gives its reason.
- **> other**: a qualitative claim (the source showed a picture or said "better"):
  *reproduced* if our number is larger than the measured number it is compared with.
- **every case** / **no case**: a relation counted over cases. {cl.COUNT_RULE}
- **Partly**, the same rule for every row: {cl.PARTLY_RULE}
- **Not run at the source's budget**: the rule does not hold, but our run was shorter
  than
  the source's (fewer epochs), so it cannot refute the claim.
- **Source unverifiable**: the source's number cannot be traced to a run; our number is
  shown and nothing is scored.
- **Not testable in our run**: {cl.UNTESTABLE_RULE}
- **Result missing**: the results file lacks the number; **not run yet**: the chapter
  has no
  paper-profile results file. A verdict marked "not comparable" comes from a smoke or
  sample-data run.

Our numbers are means over the seeds named in the last column (± their standard
deviation
when there are several); none is typed: they are read from the results files, so when a
run
changes, so does the table. The book's own claims (targets we set for our runs,
questions we
ask ourselves) are listed after the sources' and never scored against a source; our
engineering targets (parity with PyTorch, speed) are on the
{{doc}}`performance page <performance>`.
"""


def full_width(table: str) -> str:
    """A wide table, allowed into the page margin (sphinx-book-theme's full-width
    class)."""
    return f":::{{div}} full-width\n{table}\n:::"


TRAVEL_TEXT = (
    "Claims of the sources rerun on a harder data set of the same shape, with MNIST in "
    "the same run and at the same budget: *holds*, *holds weaker* (with the ratio of "
    "the gaps where MNIST's points the claim's way) or *does not hold*, by the rule "
    "the chapter states; *not testable in our run*, with the reason, where the run "
    "leaves too little to judge. Where a budget is "
    "shorter than the source's (the chapter gives each), a claim that does not hold "
    "here did not hold at that budget; it is not refuted at the source's."
)


def scoreboard_page(verdicts: list[cl.Verdict], travel: str | None = None) -> str:
    extra = (
        []
        if travel is None
        else ["## Do the claims travel?", "", TRAVEL_TEXT, "", full_width(travel), ""]
    )
    return "\n".join(
        [
            "# Reproduction scoreboard",
            "",
            (
                "Every claim of the sources the book reproduces, the source's number, "
                "ours, the "
                "settings of our run and the verdict, in one table. Each chapter's "
                "own reproduction "
                "table gives the details and explains the differences."
            ),
            "",
            HOW_VERDICTS,
            "## The sources' claims",
            "",
            summary_line(of(verdicts, "source")),
            "",
            full_width(sources_table(of(verdicts, "source"), "book")),
            "",
            "## The book's own claims",
            "",
            (
                "Claims the book makes itself, judged by the rule in their row (its "
                "reason is ours), "
                "never scored against a source."
            ),
            "",
            full_width(ours_table(of(verdicts, "ours"), "book")),
            "",
            *extra,
            generated_note("`helpers/claims.yml` and `results/*.json`"),
            "",
        ]
    )


def hmm(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d} ({seconds:,.0f} s)"


def chapters_table(repo: Repo, style: str) -> str:
    head = [
        "Ch.",
        "Chapter",
        "Wall time, h:mm",
        "Device",
        "PyTorch threads",
        "Finished (UTC)",
        "Data",
        "Command (with the committed run's papermill overrides)",
    ]
    rows = []
    for stem in repo.chapters():
        rec = load_json(repo.results_file(stem))
        command = f"`{reproduce_command(repo, stem)}`"
        if rec is None:
            rows.append(
                [
                    chapter_label(stem, style),
                    chapter_title(repo, stem),
                    NOT_RUN,
                    "—",
                    "—",
                    "—",
                    "—",
                    command,
                ]
            )
            continue
        data = rec.get("data") or {}
        dataset = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}.get(
            data.get("dataset"), data.get("dataset", "?")
        )
        data_text = (
            (
                f"{dataset}, {data.get('n_train', 0):,} train / "
                f"{data.get('n_test', 0):,} test"
                + (" (sample: not comparable)" if data.get("is_sample") else "")
            )
            if data
            else "—"
        )
        if rec.get("profile") != "paper":
            data_text += f" ({rec.get('profile')} profile)"
        rows.append(
            [
                chapter_label(stem, style),
                chapter_title(repo, stem),
                hmm(rec.get("wall_time_s")),
                rec.get("device") or "cpu (no device parameter)",
                rec.get("cpu_threads", "—"),
                utc_text(rec.get("finished_utc")),
                data_text,
                command,
            ]
        )
    return cl.markdown_table(head, rows)


def ratio_file(repo: Repo, r: dict[str, Any]) -> Path:
    if "chapter" in r:
        return repo.results_file(r["chapter"])
    return repo.benchmark_file(r["benchmark"])


def targets_table(
    repo: Repo, reg: dict[str, Any], verdicts: list[cl.Verdict], style: str
) -> str:
    """Our engineering targets: the target claims, then the speed ratios."""
    head = [
        "Ch.",
        "Target",
        "Measured",
        "Verdict",
        "Target and its reason",
        "Settings (from the record)",
        "Recorded in",
        "Command that measures it",
    ]
    rows = []
    for v in of(verdicts, "target"):
        c = v.claim
        rows.append(
            [
                chapter_label(c["chapter"], style),
                c["claim"],
                v.ours,
                v.shown,
                cl.rule_text(c),
                v.settings,
                f"`{repo.rel(repo.results_file(c['chapter']))}`: `{c['ours']}`",
                f"`{reproduce_command(repo, c['chapter'])}`",
            ]
        )
    for r in reg.get("ratios") or []:
        path = ratio_file(repo, r)
        rec = load_json(path)
        v = cl.judge_ratio(r, rec)
        settings = v.settings
        if rec is not None and v.verdict != cl.MISSING:
            load = rec.get("load_average")
            if isinstance(load, dict) and load.get("end"):
                settings += f"; load average {load['end'][0]:.1f} at the end"
            if rec.get("finished_utc"):
                settings += f"; {rec['finished_utc'][:10]}"
        measured = {cl.NOT_RUN: "not measured yet"}.get(v.verdict, v.ours)
        command = (
            reproduce_command(repo, r["chapter"]) if "chapter" in r else r["command"]
        )
        rows.append(
            [
                chapter_label(r["chapter"], style) if "chapter" in r else "—",
                r["what"],
                measured,
                v.shown if v.verdict != cl.NOT_RUN else "—",
                cl.ratio_target_text(r),
                settings,
                f"`{repo.rel(path)}`: `{r['path']}`",
                f"`{command}`",
            ]
        )
    return cl.markdown_table(head, rows)


def run_records(repo: Repo) -> dict[str, list[dict[str, Any]]]:
    """The committed run records (``results/runs/<chapter>/*.json``), by chapter."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((repo.results / "runs").glob("*/*.json")):
        rec = load_json(path)
        if rec is not None:
            out.setdefault(path.parent.name, []).append(rec)
    return out


def cost_table(repo: Repo, style: str) -> str:
    """Per chapter: the paper-profile run's wall time plus the CPU time of its run
    records."""
    records = run_records(repo)
    head = [
        "Ch.",
        "Paper-profile notebook run, h:mm",
        "Run records",
        "Their CPU time, h:mm",
        "Whole paper profile, CPU-hours",
    ]
    rows = []
    for stem in repo.chapters():
        rec = load_json(repo.results_file(stem)) or {}
        recs = records.get(stem, [])
        cpu = sum(r.get("cpu_s") or 0 for r in recs)
        wall = rec.get("wall_time_s")
        threads = rec.get("cpu_threads") or 1
        total = (cpu + (wall or 0) * threads) / 3600 if (recs or wall) else None
        rows.append(
            [
                chapter_label(stem, style),
                hmm(wall),
                f"{len(recs)}" if recs else "—",
                hmm(cpu) if recs else "—",
                f"{total:.1f}" if total is not None else "—",
            ]
        )
    return cl.markdown_table(head, rows)


def records_table(repo: Repo, style: str) -> str:
    """One row per committed run record: what it cost and where it was made."""
    head = [
        "Ch.",
        "Run",
        "Epochs run",
        "CPU time, h:mm",
        "Wall time, h:mm",
        "Threads",
        "Device",
        "Finished (UTC)",
        "Commit",
    ]
    rows = []
    published = set(repo.chapters())
    for stem, recs in run_records(repo).items():
        for r in recs:
            commit = (r.get("git_commit") or "?")[:7] + (
                " (uncommitted changes)" if r.get("git_dirty") else ""
            )
            rows.append(
                [
                    chapter_label(stem, style, stem in published),
                    f"`{r.get('name')}`",
                    r.get("epochs_run", "—"),
                    hmm(r.get("cpu_s")),
                    hmm(r.get("wall_s")),
                    r.get("threads", "—"),
                    r.get("device", "—"),
                    utc_text(r.get("finished_utc")),
                    commit,
                ]
            )
    return cl.markdown_table(head, rows) if rows else "No run records yet."


def throughput_table(repo: Repo) -> str:
    """The training-step throughput benchmark: each net's step against the same matrix
    products."""
    rec = load_json(repo.benchmark_file("bench_throughput"))
    if rec is None:
        return "Not measured yet: `python benchmarks/bench_throughput.py`."
    head = [
        "Network and step",
        "Step, ms",
        "Its matrix products alone, ms",
        "Efficiency (products / step)",
    ]
    rows = []
    for name, n in rec.get("nets", {}).items():
        rows.append(
            [
                name,
                f"{n['step_ms']:.2f}",
                f"{n['matmul_ms']:.2f}",
                f"{n['efficiency']:.2f}",
            ]
        )
    rate = rec.get("matmul_gflops")
    intro = (
        f"Measured at {rec.get('threads', 1)} thread(s)"
        + (
            f"; a plain 1000×1000 matrix product runs at {rate:.0f} GFLOP/s here"
            if rate
            else ""
        )
        + "; lowest efficiency of the MLPs: "
        + f"{rec.get('min_mlp_efficiency', float('nan')):.2f} "
        "(our target ≥ 0.7: the book's long runs are made of these steps)."
    )
    why = rec.get("summary")
    bounds = (
        (
            "\n\nWhat bounds them (measured; each net's breakdown is in the record's "
            "`bounds`): "
            + why
            + " PyTorch's fused Adam reached 0.69–0.77 on the three Adam nets where "
            "it was measured, but "
            "it changes their numbers in the last bits; PyTorch has no fused RMSprop."
        )
        if why
        else ""
    )
    return intro + bounds + "\n\n" + cl.markdown_table(head, rows)


def performance_block(
    repo: Repo, reg: dict[str, Any], verdicts: list[cl.Verdict], style: str
) -> str:
    return "\n".join(
        [
            (
                "**Paper-profile runs** (the run whose outputs the book shows; "
                "`wall_time_s` of its "
                "results file):"
            ),
            "",
            chapters_table(repo, style),
            "",
            (
                "**Our engineering targets** (speed ratios are each measured in one "
                "process, the two "
                "sides alternating, so that the machine's load hits both):"
            ),
            "",
            targets_table(repo, reg, verdicts, style),
        ]
    )


def performance_page(
    repo: Repo, reg: dict[str, Any], verdicts: list[cl.Verdict]
) -> str:
    return "\n".join(
        [
            "# Performance report",
            "",
            (
                "How long each chapter's paper-profile run took, on what, and how the "
                "book's own "
                "implementations meet the engineering targets we set them. The "
                "machine the committed "
                "runs were made on has 2 CPU cores, shared with other jobs: wall "
                "times depend on that "
                "load, while a ratio of two timings taken in one process, "
                "alternating, mostly does "
                "not."
            ),
            "",
            "## Chapters",
            "",
            full_width(chapters_table(repo, "book")),
            "",
            (
                "A chapter's wall time covers the whole notebook (training, "
                "evaluation, figures). "
                "`ARGS` repeats the parameters papermill injected into the committed "
                "notebook (its "
                "*injected-parameters* cell); without `ARGS` the run used the "
                "defaults of the "
                "chapter's parameters cell."
            ),
            "",
            "## Our engineering targets",
            "",
            (
                "Targets we set for the book's own code, not claims of a source: each "
                "row gives the "
                "target's reason. A speed ratio is a median time of one side over the "
                "median of the "
                "other, measured in one process with the two sides alternating. The "
                "chapters measure "
                "theirs during their paper-profile run; the stand-alone benchmarks "
                "(`benchmarks/`, "
                "not part of the tests) write `results/benchmarks/<name>.json` with "
                "their timings, "
                "settings, load average and package versions."
            ),
            "",
            full_width(targets_table(repo, reg, verdicts, "book")),
            "",
            "## What the paper profiles cost",
            "",
            (
                "A chapter's heavy experiments are grids of *run records* "
                "(`results/runs/<chapter>/`), "
                "trained with `make runs CHAPTER=<stem>` before the chapter's own "
                "run, which loads "
                "them. Its whole cost is the notebook's wall time times its threads "
                "plus the CPU time "
                "of its records."
            ),
            "",
            full_width(cost_table(repo, "book")),
            "",
            "### Every run record",
            "",
            full_width(records_table(repo, "book")),
            "",
            "## Training throughput",
            "",
            (
                "How close one training step comes to the time of the matrix products "
                "it is made of, "
                "measured in one process (`benchmarks/bench_throughput.py`)."
            ),
            "",
            throughput_table(repo),
            "",
            generated_note(
                "`results/*.json`, `results/benchmarks/*.json` and the notebooks' "
                "injected parameters"
            ),
            "",
        ]
    )


def replace_block(text: str, name: str, body: str, where: str = "README.md") -> str:
    start, end = MARKERS[name]
    if (
        text.count(start) != 1
        or text.count(end) != 1
        or text.index(start) > text.index(end)
    ):
        raise ScoreboardError(
            f"{where} must contain the markers {start} and {end} once each, in that "
            f"order "
            f"(the generated {name} table goes between them)"
        )
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{body}\n{end}{after}"


def readme_text(repo: Repo, reg: dict[str, Any], verdicts: list[cl.Verdict]) -> str:
    text = repo.readme_in.read_text(encoding="utf-8")
    note = (
        "*Generated by `python tools/scoreboard.py` from `results/*.json`; the book's "
        "pages say how verdicts are decided.*"
    )
    block = scoreboard_block(verdicts, "readme", travel_table(repo, "readme"))
    text = replace_block(text, "scoreboard", block + "\n\n" + note)
    return replace_block(
        text,
        "performance",
        performance_block(repo, reg, verdicts, "readme") + "\n\n" + note,
    )


def render(repo: Repo, strict: bool = False) -> tuple[dict[Path, str], list[str]]:
    """Every generated file and its text, and the notes (results not there yet)."""
    reg = load_registry(repo)
    verdicts, notes = judge_all(repo, reg, strict)
    files = {
        repo.page("scoreboard.md"): scoreboard_page(
            verdicts, travel_table(repo, "book")
        ),
        repo.page("performance.md"): performance_page(repo, reg, verdicts),
        repo.readme_out: readme_text(repo, reg, verdicts),
    }
    return files, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare only; exit 1 if a generated file is stale",
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="a chapter without a results file, or a missing key, is an error",
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="repository root (default: this repository)",
    )
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="folder of the results files (default: results/)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the pages and README.md here instead of book/ and the root",
    )
    args = ap.parse_args(argv)
    repo = Repo(args.root, args.results_dir, args.out)
    try:
        files, notes = render(repo, args.strict)
    except ScoreboardError as e:
        print(f"scoreboard: {e}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"scoreboard: note: {n}", file=sys.stderr)
    if args.check:
        stale = [
            p
            for p, text in files.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text
        ]
        if stale:
            print(
                "scoreboard: stale (they differ from what helpers/claims.yml and the "
                "results "
                "files give): "
                + ", ".join(repo.rel(p) for p in stale)
                + ". Fix: run `python tools/scoreboard.py` (make scoreboard) and "
                "commit the "
                "result.",
                file=sys.stderr,
            )
            return 1
        print(
            "scoreboard: book/scoreboard.md, book/performance.md and the README "
            "tables are "
            "up to date"
        )
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"scoreboard: wrote {repo.rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
