import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import helpers.params as hp
from helpers.params import (
    CHECKS,
    ParameterError,
    at_least,
    between,
    distinct_seeds,
    each,
    fraction,
    nonzero_fraction,
    one_of,
    optional,
    parse_parameters_cell,
    positive,
    require,
    resolve_device,
    resolve_params,
)

ROOT = Path(__file__).resolve().parents[1]

CELL = """\
profile = "paper"  # "paper" or "smoke"
device = "cpu"  # where to train
seeds = [0, 1, 2]  # seeds of every network
epochs = 30  # epochs per network
lr = 1e-3  # learning rate
n_train = None  # training digits (None: all)
noise_levels = [0.0, 0.5]  # fractions of pixels overwritten
rules = ["bp", "dfa"]  # rules compared
retrain = False  # retrain stale records
"""
DEFAULTS = parse_parameters_cell(CELL)[0]
SMOKE = {"epochs": 1, "n_train": 2000, "seeds": [0]}


@pytest.fixture(autouse=True)
def no_cells_seen(monkeypatch):
    """Each test starts with no cells recorded by the IPython hook."""
    monkeypatch.setattr(hp, "_CELLS_RUN", [])


def notebook(*cells, **values):
    """A notebook's globals after running ``cells``: IPython's ``In`` history and the
    values (the parameters cell's defaults, then ``values``)."""
    return {"In": ["", *cells, "P = resolve_params(globals())"], **DEFAULTS, **values}


def test_the_parameters_cell_is_parsed_with_its_defaults():
    assert list(DEFAULTS) == [
        "profile",
        "device",
        "seeds",
        "epochs",
        "lr",
        "n_train",
        "noise_levels",
        "rules",
        "retrain",
    ]
    assert DEFAULTS["lr"] == 1e-3 and DEFAULTS["n_train"] is None


@pytest.mark.parametrize(
    "source, why",
    [
        ('profile = "paper"\nepochs = 3  # e\n', "profile has no comment"),
        ('profile = "paper"  # p\nepochs = 3\nlr = 1  # l\n', "epochs has no comment"),
        ("epochs = 3  # e\n", "does not set profile"),
        ('profile = "paper"  # p\nimport os\n', "line 2 is not 'name = value'"),
        ('profile = "paper"  # p\nx = f(1)  # x\n', "the value of x is not a literal"),
        ("profile = (  # p\n", "not valid Python"),
        ("P = helpers.resolve_params(globals())", "the value of P is not a literal"),
    ],
)
def test_a_cell_that_is_not_a_parameters_cell_says_why(source, why):
    defaults, reason = parse_parameters_cell(source)
    assert defaults is None and why in reason


def test_a_comment_may_sit_on_any_line_of_a_long_value():
    defaults, _ = parse_parameters_cell('profile = "paper"  # p\nx = [\n  1, 2]  # x\n')
    assert defaults == {"profile": "paper", "x": [1, 2]}


def test_values_come_from_the_notebook_and_defaults_from_its_parameters_cell():
    P = resolve_params(notebook(CELL, epochs=12, lr=0.1))
    assert (P.profile, P.epochs, P.lr, P.seeds, P.n_train) == (
        "paper",
        12,
        0.1,
        [0, 1, 2],
        None,
    )
    assert P.device == torch.device("cpu") and P["lr"] == 0.1
    assert list(P.as_dict()) == list(DEFAULTS)  # the parameters cell's order


def test_the_last_parameters_cell_run_is_the_one_read():
    edited = CELL.replace(
        "epochs = 30", "epochs = 2.5"
    )  # a reader's edit: a number now
    P = resolve_params(notebook(CELL, edited, "x = 1", epochs=2.5))
    assert P.epochs == 2.5


def test_a_scratch_cell_without_comments_is_a_value_not_a_declaration():
    P = resolve_params(
        notebook(CELL, 'profile = "smoke"', profile="smoke"), smoke=SMOKE
    )
    assert (P.profile, P.epochs, P.lr) == ("smoke", 1, 1e-3)


def test_papermill_injected_values_are_checked_against_the_declaration():
    injected = '# Parameters\nprofile = "smoke"\nepochs = 3\n'
    P = resolve_params(notebook(CELL, injected, profile="smoke", epochs=3))
    assert P.epochs == 3
    typo = "# Parameters\nepoch = 3\n"
    with pytest.raises(
        ParameterError,
        match=r"papermill was given epoch: not in the "
        r"parameters cell \(did you mean: epoch -> epochs\?\); its "
        r"parameters are: profile, device, seeds",
    ):
        resolve_params(notebook(CELL, typo, epoch=3))


