"""Strokes as (start, offsets) <-> control points, in torch, batched.

The models see a stroke as its start location (the first point of its evaluated
spline) and the offsets between consecutive control points (the numpy version
for one stroke is :func:`pyrochar.splines.stroke_to_start_offsets`). Because the
weights of the spline basis sum to 1, the first point of the curve is ``w . cps``
with ``w`` the weights at the first parameter value, so control point 0 is
recovered exactly as ``start - w . (cps - cps[0])``. For n >= 2 control points
``w = (0.8, 0.2, 0, ...)`` (:data:`pyrochar.bspline.START_WEIGHTS`: the curve starts
1/5 of the way to the second control point).
"""

from __future__ import annotations

import torch

from . import bspline

# Weights of cp[0] and cp[1] in the first point of a curve of n >= 2 control points.
FIRST_WEIGHTS = bspline.START_WEIGHTS


def controls_from_start_offsets(
    start: torch.Tensor, offsets: torch.Tensor, n_offsets: torch.Tensor
) -> torch.Tensor:
    """start (N, 2), offsets (N, T, 2), n_offsets (N,) -> control points (N, T + 1, 2).

    Offsets past ``n_offsets`` are ignored (padding may hold any finite value);
    the control points past ``n_offsets + 1`` repeat the last real one.
    """
    t_max = offsets.shape[1]
    steps = torch.arange(t_max, device=offsets.device)
    real = (steps < n_offsets.unsqueeze(-1)).unsqueeze(-1)  # (N, T, 1)
    offsets = torch.where(real, offsets, torch.zeros((), dtype=offsets.dtype, device=offsets.device))
    relative = torch.cat([offsets.new_zeros(offsets.shape[0], 1, 2), offsets.cumsum(1)], 1)
    # With one control point the curve is that point; with >= 2 it starts at
    # w0 * cp0 + w1 * cp1 = cp0 + w1 * offset0.
    has_two = (n_offsets >= 1).unsqueeze(-1)
    first_offset = relative[:, 1] if t_max > 0 else relative[:, 0]
    cp0 = start - torch.where(has_two, FIRST_WEIGHTS[1] * first_offset, torch.zeros_like(start))
    return cp0.unsqueeze(1) + relative  # (N, T + 1, 2)


def stroke_end_points(controls: torch.Tensor, n_controls: torch.Tensor) -> torch.Tensor:
    """The last point of each evaluated spline: controls (N, M, 2), n_controls (N,) -> (N, 2).

    The curve at its last parameter ``s = n + 1`` (``0.2 cp[-2] + 0.8 cp[-1]`` for
    n >= 2); a row with ``n_controls == 0`` gives its first control point.
    """
    n = n_controls.clamp(min=1)  # (N,)
    last = bspline.at_fraction(n.to(controls.dtype), 1.0).unsqueeze(-1)  # (N, 1)
    return bspline.evaluate(controls, n, last).squeeze(1)  # (N, 2)
