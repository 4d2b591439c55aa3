"""The site vocabulary: the four variables every model scores, and their site names.

Every model of the project draws a character as the same variables (docs/model.md,
"Sites"): for each stroke i

- ``loc``: the start of stroke i (2-D, normalized units);
- ``offset``: offset t of stroke i, control point t + 1 minus control point t;
- ``stroke_end``: 1 if stroke i ends after offset t;
- ``char_end``: 1 if the character ends after stroke i.

The per-step program (``CharacterModel.model``) has one sample site per variable,
named ``loc_{i}``, ``offset_{i}_{t}``, ``stroke_end_{i}_{t}``, ``char_end_{i}``. The
teacher-forced program (``CharacterModel.teacher_forced_model``, used by scoring and
training) has one site per variable *kind*, named ``loc``, ``offset``, ``stroke_end``,
``char_end``, whose elements are all the per-step sites of that kind in the batch.
Every site, in both programs, carries in ``msg["infer"]`` the variable kind and the
stroke (and step) index of its elements, so that handlers can address the same
variables in both programs (:mod:`pyrochar.handlers`). The NLL breakdown uses the
same four names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pyro.distributions import TorchDistribution

VARIABLES = ("loc", "offset", "stroke_end", "char_end")
#: the variables indexed by stroke and step (the others by stroke only)
STEP_VARIABLES = ("offset", "stroke_end")


def loc_site(i: int) -> str:
    """Start location of stroke i (2-D, normalized units)."""
    return f"loc_{i}"


def offset_site(i: int, t: int) -> str:
    """Offset t of stroke i: control point t+1 minus control point t."""
    return f"offset_{i}_{t}"


def stroke_end_site(i: int, t: int) -> str:
    """1 if stroke i ends after offset t."""
    return f"stroke_end_{i}_{t}"


def char_end_site(i: int) -> str:
    """1 if the character ends after stroke i."""
    return f"char_end_{i}"


def site_name(variable: str, stroke: int, step: int | None = None) -> str:
    """The per-step site name of one variable: ``site_name("offset", 2, 0) == "offset_2_0"``."""
    return f"{variable}_{stroke}" if step is None else f"{variable}_{stroke}_{step}"


def site_variable(name: str) -> str | None:
    """The variable kind of a site of either program (``"offset_2_0"`` -> ``"offset"``), else None."""
    for v in sorted(VARIABLES, key=len, reverse=True):  # "stroke_end" before a shorter prefix
        if name == v or name.startswith(v + "_"):
            return v
    return None


@dataclass
class TeacherForcedSite:
    """One site of the teacher-forced program, before masking (see ``CharacterModel``).

    ``fn`` has batch shape ``grid``: the plate's dimension first (strokes or
    characters), then the dimensions the site's event runs over (steps, or strokes
    for a plate over characters). ``mask`` (grid) is True on real elements;
    ``stroke`` and ``step`` (long, broadcastable to grid) give each element's stroke
    index i and step index t, so every element is one per-step site ``{variable}_{i}[_{t}]``.
    """

    variable: str
    fn: TorchDistribution
    value: torch.Tensor
    mask: torch.Tensor
    stroke: torch.Tensor
    step: torch.Tensor | None = None


@dataclass
class FlatVariables:
    """The observed values of a dataset's variables, flattened, with their indices."""

    starts: np.ndarray  # (N, 2) the start of every stroke (loc)
    offsets: np.ndarray  # (M, 2) every offset, all strokes one after the other
    stroke_index: np.ndarray  # (N,) i of each start
    step_index: np.ndarray  # (M,) t of each offset
    n_offsets: np.ndarray  # (N,) offsets of each stroke
    n_strokes: np.ndarray  # (D,) strokes of each drawing


def flat_variables(dataset) -> FlatVariables:
    """Every variable of a ``PreparedDataset`` as flat arrays (for closed-form fits)."""
    starts, offsets, steps, n_offsets, n_strokes, stroke_index = [], [], [], [], [], []
    for d in range(len(dataset)):
        strokes = dataset.starts_offsets(d)
        n_strokes.append(len(strokes))
        for i, (start, offs) in enumerate(strokes):
            starts.append(start)
            stroke_index.append(i)
            offsets.append(np.asarray(offs, dtype=np.float64).reshape(-1, 2))
            steps.append(np.arange(len(offs)))
            n_offsets.append(len(offs))
    return FlatVariables(
        np.asarray(starts, dtype=np.float64).reshape(-1, 2),
        np.concatenate(offsets) if offsets else np.zeros((0, 2)),
        np.asarray(stroke_index, dtype=np.int64),
        np.concatenate(steps).astype(np.int64) if steps else np.zeros(0, np.int64),
        np.asarray(n_offsets, dtype=np.int64),
        np.asarray(n_strokes, dtype=np.int64),
    )
