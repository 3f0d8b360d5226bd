"""Run records: heavy experiments as grids of small, resumable, committed runs.

A chapter's heavy experiment (a table at the source's full budget, say) is a grid of
independent *runs*: one configuration times one seed. Each finished run writes one JSON
*record*, ``results/runs/<chapter>/<run-name>.json``: the resolved configuration, the
per-epoch curves, the final metrics, wall and CPU time, device, threads, package
versions, the git commit, and a *fingerprint* of what determines its numbers. Records
are small and committed; weights are not (they stay in the cache folder as checkpoints).

The pieces::

    @runs.trainer(numerics="1")  # a function (config, ctx) -> metrics
    def train_one(config, ctx): ...

    TABLE = runs.Grid(chapter="04_feedback_alignment", trainer=train_one,
                      defaults={...}, smoke={...}, expand=..., name=...)

    records = runs.ensure(
        TABLE.specs(P)
    )  # in the chapter: load, or train what is missing

* **Staleness.** A record is *stale* when its configuration, its trainer, or the
  trainer's ``numerics`` version differs from what the chapter asks for now.
  :func:`ensure` then stops with a :class:`StaleRecordError` naming the record and the
  differing fields, unless it is told to retrain (``retrain_stale=True``). ``numerics``
  is a label the trainer's author bumps when a change alters the numbers; a refactor
  that keeps them keeps the label, and a test reruns a committed smoke-size record bit
  for bit to prove it (``tests/test_runs.py``).
* **Resume.** A trainer calls ``ctx.restore(...)`` once and ``ctx.checkpoint(...)``
  after every epoch: weights, optimiser state, RNG states, the epoch and the curves go
  atomically to ``<cache>/runs/<profile>/<chapter>/<name>.pt``. A killed run restarts
  from its last checkpoint and, on the CPU, ends bit-identical to an uninterrupted one.
* **Many machines.** ``tools/runs.py`` (``make runs CHAPTER=...``) lists done / stale /
  missing runs with their estimated cost and trains the missing ones in parallel, or
  prints one shell command per missing run for a cluster's array job (``--print``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import os
import random
import resource
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .data import Data, cache_dir, load_mnist
from .params import resolve_device
from .results import _jsonable, environment_info, results_dir, write_json

__all__ = [
    "trainer",
    "RunSpec",
    "Grid",
    "RunContext",
    "StaleRecordError",
    "record_path",
    "checkpoint_path",
    "load_record",
    "check_record",
    "status",
    "train",
    "ensure",
    "data_fingerprint",
    "GRIDS",
    "grids_of",
]

RECORD_VERSION = 1
#: The seed of the split of :meth:`RunContext.data` with ``n_val``.
VAL_SEED = 0

#: The grids of runs of each chapter, as "module:attribute" of a :class:`Grid` (imported
#: lazily).
GRIDS: dict[str, list[str]] = {
    "03_local_errors": ["helpers.local_table:TABLE"],
    "04_feedback_alignment": ["helpers.dfa_table:TABLE"],
    "05_sparse_representations": ["helpers.sparse_table:TABLE"],
    "07_claims_on_fashion_mnist": ["helpers.fashion_table:TABLE"],
}


def grids_of(chapter: str) -> list["Grid"]:
    """The :class:`Grid` objects registered for ``chapter`` (empty when it has none)."""
    out = []
    for ref in GRIDS.get(chapter, []):
        module, _, attr = ref.partition(":")
        out.append(getattr(importlib.import_module(module), attr))
    return out


class StaleRecordError(RuntimeError):
    """A committed record no longer matches the configuration the chapter asks for."""


# -------------------------------------------------------------------------------------
# Trainers and specifications


def trainer(numerics: str):
    """Mark ``fn(config, ctx) -> metrics`` as a run trainer whose numbers are at version
    ``numerics``.

    Bump ``numerics`` whenever a change to the trainer (or to code it calls) changes the
    numbers it produces: every record made with the old label then reads as stale.
    """
    if not isinstance(numerics, str) or not numerics:
        raise ValueError(
            f"numerics={numerics!r} must be a non-empty string such as '1'"
        )

    def mark(fn: Callable) -> Callable:
        fn.numerics = numerics
        fn.trainer_id = f"{fn.__module__}:{fn.__qualname__}"
        return fn

    return mark


def _trainer_id(fn: Callable) -> str:
    if not hasattr(fn, "numerics"):
        raise TypeError(
            f"{fn!r} is not a run trainer: decorate it with "
            "@helpers.runs.trainer(numerics='1')"
        )
    return fn.trainer_id


def resolve_trainer(trainer_id: str) -> Callable:
    """``"helpers.dfa_table:train_run"`` -> the function."""
    module, _, name = trainer_id.partition(":")
    fn: Any = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    _trainer_id(fn)
    return fn


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a grid: which chapter, its name, its trainer and its full
    configuration.
    """

    chapter: str
    name: str
    trainer: str  # "module:function"
    config: dict
    profile: str = "paper"
    # a rough estimate of its CPU seconds (1 thread), when known
    cost_hint_s: float | None = None

    @property
    def trainer_fn(self) -> Callable:
        return resolve_trainer(self.trainer)

    @property
    def numerics(self) -> str:
        return self.trainer_fn.numerics


