"""The reproduction scoreboard and the performance report, generated from ``results/*.json``.

Reads the claims registry ``tools/claims.yml`` (what each chapter claims, the source's number, where our number
lives in ``results/<chapter>.json``, the verdict rule) and writes

- ``book/scoreboard.md``: every claim, the source's number, ours, the settings, the verdict;
- ``book/performance.md``: each chapter's paper-profile wall time and the benchmark ratios;
- the same tables into ``README.md``, between ``<!-- scoreboard:start -->`` / ``<!-- scoreboard:end -->`` and
  ``<!-- performance:start -->`` / ``<!-- performance:end -->``.

Nothing in these pages is typed by hand: a number comes from a results file or it is not shown.

    python tools/scoreboard.py                 # write the pages (make scoreboard)
    python tools/scoreboard.py --check         # exit 1 if a page or the README tables are stale; writes nothing
    python tools/scoreboard.py --results-dir results/smoke --out /tmp/sb   # try it on smoke results

A chapter without a results file is listed as "not run yet" (``--strict`` makes that an error); a results file
that lacks a key the registry names stops the generator with a message naming the file, the key and the fix.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import chapters

ROOT = chapters.ROOT
MARKERS = {"scoreboard": ("<!-- scoreboard:start -->", "<!-- scoreboard:end -->"),
           "performance": ("<!-- performance:start -->", "<!-- performance:end -->")}
VERDICTS = ("reproduced", "partly", "not reproduced")
NOT_RUN = "not run yet"
RULES = ("within", "at_least", "at_most", "more_than", "all_cases", "no_cases")
REDUCERS = {"max": max, "min": min, "mean": statistics.fmean}


class ScoreboardError(Exception):
    """A registry entry or a results file that the scoreboard cannot use; the message says what to do."""


# ----------------------------------------------------------------------------------------------- paths into JSON
_TOKEN = re.compile(r"""(?P<dot>\.)?(?:(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|\[(?P<index>-?\d+)\]"""
                    r"""|\["(?P<dq>[^"]*)"\]|\['(?P<sq>[^']*)'\])""")


def parse_path(path: str) -> list[str | int]:
    """``'metrics.table1["7x240"].bp'`` -> ``['metrics', 'table1', '7x240', 'bp']``; ``'a[0]'`` -> ``['a', 0]``.

    Dotted names, ``[integer]`` list indices and ``["any key"]`` (or single quotes) for keys that contain dots,
    spaces or slashes. Raises :class:`ScoreboardError` on anything else.
    """
    if not isinstance(path, str) or not path:
        raise ScoreboardError(f"a results path must be a non-empty string, got {path!r}")
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        bad_dot = m and m.group("dot") and (m.group("name") is None or pos == 0)
        if not m or bad_dot or (m.group("name") is not None and not m.group("dot") and pos):
            raise ScoreboardError(f"cannot parse results path {path!r} at character {pos} ({path[pos:]!r}); "
                                  "write keys as a.b, list entries as a[0], odd keys as a[\"0.5\"]")
        if m.group("name") is not None:
            parts.append(m.group("name"))
        elif m.group("index") is not None:
            parts.append(int(m.group("index")))
        else:
            parts.append(m.group("dq") if m.group("dq") is not None else m.group("sq"))
        pos = m.end()
    return parts


class MissingKey(ScoreboardError):
    pass


def resolve(record: Any, path: str) -> Any:
    """The value at ``path`` in a loaded results file; :class:`MissingKey` names the first missing step."""
    value = record
    done = ""
    for part in parse_path(path):
        if isinstance(part, int):
            step = f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", part):
            step = f".{part}" if done else part
        else:
            step = f'["{part}"]'
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                size = len(value) if isinstance(value, list) else "not a list"
                raise MissingKey(f"{done or '(top)'} has no entry {part} ({size})")
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                keys = sorted(value)[:12] if isinstance(value, dict) else "not a mapping"
                raise MissingKey(f"{done or '(top)'} has no key {part!r} (keys: {keys})")
            value = value[part]
        done += step
    return value


