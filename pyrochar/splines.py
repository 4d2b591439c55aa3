"""Uniform cubic B-splines and the minimal-spline preprocessing of Omniglot strokes.

Everything here is plain numpy on float64 arrays of 2-D points. The conventions
are those of docs/data.md (raw files, preprocessing, what the models see):

Coordinates
    Omniglot "motor" coordinates are pixels of the 105 x 105 image with x to the
    right and y negated (image row = -y). The models work in *normalized* units,
    ``p_norm = (p_motor - CENTER) / SCALE`` with ``CENTER = (50, -50)`` and
    ``SCALE = 20`` (units of 20 px). All functions below are linear in the points,
    so they work in whatever units they are given, unless a docstring says
    otherwise (the thresholds of the preprocessing are in motor pixels).

Basis
    ``bspline_basis(n, m)`` is the (m, n) matrix of a uniform cubic B-spline with
    ``n`` control points evaluated at ``m`` parameter values
    ``s = linspace(2, n + 1, m)``: :func:`pyrochar.bspline.basis`, the one
    definition of the basis (rows divided by their sums: the curve starts at
    ``0.8 * cp[0] + 0.2 * cp[1]``, not at ``cp[0]``; a single control point is a
    single point).

Resampling
    ``resample_by_arclength`` first drops every point closer than ``1e-4`` px to its
    predecessor (repeated until no such pair is left, so the cumulative arc length
    is strictly increasing), then returns ``m = max(2, round(L / spacing))`` points
    equally spaced in arc length over ``[0, L]``, both endpoints included (``L`` the
    path length after dropping; ``round`` is numpy's round-half-to-even). The
    point count follows the BPL/pyBPL convention of the authors' code. On the 6
    shared alphabets it gives the statistics in docs/data.md (``pyrochar data stats``: 9,382
    strokes, 47,495 control points, mean 5.06, median 4, max 32); the alternative
    ``round(L / spacing) + 1`` gives 47,503 control points, the same statistics to
    the digits quoted. A stroke that collapses to a single point gives two
    copies of it. At most ``MAX_RESAMPLED_POINTS = 2048`` points are returned: a
    stroke with more than 2,048 px of path (Omniglot's longest has 446) is sampled
    every ``L / 2048`` px instead, so fitting it takes bounded memory and time.

Minimal splines
    ``fit_minimal_spline`` returns the least-squares fit with the smallest
    ``n = 1, 2, ..., 50`` whose mean squared residual (sum over the m points of
    the squared x and y errors, divided by m) is below 0.7 px^2; the n = 50 fit if
    none is. Least squares is solved with a pseudo-inverse per (n, m), cached up to
    ``FIT_CACHE_BYTES``, for m <= 512 (every Omniglot stroke), and beyond with the
    normal equations accumulated from the basis stored by its 4 non-zeros per row:
    O(m) memory and time per n (m <= 2048) whatever the stroke.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

import numpy as np

from . import bspline
from .bspline import basis as bspline_basis

__all__ = [
    "CENTER",
    "SCALE",
    "MIN_STROKE_LENGTH",
    "RESIDUAL_THRESHOLD",
    "MAX_CONTROL_POINTS",
    "RESAMPLE_SPACING",
    "MAX_RESAMPLED_POINTS",
    "SPLINE_GRAIN",
    "MIN_EVAL_POINTS",
    "MAX_EVAL_POINTS",
    "to_normalized",
    "to_motor",
    "path_length",
    "resample_by_arclength",
    "bspline_basis",
    "fit_spline",
    "fit_minimal_spline",
    "n_eval_points",
    "evaluate_spline",
    "start_weights",
    "stroke_to_start_offsets",
    "start_offsets_to_stroke",
    "preprocess_drawing",
]

CENTER = np.array([50.0, -50.0])
CENTER.setflags(write=False)
SCALE = 20.0
MIN_STROKE_LENGTH = 20.0  # px, raw path length under which a stroke is dropped
RESIDUAL_THRESHOLD = 0.7  # px^2, mean squared residual a minimal spline must beat
MAX_CONTROL_POINTS = 50
RESAMPLE_SPACING = 1.0  # px
DUPLICATE_TOLERANCE = 1e-4  # px
SPLINE_GRAIN = 1.5  # px of arc length per evaluated point when drawing a spline
MIN_EVAL_POINTS = 10
MAX_EVAL_POINTS = 200
#: Resampled points of one stroke at most (Omniglot's longest stroke needs 446).
MAX_RESAMPLED_POINTS = 2048


# --------------------------------------------------------------------------- units


def to_normalized(p_motor: np.ndarray) -> np.ndarray:
    """Motor pixels -> normalized units: ``(p - (50, -50)) / 20``. Shape (..., 2) kept."""
    p = np.asarray(p_motor, dtype=np.float64)
    return (p - CENTER) / SCALE


def to_motor(p_norm: np.ndarray) -> np.ndarray:
    """Normalized units -> motor pixels: ``p * 20 + (50, -50)``. Shape (..., 2) kept."""
    p = np.asarray(p_norm, dtype=np.float64)
    return p * SCALE + CENTER


# ---------------------------------------------------------------------- resampling


def _xy(points: np.ndarray) -> np.ndarray:
    """The (k, 2) float64 x, y columns of a (k, 2) or (k, 3) stroke."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"expected a (k, 2) or (k, 3) array of points, got shape {p.shape}")
    return p[:, :2]