def _canonical(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))


@dataclasses.dataclass
class Grid:
    """A chapter's grid of runs, declared once and shared by the chapter and
    ``tools/runs.py``.

    ``defaults`` are the chapter parameters the grid reads, with the chapter's
    paper-profile values; ``smoke`` overrides some of them in the smoke profile;
    ``expand(params)`` turns the parameters into a list of run configurations;
    ``name(config)`` names a run; ``cost(config)`` estimates its CPU seconds at 1 thread
    (optional).
    """

    chapter: str
    trainer: Callable
    defaults: dict
    expand: Callable[[dict], list[dict]]
    name: Callable[[dict], str]
    smoke: dict = dataclasses.field(default_factory=dict)
    cost: Callable[[dict], float] | None = None

    def params(
        self, values: dict | Any | None = None, profile: str | None = None
    ) -> dict:
        """The grid's parameters: defaults, then ``values`` (a dict or a chapter's
        ``Params``), then the smoke overrides when the profile (``profile``, else that
        of ``values``) is ``smoke``."""
        if values is not None and not isinstance(values, dict):
            values = values.as_dict() if hasattr(values, "as_dict") else vars(values)
        values = dict(values or {})
        out = {k: values.get(k, v) for k, v in self.defaults.items()}
        if (profile or values.get("profile", "paper")) == "smoke":
            out.update(self.smoke)
        return out

    def specs(
        self, values: dict | Any | None = None, profile: str | None = None
    ) -> list[RunSpec]:
        """The runs of the grid for these parameters (see :meth:`params`)."""
        if profile is None:
            profile = (
                values.get("profile")
                if isinstance(values, dict)
                else getattr(values, "profile", None)
            ) or "paper"
        params = self.params(values, profile)
        tid = _trainer_id(self.trainer)
        out, seen = [], set()
        for config in self.expand(params):
            config = json.loads(_canonical(config))
            name = self.name(config)
            if name in seen:
                raise ValueError(
                    f"two runs of {self.chapter} are both named {name!r}: make name() "
                    "unique"
                )
            seen.add(name)
            hint = float(self.cost(config)) if self.cost else None
            out.append(RunSpec(self.chapter, name, tid, config, profile, hint))
        return out


# -------------------------------------------------------------------------------------
# Paths and records


def record_path(spec: RunSpec) -> Path:
    return results_dir(spec.profile) / "runs" / spec.chapter / f"{spec.name}.json"


def checkpoint_path(spec: RunSpec) -> Path:
    return cache_dir() / "runs" / spec.profile / spec.chapter / f"{spec.name}.pt"


