"""One B-spline basis: the numpy basis, the torch evaluator and the stroke geometry agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from pyrochar import bspline, geometry, splines


def random_controls(n_strokes: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(k, 2)) for k in rng.integers(1, 12, size=n_strokes)]


def test_piece_weights_are_the_cardinal_bspline_in_numpy_and_torch_alike():
    u = np.random.default_rng(0).random(1000)
    cardinal = BSpline.basis_element(np.arange(5.0), extrapolate=False)
    for i, (w_np, w_torch) in enumerate(
        zip(bspline.piece_weights(u), bspline.piece_weights(torch.from_numpy(u)), strict=True)
    ):
        np.testing.assert_array_equal(w_np, w_torch.numpy())  # the same bits
        np.testing.assert_allclose(w_np, cardinal(u + 3 - i), atol=1e-14)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 50])
@pytest.mark.parametrize("m", [1, 2, 5, 61, 200])
def test_numpy_basis_holds_the_weights_of_the_torch_evaluator(n, m):
    n_cp, n_eval = torch.tensor([n]), torch.tensor([m])
    s = bspline.parameters(n_cp, n_eval, m, torch.float64)  # (1, m)
    identity = torch.eye(n, dtype=torch.float64).unsqueeze(0)  # n control points in R^n
    np.testing.assert_array_equal(
        bspline.basis(n, m), bspline.evaluate(identity, n_cp, s)[0].numpy()
    )
    expected = np.linspace(2, n + 1, m) if m > 1 else [2.0]
    np.testing.assert_allclose(s[0].numpy(), expected, rtol=0, atol=1e-13)


def test_splines_and_the_renderer_use_the_one_basis():
    assert splines.bspline_basis is bspline.basis
    strokes = random_controls(40, seed=1)
    cps, n_cp = torch.zeros(40, 11, 2, dtype=torch.float64), torch.tensor([len(c) for c in strokes])
    for i, c in enumerate(strokes):
        cps[i, : len(c)] = torch.from_numpy(c)
        cps[i, len(c) :] = float("nan")  # padding is never read
    from pyrochar.render import evaluate_splines_torch

    pts, mask = evaluate_splines_torch(cps, n_cp, 23)
    assert mask.all()
    for i, c in enumerate(strokes):
        np.testing.assert_allclose(
            pts[i].numpy(), bspline.basis(len(c), 23) @ c, rtol=0, atol=1e-13
        )


def test_stroke_end_points_are_the_last_points_of_the_curves():
    strokes = random_controls(30, seed=2)
    controls = torch.full((30, 11, 2), float("nan"), dtype=torch.float64)
    for i, c in enumerate(strokes):
        controls[i, : len(c)] = torch.from_numpy(c)
    n = torch.tensor([len(c) for c in strokes])
    ends = geometry.stroke_end_points(controls, n)  # (30, 2)
    for i, c in enumerate(strokes):
        np.testing.assert_allclose(
            ends[i].numpy(), (bspline.basis(len(c), 2) @ c)[-1], rtol=0, atol=1e-14
        )
    assert bspline.START_WEIGHTS == pytest.approx((0.8, 0.2), abs=1e-15)


def test_controls_from_start_offsets_inverts_the_numpy_split():
    strokes = random_controls(30, seed=3)
    t_max = max(len(c) for c in strokes) - 1
    starts, offsets = (
        torch.zeros(30, 2, dtype=torch.float64),
        torch.zeros(30, t_max, 2, dtype=torch.float64),
    )
    for i, c in enumerate(strokes):
        start, off = splines.stroke_to_start_offsets(c)
        starts[i], offsets[i, : len(off)] = torch.from_numpy(start), torch.from_numpy(off)
        np.testing.assert_allclose(start, (bspline.basis(len(c), 1) @ c)[0], rtol=0, atol=1e-14)
    n_offsets = torch.tensor([len(c) - 1 for c in strokes])
    controls = geometry.controls_from_start_offsets(starts, offsets, n_offsets)  # (30, T + 1, 2)
    for i, c in enumerate(strokes):
        np.testing.assert_allclose(controls[i, : len(c)].numpy(), c, rtol=0, atol=1e-12)