def test_without_a_parameters_cell_the_message_says_what_to_run():
    with pytest.raises(ParameterError, match="no parameters cell has been run"):
        resolve_params(notebook("x = 1"))
    with pytest.raises(ParameterError, match="skipped: epochs has no comment"):
        resolve_params(notebook('profile = "paper"  # p\nepochs = 3\n'))
    with pytest.raises(
        ParameterError, match="import the helpers before the parameters cell"
    ):
        resolve_params({"profile": "paper"})


def test_cells_recorded_by_the_hook_serve_when_in_is_not_kept():
    """nbval runs cells without IPython's history; the pre_run_cell hook saw them."""
    for cell in ("import helpers", CELL, "x = 1", "# Parameters\nepochs = 4\n"):
        hp._remember_cell(SimpleNamespace(raw_cell=cell))
    assert hp._CELLS_RUN == [CELL, "# Parameters\nepochs = 4\n"]  # only these are kept
    P = resolve_params({**DEFAULTS, "epochs": 4})  # no "In"
    assert P.epochs == 4 and P.lr == 1e-3
    hp._remember_cell(SimpleNamespace(raw_cell="# Parameters\nepoch = 4\n"))
    with pytest.raises(ParameterError, match="papermill was given epoch"):
        resolve_params({**DEFAULTS, "epoch": 4})


@pytest.mark.parametrize(
    "store_history", [False, True]
)  # nbval / Jupyter and papermill
def test_a_notebook_run_in_ipython_resolves_its_parameters(store_history):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        hp._watch_cells()
        hp._watch_cells()  # a second import (a reload) keeps one hook
        hooks = [
            c
            for c in shell.events.callbacks["pre_run_cell"]
            if getattr(c, "__qualname__", "") == "_remember_cell"
        ]
        assert len(hooks) == 1
        cells = [
            "import helpers.params as hp",
            CELL,
            '# Parameters\nprofile = "smoke"\nlr = 0.5\n',
            "P = hp.resolve_params(globals(), smoke=dict(epochs=2))",
        ]
        for cell in cells:
            shell.run_cell(cell, store_history=store_history).raise_error()
        P = shell.user_ns["P"]
        assert (P.profile, P.epochs, P.lr, P.seeds) == ("smoke", 2, 0.5, [0, 1, 2])
        result = shell.run_cell(
            "P = hp.resolve_params(globals(), checks=dict(k=hp.positive))",
            store_history=store_history,
        )
        assert isinstance(result.error_in_exec, ParameterError)
        assert "checks are given for k: not in the parameters cell" in str(
            result.error_in_exec
        )
    finally:
        InteractiveShell.clear_instance()


def test_defaults_may_be_given_outside_a_notebook():
    P = resolve_params({"epochs": 5}, defaults=DEFAULTS)
    assert P.epochs == 5 and P.lr == 1e-3
    assert resolve_params(defaults={"profile": "paper"}).as_dict() == {
        "profile": "paper"
    }
    with pytest.raises(ParameterError, match="must declare profile"):
        resolve_params(defaults={"epochs": 3})


def test_the_smoke_profile_overrides_only_the_named_values():
    P = resolve_params({"profile": "smoke"}, defaults=DEFAULTS, smoke=SMOKE)
    assert (P.epochs, P.n_train, P.seeds, P.lr) == (1, 2000, [0], 1e-3)
    P = resolve_params({"profile": "paper"}, defaults=DEFAULTS, smoke=SMOKE)
    assert (P.epochs, P.n_train, P.seeds) == (30, None, [0, 1, 2])


def test_as_dict_is_json_ready():
    d = resolve_params(defaults=DEFAULTS).as_dict()
    assert d["device"] == "cpu" and d["profile"] == "paper"
    json.dumps(d)


@pytest.mark.parametrize("profile", ["fast", "Paper", "", None])
def test_unknown_profile(profile):
    with pytest.raises(
        ParameterError, match=r"profile=.*allowed: \['paper', 'smoke'\]"
    ):
        resolve_params({"profile": profile}, defaults=DEFAULTS)


