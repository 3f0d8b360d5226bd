"""Notebook parameters: declared once in the parameters cell, checked, resolved.

A chapter declares its parameters once, in its papermill ``parameters`` cell: one
``name = value  # what it means`` line per parameter, ``profile`` first::

    profile = "paper"  # "paper": the source's settings; "smoke": seconds, for the tests
    device = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "mps"
    seeds = [0, 1, 2]  # seeds of every network
    epochs = 30  # epochs per network (the source: 30)
    n_train = None  # training digits (None: all 60,000)

The next cell resolves them::

    P = helpers.resolve_params(
        globals(),
        smoke=dict(epochs=1, n_train=2000, seeds=[0]),
        checks=dict(probe_epochs=positive),
    )
    require(P.probe_epochs <= P.epochs, f"probe_epochs={P.probe_epochs} ...")

:func:`resolve_params` finds the parameters cell in the notebook's input history
(IPython's ``In``: the last cell run whose every statement is
``name = literal  # comment`` and which sets ``profile``), so the names and defaults
are typed once. The values are those of the notebook's globals, which papermill's
``injected-parameters`` cell (run after the parameters cell) or a reader's edit may
have changed. Then:

* ``profile="smoke"`` replaces the values named in ``smoke`` (declared once per
  chapter), so that the same notebook runs end to end in seconds; ``"paper"`` keeps
  them.
* Each value must have its default's type (an integer, a number, text, True or False,
  a list of such), and pass its *check* when it has one: ranges and choices, declared
  once, either for the whole book in :data:`CHECKS` or for one chapter in
  ``checks=``. A check is a function of the value that returns None when it is fine,
  else what it must be (:func:`positive`, :func:`at_least`, :func:`between`,
  :func:`one_of`, :func:`each`, :func:`optional`). A parameter whose default is None
  needs a check that says its type.
* A nonsense value stops with a :class:`ParameterError` that names the parameter, the
  value, what it must be and its default; every problem is reported at once. A
  papermill ``-p`` name that the parameters cell does not declare stops too, with the
  closest name.
* ``device`` becomes a :class:`torch.device` (:func:`resolve_device`); ``threads``,
  when not None, is applied with :func:`torch.set_num_threads`.

Rules that involve two parameters use :func:`require` in the chapter.
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import numbers
import tokenize
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, Callable

import torch

__all__ = [
    "CHECKS",
    "PROFILES",
    "ParameterError",
    "Params",
    "at_least",
    "between",
    "distinct_seeds",
    "each",
    "fraction",
    "nonzero_fraction",
    "one_of",
    "optional",
    "parse_parameters_cell",
    "positive",
    "require",
    "resolve_device",
    "resolve_params",
]

PROFILES = ("paper", "smoke")

#: A check: a function of a value that returns None when the value is fine, else a
#: phrase that completes "<name> must be ...".
Check = Callable[[Any], "str | None"]


class ParameterError(ValueError):
    """A notebook parameter has a value that cannot work; the message names it."""


def require(condition: bool, message: str) -> None:
    """Stop with a :class:`ParameterError` saying ``message`` unless ``condition``.

    For rules that involve two parameters; the message names both and the fix::

        require(P.k <= P.width, f"k={P.k} is more than width={P.width}: use k <= width")
    """
    if not condition:
        raise ParameterError(message)


# -------------------------------------------------------------------------------------
# Checks: ranges and choices (types come from the defaults)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def positive(v) -> str | None:
    """Greater than 0."""
    return None if _is_number(v) and v > 0 else "positive"


def at_least(low) -> Check:
    """``low`` or more."""
    return lambda v: None if _is_number(v) and v >= low else f"at least {low}"


def between(low, high) -> Check:
    """From ``low`` to ``high``, both included."""
    return lambda v: (
        None if _is_number(v) and low <= v <= high else f"between {low} and {high}"
    )


#: From 0 to 1 (a probability, a momentum, a fraction of pixels).
fraction = between(0, 1)


def nonzero_fraction(v) -> str | None:
    """Above 0, at most 1 (a density of weights, a share of winners)."""
    return None if _is_number(v) and 0 < v <= 1 else "above 0 and at most 1"


def one_of(*allowed) -> Check:
    """One of the values ``allowed``."""
    return lambda v: (
        None
        if any(v == a and type(v) is type(a) for a in allowed)
        else f"one of {list(allowed)}"
    )


def each(check: Check) -> Check:
    """A list whose every element passes ``check``."""

    def check_each(v):
        for x in v if isinstance(v, (list, tuple)) else [v]:
            why = check(x)
            if why is not None:
                return f"a list whose every element is {why}"
        return None

    return check_each


_TYPES = {
    int: ("an integer", _is_int),
    float: ("a finite number", _is_number),
    bool: ("True or False", lambda v: isinstance(v, bool)),
    str: ("text", lambda v: isinstance(v, str)),
}


def optional(*checks) -> Check:
    """None, or a value of the types (``int``, ``float``, ``bool``, ``str``) and checks
    given: ``optional(int, positive)`` is None or a positive integer."""
    for c in checks:
        if isinstance(c, type) and c not in _TYPES:
            raise TypeError(f"optional(): {c.__name__} is not int, float, bool or str")
    kinds = [_TYPES[c][0] for c in checks if isinstance(c, type)]
    rules = [c for c in checks if not isinstance(c, type)]

    def check_optional(v):
        if v is None:
            return None
        if all(_TYPES[c][1](v) for c in checks if isinstance(c, type)) and all(
            c(v) is None for c in rules
        ):
            return None
        that = " and ".join(c(_Fails()) for c in rules)
        what = f"None or {kinds[0] if kinds else 'a value'}"
        return what + (f" that is {that}" if that else "")

    check_optional.allows_none = True
    return check_optional


class _Fails:
    """A value that fails every check, so that a check says what it wants."""


def distinct_seeds(v) -> str | None:
    """A list of distinct integers >= 0."""
    ok = isinstance(v, (list, tuple)) and all(_is_int(s) and s >= 0 for s in v)
    return None if ok and len(set(v)) == len(v) else "a list of distinct integers >= 0"


def _mean_std(v) -> str | None:
    ok = len(v) == 2 and 0 <= v[0] <= 1 and v[1] > 0
    return None if ok else "a [mean, std] pair on the [0, 1] pixel scale with std > 0"


def _rank_range(v) -> str | None:
    ok = len(v) == 2 and 1 <= v[0] < v[1]
    return None if ok else "[first, last] ranks with 1 <= first < last, e.g. [10, 500]"


_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _device_problem(device) -> str | None:
    """What ``device`` must be (completes "device must be ..."); None when it works."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        return _DEVICES
    if device == "auto":
        return None
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        return _DEVICES
    if kind == "cuda" and not torch.cuda.is_available():
        return "'auto' or 'cpu': CUDA is not available here"
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        return f"'cuda:0' or 'auto': only {n} CUDA device(s) here"
    if kind == "mps" and not _mps_available():
        return "'auto' or 'cpu': MPS is not available here"
    return None


