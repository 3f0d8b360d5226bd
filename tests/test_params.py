import pytest
import torch

from helpers.params import ParameterError, resolve_device, resolve_params

BASE = dict(epochs=30, batch_size=64, lr=1e-3, n_train=None, n_test=None, seeds=[0, 1, 2], device="cpu")
SMOKE = dict(epochs=1, n_train=2000, seeds=[0])


def test_paper_profile_keeps_values():
    P = resolve_params("paper", BASE, smoke=SMOKE)
    assert P.profile == "paper" and P.epochs == 30 and P.seeds == [0, 1, 2] and P.n_train is None
    assert P.device == torch.device("cpu") and P["lr"] == 1e-3


def test_smoke_profile_overrides_only_named_values():
    P = resolve_params("smoke", BASE, smoke=SMOKE)
    assert (P.epochs, P.n_train, P.seeds, P.batch_size) == (1, 2000, [0], 64)


def test_as_dict_is_json_ready():
    d = resolve_params("paper", BASE).as_dict()
    assert d["device"] == "cpu" and d["profile"] == "paper"


@pytest.mark.parametrize("profile", ["fast", "Paper", "", None])
def test_unknown_profile(profile):
    with pytest.raises(ParameterError, match=r"profile=.*allowed: \['paper', 'smoke'\]"):
        resolve_params(profile, BASE)


@pytest.mark.parametrize("name, value, phrase", [
    ("epochs", -1, "positive integer"),
    ("epochs", 0, "positive integer"),
    ("epochs", 2.5, "positive integer"),
    ("epochs", True, "positive integer"),
    ("batch_size", "64", "positive integer"),
    ("lr", 0, "positive finite number"),
    ("lr", float("nan"), "positive finite number"),
    ("n_train", -100, "None or a positive integer"),
    ("seeds", [], "non-empty list"),
    ("seeds", [0, -1], "list of"),
    ("device", "gpu", "'auto', 'cpu'"),
])
def test_nonsense_values_name_the_parameter(name, value, phrase):
    with pytest.raises(ParameterError) as err:
        resolve_params("paper", {**BASE, name: value})
    assert f"{name}={value!r}" in str(err.value) and phrase in str(err.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ParameterError) as err:
        resolve_params("paper", {**BASE, "epochs": -1, "lr": -1})
    assert "epochs=-1" in str(err.value) and "lr=-1" in str(err.value)


def test_chapter_rules_and_unknown_smoke_keys():
    rules = {"k": lambda v: None if isinstance(v, int) and 0 <= v <= 100 else "an integer in [0, 100]"}
    assert resolve_params("paper", {"k": 5}, rules=rules).k == 5
    with pytest.raises(ParameterError, match=r"k=101 is not allowed: it must be an integer in \[0, 100\]"):
        resolve_params("paper", {"k": 101}, rules=rules)
    with pytest.raises(ParameterError, match="does not have"):
        resolve_params("smoke", {"k": 5}, smoke={"epochs": 1})


def test_smoke_values_are_validated_too():
    with pytest.raises(ParameterError, match="epochs=0"):
        resolve_params("smoke", BASE, smoke={"epochs": 0})


def test_device_auto_and_errors():
    expected = "cuda" if torch.cuda.is_available() else None
    dev = resolve_device("auto")
    if expected:
        assert dev.type == "cuda"
    else:
        assert dev.type in ("cpu", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("cuda:x", "tpu", "", 3):
        with pytest.raises(ParameterError):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_list_given_as_text_names_papermill_y():
    """papermill's -p passes '[0, 1]' as a string; the message says how to pass a list."""
    with pytest.raises(ParameterError, match=r"seeds='\[0, 1\]'.*-y"):
        resolve_params("paper", dict(seeds="[0, 1]"))
