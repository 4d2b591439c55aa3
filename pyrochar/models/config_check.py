"""One validator for the config dataclasses of every model.

A config reaches a model from three places: ``--set KEY=VALUE`` on the command
line, a checkpoint file, and the Python API. All three go through
:func:`validate_config` (called by :func:`pyrochar.models.build_model`) before any
network is built, so a bad value is one clear :class:`PyrocharError` instead of a
crash deep in PyTorch or an allocation of whatever size was asked.

Two checks per field:

- its **type**, read from the dataclass annotation: an ``int`` field takes an int
  (never ``32.5``, ``"abc"`` or ``true``), a ``float`` field a finite number, a
  ``bool`` field ``true``/``false``, a ``tuple[int, ...]`` field a list of ints;
- its **range**, from one table keyed by the field's name (:data:`RULES`, then
  :data:`SUFFIX_RULES` for families such as ``*_hidden`` or ``*_dropout``). The
  size caps are far above the defaults and the paper's grids (hidden sizes 128-512)
  yet keep any one model within a few GB on a CPU machine. A field that no rule
  names still gets the generic cap (:data:`GENERIC`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass

from ..errors import PyrocharError


@dataclass(frozen=True)
class Rule:
    """Allowed values of one field: a range [low, high] (``low_open``/``high_open``
    exclude an end; None: unbounded), or a set of ``choices``; ``length`` fixes a
    tuple's length."""

    low: float | None = None
    high: float | None = None
    high_open: bool = False
    low_open: bool = False
    choices: tuple | None = None
    length: int | None = None
    why: str = ""

    def allowed(self) -> str:
        """The rule in words, for error messages."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            low = "" if self.low is None else f"{self.low:g} " + ("< " if self.low_open else "<= ")
            high = "" if self.high is None else (" < " if self.high_open else " <= ") + f"{self.high:g}"
            text = f"{low}value{high}"
        if self.length is not None:
            text = f"{self.length} values, each {text}"
        return text + (f" ({self.why})" if self.why else "")

    def accepts(self, value) -> bool:
        """Whether one scalar value satisfies the rule."""
        if self.choices is not None:
            return value in self.choices
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


CAP = "pyrochar's cap, far above the defaults"
SIZE = Rule(1, 2048, why=CAP)  # hidden units, embeddings, attention: defaults 64-256, grids up to 512
CHANNELS = Rule(1, 512, why=CAP)  # CNN channels: defaults 4-128
LAYERS = Rule(1, 8, why=CAP)  # stacked LSTM layers: defaults 1-2, grids up to 3
DROPOUT = Rule(0, 1, high_open=True)
GENERIC = Rule(0, 4096, why="the cap of a field no rule names")

# Exact field names first.
RULES: dict[str, Rule] = {
    "n_components": Rule(1, 100),  # K = 20 in the paper, 10 in the BPL prior
    "canvas_size": Rule(choices=(28,), why="the renderer draws 28 x 28 canvases"),
    "location_channels": Rule(1, 512, length=4, why="four 2x2 poolings take 28 x 28 to 1 x 1"),
    "stroke_channels": Rule(1, 512, length=3),
    "attention": Rule(choices=("post", "sat")),
    "termination_blocks": Rule(1, 4, why="each block halves the 28 x 28 canvas"),
    "max_strokes": Rule(1, 100),  # sampling caps: 10 strokes, 50 steps by default
    "max_steps": Rule(1, 1000),
    "em_iterations": Rule(1, 100_000),
    "em_restarts": Rule(1, 100),
    "hazard_smoothing": Rule(0, 1000),
}

# Then families of fields, by the end of their name (first match wins).
SUFFIX_RULES: tuple[tuple[str, Rule], ...] = (
    ("dropout", DROPOUT),
    ("layers", LAYERS),
    ("channels", CHANNELS),
    ("hidden", SIZE),
    ("embed", SIZE),
    ("_dim", SIZE),
    ("_slots", Rule(1, 1000)),
)


def rule_for(field_name: str) -> Rule | None:
    """The range rule of a field, or None when no rule names it (see GENERIC)."""
    if field_name in RULES:
        return RULES[field_name]
    for suffix, rule in SUFFIX_RULES:
        if field_name.endswith(suffix):
            return rule
    return None


class _Bad(Exception):
    """A value that does not fit its field; the message says what was expected."""


def _as_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("expects a whole number")
    return value


def _as_float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("expects a number")
    if not math.isfinite(value):
        raise _Bad("expects a finite number")
    return float(value)


def _as_bool(value) -> bool:
    if not isinstance(value, bool):
        raise _Bad("expects true or false")
    return value


def _as_str(value) -> str:
    if not isinstance(value, str):
        raise _Bad("expects a string")
    return value


SCALARS = {int: _as_int, float: _as_float, bool: _as_bool, str: _as_str}


def _coerce(value, annotation):
    """``value`` converted to the annotated type, or _Bad. Handles int, float, bool,
    str, ``X | None`` and ``tuple[X, ...]`` / ``tuple[X, Y, Z]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise _Bad(f"has an unsupported annotation {annotation}")
        return _coerce(value, inner[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Bad("expects a list such as [16, 32, 64]")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Bad(f"expects {len(args)} values")
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    if annotation in SCALARS:
        return SCALARS[annotation](value)
    raise _Bad(f"has an unsupported annotation {annotation}")


def _check_range(value, rule: Rule) -> None:
    """_Bad unless every scalar of ``value`` (one value or a tuple) fits ``rule``."""
    items = value if isinstance(value, tuple) else (value,)
    if rule.length is not None and len(items) != rule.length:
        raise _Bad(f"has {len(items)} values: allowed {rule.allowed()}")
    for v in items:
        if v is None or isinstance(v, bool):
            continue
        if isinstance(v, str) and rule.choices is None:
            continue
        if not rule.accepts(v):
            raise _Bad(f"is not allowed: use {rule.allowed()}" if rule.choices is not None
                       else f"is out of range: allowed {rule.allowed()}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_config(model_name: str, config_class: type, config: dict | None) -> dict:
    """Check ``config`` (field -> value) against ``config_class``; the cleaned dict.

    Unknown keys, values of the wrong type and values out of range raise a
    :class:`PyrocharError` naming the key, the value and what is allowed. Lists
    become tuples; ints given to float fields become floats. Fields left out keep
    the dataclass defaults.
    """
    return validate_fields(f"bad config for model {model_name!r}", config_class, config, rule_for)


def validate_fields(what: str, config_class: type, values: dict | None, rules) -> dict:
    """The generic check behind :func:`validate_config`: ``values`` against the
    fields and annotations of the dataclass ``config_class``, ranges from
    ``rules(field_name) -> Rule | None`` (None: :data:`GENERIC` for numbers).
    ``what`` starts every error message."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise PyrocharError(f"{what} must be a mapping of field names to values")
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(str(k) for k in values if k not in fields)
    if unknown:
        raise PyrocharError(f"{what}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(config_class)
    clean = {}
    for key, value in values.items():
        try:
            clean[key] = _coerce(value, hints[key])
            rule = rules(key)
            if rule is None and isinstance(clean[key], (int, float, tuple)):
                rule = GENERIC
            if rule is not None:
                _check_range(clean[key], rule)
        except _Bad as e:
            raise PyrocharError(f"{what}: {key}={_short(value)} {e}") from None
    return clean
