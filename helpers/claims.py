"""The book's claims: the registry ``helpers/claims.yml``, one verdict per claim, its
table.

Every chapter renders its reproduction table with one call, and the scoreboard pages
(``tools/scoreboard.py``) use the same code, so a chapter and the scoreboard can never
disagree::

    results_path = run.save(metrics, data=data)
    helpers.claims.table("05_sparse_representations", results_path)  # Markdown

A claim names the path of our number in the chapter's results file
(``results/<chapter>.json``), the source's number and a rule. Paths are dotted keys,
``[index]`` and ``["key with . or spaces"]``; ``a or b`` tries ``a``, then ``b`` (for a
key renamed between runs).

**Whose claim.** ``whose: source`` (the default) is a claim of a paper, blog post or
notebook, scored against the source's number; ``whose: ours`` is a claim the book makes
itself, shown in its own table as *holds* / *does not hold*, never scored against a
source; ``whose: target`` is an engineering target of ours (parity with PyTorch, speed),
*met* / *missed*, shown on the performance page. Speed ratios live in the registry's
``ratios:`` list and are targets too.

**Verdicts of a source's claim** (:data:`VERDICTS`):

- *reproduced*: the rule holds (``within: t`` of the source's number, ``at_least``,
  ``at_most``, ``more_than`` a measured number, ``all_cases`` / ``no_cases`` of a
  count);
- *partly*: the rule misses by no more than :data:`PARTLY_RULE` allows;
- *not reproduced*: otherwise;
- *not run at the source's budget*: not reproduced, but our run was shorter than the
  source's (``budget``), so it cannot refute the claim;
- *source unverifiable*: the source's number cannot be traced to a run
  (``source.unverifiable`` says why); our number is shown, nothing is scored.

A result missing from the results file is shown as *result missing*, never as a pass.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COUNT_RULE",
    "PARTLY_RULE",
    "VERDICTS",
    "ClaimsError",
    "MissingKey",
    "Table",
    "Verdict",
    "claims_of",
    "decide",
    "fill_template",
    "judge",
    "judge_ratio",
    "load",
    "parse_path",
    "registry_path",
    "resolve",
    "source_value",
    "table",
    "verdicts",
]

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"
SHORT = "not run at the source's budget"
UNVERIFIABLE = "source unverifiable"
UNTESTABLE = "not testable in our run"
MISSING = "result missing"
NOT_RUN = "not run yet"
HOLDS, FAILS = "holds", "does not hold"
MET, MISSED, MEASURED = "met", "missed", "measured"
#: The verdict classes of a source's claim, in the order the scoreboard counts them.
VERDICTS = (
    REPRODUCED,
    PARTLY,
    NOT_REPRODUCED,
    SHORT,
    UNVERIFIABLE,
    UNTESTABLE,
    MISSING,
    NOT_RUN,
)
WHOSE = ("source", "ours", "target")

#: The one rule for "partly", used by every numeric claim (rendered on the scoreboard).
PARTLY_RULE = (
    "*partly* when our number misses the rule by at most twice the sum of two spreads: "
    "the standard deviation over our seeds (when we ran two or more) and the standard "
    "deviation the source reports for its own number (when it reports one). A miss "
    "that "
    "small could be seed-to-seed noise. With one seed and no reported spread there is "
    "no "
    "*partly*."
)
#: The rule of a count claim (``all_cases`` / ``no_cases``).
COUNT_RULE = (
    "*reproduced* when every case agrees with the claim, *partly* when more than "
    "half do; *not testable in our run* when our run has no case to count."
)
#: When a claim cannot be judged on our run at all.
UNTESTABLE_RULE = (
    "our run has too little to judge the claim on (no case "
    "to count, or fewer points than the statistic needs, as the claim's registry entry "
    "states); nothing is scored, and the chapter says why."
)

RULES = ("within", "at_least", "at_most", "more_than", "all_cases", "no_cases")
REDUCERS = {"max": max, "min": min, "mean": statistics.fmean}
CLAIM_FIELDS = {
    "id",
    "chapter",
    "whose",
    "claim",
    "source",
    "ours",
    "ours_spread",
    "reduce",
    "scale",
    "unit",
    "format",
    "settings",
    "budget",
    "needs",
    "verdict",
}
SOURCE_FIELDS = {
    "name",
    "cite",
    "where",
    "value",
    "qualifier",
    "spread",
    "unverifiable",
}
RULE_FIELDS = {*RULES, "than", "why"}
BUDGET_FIELDS = {"source", "ours", "unit"}
NEEDS_FIELDS = {"path", "at_least", "why"}
RATIO_FIELDS = {
    "id",
    "what",
    "chapter",
    "benchmark",
    "path",
    "target",
    "why",
    "settings",
    "command",
}


class ClaimsError(Exception):
    """A registry entry or results file that cannot be used; the message says the
    fix."""


class MissingKey(ClaimsError):
    """A results file lacks a key that a claim reads."""


# ------------------------------------------------------------------------ the registry
def registry_path() -> Path:
    """The registry, ``helpers/claims.yml``: it ships inside the package (package data),
    so a chapter finds it wherever the helpers are installed (a clone, Colab)."""
    return Path(__file__).with_name("claims.yml")


def _bib_keys(root: Path) -> set[str] | None:
    bib = root / "book" / "references.bib"
    if not bib.exists():
        return None
    text = bib.read_text(encoding="utf-8")
    return set(re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", text, flags=re.MULTILINE))


def load(path: str | Path | None = None, chapters: list[str] | None = None) -> dict:
    """Read and check a claims registry (default :func:`registry_path`).

    Checks the fields, unique ids, the rules, parseable paths, the cite keys (against
    ``book/references.bib`` beside the registry's ``tools/`` folder, when there is one)
    and, when ``chapters`` is given, that every claim names one of them.
    """
    path = Path(path) if path else registry_path()
    try:
        reg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimsError(
            f"{path} does not exist: the claims registry is needed"
        ) from None
    except yaml.YAMLError as e:
        raise ClaimsError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(reg, dict) or not isinstance(reg.get("claims"), list):
        raise ClaimsError(f"{path} must have a top-level list `claims:`")
    keys = _bib_keys(path.resolve().parents[1])
    seen: set[str] = set()
    for i, c in enumerate(reg["claims"]):
        _check_claim(
            c,
            f"{path.name}, claim {c.get('id', i) if isinstance(c, dict) else i}",
            keys,
            chapters,
            seen,
        )
    for r in reg.get("ratios") or []:
        where = f"{path.name}, ratio {r.get('id') if isinstance(r, dict) else r}"
        if (
            not isinstance(r, dict)
            or set(r) - RATIO_FIELDS
            or not {"id", "what", "path"} <= set(r)
            or ("target" in r) != ("why" in r)
            or ("benchmark" in r) != ("command" in r)
        ):
            raise ClaimsError(
                f"{where}: fields must be among {sorted(RATIO_FIELDS)}: id, what "
                "and path always, target with its why (or neither: a "
                "measurement), command for a benchmark"
            )
        if not ("chapter" in r) ^ ("benchmark" in r):
            raise ClaimsError(f"{where}: give either chapter or benchmark")
        if chapters is not None and "chapter" in r and r["chapter"] not in chapters:
            raise ClaimsError(f"{where}: unknown chapter {r['chapter']!r}")
        parse_path(r["path"])
        if "target" in r and _kind(r["target"], where) not in ("at_least", "at_most"):
            raise ClaimsError(f"{where}: a ratio's target is at_least or at_most")
    return reg


def _check_claim(c: Any, where: str, keys, chapters, seen: set) -> None:
    if not isinstance(c, dict):
        raise ClaimsError(f"{where}: each claim must be a mapping")
    need = ("id", "chapter", "claim", "ours", "verdict")
    missing = [k for k in need if k not in c]
    if c.get("whose", "source") == "source" and "source" not in c:
        missing.append("source")
    if missing:
        raise ClaimsError(f"{where}: missing field(s) {missing}")
    src, rule = c.get("source") or {}, c["verdict"]
    if "source" in c and (not isinstance(src, dict) or not src.get("name")):
        raise ClaimsError(f"{where}: source needs at least a name")
    unknown = (
        (set(c) - CLAIM_FIELDS)
        | (set(src) - SOURCE_FIELDS)
        | (set(rule) - RULE_FIELDS if isinstance(rule, dict) else set())
        | (set(c.get("budget") or {}) - BUDGET_FIELDS)
        | (set(c.get("needs") or {}) - NEEDS_FIELDS)
    )
    if unknown:
        raise ClaimsError(f"{where}: unknown field(s) {sorted(unknown)} (a typo?)")
    if c["id"] in seen:
        raise ClaimsError(f"{where}: duplicate id")
    seen.add(c["id"])
    if c.get("whose", "source") not in WHOSE:
        raise ClaimsError(f"{where}: whose must be one of {WHOSE}")
    if chapters is not None and c["chapter"] not in chapters:
        raise ClaimsError(
            f"{where}: chapter {c['chapter']!r} is not a notebook in book/ "
            f"({sorted(chapters)})"
        )
    if keys is not None and src.get("cite") and src["cite"] not in keys:
        raise ClaimsError(
            f"{where}: cite key {src['cite']!r} is not in book/references.bib"
        )
    needs = c.get("needs")
    if needs is not None:
        if set(needs) != NEEDS_FIELDS or not isinstance(
            needs["at_least"], (int, float)
        ):
            raise ClaimsError(
                f"{where}: needs takes path, at_least (a number) and why (the reason)"
            )
        parse_path(needs["path"])
    kind = _kind(rule, where)
    if kind == "within" and not isinstance(src.get("value"), (int, float)):
        raise ClaimsError(f"{where}: rule within needs a numeric source.value")
    if kind in ("within", "at_least", "at_most") and not rule.get("why"):
        raise ClaimsError(
            f"{where}: say why the tolerance or threshold is what it is (verdict.why)"
        )
    if "reduce" in c and c["reduce"] not in REDUCERS:
        raise ClaimsError(f"{where}: reduce must be one of {sorted(REDUCERS)}")
    budget = c.get("budget")
    if budget is not None and not (
        isinstance(budget.get("source"), (int, float))
        and isinstance(budget.get("ours"), str)
    ):
        raise ClaimsError(f"{where}: budget needs source (a number) and ours (a path)")
    for p in claim_paths(c):
        parse_path(p)


def claim_paths(c: dict) -> list[str]:
    """Every results path a claim reads (ours, its spread, the compared number, the
    budget, the settings)."""
    paths = list(c["ours"]) if isinstance(c["ours"], list) else [c["ours"]]
    if "ours_spread" in c:
        paths.append(c["ours_spread"])
    if isinstance(c["verdict"].get("more_than"), str):  # a path (or a number)
        paths.append(c["verdict"]["more_than"])
    if c.get("budget"):
        paths.append(c["budget"]["ours"])
    paths += [m[0].strip() for m in _FIELD.findall(c.get("settings", ""))]
    return paths


def claims_of(chapter: str, registry: dict | str | Path | None = None) -> list[dict]:
    """The registered claims of ``chapter`` (a notebook stem), in registry order."""
    reg = registry if isinstance(registry, dict) else load(registry)
    return [c for c in reg["claims"] if c["chapter"] == chapter]


def source_value(
    claim_id: str, registry: dict | str | Path | None = None
) -> float | None:
    """The source's number of a claim, for text that needs it (typed once, here)."""
    reg = registry if isinstance(registry, dict) else load(registry)
    for c in reg["claims"]:
        if c["id"] == claim_id:
            return c["source"].get("value")
    raise ClaimsError(f"no claim {claim_id!r} in the registry")


# ------------------------------------------------------------------------ paths
_TOKEN = re.compile(
    r"""(?P<dot>\.)?(?:(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|\[(?P<index>-?\d+)\]"""
    r"""|\["(?P<dq>[^"]*)"\]|\['(?P<sq>[^']*)'\])"""
)


def parse_path(path: str) -> list[str | int]:
    """``'m.t["7x240"].bp'`` -> ``['m', 't', '7x240', 'bp']``; ``'a[0]'`` -> ``['a',
    0]``.

    ``a or b`` is checked alternative by alternative (the parts of the first returned).
    """
    if not isinstance(path, str) or not path:
        raise ClaimsError(f"a results path must be a non-empty string, got {path!r}")
    if " or " in path:
        parsed = [parse_path(p.strip()) for p in path.split(" or ")]
        return parsed[0]
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        bad_dot = m and m.group("dot") and (m.group("name") is None or pos == 0)
        if (
            not m
            or bad_dot
            or (m.group("name") is not None and not m.group("dot") and pos)
        ):
            raise ClaimsError(
                f"cannot parse results path {path!r} at character {pos} "
                f"({path[pos:]!r}); write keys as a.b, list entries as a[0], "
                'odd keys as a["0.5"]'
            )
        if m.group("name") is not None:
            parts.append(m.group("name"))
        elif m.group("index") is not None:
            parts.append(int(m.group("index")))
        else:
            parts.append(m.group("dq") if m.group("dq") is not None else m.group("sq"))
        pos = m.end()
    return parts


def resolve(record: Any, path: str) -> Any:
    """The value at ``path`` in a loaded results file; :class:`MissingKey` names the
    first
    missing step (of the last alternative of ``a or b``)."""
    if " or " in path:
        alternatives = [p.strip() for p in path.split(" or ")]
        for p in alternatives[:-1]:
            try:
                return resolve(record, p)
            except MissingKey:
                pass
        return resolve(record, alternatives[-1])
    value, done = record, ""
    for part in parse_path(path):
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                size = len(value) if isinstance(value, list) else "not a list"
                raise MissingKey(f"{done or '(top)'} has no entry {part} ({size})")
            value, done = value[part], done + f"[{part}]"
        else:
            if not isinstance(value, dict) or part not in value:
                keys = (
                    sorted(value)[:12] if isinstance(value, dict) else "not a mapping"
                )
                raise MissingKey(
                    f"{done or '(top)'} has no key {part!r} (keys: {keys})"
                )
            plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", part)
            step = (f".{part}" if done else part) if plain else f'["{part}"]'
            value, done = value[part], done + step
    return value


# ------------------------------------------------------------------------ templates
_FIELD = re.compile(r"\{([^{}|]+)(?:\|(count|seeds))?\}")


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_setting(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def fmt_seeds(seeds: Any) -> str:
    """``0`` or ``[0]`` -> "seed 0"; ``[0, 1, 2]`` -> "mean of seeds 0, 1, 2"."""
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if len(seeds) == 1:
        return f"seed {_setting(seeds[0])}"
    return f"mean of seeds {_setting(seeds)}"


def fill_template(template: str, record: dict) -> str:
    """Replace every ``{path}`` of ``template`` by its value in ``record``;
    ``{path|count}``: a list's length; ``{path|seeds}``: :func:`fmt_seeds` (one seed or
    a
    list). :class:`MissingKey` when a path is missing."""

    def one(m: re.Match) -> str:
        value = resolve(record, m.group(1).strip())
        if m.group(2) == "count":
            return str(len(value))
        if m.group(2) == "seeds":
            return fmt_seeds(value)
        return _setting(value)

    return _FIELD.sub(one, template or "")


# ------------------------------------------------------------------------ verdicts
def _kind(rule: Any, where: str = "") -> str:
    if not isinstance(rule, dict):
        raise ClaimsError(
            f"{where}: a verdict rule must be a mapping such as "
            f"{{within: 0.3, why: ...}}, got {rule!r}"
        )
    kinds = [k for k in RULES if k in rule]
    if len(kinds) != 1:
        raise ClaimsError(
            f"{where}: verdict rule {rule!r} must have exactly one of "
            f"{', '.join(RULES)}"
        )
    return kinds[0]


def band(ours_spread: float | None = None, source_spread: float | None = None) -> float:
    """The "partly" band of :data:`PARTLY_RULE`: 2 × (our seeds' std + the source's
    std)."""
    return 2 * ((ours_spread or 0.0) + (source_spread or 0.0))


def decide(
    rule: dict,
    ours: Any,
    source_value: float | None = None,
    other: float | None = None,
    ours_spread: float | None = None,
    source_spread: float | None = None,
) -> str:
    """Reproduced, partly or not reproduced, by the rule and :data:`PARTLY_RULE`.

    ``ours``: our number (a ``[k, n]`` pair for ``all_cases`` / ``no_cases``);
    ``source_value``: the source's number (``within``); ``other``: the measured number
    compared with (``more_than``); the spreads: standard deviations (see :func:`band`).
    A missing number (None, NaN) is refused: call :func:`judge`, which shows it as
    missing.
    """
    kind = _kind(rule)
    if kind in ("all_cases", "no_cases"):
        if not (isinstance(ours, (list, tuple)) and len(ours) == 2):
            raise ClaimsError(f"rule {kind} needs a [k, n] pair, got {ours!r}")
        k, n = ours
        if n == 0:
            return UNTESTABLE
        agree = k if kind == "all_cases" else n - k
        return (
            REPRODUCED if agree == n else (PARTLY if agree > n / 2 else NOT_REPRODUCED)
        )
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        raise ClaimsError("our number is missing: judge() shows it as missing")
    if kind == "more_than":
        if other is None:
            raise ClaimsError("rule more_than needs the compared number")
        return REPRODUCED if ours > other else NOT_REPRODUCED
    if kind == "within":
        if source_value is None:
            raise ClaimsError("rule within needs the source's number (source.value)")
        miss = abs(ours - source_value) - rule["within"]
    elif kind == "at_least":
        miss = rule["at_least"] - ours
    else:
        miss = ours - rule["at_most"]
    if miss <= 1e-9:  # the bound is inclusive (and blind to float rounding)
        return REPRODUCED
    width = band(ours_spread, source_spread)
    return PARTLY if width > 0 and miss <= width else NOT_REPRODUCED


@dataclass
class Verdict:
    """One judged claim: what the tables show."""

    claim: dict
    verdict: str  # one of VERDICTS, or holds / does not hold, met / missed
    ours: str = "—"  # our number as shown (with its spread and difference)
    settings: str = "—"
    note: str = ""  # e.g. "smoke profile: not comparable", or what is missing
    value: Any = None
    fields: dict = field(default_factory=dict)

    @property
    def whose(self) -> str:
        return self.claim.get("whose", "source")

    @property
    def shown(self) -> str:
        """The verdict with its note, as the tables print it."""
        return self.verdict + (f" ({self.note})" if self.note else "")


def _unit(unit: str) -> str:
    return "" if not unit else (unit if unit in ("°", "×") else f" {unit}")


def _plain(value: float, spec: str) -> str:
    return f"{value:{spec}}" if ("," in spec or "e" in spec) else f"{value:g}"


def source_text(c: dict) -> str:
    """The source's number as the tables show it ("none given" for a qualitative
    claim)."""
    src = c.get("source") or {}
    if src.get("value") is None:
        return "none given"
    spec, u = c.get("format", ".2f"), _unit(c.get("unit", ""))
    text = (f"{src['qualifier']} " if src.get("qualifier") else "") + _plain(
        src["value"], spec
    )
    if src.get("spread"):
        text += f" ± {_plain(src['spread'], spec)}"
    return text + u


def rule_text(c: dict) -> str:
    """The rule in words, with its reason."""
    rule, spec = c["verdict"], c.get("format", ".2f")
    u = _unit(c.get("unit", ""))
    kind = _kind(rule, c.get("id", ""))
    if kind == "within":
        if c.get("unit") == "%":  # a difference of percentages is in points
            u = " point" if rule["within"] == 1 else " points"
        text = f"within ±{_plain(rule['within'], spec)}{u}"
    elif kind in ("at_least", "at_most"):
        text = f"{'≥' if kind == 'at_least' else '≤'} {_plain(rule[kind], spec)}{u}"
    elif kind == "more_than":
        text = f"> {rule.get('than', 'the compared number')}"
    else:
        text = "every case" if kind == "all_cases" else "no case"
    return text + (f": {rule['why']}" if rule.get("why") else "")


def _number(record: dict, path: str, scale: float, cid: str) -> float | None:
    v = resolve(record, path)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ClaimsError(f"{path!r} (claim {cid}) is {v!r}, not a number")
    return v * scale


def _spread(record: dict, c: dict) -> float | None:
    if "ours_spread" not in c:
        return None
    v = resolve(record, c["ours_spread"])
    scale = c.get("scale", 1)
    if isinstance(v, list):
        values = [
            x for x in v if isinstance(x, (int, float)) and not isinstance(x, bool)
        ]
        return statistics.stdev(values) * scale if len(values) >= 2 else None
    return None if v is None else v * scale


def judge(c: dict, record: dict | None) -> Verdict:
    """The verdict of claim ``c`` on a results record (``None``: the chapter has not
    run).

    A missing key gives the verdict *result missing*, with the key named in the note.
    """
    if record is None:
        return Verdict(c, NOT_RUN)
    try:
        return _judge(c, record)
    except MissingKey as e:
        return Verdict(c, MISSING, note=str(e).split(" (keys:")[0])


def _judge(c: dict, record: dict) -> Verdict:
    src, rule, cid = c.get("source") or {}, c["verdict"], c["id"]
    kind = _kind(rule, cid)
    scale, spec, unit = c.get("scale", 1), c.get("format", ".2f"), c.get("unit", "")
    settings = fill_template(c.get("settings", ""), record)
    spread = _spread(record, c)
    other = None
    if kind in ("all_cases", "no_cases"):
        value = resolve(record, c["ours"])
        if not (isinstance(value, list) and len(value) == 2):
            raise ClaimsError(
                f"{c['ours']!r} (claim {cid}) must be a [k, n] pair, got {value!r}"
            )
        text = f"{value[0]} of {value[1]}"
    else:
        if isinstance(c["ours"], list):
            values = [_number(record, p, scale, cid) for p in c["ours"]]
            value = (
                None if None in values else REDUCERS[c.get("reduce", "mean")](values)
            )
        else:
            value = _number(record, c["ours"], scale, cid)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return Verdict(
                c, MISSING, settings=settings, note="the run recorded no number"
            )
        text = (
            f"{value:{spec}}" + (f" ± {spread:{spec}}" if spread else "") + _unit(unit)
        )
        if kind == "within":
            d = value - src["value"]
            text += f" ({d:+{spec}}{' points' if unit == '%' else ''})"
        if kind == "more_than":
            other = rule["more_than"]
            if isinstance(other, str):
                other = _number(record, other, scale, cid)
            if other is None:
                return Verdict(c, MISSING, settings=settings, note="no compared number")
            text += f" ({rule.get('than', 'compared')}: {other:{spec}}{_unit(unit)})"
    whose = c.get("whose", "source")
    needs, short_of = c.get("needs"), None
    if needs:
        have = resolve(record, needs["path"])
        if not isinstance(have, (int, float)) or have < needs["at_least"]:
            short_of = f"{have} < {needs['at_least']}: {needs['why']}"
    if whose == "source" and src.get("unverifiable"):
        verdict = UNVERIFIABLE
    elif short_of:
        verdict = UNTESTABLE
    else:
        verdict = decide(
            rule, value, src.get("value"), other, spread, src.get("spread")
        )
        if whose == "source" and verdict != REPRODUCED and c.get("budget"):
            ours_budget = resolve(record, c["budget"]["ours"])
            if (
                isinstance(ours_budget, (int, float))
                and ours_budget < c["budget"]["source"]
            ):
                verdict = SHORT
        if whose != "source" and verdict != UNTESTABLE:
            yes = verdict == REPRODUCED
            verdict = (
                (HOLDS if yes else FAILS)
                if whose == "ours"
                else (MET if yes else MISSED)
            )
    data = record.get("data") or {}
    note = ""
    if record.get("profile", "paper") != "paper" or data.get("is_sample"):
        note = (
            f"{record.get('profile')} profile"
            + (", sample data" if data.get("is_sample") else "")
            + ": not comparable"
        )
    if short_of:
        note = f"{short_of}; {note}" if note else short_of
    return Verdict(c, verdict, ours=text, settings=settings, note=note, value=value)


def judge_ratio(r: dict, record: dict | None) -> Verdict:
    """A speed ratio of the registry's ``ratios:`` against its target: met or missed."""
    if record is None:
        return Verdict(r, NOT_RUN)
    try:
        value = resolve(record, r["path"])
        settings = fill_template(r.get("settings", ""), record)
    except MissingKey as e:
        return Verdict(r, MISSING, note=str(e))
    if value is None:
        return Verdict(r, MISSING, note="the run recorded no number")
    if "target" not in r:
        return Verdict(
            r, MEASURED, ours=f"{value:.2f}×", settings=settings, value=value
        )
    met = decide(r["target"], value) == REPRODUCED
    return Verdict(
        r, MET if met else MISSED, ours=f"{value:.2f}×", settings=settings, value=value
    )


def ratio_target_text(r: dict) -> str:
    if "target" not in r:
        return "no target: a measurement"
    kind = _kind(r["target"], r.get("id", ""))
    sign = "≥" if kind == "at_least" else "≤"
    return f"{sign} {r['target'][kind]:g}×: {r['why']}"


# ------------------------------------------------------------------------ tables
def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def source_label(src: dict, style: str = "book") -> str:
    """The source's name (a citation in the book) and where in it the number is."""
    text = (
        f"{{cite}}`{src['cite']}`"
        if src.get("cite") and style == "book"
        else src["name"]
    )
    return text + (f", {src['where']}" if src.get("where") else "")


def _bold(verdict: str) -> str:
    return f"**{verdict}**" if verdict in (REPRODUCED, HOLDS, MET) else verdict


def source_rows(
    verdicts: list[Verdict], style: str = "book", chapter_column=None
) -> list:
    rows = []
    for v in verdicts:
        c = v.claim
        row = [
            c["claim"],
            source_label(c["source"], style),
            source_text(c),
            v.ours,
            _bold(v.verdict) + (f" ({v.note})" if v.note else ""),
            rule_text(c),
        ]
        why = c["source"].get("unverifiable")  # a source's claim always has a source
        if why and v.verdict == UNVERIFIABLE:
            row[-1] = f"not scored: {why}"
        rows.append(
            ([chapter_column(c)] if chapter_column else []) + row + [v.settings]
        )
    return rows


SOURCE_HEAD = [
    "Claim",
    "Source",
    "Source's number",
    "Ours",
    "Verdict",
    "Rule",
    "Our run (from the results file)",
]
OURS_HEAD = [
    "Our claim",
    "Ours",
    "Verdict",
    "Rule and its reason",
    "Our run (from the results file)",
]


def ours_rows(verdicts: list[Verdict], chapter_column=None) -> list:
    return [
        ([chapter_column(v.claim)] if chapter_column else [])
        + [
            v.claim["claim"],
            v.ours,
            _bold(v.verdict) + (f" ({v.note})" if v.note else ""),
            rule_text(v.claim),
            v.settings,
        ]
        for v in verdicts
    ]


class Table(str):
    """Markdown text that a notebook displays as Markdown (it is the last
    expression)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _load_record(results: dict | str | Path | None) -> dict | None:
    if results is None or isinstance(results, dict):
        return results
    path = Path(results)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def verdicts(
    chapter: str,
    results: dict | str | Path | None,
    registry: dict | str | Path | None = None,
) -> dict[str, Verdict]:
    """Every claim of ``chapter`` judged on ``results`` (as :func:`table`), by claim id:
    for a chapter's text that needs a verdict."""
    reg = registry if isinstance(registry, dict) else load(registry)
    record = _load_record(results)
    return {c["id"]: judge(c, record) for c in claims_of(chapter, reg)}


def table(
    chapter: str,
    results: dict | str | Path | None,
    registry: dict | str | Path | None = None,
) -> Table:
    """A chapter's reproduction table, in Markdown, from the registry and its results.

    ``results``: the results record (a dict as in ``results/<chapter>.json``) or the
    path
    of the file (what ``run.save`` returns); ``registry``: a registry (loaded, or its
    path;
    default ``helpers/claims.yml``). Three parts, each only when the chapter has such
    claims: the sources' claims, our claims, our engineering targets (with the chapter's
    speed ratios).
    """
    reg = registry if isinstance(registry, dict) else load(registry)
    record = _load_record(results)
    verdicts = [judge(c, record) for c in claims_of(chapter, reg)]
    ratios = [
        (r, judge_ratio(r, record))
        for r in reg.get("ratios") or []
        if r.get("chapter") == chapter
    ]
    parts = []
    src = [v for v in verdicts if v.whose == "source"]
    if src:
        parts += [
            "**The sources' claims**",
            "",
            markdown_table(SOURCE_HEAD, source_rows(src)),
            "",
        ]
    ours = [v for v in verdicts if v.whose == "ours"]
    if ours:
        parts += [
            (
                "**Our own claims** (not a source's: they are judged by our rule, "
                "never "
                "scored as a reproduction)"
            ),
            "",
            markdown_table(OURS_HEAD, ours_rows(ours)),
            "",
        ]
    targets = [v for v in verdicts if v.whose == "target"]
    if targets or ratios:
        rows = ours_rows(targets) + [
            [r["what"], v.ours, _bold(v.shown), ratio_target_text(r), v.settings]
            for r, v in ratios
        ]
        parts += [
            "**Our engineering targets**",
            "",
            markdown_table(
                [
                    "Target",
                    "Ours",
                    "Verdict",
                    "Rule and its reason",
                    "Our run (from the results file)",
                ],
                rows,
            ),
            "",
        ]
    if src:
        parts += [f"How the verdicts are decided: {PARTLY_RULE} {COUNT_RULE}"]
    if not parts:
        raise ClaimsError(f"the registry has no claim of chapter {chapter!r}")
    return Table("\n".join(parts).rstrip() + "\n")