# ----------------------------------------------------------------------------------------------- verdicts
def decide(rule: dict[str, Any], ours: Any, source_value: float | None = None, other: float | None = None) -> str:
    """The verdict of one claim: "reproduced", "partly" or "not reproduced".

    ``rule`` is the claim's ``verdict`` mapping; ``ours`` our number (or a ``[k, n]`` pair for ``all_cases`` /
    ``no_cases``); ``source_value`` the source's number (``within``); ``other`` the compared value
    (``more_than``). A missing number (``None``, NaN) is "not reproduced".
    """
    kind = rule_kind(rule)
    if kind in ("all_cases", "no_cases"):
        if not (isinstance(ours, (list, tuple)) and len(ours) == 2):
            raise ScoreboardError(f"rule {kind} needs a [k, n] pair, got {ours!r}")
        k, n = ours
        if kind == "all_cases":
            return "reproduced" if k == n else ("partly" if k > n / 2 else "not reproduced")
        return "reproduced" if k == 0 else ("partly" if k < n / 2 else "not reproduced")
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not reproduced"
    if kind == "within":
        if source_value is None:
            raise ScoreboardError("rule within needs the source's number (source.value)")
        diff = abs(ours - source_value)
        tol, partly = rule["within"], rule.get("partly_within")
        return "reproduced" if diff <= tol else ("partly" if partly is not None and diff <= partly else "not reproduced")
    if kind == "at_least":
        partly = rule.get("partly_at_least")
        return "reproduced" if ours >= rule["at_least"] else (
            "partly" if partly is not None and ours >= partly else "not reproduced")
    if kind == "at_most":
        partly = rule.get("partly_at_most")
        return "reproduced" if ours <= rule["at_most"] else (
            "partly" if partly is not None and ours <= partly else "not reproduced")
    # more_than
    if other is None:
        return "not reproduced"
    return "reproduced" if ours > other else "not reproduced"


def rule_kind(rule: Any) -> str:
    if not isinstance(rule, dict):
        raise ScoreboardError(f"a verdict rule must be a mapping such as {{within: 0.3}}, got {rule!r}")
    kinds = [k for k in RULES if k in rule]
    if len(kinds) != 1:
        raise ScoreboardError(f"verdict rule {rule!r} must have exactly one of {', '.join(RULES)}")
    return kinds[0]


