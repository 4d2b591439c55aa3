"""What the server computes for a drawing, as JSON-ready dicts (no web code here).

Each function takes a model and raw strokes ([x, y(, t)] points in motor units, as
the page sends them), preprocesses them as ``pyrochar score`` does (strokes shorter
than 20 px are dropped, the others fitted with minimal splines) and returns the
response body of one endpoint. Drawings the model cannot score (beyond its caps)
raise :class:`~pyrochar.models.base.CapsExceeded` with one line.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import splines
from ..api import controls_to_drawings
from ..models.base import CapsExceeded, evaluating
from ..models.batch import CharacterBatch
from ..models.sites import VARIABLES
from ..predict import FRAME, Grid, next_point_prediction, next_stroke_prediction
from ..scoring import log_likelihood

#: decimals of the coordinates sent back (motor px: a hundredth of a pixel)
DECIMALS = 2


def as_arrays(strokes: list[list[list[float]]]) -> list[np.ndarray]:
    """Strokes as lists of [x, y] or [x, y, t] -> (k, 3) float64 arrays (t = 0 if absent)."""
    out = []
    for s in strokes:
        a = np.zeros((len(s), 3))
        for j, p in enumerate(s):
            a[j, : len(p)] = p
        out.append(a)
    return out


def fitted(model, strokes: list[np.ndarray]) -> tuple[list[int], list[np.ndarray]]:
    """-> (indices of the strokes kept (>= 20 px), their control points in normalized units).

    Raises CapsExceeded (one line) if the model cannot draw them; fitting stops at the
    first stroke beyond the model's stroke cap, so a drawing of many strokes costs no more.
    """
    kept, controls = [], []
    for i, s in enumerate(strokes):
        cps = splines.preprocess_drawing([s])
        if cps:
            kept.append(i)
            controls.append(splines.to_normalized(cps[0]))
        longest = max((len(c) - 1 for c in controls), default=0)
        problem = model.caps_problem(len(controls), longest)
        if problem:
            raise CapsExceeded(f"the drawing has {problem}; undo a stroke")
    return kept, controls


def polylines(controls: list[np.ndarray]) -> list[list[list[float]]]:
    """Control points per stroke (normalized) -> the splines as motor polylines [[x, y], ...]."""
    drawing = controls_to_drawings([controls])[0]
    return [np.round(s[:, :2], DECIMALS).tolist() for s in drawing.strokes]


def _rounded(values: np.ndarray, digits: int = 4) -> list:
    """A non-negative array as nested lists, rounded to ``digits`` significant digits of
    its maximum (smaller values keep fewer: a heat map needs no more)."""
    top = float(values.max()) if values.size else 0.0
    if not top > 0:
        return np.zeros_like(values).tolist()
    decimals = digits - 1 - int(np.floor(np.log10(top)))
    return np.round(values, decimals).tolist()


def finite(v: float) -> float | None:
    """``v`` as a float, or None when it is not finite (JSON has no inf/NaN)."""
    v = float(v)
    return v if np.isfinite(v) else None


def read(model, strokes: list[np.ndarray], grid: Grid = FRAME) -> dict:
    """The live reading of the strokes drawn so far (``POST /api/read``'s body)."""
    kept, controls = fitted(model, strokes)  # the preprocessing of `pyrochar score`
    pred = next_stroke_prediction(model, controls, grid)
    per_stroke = [{"nll": finite(-sum(lp.values())), **{k: finite(-v) for k, v in lp.items()}}
                  for lp in pred.stroke_log_probs]
    nll, breakdown = None, dict.fromkeys(VARIABLES)
    if controls:
        # The NLL of the drawing as a complete character, from the same conditioned run
        # (its sites' log-probs, the last char_end at "ends"): equal to `pyrochar score`
        # (tests/test_serve_api.py checks 1e-4), without a second pass of the model.
        nll = finite(-pred.log_prob)
        breakdown = {k: finite(-sum(lp[k] for lp in pred.stroke_log_probs)) for k in VARIABLES}
    return {"nll": nll, "breakdown": breakdown, "per_stroke": per_stroke, "kept": kept,
            "splines": polylines(controls), "next_start": heat_map(grid, pred.density),
            "p_end": pred.p_end}


def heat_map(grid: Grid, density: np.ndarray | None) -> dict | None:
    """A density on a grid as the JSON heat map of the API (None stays None)."""
    if density is None:
        return None
    return {"size": grid.size, "x0": grid.x0, "y0": grid.y0, "x1": grid.x1, "y1": grid.y1,
            "density": _rounded(density), "max": float(density.max()), "units": "per square motor px"}


def next_point(model, strokes: list[np.ndarray], stroke: np.ndarray, grid: Grid = FRAME) -> dict:
    """While ``stroke`` is drawn after ``strokes``: its fitted control points and the
    density of the next one (``POST /api/next_point``'s body); nothing before 20 px."""
    _, controls = fitted(model, strokes)
    cps = splines.preprocess_drawing([stroke])
    if not cps:
        return {"control_points": [], "next_point": None}
    pred = next_point_prediction(model, controls, splines.to_normalized(cps[0]), grid)
    return {"control_points": np.round(cps[0], DECIMALS).tolist(),
            "next_point": heat_map(grid, pred.density)}


@torch.no_grad()
def nlls(model, characters: list[list[np.ndarray]]) -> list[float]:
    """NLL (nats) of complete characters given as control points per stroke (normalized)."""
    with evaluating(model):
        batch = model.prepare_batch(CharacterBatch.from_control_points(characters).to(model.device))
        total, _ = log_likelihood(model, batch)
    return [finite(v) for v in (-total).cpu().double().tolist()]


def complete(model, strokes: list[np.ndarray], n: int, temperature: float, seed: int | None) -> dict:
    """n completions of the strokes drawn so far (``POST /api/complete``'s body)."""
    from ..api import complete_controls

    _, controls = fitted(model, strokes)
    if not controls:
        raise ValueError("draw at least one stroke of 20 px or more to complete")
    chars = complete_controls(model, controls, len(controls), 0, n, temperature, seed)
    return {"completions": [{"strokes": polylines(c), "n_given": len(controls), "nll": v}
                            for c, v in zip(chars, nlls(model, chars), strict=True)]}


def sample(model, n: int, temperature: float, seed: int | None) -> dict:
    """n new characters (``POST /api/sample``'s body)."""
    from ..sampling import sample_characters

    chars = sample_characters(model, n, temperature=temperature, seed=seed)
    return {"samples": [{"strokes": polylines(c), "nll": v}
                        for c, v in zip(chars, nlls(model, chars), strict=True)]}