@pytest.mark.parametrize(
    "name, value, phrase",
    [
        # types from the defaults
        ("epochs", 3.5, "epochs must be an integer (its default is 30)"),
        ("epochs", True, "epochs must be an integer"),
        ("epochs", "3", "epochs must be an integer"),
        ("epochs", None, "epochs must be an integer"),
        ("lr", "0.1", "lr must be a finite number (its default is 0.001)"),
        ("lr", float("nan"), "lr must be a finite number"),
        ("lr", float("inf"), "lr must be a finite number"),
        ("retrain", 1, "retrain must be True or False"),
        ("retrain", "False", "retrain must be True or False"),
        ("device", 0, "device must be text"),
        ("rules", [], "rules must be a non-empty list of texts"),
        ("rules", ["bp", 3], "rules must be a non-empty list of texts"),
        ("noise_levels", 0.5, "noise_levels must be a non-empty list of numbers"),
        ("noise_levels", [0.0, "x"], "list of numbers"),
        ("seeds", [0, 1.0], "seeds must be a non-empty list of integers"),
        (
            "seeds",
            "[0, 1]",
            (
                "not text (papermill's -p passes text: give a list with -y, "
                "e.g. -y 'seeds: [0, 1, 2]')"
            ),
        ),
        # the shared checks (CHECKS)
        ("epochs", 0, "epochs must be positive"),
        ("epochs", -1, "epochs must be positive"),
        ("lr", 0.0, "lr must be positive"),
        ("n_train", -100, "n_train must be None or an integer that is positive"),
        ("n_train", 2.5, "n_train must be None or an integer that is positive"),
        ("seeds", [0, -1], "seeds must be a list of distinct integers >= 0"),
        ("seeds", [1, 1], "seeds must be a list of distinct integers >= 0"),
        ("noise_levels", [0.0, 1.5], "a list whose every element is between 0 and 1"),
        ("device", "gpu", "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ],
)
def test_nonsense_values_name_the_parameter_the_rule_and_the_default(
    name, value, phrase
):
    with pytest.raises(ParameterError) as err:
        resolve_params({name: value}, defaults=DEFAULTS)
    assert str(err.value).startswith(f"{name}={value!r} is not allowed: ")
    assert phrase in str(err.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ParameterError) as err:
        resolve_params({"epochs": -1, "lr": -1.0}, defaults=DEFAULTS)
    assert "epochs=-1" in str(err.value) and "lr=-1.0" in str(err.value)


def test_smoke_values_are_checked_too():
    with pytest.raises(ParameterError, match="epochs=0"):
        resolve_params({"profile": "smoke"}, defaults=DEFAULTS, smoke={"epochs": 0})


def test_integers_given_for_numbers_become_numbers():
    P = resolve_params({"lr": 1, "noise_levels": [0, 0.5]}, defaults=DEFAULTS)
    assert P.lr == 1.0 and isinstance(P.lr, float)
    assert P.noise_levels == [0.0, 0.5] and isinstance(P.noise_levels[0], float)
    assert resolve_params({"seeds": (3, 4)}, defaults=DEFAULTS).seeds == [3, 4]


def test_a_chapter_check_adds_a_range_or_a_choice():
    checks = {"rules": each(one_of("bp", "dfa", "fa")), "epochs": between(1, 100)}
    P = resolve_params({"rules": ["fa", "bp"]}, defaults=DEFAULTS, checks=checks)
    assert P.rules == ["fa", "bp"]
    with pytest.raises(
        ParameterError,
        match=r"rules=\['bp', 'xx'\] is not allowed: rules "
        r"must be a list whose every element is one of \['bp', 'dfa', 'fa'\]",
    ):
        resolve_params({"rules": ["bp", "xx"]}, defaults=DEFAULTS, checks=checks)
    with pytest.raises(ParameterError, match="epochs must be between 1 and 100"):
        resolve_params(
            {"epochs": 101}, defaults=DEFAULTS, checks=checks
        )  # replaces CHECKS


def test_a_check_for_an_undeclared_name_or_a_smoke_value_for_one_is_an_error():
    with pytest.raises(
        ParameterError,
        match="checks are given for epoch: not in the "
        r"parameters cell \(did you mean: epoch -> epochs\?\)",
    ):
        resolve_params(defaults=DEFAULTS, checks={"epoch": positive})
    with pytest.raises(ParameterError, match="the smoke profile sets k: not in the"):
        resolve_params({"profile": "smoke"}, defaults=DEFAULTS, smoke={"k": 1})


def test_a_parameter_that_defaults_to_none_needs_a_check_that_says_its_type():
    defaults = {"profile": "paper", "n_spectrum": None}
    with pytest.raises(
        ParameterError,
        match=r"n_spectrum defaults to None, so its type is "
        r"unknown: give its check, e.g. checks=dict\(n_spectrum=optional",
    ):
        resolve_params(defaults=defaults)
    checks = {"n_spectrum": optional(int, at_least(10))}
    assert (
        resolve_params({"n_spectrum": 20}, defaults=defaults, checks=checks).n_spectrum
        == 20
    )
    assert resolve_params(defaults=defaults, checks=checks).n_spectrum is None
    with pytest.raises(
        ParameterError,
        match="n_spectrum must be None or an integer that is at least 10",
    ):
        resolve_params({"n_spectrum": 5}, defaults=defaults, checks=checks)


def test_none_is_allowed_where_the_check_is_optional():
    defaults = {"profile": "paper", "threads": 1}
    assert resolve_params({"threads": None}, defaults=defaults).threads is None
    with pytest.raises(ParameterError, match="threads must be None or an integer"):
        resolve_params({"threads": 0}, defaults=defaults)


def test_threads_are_applied():
    before = torch.get_num_threads()
    try:
        resolve_params({"threads": 1}, defaults={"profile": "paper", "threads": None})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "check, good, bad, phrase",
    [
        (positive, [1, 0.5], [0, -1, float("nan"), "1", True], "positive"),
        (at_least(2), [2, 3.5], [1, float("nan")], "at least 2"),
        (between(0, 1), [0, 1, 0.5], [-0.1, 1.1], "between 0 and 1"),
        (fraction, [0.0, 1.0], [2], "between 0 and 1"),
        (one_of("a", True), ["a", True], ["b", 1], "one of ['a', True]"),
        (
            each(positive),
            [[1, 2], []],
            [[1, 0]],
            "a list whose every element is positive",
        ),
        (
            optional(int, positive),
            [None, 3],
            [0, 2.5],
            "None or an integer that is positive",
        ),
        (optional(str), [None, "x"], [1], "None or text"),
        (nonzero_fraction, [1, 0.3], [0, 1.5], "above 0 and at most 1"),
        (
            distinct_seeds,
            [[0, 4], []],
            [[1, 1], [-1], [0.0]],
            "a list of distinct integers >= 0",
        ),
    ],
)
def test_checks(check, good, bad, phrase):
    assert all(check(v) is None for v in good)
    assert all(check(v) == phrase for v in bad)


def test_optional_accepts_only_the_types_it_knows():
    with pytest.raises(TypeError, match="list is not int, float, bool or str"):
        optional(list)


def test_shared_checks_of_pairs():
    assert CHECKS["norm"]([0.5, 0.5]) is None and "std > 0" in CHECKS["norm"](
        [0.5, 0.0]
    )
    assert CHECKS["rank_range"]([10, 500]) is None
    assert "first < last" in CHECKS["rank_range"]([500, 10])
    assert "first < last" in CHECKS["rank_range"]([1, 2, 3])


def test_require_stops_with_the_message():
    require(True, "never shown")
    with pytest.raises(
        ParameterError, match="^k=9 is more than width=8: use k <= width$"
    ):
        k, width = 9, 8
        require(k <= width, f"k={k} is more than width={width}: use k <= width")


def test_device_auto_and_errors():
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)
    assert dev.type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("cuda:x", "tpu", "", 3):
        with pytest.raises(ParameterError, match="device must be 'auto', 'cpu'"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            resolve_device("cuda")


def chapter_parameters_cells():
    """Every chapter's parameters cell (and the drafts')."""
    paths = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    paths += sorted((ROOT / "book" / "drafts").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        cells = json.loads(path.read_text())["cells"]
        cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        source = "".join(cell["source"])
        yield pytest.param(source, id=str(path.relative_to(ROOT / "book")))


@pytest.mark.parametrize("source", chapter_parameters_cells())
def test_every_chapter_declares_its_parameters_once_with_seeds(source):
    defaults, why = parse_parameters_cell(source)
    assert defaults is not None, why
    assert "seeds" in defaults and "seed" not in defaults
    assert next(iter(defaults)) == "profile"


def test_a_parameter_may_carry_its_comment_on_the_line_above():
    cell = (
        'profile = "paper"  # the profile\n'
        "# rules compared\n"
        'rules = ["a", "b"]\n'
        "epochs = 3  # epochs\n"
    )
    defaults, why = parse_parameters_cell(cell)
    assert why == "" and defaults == {
        "profile": "paper",
        "rules": ["a", "b"],
        "epochs": 3,
    }
    # the trailing comment of the statement above does not count for the next one
    bare = 'profile = "paper"  # the profile\nepochs = 3  # epochs\nrules = ["a"]\n'
    assert parse_parameters_cell(bare) == (None, "rules has no comment")