# ----------------------------------------------------------------------------------------------- formatting
def fmt_number(value: Any, spec: str = ".2f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:{spec}}{unit_suffix(unit)}"


def fmt_setting(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(fmt_setting(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)


_FIELD = re.compile(r"\{([^{}|]+)(?:\|(count|seeds))?\}")


def fmt_seeds(seeds: list) -> str:
    """``[0]`` -> "seed 0"; ``[0, 1, 2]`` -> "mean of seeds 0, 1, 2" (our numbers are means over the seeds)."""
    return f"seed {fmt_setting(seeds[0])}" if len(seeds) == 1 else f"mean of seeds {fmt_setting(seeds)}"


def fill_template(template: str, record: dict[str, Any]) -> str:
    """Replace every ``{path}`` (``{path|count}``: a list's length, ``{path|seeds}``: :func:`fmt_seeds`) of
    ``template`` by the value in ``record``."""
    def one(m: re.Match) -> str:
        value = resolve(record, m.group(1).strip())
        if m.group(2) == "count":
            return str(len(value))
        if m.group(2) == "seeds":
            return fmt_seeds(value if isinstance(value, list) else [value])
        return fmt_setting(value)
    return _FIELD.sub(one, template or "")


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------------------------- registry
@dataclass
class Repo:
    """Where things are: the repository root, the results folder read, and the folder the pages go to."""
    root: Path = ROOT
    results: Path | None = None
    out: Path | None = None

    def __post_init__(self):
        self.root = Path(self.root)
        self.results = Path(self.results) if self.results else self.root / "results"
        self.out = Path(self.out) if self.out else None

    @property
    def claims_file(self) -> Path:
        return self.root / "tools" / "claims.yml"

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


def bib_keys(root: Path) -> set[str]:
    text = (root / "book" / "references.bib").read_text(encoding="utf-8")
    return set(re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", text, flags=re.M))


REQUIRED = ("id", "chapter", "claim", "source", "ours", "verdict")
CLAIM_FIELDS = {*REQUIRED, "scale", "unit", "format", "settings", "target_from", "reduce"}
SOURCE_FIELDS = {"name", "cite", "where", "value", "qualifier", "check", "check_scale"}
RULE_FIELDS = {*RULES, "partly_within", "partly_at_least", "partly_at_most", "than"}
RATIO_FIELDS = {"id", "what", "chapter", "benchmark", "path", "target", "target_from", "settings", "command"}


def load_registry(repo: Repo) -> dict[str, Any]:
    """Read and check ``tools/claims.yml``: required fields, known chapters, bib keys, parseable paths, rules."""
    path = repo.claims_file
    try:
        reg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScoreboardError(f"{path} does not exist: the claims registry is needed") from None
    except yaml.YAMLError as e:
        raise ScoreboardError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(reg, dict) or not isinstance(reg.get("claims"), list):
        raise ScoreboardError(f"{path} must have a top-level list `claims:`")
    known, keys, seen = set(repo.chapters()), bib_keys(repo.root), set()
    for i, c in enumerate(reg["claims"]):
        where = f"{path.name}, claim {c.get('id', i) if isinstance(c, dict) else i}"
        if not isinstance(c, dict):
            raise ScoreboardError(f"{where}: each claim must be a mapping")
        missing = [k for k in REQUIRED if k not in c]
        if missing:
            raise ScoreboardError(f"{where}: missing field(s) {missing}")
        unknown = (set(c) - CLAIM_FIELDS) | (set(c["source"]) - SOURCE_FIELDS if isinstance(c["source"], dict) else set()) \
            | (set(c["verdict"]) - RULE_FIELDS if isinstance(c["verdict"], dict) else set())
        if unknown:
            raise ScoreboardError(f"{where}: unknown field(s) {sorted(unknown)} (a typo?)")
        if c["id"] in seen:
            raise ScoreboardError(f"{where}: duplicate id")
        seen.add(c["id"])
        if c["chapter"] not in known:
            raise ScoreboardError(f"{where}: chapter {c['chapter']!r} is not a notebook in book/ ({sorted(known)})")
        src = c["source"]
        if not isinstance(src, dict) or not src.get("name"):
            raise ScoreboardError(f"{where}: source needs at least a name")
        if src.get("cite") and src["cite"] not in keys:
            raise ScoreboardError(f"{where}: cite key {src['cite']!r} is not in book/references.bib")
        kind = rule_kind(c["verdict"])
        if kind == "within" and not isinstance(src.get("value"), (int, float)):
            raise ScoreboardError(f"{where}: rule within needs a numeric source.value")
        for p in claim_paths(c):
            parse_path(p)
        if "reduce" in c and c["reduce"] not in REDUCERS:
            raise ScoreboardError(f"{where}: reduce must be one of {sorted(REDUCERS)}")
        for p in _FIELD.findall(c.get("settings", "")):
            parse_path(p[0].strip())
    for r in reg.get("ratios", []) or []:
        if set(r) - RATIO_FIELDS or not {"id", "what", "path", "target"} <= set(r) or ("benchmark" in r) != ("command" in r):
            raise ScoreboardError(f"{path.name}, ratio {r.get('id')}: fields must be {sorted(RATIO_FIELDS)}: id, what, "
                                  "path and target always, command for a benchmark (a chapter's is make reproduce)")
        if not ("chapter" in r) ^ ("benchmark" in r):
            raise ScoreboardError(f"{path.name}, ratio {r.get('id')}: give either chapter or benchmark")
        if "chapter" in r and r["chapter"] not in known:
            raise ScoreboardError(f"{path.name}, ratio {r.get('id')}: unknown chapter {r['chapter']!r}")
        parse_path(r["path"])
        rule_kind(r["target"])
    return reg


def claim_paths(c: dict[str, Any]) -> list[str]:
    """Every results path a claim reads (our number, the compared number, the source check, the settings)."""
    ours = c["ours"] if isinstance(c["ours"], list) else [c["ours"]]
    paths = list(ours)
    if "more_than" in c["verdict"]:
        paths.append(c["verdict"]["more_than"])
    if c["source"].get("check"):
        paths.append(c["source"]["check"])
    paths += [m[0].strip() for m in _FIELD.findall(c.get("settings", ""))]
    return paths


# ----------------------------------------------------------------------------------------------- evaluation
def load_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ScoreboardError(f"{path} is not valid JSON ({e}); rerun the run that writes it") from None


def _fix(stem: str) -> str:
    return f"make reproduce CHAPTER={stem}"


def evaluate_claim(c: dict[str, Any], record: dict[str, Any] | None, results_path: str) -> dict[str, Any]:
    """One row of the scoreboard: texts for every column and the verdict."""
    src = c["source"]
    target = target_text(c) + (f" ({c['target_from']})" if c.get("target_from") else "")
    row = {"id": c["id"], "chapter": c["chapter"], "claim": c["claim"], "source": src,
           "source_number": source_text(c), "target": target}
    if record is None:
        return {**row, "ours": "—", "settings": "—", "verdict": NOT_RUN}
    scale = c.get("scale", 1)

    def get(path):
        try:
            return resolve(record, path)
        except MissingKey as e:
            raise ScoreboardError(
                f"{results_path} lacks the key {path!r} that claim {c['id']} needs ({e}). "
                f"Fix: rerun the chapter so that it writes it (`{_fix(c['chapter'])}`), "
                f"or correct the path in tools/claims.yml") from None

    def number(path):
        v = get(path)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ScoreboardError(f"{results_path}: {path!r} (claim {c['id']}) is {v!r}, not a number")
        return v * scale

    kind = rule_kind(c["verdict"])
    spec, unit = c.get("format", ".2f"), c.get("unit", "")
    if kind in ("all_cases", "no_cases"):
        pair = get(c["ours"])
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ScoreboardError(f"{results_path}: {c['ours']!r} (claim {c['id']}) must be a [k, n] pair, got {pair!r}")
        ours_value, ours_text = pair, f"{pair[0]} of {pair[1]}"
        verdict = decide(c["verdict"], pair)
    else:
        if isinstance(c["ours"], list):
            values = [number(p) for p in c["ours"]]
            ours_value = None if None in values else REDUCERS[c.get("reduce", "mean")](values)
        else:
            ours_value = number(c["ours"])
        ours_text = fmt_number(ours_value, spec, unit)
        other = None
        if kind == "more_than":
            other = number(c["verdict"]["more_than"])
            ours_text += f" ({c['verdict'].get('than', 'compared')}: {fmt_number(other, spec, unit)})"
        verdict = decide(c["verdict"], ours_value, src.get("value"), other)
    if src.get("check"):
        copy = get(src["check"])
        if not isinstance(copy, (int, float)) or not math.isclose(copy * src.get("check_scale", 1), src["value"],
                                                                  rel_tol=1e-9, abs_tol=1e-9):
            raise ScoreboardError(f"claim {c['id']}: tools/claims.yml says the source's number is {src['value']}, "
                                  f"but the chapter used {copy!r} ({results_path}, {src['check']!r}); "
                                  "correct whichever is wrong")
    settings = fill_template(c.get("settings", ""), record)
    data = record.get("data") or {}
    if record.get("profile") != "paper" or data.get("is_sample"):
        verdict += f" ({record.get('profile')} profile{', sample data' if data.get('is_sample') else ''}: not comparable)"
    return {**row, "ours": ours_text, "ours_value": ours_value, "settings": settings, "verdict": verdict}


def unit_suffix(unit: str) -> str:
    return "" if not unit else (unit if unit in ("°", "×") else f" {unit}")


def plain(value: float, spec: str) -> str:
    """A number as written in a registry: shortest form, unless the claim's format uses , or e."""
    return f"{value:{spec}}" if ("," in spec or "e" in spec) else f"{value:g}"


def source_text(c: dict[str, Any]) -> str:
    src = c["source"]
    if src.get("value") is None:
        return "none given"
    q = src.get("qualifier", "")
    return (f"{q} " if q else "") + plain(src["value"], c.get("format", ".2f")) + unit_suffix(c.get("unit", ""))


def target_text(c: dict[str, Any]) -> str:
    rule, spec = c["verdict"], c.get("format", ".2f")
    u = unit_suffix(c.get("unit", ""))
    kind = rule_kind(rule)
    if kind == "within":
        if c.get("unit") == "%":  # a difference of percentages is in points
            u = " point" if rule["within"] == 1 else " points"
        t = f"within ±{plain(rule['within'], spec)}{u}"
        return t + (f" (partly ±{plain(rule['partly_within'], spec)})" if "partly_within" in rule else "")
    if kind in ("at_least", "at_most"):
        sign = "≥" if kind == "at_least" else "≤"
        partly = rule.get(f"partly_{kind}")
        return f"{sign} {plain(rule[kind], spec)}{u}" + (f" (partly {sign} {plain(partly, spec)})" if partly is not None else "")
    if kind == "more_than":
        return f"> {rule.get('than', 'the compared value')}"
    return "every case" if kind == "all_cases" else "no case"


# ----------------------------------------------------------------------------------------------- pages
def chapter_title(repo: Repo, stem: str) -> str:
    try:
        nb = json.loads((repo.root / "book" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return stem
    for c in nb.get("cells", []):
        if c.get("cell_type") == "markdown":
            for line in "".join(c.get("source", [])).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return stem


def injected_parameters(repo: Repo, stem: str) -> list[str]:
    """The papermill overrides recorded in the committed notebook's injected-parameters cell."""
    try:
        nb = json.loads((repo.root / "book" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    for c in nb.get("cells", []):
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            return [ln.strip() for ln in "".join(c.get("source", [])).splitlines()
                    if ln.strip() and not ln.strip().startswith("#")]
    return []


def reproduce_command(repo: Repo, stem: str) -> str:
    """The command that reruns a chapter as committed: its papermill overrides become ARGS."""
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


def chapter_label(stem: str, style: str) -> str:
    number = str(int(stem[:2]))
    return f"{{doc}}`{number} <{stem}>`" if style == "book" else f"[{number}](book/{stem}.ipynb)"


def source_label(src: dict[str, Any], style: str) -> str:
    # in the book a citation shows the authors and year (and links to the bibliography); the README has no roles
    text = f"{{cite}}`{src['cite']}`" if src.get("cite") and style == "book" else src["name"]
    return text + (f", {src['where']}" if src.get("where") else "")


def scoreboard_table(rows: list[dict[str, Any]], style: str) -> str:
    head = ["Ch.", "Claim", "Source", "Source's number", "Ours", "Verdict", "Verdict rule",
            "Settings (from the results file)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        verdict = r["verdict"]
        shown = f"**{verdict}**" if verdict == "reproduced" else verdict
        lines.append("| " + " | ".join(cell(x) for x in (
            chapter_label(r["chapter"], style), r["claim"], source_label(r["source"], style), r["source_number"],
            r["ours"], shown, r["target"], r["settings"])) + " |")
    return "\n".join(lines)


def summary_line(rows: list[dict[str, Any]]) -> str:
    counts = {v: sum(r["verdict"].split(" (")[0] == v for r in rows) for v in (*VERDICTS, NOT_RUN)}
    parts = [f"{counts[v]} {v}" for v in (*VERDICTS, NOT_RUN) if counts[v]]
    return f"{len(rows)} claims: " + ", ".join(parts) + "."


def generated_note(what: str) -> str:
    return (f"*Generated by `python tools/scoreboard.py` (`make scoreboard`) from {what}; never edit it by hand. "
            "`python tools/scoreboard.py --check`, run by the tests, fails when it is stale.*")


def build_rows(repo: Repo, reg: dict[str, Any], strict: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    rows, missing = [], []
    cache: dict[str, dict | None] = {}
    for c in reg["claims"]:
        stem = c["chapter"]
        if stem not in cache:
            path = repo.results_file(stem)
            cache[stem] = load_json(path)
            if cache[stem] is None:
                msg = f"{repo.rel(path)} does not exist: its claims are listed as '{NOT_RUN}' (fix: `{_fix(stem)}`)"
                if strict:
                    raise ScoreboardError(msg)
                missing.append(msg)
        rows.append(evaluate_claim(c, cache[stem], repo.rel(repo.results_file(stem))))
    return rows, missing


def scoreboard_block(rows: list[dict[str, Any]], style: str) -> str:
    return summary_line(rows) + "\n\n" + scoreboard_table(rows, style)


HOW_VERDICTS = """\
## How verdicts are decided

Each row is one claim of a chapter's source, registered once in `tools/claims.yml` with the source's number,
the key of our number in `results/<chapter>.json` (written by the chapter's paper-profile run) and a rule:

- **within ±t** of the source's number: *reproduced* if our number differs from it by at most t (for accuracies
  and errors in %, t is in percentage points), *partly* if by at most the second, wider tolerance in brackets,
  otherwise *not reproduced*. The tight tolerance is the target the chapter's issue set (0.3 points for the
  local-error layers and the sparse networks' accuracies, 3,000 for their noise scores, 0.4 points for the DFA
  table); where the issue set none, the chapter's own tolerance is used. The wider tolerance is our choice. The
  column names the origin of each.
- **≥ x** or **≤ x**: a target from the issue, or, where the source's claim is qualitative, a threshold of our
  own (the column says which): *reproduced* if met, otherwise *not reproduced*.
- **> other**: a qualitative claim (the source showed a picture or said "better"): *reproduced* if our number is
  larger than the measured number it is compared with, shown in brackets.
- **every case** / **no case**: a relation counted over cases (k of n monotonic): *reproduced* if every case is
  monotonic (or none, for a "non-monotonic" claim), *partly* if the claim holds in more than half of the cases.

None of our numbers is typed: they are read from the results files, so when a run changes, so does the table.
The source's numbers are typed once, in the registry, and checked against the copy the chapter used where the
results file has one. A chapter that has no paper-profile results file yet is listed as *not run yet*; a verdict
marked "not comparable" comes from a smoke or sample-data run. Our number is for the settings in its row, which
can be shorter than the source's (fewer epochs or seeds on a CPU); each chapter's reproduction table discusses
the differences.
"""


def full_width(table: str) -> str:
    """A wide table, allowed into the page margin (sphinx-book-theme's full-width class)."""
    return f":::{{div}} full-width\n{table}\n:::"


def scoreboard_page(rows: list[dict[str, Any]]) -> str:
    return "\n".join([
        "# Reproduction scoreboard", "",
        "Every claim the book reproduces, the source's number, ours, the settings of our run and the verdict, "
        "in one table. Each chapter's own reproduction table gives the details and explains the differences.", "",
        HOW_VERDICTS,
        "## The scoreboard", "",
        summary_line(rows), "",
        full_width(scoreboard_table(rows, "book")), "",
        generated_note("`tools/claims.yml` and `results/*.json`"), "",
    ])


def hmm(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60}:{minutes % 60:02d} ({seconds:,.0f} s)"


def chapters_table(repo: Repo, style: str) -> str:
    head = ["Ch.", "Chapter", "Wall time, h:mm", "Device", "PyTorch threads", "Finished (UTC)", "Data",
            "Command (with the committed run's papermill overrides)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stem in repo.chapters():
        rec = load_json(repo.results_file(stem))
        command = f"`{reproduce_command(repo, stem)}`"
        if rec is None:
            lines.append("| " + " | ".join(cell(x) for x in (
                chapter_label(stem, style), chapter_title(repo, stem), NOT_RUN, "—", "—", "—", "—", command)) + " |")
            continue
        data = rec.get("data") or {}
        dataset = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}.get(data.get("dataset"), data.get("dataset", "?"))
        data_text = (f"{dataset}, {data.get('n_train', 0):,} train / {data.get('n_test', 0):,} test"
                     + (" (sample: not comparable)" if data.get("is_sample") else "")) if data else "—"
        if rec.get("profile") != "paper":
            data_text += f" ({rec.get('profile')} profile)"
        lines.append("| " + " | ".join(cell(x) for x in (
            chapter_label(stem, style), chapter_title(repo, stem), hmm(rec.get("wall_time_s")),
            rec.get("device") or "cpu (no device parameter)", rec.get("cpu_threads", "—"),
            (rec.get("finished_utc") or "—").replace("T", " ").replace("+00:00", ""), data_text, command)) + " |")
    return "\n".join(lines)


def ratios_table(repo: Repo, reg: dict[str, Any]) -> str:
    head = ["Ratio", "Measured", "Target", "Settings (from the record)", "Recorded in", "Command that measures it"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reg.get("ratios", []) or []:
        path = repo.results_file(r["chapter"]) if "chapter" in r else repo.benchmark_file(r["benchmark"])
        rec = load_json(path)
        fix = reproduce_command(repo, r["chapter"]) if "chapter" in r else r["command"]
        if rec is None:
            measured, settings = "not measured yet", "—"
        else:
            try:
                value = resolve(rec, r["path"])
                settings = fill_template(r.get("settings", ""), rec)
            except MissingKey as e:
                raise ScoreboardError(f"{repo.rel(path)} lacks a key that ratio {r['id']} needs ({e}). "
                                      f"Fix: `{fix}`, or correct tools/claims.yml") from None
            met = decide(r["target"], value) == "reproduced" if value is not None else False
            measured = "—" if value is None else f"{value:.2f}× ({'met' if met else 'missed'})"
            load = rec.get("load_average")
            if isinstance(load, dict) and load.get("end"):
                settings += f"; load average {load['end'][0]:.1f} at the end"
            if rec.get("finished_utc"):
                settings += f"; {rec['finished_utc'][:10]}"
        kind = rule_kind(r["target"])
        target = f"{'≥' if kind == 'at_least' else '≤'} {r['target'][kind]:g}×"
        target += f" ({r['target_from']})" if r.get("target_from") else ""
        lines.append("| " + " | ".join(cell(x) for x in (
            r["what"], measured, target, settings, f"`{repo.rel(path)}`: `{r['path']}`",
            f"`{reproduce_command(repo, r['chapter']) if 'chapter' in r else r['command']}`")) + " |")
    return "\n".join(lines)


def run_records(repo: Repo) -> dict[str, list[dict[str, Any]]]:
    """The committed run records (``results/runs/<chapter>/*.json``), by chapter."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((repo.results / "runs").glob("*/*.json")):
        rec = load_json(path)
        if rec is not None:
            out.setdefault(path.parent.name, []).append(rec)
    return out


def cost_table(repo: Repo, style: str) -> str:
    """Per chapter: the paper-profile run's wall time plus the CPU time of its run records."""
    records = run_records(repo)
    head = ["Ch.", "Paper-profile notebook run, h:mm", "Run records", "Their CPU time, h:mm",
            "Whole paper profile, CPU-hours"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stem in repo.chapters():
        rec = load_json(repo.results_file(stem)) or {}
        recs = records.get(stem, [])
        cpu = sum(r.get("cpu_s") or 0 for r in recs)
        wall = rec.get("wall_time_s")
        threads = rec.get("cpu_threads") or 1
        total = (cpu + (wall or 0) * threads) / 3600 if (recs or wall) else None
        lines.append("| " + " | ".join(cell(x) for x in (
            chapter_label(stem, style), hmm(wall), f"{len(recs)}" if recs else "—", hmm(cpu) if recs else "—",
            f"{total:.1f}" if total is not None else "—")) + " |")
    return "\n".join(lines)


def records_table(repo: Repo, style: str) -> str:
    """One row per committed run record: what it cost and where it was made."""
    head = ["Ch.", "Run", "Epochs run", "CPU time, h:mm", "Wall time, h:mm", "Threads", "Device",
            "Finished (UTC)", "Commit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stem, recs in run_records(repo).items():
        for r in recs:
            commit = (r.get("git_commit") or "?")[:7] + (" (uncommitted changes)" if r.get("git_dirty") else "")
            lines.append("| " + " | ".join(cell(x) for x in (
                chapter_label(stem, style), f"`{r.get('name')}`", r.get("epochs_run", "—"), hmm(r.get("cpu_s")),
                hmm(r.get("wall_s")), r.get("threads", "—"), r.get("device", "—"),
                (r.get("finished_utc") or "—").replace("T", " ").replace("+00:00", ""), commit)) + " |")
    return "\n".join(lines) if len(lines) > 2 else "No run records yet."


def throughput_table(repo: Repo) -> str:
    """The training-step throughput benchmark: each net's step against the same matrix products."""
    rec = load_json(repo.benchmark_file("bench_throughput"))
    if rec is None:
        return "Not measured yet: `python benchmarks/bench_throughput.py`."
    head = ["Network and step", "Step, ms", "Its matrix products alone, ms", "Efficiency (products / step)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, n in rec.get("nets", {}).items():
        lines.append("| " + " | ".join(cell(x) for x in (
            name, f"{n['step_ms']:.2f}", f"{n['matmul_ms']:.2f}", f"{n['efficiency']:.2f}")) + " |")
    rate = rec.get("matmul_gflops")
    intro = (f"Measured at {rec.get('threads', 1)} thread(s)"
             + (f"; a plain 1000×1000 matrix product runs at {rate:.0f} GFLOP/s here" if rate else "")
             + f"; lowest efficiency of the MLPs: {rec.get('min_mlp_efficiency', float('nan')):.2f} "
             "(our target ≥ 0.7: the book's long runs are made of these steps).")
    why = rec.get("summary")
    bounds = ("\n\nWhat bounds them (measured; each net's breakdown is in the record's `bounds`): " + why
              + " PyTorch's fused Adam reached 0.69–0.77 on the three Adam nets where it was measured, but "
              "it changes their numbers in the last bits; PyTorch has no fused RMSprop.") if why else ""
    return intro + bounds + "\n\n" + "\n".join(lines)


def performance_block(repo: Repo, reg: dict[str, Any], style: str) -> str:
    return "\n".join([
        "**Paper-profile runs** (the run whose outputs the book shows; `wall_time_s` of its results file):", "",
        chapters_table(repo, style), "",
        "**Speed ratios** (each measured in one process, the two sides alternating, so that the machine's load "
        "hits both):", "",
        ratios_table(repo, reg),
    ])


def performance_page(repo: Repo, reg: dict[str, Any]) -> str:
    return "\n".join([
        "# Performance report", "",
        "How long each chapter's paper-profile run took, on what, and how fast the book's own implementations "
        "are against the usual ones. The machine the committed runs were made on has 2 CPU cores, shared with "
        "other jobs: wall times depend on that load, while a ratio of two timings taken in one process, "
        "alternating, mostly does not.", "",
        "## Chapters", "",
        full_width(chapters_table(repo, "book")), "",
        "A chapter's wall time covers the whole notebook (training, evaluation, figures). `ARGS` repeats the "
        "parameters papermill injected into the committed notebook (its *injected-parameters* cell); without "
        "`ARGS` the run used the defaults of the chapter's parameters cell.", "",
        "## Speed ratios", "",
        "Each ratio is a median time of one side over the median of the other, measured in one process with the "
        "two sides alternating. The chapters measure theirs during their paper-profile run; the stand-alone "
        "benchmarks (`benchmarks/`, not part of the tests) write `results/benchmarks/<name>.json` with their "
        "timings, settings, load average and package versions.", "",
        full_width(ratios_table(repo, reg)), "",
        "## What the paper profiles cost", "",
        "A chapter's heavy experiments are grids of *run records* (`results/runs/<chapter>/`), trained with "
        "`make runs CHAPTER=<stem>` before the chapter's own run, which loads them. Its whole cost is the "
        "notebook's wall time times its threads plus the CPU time of its records.", "",
        full_width(cost_table(repo, "book")), "",
        "### Every run record", "",
        full_width(records_table(repo, "book")), "",
        "## Training throughput", "",
        "How close one training step comes to the time of the matrix products it is made of, measured in one "
        "process (`benchmarks/bench_throughput.py`).", "",
        throughput_table(repo), "",
        generated_note("`results/*.json`, `results/benchmarks/*.json` and the notebooks' injected parameters"), "",
    ])


def replace_block(text: str, name: str, body: str, where: str = "README.md") -> str:
    start, end = MARKERS[name]
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ScoreboardError(f"{where} must contain the markers {start} and {end} once each, in that order "
                              f"(the generated {name} table goes between them)")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{body}\n{end}{after}"


def readme_text(repo: Repo, reg: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    text = repo.readme_in.read_text(encoding="utf-8")
    note = "*Generated by `python tools/scoreboard.py` from `results/*.json`; the book's pages say how verdicts are decided.*"
    text = replace_block(text, "scoreboard", scoreboard_block(rows, "readme") + "\n\n" + note)
    return replace_block(text, "performance", performance_block(repo, reg, "readme") + "\n\n" + note)


def render(repo: Repo, strict: bool = False) -> tuple[dict[Path, str], list[str]]:
    """Every generated file and its text, and the warnings (results files not there yet)."""
    reg = load_registry(repo)
    rows, warnings = build_rows(repo, reg, strict)
    files = {
        repo.page("scoreboard.md"): scoreboard_page(rows),
        repo.page("performance.md"): performance_page(repo, reg),
        repo.readme_out: readme_text(repo, reg, rows),
    }
    return files, warnings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 if a generated file is stale")
    ap.add_argument("--strict", action="store_true", help="a chapter without a results file is an error")
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this repository)")
    ap.add_argument("--results-dir", type=Path, default=None, help="folder of the results files (default: results/)")
    ap.add_argument("--out", type=Path, default=None,
                    help="write the pages and README.md here instead of book/ and the repository root")
    args = ap.parse_args(argv)
    repo = Repo(args.root, args.results_dir, args.out)
    try:
        files, warnings = render(repo, args.strict)
    except ScoreboardError as e:
        print(f"scoreboard: {e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"scoreboard: note: {w}", file=sys.stderr)
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print("scoreboard: stale (they differ from what tools/claims.yml and the results files give): "
                  + ", ".join(repo.rel(p) for p in stale)
                  + ". Fix: run `python tools/scoreboard.py` (make scoreboard) and commit the result.", file=sys.stderr)
            return 1
        print("scoreboard: book/scoreboard.md, book/performance.md and the README tables are up to date")
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"scoreboard: wrote {repo.rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