#: Checks of the parameter names that several chapters share (a chapter's own
#: ``checks=`` adds names or replaces these).
CHECKS: dict[str, Check] = {
    "profile": one_of(*PROFILES),
    "device": lambda v: _device_problem(v),
    "threads": optional(int, positive),
    "seeds": distinct_seeds,
    "n_train": optional(int, positive),
    "n_test": optional(int, positive),
    "epochs": positive,
    "batch_size": positive,
    "lr": positive,
    "momentum": fraction,
    "weight_decay": at_least(0),
    "width": positive,
    "depth": positive,
    "readout_std": positive,
    "norm": _mean_std,
    "rank_range": _rank_range,
    "n_tsne": positive,
    "perplexity": positive,
    "knn_k": positive,
    "noise_levels": each(fraction),
    "noise_seed": at_least(0),
    "fgsm_eps": each(fraction),
    "pgd_eps": fraction,
    "pgd_steps": positive,
    "n_pgd": positive,
    "boost_strength": at_least(0),
    "boost_strength_factor": fraction,
    "k_inference_factor": positive,
}


# -------------------------------------------------------------------------------------
# Types from the defaults


def _kind(value) -> type | None:
    if isinstance(value, bool):
        return bool
    if _is_int(value):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    return None


_PLURALS = {int: "integers", float: "numbers", bool: "True/False values", str: "texts"}


def _element_kind(default: list) -> type | None:
    kinds = {_kind(x) for x in default}
    if kinds <= {int, float} and float in kinds:
        return float
    return kinds.pop() if len(kinds) == 1 else None


