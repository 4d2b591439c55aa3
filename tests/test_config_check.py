"""The one validator of model configs (pyrochar/models/config_check.py) and of
training settings: bad values are refused with one line before anything is built."""

import dataclasses
import math
import typing

import pytest
import torch
from conftest import TINY_FULL_NS

from pyrochar.errors import PyrocharError
from pyrochar.models import MODELS, build_model
from pyrochar.models.config_check import rule_for
from pyrochar.sampling import sample_batch
from pyrochar.scoring import log_likelihood
from pyrochar.train import TrainConfig

BAD_FULL_NS = [
    ("stroke_hidden", 200000, "allowed 1 <= value <= 2048"),
    ("stroke_hidden", -1, "allowed 1 <= value <= 2048"),
    ("stroke_hidden", "abc", "expects a whole number"),
    ("stroke_hidden", 32.5, "expects a whole number"),
    ("stroke_hidden", True, "expects a whole number"),
    ("attention", "bogus", "one of 'post', 'sat'"),
    ("stroke_dropout", 5, "0 <= value < 1"),
    ("stroke_dropout", 1.0, "0 <= value < 1"),
    ("stroke_dropout", math.nan, "finite"),
    ("max_strokes", 0, "1 <= value <= 100"),
    ("max_steps", 0, "1 <= value <= 1000"),
    ("location_channels", [4, 4, 4], "4 values"),
    ("location_channels", [4, 4, 4, "x"], "whole number"),
    ("stroke_channels", 7, "expects a list"),
    ("termination_blocks", 5, "halves the 28 x 28 canvas"),
    ("canvas_size", 32, "one of 28"),
    ("location_uses_prev_end", 1, "true or false"),
    ("n_components", 0, "1 <= value <= 100"),
]


@pytest.fixture
def no_network(monkeypatch):
    """Building a Full NS network fails the test: validation must come first."""

    def refuse(self, config=None):
        raise AssertionError("a network was built before the config was checked")

    monkeypatch.setattr(MODELS["full-ns"], "__init__", refuse)


@pytest.mark.parametrize("key, value, allowed", BAD_FULL_NS)
def test_bad_values_are_refused_before_any_network_is_built(no_network, key, value, allowed):
    with pytest.raises(PyrocharError) as err:
        build_model("full-ns", {key: value})
    message = str(err.value)
    assert "\n" not in message
    assert f"{key}=" in message and allowed in message


def test_unknown_keys_are_refused_with_the_known_ones(no_network):
    with pytest.raises(PyrocharError, match="unknown key.*no_such_field.*known keys: attention"):
        build_model("full-ns", {"no_such_field": 1})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_default_passes_and_every_number_has_a_rule(name):
    cls = MODELS[name].config_class
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] not in (bool, str):
            assert rule_for(f.name) is not None, f"{name}.{f.name} has no range rule in config_check"
    defaults = dataclasses.asdict(cls())
    assert build_model(name, defaults).config == cls()


def _lowest(cls) -> dict:
    """Every field that has a range at the lowest value its rule allows."""
    hints, out = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        rule = rule_for(f.name)
        if rule is None or rule.choices is not None:
            continue
        tp = hints[f.name]
        value = int(rule.low) if tp is int or typing.get_origin(tp) is tuple else float(rule.low)
        out[f.name] = (value,) * len(getattr(cls(), f.name)) if typing.get_origin(tp) is tuple else value
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_lowest_allowed_values_build_a_working_model(name, one_thread):
    torch.manual_seed(0)
    model = build_model(name, _lowest(MODELS[name].config_class)).eval()
    batch = model.prepare_batch(sample_batch(model, 3, seed=0))
    ll, _ = log_likelihood(model, batch)
    assert torch.isfinite(ll).all()


def _highest_sizes(cls) -> dict:
    """Every whole-number size field (not the sampling or EM caps) at its rule's cap."""
    hints, out = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        rule, tp = rule_for(f.name), hints[f.name]
        if rule is None or rule.choices is not None or tp is float or f.name.startswith(("max_", "em_")):
            continue
        out[f.name] = (int(rule.high),) * len(getattr(cls(), f.name)) if typing.get_origin(tp) is tuple else int(rule.high)
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_size_at_its_cap_at_once_stays_under_400m_parameters(name):
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = build_model(name, _highest_sizes(MODELS[name].config_class))
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n / 1e6:.0f} M parameters with every size at its cap")
    assert n < 400e6  # 1.5 GiB of float32 weights


def test_lists_become_tuples_and_ints_floats():
    m = build_model("full-ns", {**TINY_FULL_NS, "location_channels": [4, 4, 4, 4], "stroke_dropout": 0})
    assert m.config.location_channels == (4, 4, 4, 4)
    assert isinstance(m.config.stroke_dropout, float)


@pytest.mark.parametrize(
    "field, value, allowed",
    [("lr", math.nan, "finite"), ("lr", 0.0, "0 < value"), ("lr", -1.0, "0 < value"), ("epochs", 0, "1 <= value"),
     ("seed", -1, "0 <= value"), ("precision", "fp8", "one of"), ("batch_size", 2.5, "whole number")],
)
def test_training_settings_are_checked(field, value, allowed):
    with pytest.raises(PyrocharError) as err:
        TrainConfig(**{field: value})
    assert f"{field}=" in str(err.value) and allowed in str(err.value)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "stroke_hidden=-1"], "stroke_hidden=-1"),
        (["--set", "stroke_hidden=abc"], "stroke_hidden='abc' expects a whole number"),
        (["--set", "stroke_hidden=32.5"], "stroke_hidden=32.5 expects a whole number"),
        (["--set", "attention=bogus"], "attention='bogus'"),
        (["--set", "stroke_dropout=5"], "stroke_dropout=5"),
        (["--set", "max_strokes=0"], "max_strokes=0"),
        (["--lr", "nan"], "lr=nan expects a finite number"),
        (["--seed", "-1"], "seed=-1"),
    ],
)
def test_cli_refuses_bad_options_before_reading_data(run, tmp_path, args, expected):
    # --source does not exist: the options are checked before the data are looked at
    res = run("train", "--source", tmp_path / "no-data", *args, "--out", tmp_path / "run", ok=False)
    assert expected in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
