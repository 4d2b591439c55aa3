"""The uniform cubic B-spline of every stroke: the one definition of its basis.

A stroke with ``n`` control points ``cp[0..n-1]`` is evaluated at parameters ``s``
in ``[2, n + 1]``; ``k`` points equally spaced in the parameter are
``s_i = 2 + (n - 1) i / (k - 1)`` (:func:`parameters`; ``s = 2`` for ``k = 1``).
With the cardinal cubic B-spline ``B(t)`` supported on ``[0, 4)`` (``B(1) = B(3)
= 1/6``, ``B(2) = 4/6``), control point ``j`` weighs ``B(s - j)``: only the four
``j = floor(s) - 3 .. floor(s)`` can be non-zero (:func:`piece_weights`). Near both
ends some of those four do not exist (``j`` outside ``[0, n - 1]``), so the weights
are divided by their sum (unclamped knots: the curve starts at ``0.8 cp[0] + 0.2
cp[1]``, not at ``cp[0]``). A single control point is a single point.

:func:`corrected_weights` gives those four weights (numpy or torch); with them
:func:`evaluate` computes the points in torch for a padded batch of strokes (the
renderer, the models' end points), :func:`band` and :func:`basis` give the basis
in numpy, by rows of four weights or as a dense (m, n) matrix, for the
least-squares fits of :mod:`pyrochar.splines`. All of them give the same weights
to the bit (tests/test_bspline.py).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "START_WEIGHTS",
    "at_fraction",
    "band",
    "basis",
    "corrected_weights",
    "evaluate",
    "parameters",
    "piece_weights",
]


def piece_weights(u):
    """Weights of the control points j = f-3, f-2, f-1, f at the parameter s = f + u.

    ``u`` in [0, 1): a numpy array or a torch tensor, any shape; returns four arrays
    of its shape, before the end correction: ``B(u + 3), B(u + 2), B(u + 1), B(u)``.
    """
    u2 = u * u
    u3 = u2 * u
    v = 1.0 - u
    w0 = v * v * v / 6.0  # products, not ** 3: numpy's power rounds differently
    w1 = (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0
    w2 = (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0
    w3 = u3 / 6.0
    return w0, w1, w2, w3


def at_fraction(n, frac):
    """The parameter at a fraction ``frac`` in [0, 1] of a curve of ``n`` control points.

    ``2 + (n - 1) frac``; numpy or torch, broadcasting.
    """
    return 2.0 + (n - 1.0) * frac


def parameters(
    n_cp: torch.Tensor, n_eval: torch.Tensor, k: int, dtype: torch.dtype
) -> torch.Tensor:
    """(B, k) parameters ``s_i = 2 + (n - 1) i / (n_eval - 1)`` of each stroke's points.

    n_cp (B,) control points (>= 1), n_eval (B,) points per stroke (<= k). Columns
    past ``n_eval`` repeat the last parameter; ``n_eval <= 1`` gives ``s = 2``.
    """
    i = torch.arange(k, device=n_cp.device, dtype=dtype).view(1, k)
    ne = n_eval.to(dtype).view(-1, 1)
    frac = torch.where(ne > 1, i / (ne - 1).clamp(min=1), torch.zeros_like(i))
    return at_fraction(n_cp.to(dtype).view(-1, 1), frac.clamp(max=1.0))  # (B, k)


def corrected_weights(s, n):
    """The four non-zero weights at parameters s, with the end correction.

    ``s`` (...) parameters in [2, n + 1] and ``n`` control points (a number or an
    array broadcasting with ``s``), numpy or torch. Returns the weights (four
    arrays like ``s``) of the control points ``j = f - 3 + i``, i = 0..3, where
    ``f = floor(s)`` (returned as floats): those with ``j`` outside ``[0, n - 1]``
    are 0 and the four sum to 1.
    """
    u = s % 1.0
    f = s - u  # floor(s), exactly
    weights = [w * ((f + (i - 3) >= 0) & (f + (i - 3) < n)) for i, w in enumerate(piece_weights(u))]
    total = weights[0] + weights[1] + weights[2] + weights[3]  # > 0
    return [w / total for w in weights], f


def evaluate(cps: torch.Tensor, n_cp: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Points of padded splines at given parameters.

    cps (B, N, D) control points of dimension D, n_cp (B,) real control points
    (>= 1), s (B, K) parameters in [2, n + 1] -> (B, K, D). Rows ``n_cp[b]:`` of
    ``cps[b]`` are never read (they may hold NaN): only the control points of
    :func:`corrected_weights` are gathered.
    """
    b, k = s.shape
    n_max, dim = cps.shape[1:]
    n = n_cp.view(b, 1)  # (B, 1)
    weights, f = corrected_weights(s, n)  # four (B, K), (B, K)
    # Control points with the padding rows zeroed and 3 zero rows on both sides,
    # flattened to (B * (N + 6), D): row j of stroke i is at i * (N + 6) + j + 3.
    keep = torch.arange(n_max, device=cps.device).view(1, n_max, 1) < n.view(b, 1, 1)
    clean = torch.where(keep, cps, torch.zeros_like(cps))  # (B, N, D)
    padded = F.pad(clean, (0, 0, 3, 3)).reshape(-1, dim)  # (B * (N + 6), D)
    base = (torch.arange(b, device=cps.device) * (n_max + 6)).view(b, 1) + f.long()  # (B, K)
    out = None
    for i, w in enumerate(weights):
        g = padded.index_select(0, (base + i).reshape(-1)).view(b, k, dim)  # (B, K, D)
        term = w.unsqueeze(-1) * g
        out = term if out is None else out + term
    return out


def band(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The m points of :func:`basis` ``(n, m)`` by their four weights, in numpy.

    Returns ``(first (m,) int64, weights (m, 4))``: row i of the basis holds
    ``weights[i, k]`` in column ``first[i] + k``; the weights of columns outside
    ``[0, n - 1]`` are 0. O(m) memory, whatever n.
    """
    s = at_fraction(n, np.arange(m) / (m - 1) if m > 1 else np.zeros(1))  # (m,) as parameters()
    weights, f = corrected_weights(s, n)  # four (m,), (m,)
    return f.astype(np.int64) - 3, np.stack(weights, axis=1)


@functools.lru_cache(maxsize=4096)
def basis(n: int, m: int) -> np.ndarray:
    """Row-normalized (m, n) float64 basis: row i evaluates the curve at point i of m.

    ``basis(n, m) @ cp`` are the m points :func:`evaluate` gives at
    :func:`parameters` (``s = linspace(2, n + 1, m)``), with the same weights:
    column j holds the weight of control point j. Cached; the array is read-only.
    """
    n, m = int(n), int(m)
    if n < 1 or m < 1:
        raise ValueError(f"need n >= 1 and m >= 1, got n={n}, m={m}")
    first, weights = band(n, m)  # (m,), (m, 4)
    # Column j + 3 holds control point j: the weights of j outside [0, n - 1] (all 0)
    # land in the three columns on either side, which are cut off.
    a = np.zeros((m, n + 6))
    a[np.arange(m)[:, None], first[:, None] + 3 + np.arange(4)] = weights
    a = np.ascontiguousarray(a[:, 3 : n + 3])  # (m, n)
    a.setflags(write=False)
    return a


# Weights of cp[0] and cp[1] in the first point of a curve of n >= 2 control
# points, (0.8, 0.2); the last point is 0.2 cp[-2] + 0.8 cp[-1].
START_WEIGHTS = tuple(float(w) for w in basis(2, 1)[0])