def _type_problem(name: str, value, default) -> str | None:
    """What ``value`` must be to have the type of ``default`` (None when it has it)."""
    if isinstance(default, (list, tuple)):
        kind = _element_kind(default) if default else None
        what = f"a {'non-empty ' if default else ''}list" + (
            f" of {_PLURALS[kind]}" if kind else ""
        )
        if isinstance(value, str):  # papermill's -p passes '[0, 1]' as text
            example = str(list(default)).replace("'", '"')
            return (
                f"{what}, not text (papermill's -p passes text: give a list "
                f"with -y, e.g. -y '{name}: {example}')"
            )
        if not isinstance(value, (list, tuple)) or (default and not value):
            return what
        if kind and not all(_TYPES[kind][1](x) for x in value):
            return what
        return None
    kind = _kind(default)
    if kind is None or _TYPES[kind][1](value):
        return None
    return _TYPES[kind][0]


def _convert(value, default):
    """Integers given for a number become floats (in lists too); tuples become lists."""
    if isinstance(default, float) and _is_int(value):
        return float(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        kind = _element_kind(default) if default else None
        return [float(x) if kind is float and _is_int(x) else x for x in value]
    return value


# -------------------------------------------------------------------------------------
# The parameters cell


def parse_parameters_cell(source: str) -> tuple[dict[str, Any] | None, str]:
    """``(defaults, "")`` when ``source`` is a parameters cell, else ``(None, why)``.

    A parameters cell is made only of ``name = literal`` statements, one of which sets
    ``profile``. Each has a comment at the end of its line, or, when its value fills the
    line, on the line just above it (a line of its own)::

        epochs = 15  # epochs per run
        # rules compared (must include backprop)
        rules = ["backprop", "dfa", "local_greedy", "local_simultaneous", "sparse"]
    """
    try:
        tree = ast.parse(source)
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        commented = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    except (SyntaxError, tokenize.TokenError, IndentationError):
        return None, "it is not valid Python"
    defaults, bare, taken = {}, [], set()  # taken: lines of earlier statements
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            return None, f"line {node.lineno} is not 'name = value'"
        name = node.targets[0].id
        try:
            defaults[name] = ast.literal_eval(node.value)
        except ValueError:
            return None, f"the value of {name} is not a literal"
        own = set(range(node.lineno, node.end_lineno + 1))
        above = node.lineno - 1
        if not commented & own and not (above in commented and above not in taken):
            bare.append(name)
        taken |= own
    if "profile" not in defaults:
        return None, "it does not set profile"
    if bare:
        return None, f"{', '.join(bare)} ha{'s' if len(bare) == 1 else 've'} no comment"
    return defaults, ""


def _papermill_cell(source: str) -> bool:
    """papermill's injected-parameters cell starts with this comment."""
    return source.startswith("# Parameters\n")


def _assigned_names(source: str) -> list[str]:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    return [
        t.id
        for node in body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]


#: The parameters cells and papermill's injected cells that this IPython kernel ran, in
#: order. A ``pre_run_cell`` hook records them from the import of the helpers on (the
#: set-up cell, before the parameters cell): nbval runs cells without keeping them in
#: IPython's history ``In``, which Jupyter, Colab and papermill keep.
_CELLS_RUN: list[str] = []


def _remember_cell(info=None) -> None:
    source = getattr(info, "raw_cell", None) or ""
    if _papermill_cell(source) or (
        "profile" in source and parse_parameters_cell(source)[0] is not None
    ):
        _CELLS_RUN.append(source)
        del _CELLS_RUN[:-100]


def _watch_cells() -> None:
    """In IPython, record the parameters cells run from now on (see ``_CELLS_RUN``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    for callback in list(shell.events.callbacks.get("pre_run_cell", [])):
        if (
            getattr(callback, "__qualname__", "") == "_remember_cell"
            and getattr(callback, "__module__", "") == __name__
        ):
            shell.events.unregister("pre_run_cell", callback)  # a reload's old hook
    shell.events.register("pre_run_cell", _remember_cell)


def _last_declaration(cells) -> tuple[dict[str, Any], list[str]] | None:
    for i in range(len(cells) - 1, -1, -1):
        source = cells[i] or ""
        defaults = None if _papermill_cell(source) else parse_parameters_cell(source)[0]
        if defaults is not None:
            injected = [
                name
                for cell in cells[i + 1 :]
                if _papermill_cell(cell or "")
                for name in _assigned_names(cell)
            ]
            return defaults, injected
    return None


def _declared(namespace: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The defaults of the last parameters cell run, and the names given by papermill's
    injected-parameters cells run after it."""
    history = namespace.get("In")
    history = list(history) if isinstance(history, (list, tuple)) else None
    for cells in (_CELLS_RUN, history or []):
        found = _last_declaration(cells)
        if found is not None:
            return found
    if history is None and not _CELLS_RUN:
        raise ParameterError(
            "resolve_params(globals()) reads the parameters cell the notebook ran, "
            "and no cell has been seen here: import the helpers before the parameters "
            "cell (as the set-up cell does) and run it in Jupyter, Colab, papermill or "
            "nbval, or give the defaults: resolve_params(values, defaults=...)"
        )
    near = [
        why
        for cell in history or []
        if "profile" in (cell or "")
        for _, why in [parse_parameters_cell(cell)]
        if why.endswith("no comment")
    ]
    hint = f" (a cell that sets profile was skipped: {near[-1]})" if near else ""
    raise ParameterError(
        "no parameters cell has been run: run the cell of 'name = value  # comment' "
        f"lines that sets profile, then this one{hint}"
    )


# -------------------------------------------------------------------------------------
# Resolution


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when present, else MPS, else CPU; other values are checked."""
    why = _device_problem(device)
    if why is not None:
        raise ParameterError(f"device={device!r} is not allowed: device must be {why}")
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("mps") if _mps_available() else torch.device("cpu")


class Params(SimpleNamespace):
    """Resolved parameters: attribute access, and ``as_dict()`` for the results file."""

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, torch.device) else v)
            for k, v in vars(self).items()
        }

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def resolve_params(
    namespace: Mapping[str, Any] | None = None,
    *,
    smoke: Mapping[str, Any] | None = None,
    checks: Mapping[str, Check] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Params:
    """The notebook's parameters, checked, with the profile applied (see the module).

    namespace : where the values are: the notebook's ``globals()``. Names it lacks keep
        their defaults.
    smoke : the values that the smoke profile replaces.
    checks : the chapter's checks of its own parameters (ranges, choices), by name.
    defaults : the declared parameters and their defaults; when None, those of the last
        parameters cell run in the notebook (found in ``namespace["In"]``).
    """
    namespace = {} if namespace is None else namespace
    injected: list[str] = []
    if defaults is None:
        defaults, injected = _declared(namespace)
    defaults = dict(defaults)
    if "profile" not in defaults:
        raise ParameterError(
            "the parameters must declare profile: add "
            'profile = "paper"  # "paper" or "smoke"'
        )
    names = list(defaults)

    def undeclared(given, what):
        unknown = [n for n in given if n not in defaults]
        if unknown:
            hints = [
                f"{n} -> {c[0]}?"
                for n in unknown
                if (c := difflib.get_close_matches(n, names, 1, 0.7))
            ]
            raise ParameterError(
                f"{what} {', '.join(unknown)}: not in the parameters cell"
                + (f" (did you mean: {'; '.join(hints)})" if hints else "")
                + f"; its parameters are: {', '.join(names)}"
            )

    undeclared(injected, "papermill was given")
    undeclared(smoke or {}, "the smoke profile sets")
    undeclared(checks or {}, "checks are given for")
    shared = {k: v for k, v in CHECKS.items() if k in defaults}
    all_checks = {**shared, **(checks or {})}
    untyped = [n for n in names if defaults[n] is None and n not in all_checks]
    if untyped:
        one = len(untyped) == 1
        raise ParameterError(
            f"{', '.join(untyped)} default{'s' if one else ''} to None, so "
            f"{'its type is' if one else 'their types are'} unknown: give "
            f"{'its check' if one else 'their checks'}, e.g. checks=dict("
            f"{untyped[0]}=optional(int, positive))"
        )

    values = {n: namespace.get(n, defaults[n]) for n in names}
    profile = values["profile"]
    if profile not in PROFILES:
        raise ParameterError(
            f"profile={profile!r} is not known; allowed: {list(PROFILES)}"
        )
    if profile == "smoke":
        values.update(smoke or {})

    problems = []
    for name in names:
        value, default, check = values[name], defaults[name], all_checks.get(name)
        none_ok = default is None or getattr(check, "allows_none", False)
        if value is None and none_ok:
            why = None
        else:
            why = _type_problem(name, value, default)
        if why is None:
            value = values[name] = _convert(value, default)
            why = check(value) if check is not None else None
        if why is not None:
            problems.append(
                f"{name}={value!r} is not allowed: {name} must be {why} "
                f"(its default is {default!r})"
            )
    if problems:
        raise ParameterError("; ".join(problems))
    if "device" in values:
        values["device"] = resolve_device(values["device"])
    if values.get("threads") is not None:
        torch.set_num_threads(values["threads"])
    return Params(**values)


_watch_cells()
