"""Train / validation / test splits of characters (docs/data.md, section "Splits").

Three kinds, as in the paper:

- ``character:K`` (K = 0, 1, 2): within each alphabet, a seeded 80/20 split of
  its characters. Tests generalization to new characters of known alphabets.
- ``alphabet:K``: a seeded 80/20 split of the alphabets. Tests generalization
  to new alphabets.
- ``holdout``: train on the background set, test on a list of evaluation
  alphabets (a parameter; default the 10 of Lake et al. 2015). When the
  evaluation set is absent, an explicit list of background alphabets is held
  out instead.
- ``all``: every character is used for training (for the shipped weights).

A split is a partition of *character keys* (``"Alphabet/characterNN"``), so
train and test never share a character, and for alphabet and holdout splits
never share an alphabet. A validation set (for early stopping) is carved out of
the training characters, per alphabet, with its own seed.

Determinism: every random choice uses numpy's PCG64 generator seeded from the
split index and a CRC32 of the alphabet name, over sorted inputs, so a split is
the same on every machine and Python version (Python's ``hash`` is not used).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..errors import PyrocharError

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1

# The 10 evaluation alphabets Lake et al. (2015) used for one-shot classification.
LAKE2015_EVALUATION_ALPHABETS = (
    "Atlantean",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Malayalam",
    "Manipuri",
    "Old_Church_Slavonic_(Cyrillic)",
    "Tengwar",
    "Tibetan",
)


def character_key(alphabet: str, character: int) -> str:
    """The key of a character: ``"Greek/character03"``."""
    return f"{alphabet}/character{int(character):02d}"


@dataclass
class Split:
    """A partition of character keys into train, validation and test."""

    name: str
    train: list[str]
    validation: list[str]
    test: list[str]
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        sets = [set(self.train), set(self.validation), set(self.test)]
        if sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]:
            raise PyrocharError(f"split {self.name!r}: train, validation and test overlap")

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the split as JSON (atomically)."""
        data = asdict(self)
        data["format"] = "pyrochar-split"
        atomic_write_text(Path(path), json.dumps(data, indent=1, sort_keys=True))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Split:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != "pyrochar-split":
                raise ValueError("not a pyrochar split file (missing 'format': 'pyrochar-split')")
            return cls(
                name=str(data["name"]),
                train=list(data["train"]),
                validation=list(data["validation"]),
                test=list(data["test"]),
                params=dict(data.get("params", {})),
            )
        except FileNotFoundError:
            raise PyrocharError(f"split file {path} does not exist") from None
        except (ValueError, KeyError, TypeError) as e:
            raise PyrocharError(f"{path}: cannot read split: {e}") from None


def _rng(seed: int, salt: str = "") -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([int(seed), zlib.crc32(salt.encode("utf-8"))]))


def _take(items: Sequence[str], fraction: float, rng: np.random.Generator) -> tuple[list, list]:
    """Shuffle ``items`` and split off round(fraction * n) of them (at least 1 if n > 1)."""
    items = sorted(items)
    n_take = int(round(fraction * len(items)))
    if len(items) > 1:
        n_take = min(max(n_take, 1), len(items) - 1)
    else:
        n_take = 0
    order = rng.permutation(len(items))
    taken = sorted(items[i] for i in order[:n_take])
    rest = sorted(items[i] for i in order[n_take:])
    return rest, taken


def _group(keys: Iterable[str]) -> dict[str, list[str]]:
    by_alphabet: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        by_alphabet.setdefault(key.split("/")[0], []).append(key)
    return by_alphabet


def _carve_validation(train: list[str], seed: int, fraction: float) -> tuple[list, list]:
    train_out, validation = [], []
    for alphabet, keys in _group(train).items():
        rest, taken = _take(keys, fraction, _rng(seed + 1000, "validation/" + alphabet))
        train_out += rest
        validation += taken
    return sorted(train_out), sorted(validation)


def make_split(
    spec: str,
    characters: Iterable[str],
    *,
    evaluation_characters: Iterable[str] = (),
    holdout_alphabets: Sequence[str] | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
) -> Split:
    """Build the split named by ``spec`` over the given character keys.

    ``characters`` are the background-set character keys; ``evaluation_characters``
    the evaluation-set ones (used by ``holdout``). ``spec`` is one of
    ``character:K``, ``alphabet:K``, ``holdout`` or ``all``.
    """
    kind, _, index_text = spec.partition(":")
    background = sorted(set(characters))
    evaluation = sorted(set(evaluation_characters))
    if not background and not evaluation:
        raise PyrocharError("cannot split an empty set of characters")

    if kind in ("character", "alphabet"):
        try:
            index = int(index_text)
            if index < 0:
                raise ValueError
        except ValueError:
            raise PyrocharError(
                f"bad split {spec!r}: expected '{kind}:K' with K a split index such as 0, 1 or 2"
            ) from None
        if kind == "character":
            train, test = [], []
            for alphabet, keys in _group(background).items():
                rest, taken = _take(keys, TEST_FRACTION, _rng(index, "character/" + alphabet))
                train += rest
                test += taken
        else:
            alphabets = sorted(_group(background))
            if len(alphabets) < 2:
                raise PyrocharError(
                    f"an alphabet split needs at least 2 alphabets, the data has {len(alphabets)}"
                )
            keep, held = _take(alphabets, TEST_FRACTION, _rng(index, "alphabet"))
            groups = _group(background)
            train = [k for a in keep for k in groups[a]]
            test = [k for a in held for k in groups[a]]
        train, validation = _carve_validation(train, index, validation_fraction)
        return Split(spec, train, validation, sorted(test), {"kind": kind, "index": index})

    if kind == "holdout":
        if evaluation:
            wanted = list(holdout_alphabets or LAKE2015_EVALUATION_ALPHABETS)
            groups = _group(evaluation)
            missing = [a for a in wanted if a not in groups]
            if missing:
                raise PyrocharError(
                    f"holdout alphabets not found in the evaluation set: {', '.join(missing)}; "
                    f"available: {', '.join(sorted(groups))}"
                )
            train = background
            test = [k for a in wanted for k in groups[a]]
        else:
            if not holdout_alphabets:
                raise PyrocharError(
                    "the data has no evaluation set: name the background alphabets to hold "
                    "out (--holdout-alphabets A,B)"
                )
            groups = _group(background)
            missing = [a for a in holdout_alphabets if a not in groups]
            if missing:
                raise PyrocharError(
                    f"holdout alphabets not found: {', '.join(missing)}; "
                    f"available: {', '.join(sorted(groups))}"
                )
            test = [k for a in holdout_alphabets for k in groups[a]]
            train = [k for k in background if k.split("/")[0] not in set(holdout_alphabets)]
        train, validation = _carve_validation(train, 0, validation_fraction)
        return Split(
            "holdout",
            train,
            validation,
            sorted(test),
            {"kind": "holdout", "alphabets": sorted({k.split("/")[0] for k in test})},
        )

    if kind == "all":
        train, validation = _carve_validation(background + evaluation, 0, validation_fraction)
        return Split("all", train, validation, [], {"kind": "all"})

    raise PyrocharError(f"unknown split {spec!r}: use character:K, alphabet:K, holdout or all")