def path_length(xy: np.ndarray) -> float:
    """Sum of the distances between consecutive points of a (k, 2|3) stroke (0 if k < 2)."""
    p = _xy(xy)
    if len(p) < 2:
        return 0.0
    return float(_segment_lengths(p).sum())


def _segment_lengths(p: np.ndarray) -> np.ndarray:
    """(k, 2) points -> (k - 1,) distances; inf (not a warning) where their squares overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt((np.diff(p, axis=0) ** 2).sum(axis=1))


def _check_finite(value: float) -> None:
    """ValueError unless ``value`` (a sum over a stroke's coordinates) is finite."""
    if not math.isfinite(value):
        raise ValueError("cannot resample a stroke with non-finite or overflowing coordinates")


def resample_by_arclength(
    xy: np.ndarray,
    spacing: float = RESAMPLE_SPACING,
    max_points: int = MAX_RESAMPLED_POINTS,
) -> np.ndarray:
    """Resample a stroke uniformly by arc length -> (m, 2).

    Points closer than 1e-4 px to their predecessor are dropped first (repeatedly),
    then ``m = min(max(2, round(L / spacing)), max_points)`` points are placed at
    equal arc-length steps over ``[0, L]``, both endpoints included: a stroke longer
    than ``max_points`` spacings is sampled more coarsely, which bounds the memory
    and time of fitting it. A stroke that collapses to one point gives two copies of
    that point. Raises ValueError for an empty stroke or non-finite coordinates or
    length.
    """
    p = _xy(xy)  # (k, 2)
    if len(p) == 0:
        raise ValueError("cannot resample an empty stroke")
    seg = _segment_lengths(p)  # (k-1,)
    while len(seg) and (seg < DUPLICATE_TOLERANCE).any():
        keep = np.ones(len(p), dtype=bool)
        keep[1:] = seg >= DUPLICATE_TOLERANCE
        p = p[keep]
        seg = _segment_lengths(p)
    if len(p) == 1:
        _check_finite(float(p.sum()))
        return np.repeat(p, 2, axis=0)  # (2, 2)
    cum = np.concatenate([[0.0], np.cumsum(seg)])  # (k,), strictly increasing
    total = cum[-1]
    _check_finite(total)  # NaN, infinite or overflowing coordinates make it non-finite
    m = int(min(max(2.0, np.round(total / spacing)), max_points))  # float min: no overflow
    q = np.linspace(0.0, total, m)  # (m,)
    out = np.empty((m, 2))
    out[:, 0] = np.interp(q, cum, p[:, 0])
    out[:, 1] = np.interp(q, cum, p[:, 1])
    out[-1] = p[-1]  # exact endpoints (interp is exact there already, up to rounding)
    out[0] = p[0]
    return out


# --------------------------------------------------------------------------- basis


#: Fits of trajectories longer than this many points use the normal equations on the
#: banded basis; shorter ones (every Omniglot stroke) a cached pseudo-inverse.
DENSE_FIT_MAX_POINTS = 512
#: Bytes of (basis, pseudo-inverse) pairs the short-trajectory fit keeps cached.
FIT_CACHE_BYTES = 192 << 20

# The basis without its own cache: the fit keeps the matrices it needs in _fit_cache,
# whose size is bounded in bytes.
_basis_uncached = getattr(bspline_basis, "__wrapped__", bspline_basis)


class _FitMatrixCache:
    """Least-recently-used (basis (m, n), pseudo-inverse (n, m)) pairs, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: collections.OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = (
            collections.OrderedDict()
        )

    def get(self, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The read-only basis and pseudo-inverse for ``(n, m)``, computed on a miss."""
        key = (n, m)
        pair = self._items.get(key)
        if pair is not None:
            self._items.move_to_end(key)
            return pair
        basis = _basis_uncached(n, m)  # (m, n), a new read-only array
        pinv = np.linalg.pinv(basis)  # (n, m)
        pinv.setflags(write=False)
        self._items[key] = (basis, pinv)
        self.nbytes += basis.nbytes + pinv.nbytes
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            _, (b, p) = self._items.popitem(last=False)
            self.nbytes -= b.nbytes + p.nbytes
        return basis, pinv


_fit_cache = _FitMatrixCache(FIT_CACHE_BYTES)


# ----------------------------------------------------------------------------- fit


def _banded_basis(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``bspline_basis(n, m)`` stored by rows as its at most 4 non-zero entries.

    Returns ``(cols (m, 4) int64, weights (m, 4))``: row i of the basis holds
    ``weights[i, k]`` in column ``cols[i, k]`` (entries of columns outside
    ``0..n-1`` have weight 0), so memory and time are O(m) instead of O(m n).
    """
    first, weights = bspline.band(n, m)  # (m,), (m, 4)
    cols = first[:, None] + np.arange(4)  # (m, 4)
    return np.clip(cols, 0, n - 1), weights


def _fit_banded(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of an (m, 2) trajectory on the n-point basis via the normal
    equations, accumulated from the banded basis; returns (control points (n, 2),
    fitted points (m, 2)). Needs m >= n samples spread over the n columns."""
    cols, w = _banded_basis(n, len(p))  # (m, 4), (m, 4)
    pair = (cols[:, :, None] * n + cols[:, None, :]).ravel()  # (m * 16,) flat (j, k)
    gram = np.bincount(pair, (w[:, :, None] * w[:, None, :]).ravel(), n * n).reshape(n, n)
    rhs = np.stack(  # (n, 2): basis^T p
        [np.bincount(cols.ravel(), (w * p[:, d : d + 1]).ravel(), n) for d in range(2)], axis=1
    )
    cp = np.linalg.solve(gram, rhs)  # (n, 2)
    return cp, np.einsum("ik,ikd->id", w, cp[cols])  # (m, 2)


def fit_spline(xy: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Least-squares fit of n control points to an (m, 2) trajectory.

    Returns ``(control_points (n, 2), mse)`` with ``mse`` the sum over the m points
    of the squared x and y errors, divided by m (computed here, also when m <= n).
    The trajectory is assumed to be sampled at ``s = linspace(2, n + 1, m)``.
    Up to ``DENSE_FIT_MAX_POINTS`` points the fit uses a cached pseudo-inverse;
    beyond, the normal equations on the banded basis (m > 512 >= 10 n samples per
    control point keep them well conditioned), in O(m) memory and time.
    """
    p = _xy(xy)  # (m, 2)
    m = len(p)
    if m <= DENSE_FIT_MAX_POINTS:
        basis, pinv = _fit_cache.get(n, m)  # (m, n), (n, m)
        cp = pinv @ p  # (n, 2)
        fitted = basis @ cp  # (m, 2)
    else:
        cp, fitted = _fit_banded(p, n)
    r = fitted - p  # (m, 2)
    return cp, float(np.einsum("ij,ij->", r, r) / m)


def fit_minimal_spline(
    xy: np.ndarray,
    threshold: float = RESIDUAL_THRESHOLD,
    max_control_points: int = MAX_CONTROL_POINTS,
) -> np.ndarray:
    """Control points (n, 2) of the fit with the smallest n whose mse < threshold.

    Linear search n = 1, 2, ..., max_control_points; the last fit is returned when
    none passes. ``xy`` should already be resampled (see ``resample_by_arclength``).
    """
    p = _xy(xy)
    cp = p[:1]
    for n in range(1, max_control_points + 1):
        cp, mse = fit_spline(p, n)
        if mse < threshold:
            break
    return cp


# ------------------------------------------------------------------------ evaluate


def _polyline_length(pts: np.ndarray) -> float:
    return float(np.sqrt((np.diff(pts, axis=0) ** 2).sum(axis=1)).sum())


def n_eval_points(
    control_points: np.ndarray,
    grain: float = SPLINE_GRAIN,
    lo: int = MIN_EVAL_POINTS,
    hi: int = MAX_EVAL_POINTS,
) -> int:
    """Number of points to draw a spline with: ``ceil(L / grain)`` clamped to [lo, hi].

    ``L`` is the length of the curve evaluated at 200 points (in the units of the
    control points, so pass motor pixels for the default grain of 1.5 px).
    """
    cp = _xy(control_points)
    pts = bspline_basis(len(cp), MAX_EVAL_POINTS) @ cp  # (200, 2)
    k = math.ceil(_polyline_length(pts) / grain)
    return int(min(max(k, lo), hi))


def evaluate_spline(control_points: np.ndarray, n_points: int | None = None) -> np.ndarray:
    """Evaluate a spline at ``n_points`` parameter values -> (k, 2).

    With ``n_points=None`` about one point per 1.5 units of curve length, clamped to
    10..200 points (``n_eval_points``; meant for motor pixels).
    """
    cp = _xy(control_points)  # (n, 2)
    k = n_eval_points(cp) if n_points is None else int(n_points)
    return bspline_basis(len(cp), k) @ cp  # (k, 2)


# ---------------------------------------------------------------- start + offsets


def start_weights(n: int) -> np.ndarray:
    """(n,) weights of the control points in the first point of the curve (s = 2)."""
    return bspline_basis(n, 1)[0]


def stroke_to_start_offsets(control_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Control points (n, 2) -> (start (2,), offsets (n-1, 2)).

    ``start`` is the first point of the evaluated spline (``0.8 cp[0] + 0.2 cp[1]``
    for n >= 2, ``cp[0]`` for n = 1); ``offsets[i] = cp[i+1] - cp[i]``. The models
    draw every stroke with at least one offset, so a single control point (a dot)
    is the dot it draws: two coincident control points, one zero offset.
    """
    cp = _xy(control_points)
    if len(cp) == 1:
        cp = np.concatenate([cp, cp])  # a dot: (2, 2), start cp[0], offset (0, 0)
    start = start_weights(len(cp)) @ cp  # (2,)
    return start, np.diff(cp, axis=0)


def start_offsets_to_stroke(start: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`stroke_to_start_offsets` -> control points (n, 2)."""
    start = np.asarray(start, dtype=np.float64).reshape(2)
    off = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)  # (n-1, 2)
    rel = np.concatenate([np.zeros((1, 2)), np.cumsum(off, axis=0)])  # (n, 2), rel[0] = 0
    cp0 = start - start_weights(len(rel)) @ rel  # rows of the basis sum to 1
    return cp0 + rel


# ------------------------------------------------------------------- preprocessing


def preprocess_drawing(
    strokes: Sequence[np.ndarray],
    min_length: float = MIN_STROKE_LENGTH,
) -> list[np.ndarray]:
    """Raw strokes (k, 2|3) in motor px -> minimal-spline control points (n_i, 2) in px.

    Strokes whose raw path length is under ``min_length`` px are dropped; the rest
    are resampled at 1 px and fitted with :func:`fit_minimal_spline`. Returns [] when
    no stroke is left.
    """
    out = []
    for stroke in strokes:
        p = _xy(stroke)
        if path_length(p) < min_length:
            continue
        out.append(fit_minimal_spline(resample_by_arclength(p)))
    return out
