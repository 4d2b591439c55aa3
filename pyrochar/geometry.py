"""Strokes as (start, offsets) <-> control points, in torch, batched.

The models see a stroke as its start location (the first point of its evaluated
spline) and the offsets between consecutive control points (REFERENCE.md
section 3). Because each row of the spline basis sums to 1, the first point of
the curve is ``w . cps`` with ``w`` the basis row at the first parameter value,
so control point 0 is recovered exactly as ``start - w . (cps - cps[0])``. For a
uniform cubic B-spline with n >= 2 control points, ``w = (0.8, 0.2, 0, ...)``
(the curve starts 1/5 of the way to the second control point); :mod:`pyrochar.splines`
is the numpy reference and the tests check both agree.
"""

from __future__ import annotations

import torch

from .splines import bspline_basis

# First and last rows of the basis for n >= 2: the curve starts at
# FIRST_ROW . cps[:2] and ends at FIRST_ROW[::-1] . cps[-2:].
_ROW = bspline_basis(2, 2)[0]
FIRST_WEIGHTS = (float(_ROW[0]), float(_ROW[1]))


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
    """The last point of each evaluated spline: controls (N, M, 2), n_controls (N,) -> (N, 2)."""
    last = (n_controls - 1).clamp(min=0)
    before = (n_controls - 2).clamp(min=0)
    rows = torch.arange(controls.shape[0], device=controls.device)
    p_last, p_before = controls[rows, last], controls[rows, before]
    return FIRST_WEIGHTS[0] * p_last + FIRST_WEIGHTS[1] * p_before