def load_record(spec: RunSpec) -> dict | None:
    path = record_path(spec)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise StaleRecordError(
            f"{path} is not valid JSON ({e}): delete it and train the run again"
        ) from None


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            where = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{where} (new: {new[k]!r})")
            elif k not in new:
                out.append(f"{where} (no longer set; was {old[k]!r})")
            else:
                out += _diff(old[k], new[k], where)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def check_record(spec: RunSpec, record: dict) -> list[str]:
    """The reasons why ``record`` does not answer ``spec`` (empty: it is current)."""
    reasons = []
    if record.get("trainer") != spec.trainer:
        reasons.append(f"trainer: {record.get('trainer')!r} -> {spec.trainer!r}")
    if record.get("numerics") != spec.numerics:
        reasons.append(
            f"numerics version of {spec.trainer}: {record.get('numerics')!r} -> "
            f"{spec.numerics!r}"
        )
    reasons += [
        f"config.{d}"
        for d in _diff(record.get("config"), json.loads(_canonical(spec.config)))
    ]
    return reasons


def status(
    specs: Iterable[RunSpec],
) -> list[tuple[RunSpec, str, dict | None, list[str]]]:
    """``(spec, "done" | "stale" | "missing", record, reasons)`` for every run."""
    out = []
    for spec in specs:
        record = load_record(spec)
        if record is None:
            out.append((spec, "missing", None, []))
            continue
        reasons = check_record(spec, record)
        out.append((spec, "stale" if reasons else "done", record, reasons))
    return out


