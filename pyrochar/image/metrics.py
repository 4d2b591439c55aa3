"""How good a parse is, against the image and the strokes it came from.

Three measures (docs/parsing.md, benchmarks/bench_parse.py):

* :func:`ink_f1` (of :func:`render_ink`, a parse as the image model draws it): F1 between two boolean ink images, ``2 |A and B| / (|A| + |B|)``
  (the harmonic mean of precision and recall of the ink pixels; 1.0 for two blank
  images, 0.0 when exactly one is blank).
* :func:`trajectory_mhd`: the modified Hausdorff distance (Dubuisson & Jain 1994) in
  pixels between the trajectories of two drawings: each drawing's splines are
  sampled every ``spacing`` px of arc length (all strokes pooled into one point
  set, so stroke order, direction and splits do not count), and the distance is the
  larger of the two mean nearest-neighbour distances, A to B and B to A.
* :func:`render_ink`: a parse's ink: the image model's probabilities of ink
  (:func:`pyrochar.image.render.render_probs`) at the parse's blur and eps, above
  ``threshold`` (default 0.5: the pixels where ink is the likelier value).
* :func:`true_parse`: the true strokes of an Omniglot drawing as a parse, i.e. as a
  type in the project's normalized units: the minimal splines of the project's
  preprocessing (:func:`pyrochar.splines.preprocess_drawing`; strokes under 20 px of
  path are dropped), in the drawing's stroke order and direction.

Strokes are lists of (n_i, 2) control-point arrays in NORMALIZED units
(``p_norm = (p_motor - (50, -50)) / 20``), as every model and the parser take them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyrochar import bspline, splines
from pyrochar.data.drawing import Drawing

__all__ = [
    "INK_THRESHOLD",
    "render_ink",
    "ink_f1",
    "trajectory_points",
    "modified_hausdorff",
    "trajectory_mhd",
    "true_parse",
]

#: A rendered pixel is ink when its probability of ink is above this.
INK_THRESHOLD = 0.5
#: Points at which a spline is evaluated before resampling it by arc length.
CURVE_PROBE_POINTS = 200
#: Nearest-neighbour distances are computed this many rows of A at a time (memory bound).
_NN_CHUNK = 1024


def render_ink(
    strokes: Sequence[np.ndarray], blur: float, eps: float, threshold: float = INK_THRESHOLD
) -> np.ndarray:
    """The ink of one drawing as the image model renders it -> (105, 105) bool.

    ``strokes``: (n_i, 2) control points in normalized units (a parse's token
    strokes); ``blur`` (px) and ``eps`` as in :func:`pyrochar.image.render.render_probs`.
    A pixel is ink when its probability is above ``threshold``.
    """
    import torch

    from .refine import parse_tensors
    from .render import render_probs

    cps, n_cp = parse_tensors([list(strokes)])  # (1, S, P, 2), (1, S)
    with torch.no_grad():
        probs = render_probs(cps, n_cp, torch.tensor([float(blur)]), torch.tensor([float(eps)]))
    return (probs[0] > threshold).cpu().numpy()  # (105, 105)


def ink_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """F1 of the ink pixels of ``pred`` against ``true``: two boolean arrays of one shape.

    ``2 |pred & true| / (|pred| + |true|)``; 1.0 when both are blank.
    """
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(true, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"ink_f1 needs two images of one shape, got {p.shape} and {t.shape}")
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((p & t).sum()) / total


def trajectory_points(strokes: Sequence[np.ndarray], spacing: float = 1.0) -> np.ndarray:
    """Points along a drawing's splines, every ``spacing`` motor px of arc length -> (P, 2) px.

    ``strokes``: (n_i, 2) control points in normalized units. Each spline is
    evaluated at 200 parameter values and resampled by arc length
    (:func:`pyrochar.splines.resample_by_arclength`, both ends kept; a dot gives its
    point twice). Returns motor pixels (x, y); an empty drawing gives (0, 2).
    """
    out = [np.zeros((0, 2))]
    for cp in strokes:
        motor = splines.to_motor(np.asarray(cp, dtype=np.float64).reshape(-1, 2))  # (n, 2) px
        curve = bspline.basis(len(motor), CURVE_PROBE_POINTS) @ motor  # (200, 2)
        out.append(splines.resample_by_arclength(curve, spacing=spacing))
    return np.concatenate(out)


def _mean_nearest(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the points of a (P, 2) of the distance to the nearest point of b (Q, 2)."""
    nearest = np.empty(len(a))
    for i in range(0, len(a), _NN_CHUNK):
        d2 = ((a[i : i + _NN_CHUNK, None, :] - b[None, :, :]) ** 2).sum(-1)  # (chunk, Q)
        nearest[i : i + _NN_CHUNK] = np.sqrt(d2.min(axis=1))
    return float(nearest.mean())


def modified_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Modified Hausdorff distance between two point sets (P, 2) and (Q, 2).

    ``max(mean_a min_b |a - b|, mean_b min_a |a - b|)``. Raises ValueError when a set
    is empty (the distance is undefined).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("the modified Hausdorff distance needs two non-empty point sets")
    return max(_mean_nearest(a, b), _mean_nearest(b, a))


def trajectory_mhd(
    strokes_a: Sequence[np.ndarray], strokes_b: Sequence[np.ndarray], spacing: float = 1.0
) -> float:
    """Modified Hausdorff distance in px between the trajectories of two drawings.

    Both are lists of (n_i, 2) normalized control points; see :func:`trajectory_points`.
    """
    return modified_hausdorff(
        trajectory_points(strokes_a, spacing), trajectory_points(strokes_b, spacing)
    )


def true_parse(drawing: Drawing | Sequence[np.ndarray]) -> list[np.ndarray]:
    """The true strokes of a drawing as a parse: minimal splines, normalized units.

    ``drawing``: a :class:`~pyrochar.data.drawing.Drawing` or its raw strokes
    ((k, 2|3) motor px). Returns one (n_i, 2) array per stroke that the project's
    preprocessing keeps, in the drawing's order and direction ([] when none is left).
    """
    strokes = drawing.strokes if isinstance(drawing, Drawing) else drawing
    return [splines.to_normalized(cp) for cp in splines.preprocess_drawing(strokes)]