def data_fingerprint(data: Data) -> str:
    """SHA-256 (first 16 hex digits) of the tensors a run trains and tests on."""
    h = hashlib.sha256()
    for t in (data.X_train, data.y_train, data.X_test, data.y_test):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _fingerprint(spec: RunSpec, data_fp: str | None) -> str:
    text = _canonical(
        {
            "config": spec.config,
            "trainer": spec.trainer,
            "numerics": spec.numerics,
            "data": data_fp,
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _git_dirty() -> bool | None:
    """True when the checkout has uncommitted changes to tracked files (None: not a git
    checkout).
    """
    import subprocess

    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def _source_sha256(fn: Callable) -> str | None:
    """SHA-256 (first 16 hex digits) of the source file that defines ``fn``."""
    import inspect

    try:
        return hashlib.sha256(Path(inspect.getsourcefile(fn)).read_bytes()).hexdigest()[
            :16
        ]
    except (TypeError, OSError):
        return None


def cpu_info() -> dict:
    """The CPU's model name and the instruction set PyTorch's kernels use on it: two
    machines that agree on these (and on the package versions) compute bit-identical CPU
    runs."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import platform

    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older PyTorch
        capability = None
    return {
        "model": model or platform.processor() or platform.machine(),
        "capability": capability,
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -------------------------------------------------------------------------------------
# The context a trainer gets


def _rng_states() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            *np_state[2:],
        ),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RunContext:
    """What a trainer is given besides its configuration.

    ``device``, ``threads``; ``data(**kwargs)`` loads the data set
    (``helpers.load_mnist``) and records its fingerprint (``data(n_val=n, ...)``: ``n``
    training images held out as the set to score on); ``restore(**objects)`` and
    ``checkpoint(epoch, **objects)`` resume a killed run (``objects``: anything with
    ``state_dict``/``load_state_dict``, or a ``torch.Generator``); ``log(**values)``
    appends one epoch's values to the curves.
    """

    def __init__(
        self,
        spec: RunSpec,
        device: torch.device,
        threads: int | None,
        *,
        verbose: bool = True,
    ):
        self.spec, self.device, self.threads, self.verbose = (
            spec,
            device,
            threads,
            verbose,
        )
        self.curves: dict[str, list] = {}
        self.epoch = 0
        self.resumed_from: list[int] = []
        self.data_info: dict | None = None
        self._last_print = 0.0

    # data ---------------------------------------------------------------------------
    def data(self, *, n_val: int | None = None, **kwargs) -> Data:
        """``helpers.load_mnist(**kwargs)`` on this run's device. With ``n_val``, the
        returned Data trains on the rest of the training set and its *test* set is
        ``n_val`` training images held out (:meth:`~helpers.data.Data.holdout`, seed
        :data:`VAL_SEED`, the same images for every run): a run that chooses a setting
        never sees the test set. The record's ``data`` says what was used."""
        kwargs.setdefault("device", self.device)
        data = load_mnist(**kwargs)
        if n_val is not None:
            data = data.holdout(n_val, seed=VAL_SEED)
        self.data_info = {
            "dataset": data.dataset,
            "source": data.source,
            "is_sample": data.is_sample,
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
            "sha256_16": data_fingerprint(data),
        }
        if n_val is not None:
            self.data_info["test_set"] = f"{n_val} held-out training images"
        return data

    # curves -------------------------------------------------------------------------
    def log(self, **values) -> None:
        """Append one epoch's values (numbers) to the curves; prints a line every 30 s
        at most (none with ``BOOK_PROGRESS=none``, as in the book's committed runs)."""
        for k, v in values.items():
            self.curves.setdefault(k, []).append(_jsonable(v))
        # a committed run prints no progress
        quiet = os.environ.get("BOOK_PROGRESS") == "none"
        if self.verbose and not quiet and time.perf_counter() - self._last_print > 30:
            self._last_print = time.perf_counter()
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in values.items()
            )
            print(f"  {self.spec.name}: {shown}", flush=True)

    # checkpoints --------------------------------------------------------------------
    def restore(self, **objects) -> int:
        """Load the last checkpoint into ``objects`` (and the RNG states, the curves);
        return the epoch it was written after (0: no checkpoint, start from scratch)."""
        path = checkpoint_path(self.spec)
        if not path.exists():
            return 0
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a damaged file: start again rather than stop
            print(
                f"  {self.spec.name}: checkpoint {path} unreadable "
                f"({type(e).__name__}); starting again",
                flush=True,
            )
            return 0
        if state.get("fingerprint") != self._fingerprint or sorted(
            state["objects"]
        ) != sorted(objects):
            print(
                f"  {self.spec.name}: checkpoint {path} belongs to another "
                "configuration; starting again",
                flush=True,
            )
            return 0
        for key, obj in objects.items():
            saved = state["objects"][key]
            if isinstance(obj, torch.Generator):
                obj.set_state(saved)
            else:
                obj.load_state_dict(saved)
        _set_rng_states(state["rng"])
        self.curves = json.loads(state["curves"])
        self.epoch = int(state["epoch"])
        self.resumed_from.append(self.epoch)
        if self.verbose:
            print(
                f"  {self.spec.name}: resumed after epoch {self.epoch} from {path}",
                flush=True,
            )
        return self.epoch

    def checkpoint(self, epoch: int, **objects) -> None:
        """Write weights, optimiser and RNG states, the epoch and the curves
        atomically.
        """
        path = checkpoint_path(self.spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "fingerprint": self._fingerprint,
            "epoch": int(epoch),
            "objects": {
                k: (o.get_state() if isinstance(o, torch.Generator) else o.state_dict())
                for k, o in objects.items()
            },
            "rng": _rng_states(),
            "curves": json.dumps(self.curves),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        self.epoch = int(epoch)

    @property
    def _fingerprint(self) -> str:
        return _fingerprint(self.spec, (self.data_info or {}).get("sha256_16"))


# -------------------------------------------------------------------------------------
# Training and loading


def train(
    spec: RunSpec,
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    verbose: bool = True,
    keep_checkpoint: bool = True,
) -> dict:
    """Train one run (resuming from its checkpoint when there is one), write its record,
    return it.
    """
    fn = spec.trainer_fn
    device = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    ctx = RunContext(spec, device, threads, verbose=verbose)
    # what ran: the checkout and the trainer's source as they are when the run starts
    env, dirty, source_sha = environment_info(device), _git_dirty(), _source_sha256(fn)
    started, wall0, cpu0 = _now(), time.perf_counter(), _cpu_seconds()
    if verbose:
        print(
            f"  {spec.name}: training ({spec.trainer}, {torch.get_num_threads()} "
            f"thread(s), {device})",
            flush=True,
        )
    metrics = fn(dict(spec.config), ctx)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    record = {
        "record_version": RECORD_VERSION,
        "chapter": spec.chapter,
        "name": spec.name,
        "profile": spec.profile,
        "trainer": spec.trainer,
        "numerics": spec.numerics,
        "fingerprint": ctx._fingerprint,
        "config": spec.config,
        "data": ctx.data_info,
        "metrics": _jsonable(metrics),
        "curves": ctx.curves,
        "epochs_run": ctx.epoch,
        # the time of this process only: a resumed run's earlier sessions are not
        # counted
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "resumed_after_epochs": ctx.resumed_from,
        "threads": torch.get_num_threads(),
        "device": env["device"],
        "device_name": env["device_name"],
        "platform": env["platform"],
        "versions": env["versions"],
        "git_commit": env["git_commit"],
        "git_dirty": dirty,
        "trainer_source_sha256": source_sha,
        "cpu": cpu_info(),
        "started_utc": started,
        "finished_utc": _now(),
    }
    path = write_json(record_path(spec), _jsonable(record))
    if not keep_checkpoint:
        checkpoint_path(spec).unlink(missing_ok=True)
    if verbose:
        print(f"  {spec.name}: done in {wall / 60:.1f} min, record {path}", flush=True)
    return record


def _describe(record: dict) -> str:
    commit = (record.get("git_commit") or "?")[:7]
    when = (record.get("finished_utc") or "?")[:16].replace("T", " ")
    return f"trained {when} UTC at {commit}, {record.get('cpu_s', 0) / 60:.1f} CPU-min"


def ensure(
    specs: list[RunSpec],
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    retrain_stale: bool = False,
    verbose: bool = True,
) -> dict[str, dict]:
    """The records of ``specs`` (name -> record): finished ones are loaded, missing ones
    trained.

    A stale record stops everything with :class:`StaleRecordError` (naming every stale
    record and its differing fields) unless ``retrain_stale``, which trains it again.
    """
    states = status(specs)
    stale = [(s, reasons) for s, state, _, reasons in states if state == "stale"]
    if stale and not retrain_stale:
        lines = [
            f"  {record_path(s)}:\n      " + "\n      ".join(reasons)
            for s, reasons in stale
        ]
        raise StaleRecordError(
            f"{len(stale)} run record(s) of {specs[0].chapter} no longer match the "
            "chapter's configuration:\n"
            + "\n".join(lines)
            + "\nRetrain them (make runs CHAPTER="
            + specs[0].chapter
            + ", or the chapter parameter "
            "retrain_stale=True), or restore the parameters they were made with."
        )
    records = {}
    done = [(s, r) for s, state, r, _ in states if state == "done"]
    if verbose and done:
        print(
            f"{len(done)} of {len(specs)} runs loaded from their records "
            f"(results/runs/{specs[0].chapter}/):"
        )
        for s, r in done:
            print(f"  {s.name}: {_describe(r)}")
    for s, r in done:
        records[s.name] = r
    todo = [s for s, state, _, _ in states if state != "done"]
    if todo and verbose:
        print(
            f"{len(todo)} run(s) to train here: {', '.join(s.name for s in todo)}",
            flush=True,
        )
    for s in todo:
        records[s.name] = train(s, device=device, threads=threads, verbose=verbose)
    return {s.name: records[s.name] for s in specs}


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_cost(
    spec: RunSpec, others: Iterable[tuple[RunSpec, str, dict | None, list[str]]]
) -> tuple[float | None, str]:
    """CPU seconds for ``spec``: a finished record of the same configuration but another
    seed, else the grid's own estimate. Returns (seconds, where the estimate comes
    from)."""

    def without_seed(c):
        return {k: v for k, v in c.items() if k != "seed"}

    same = [
        r["cpu_s"]
        for s, state, r, _ in others
        if state == "done" and r and without_seed(s.config) == without_seed(spec.config)
    ]
    if same:
        return sum(same) / len(same), f"mean of {len(same)} record(s) of other seeds"
    if spec.cost_hint_s is not None:
        return spec.cost_hint_s, "the grid's estimate"
    return None, "no estimate"
