"""Tests of pyrochar.image.metrics: ink F1, trajectory MHD and the true strokes as a parse."""

from __future__ import annotations

import numpy as np
import pytest

from pyrochar import splines
from pyrochar.data.drawing import Drawing
from pyrochar.image.metrics import (
    ink_f1,
    modified_hausdorff,
    render_ink,
    trajectory_mhd,
    trajectory_points,
    true_parse,
)


def norm(points_px) -> np.ndarray:
    """Motor px control points -> normalized units."""
    return splines.to_normalized(np.asarray(points_px, dtype=np.float64))


def horizontal(y: float, x0: float = 10.0, x1: float = 70.0) -> np.ndarray:
    """A straight spline from about x0 to x1 at height y (collinear, evenly spaced points)."""
    return norm([[x, y] for x in np.linspace(x0, x1, 4)])


# ---------------------------------------------------------------------------- ink F1


def test_ink_f1_of_hand_made_images():
    true = np.zeros((5, 5), dtype=bool)
    true[1, 0:6] = True  # 5 pixels (row 1)
    true[2, 0] = True  # 6 pixels
    pred = np.zeros((5, 5), dtype=bool)
    pred[1, 0:3] = True  # 3 of them
    pred[4, 4] = True  # and one wrong: 4 pixels
    assert ink_f1(pred, true) == pytest.approx(2 * 3 / (4 + 6))
    assert ink_f1(true, pred) == pytest.approx(0.6)  # symmetric
    assert ink_f1(true, true) == 1.0
    assert ink_f1(pred, ~pred) == 0.0


def test_ink_f1_of_blank_images_and_shapes():
    blank = np.zeros((105, 105), dtype=bool)
    ink = blank.copy()
    ink[50, 50] = True
    assert ink_f1(blank, blank) == 1.0
    assert ink_f1(blank, ink) == 0.0
    assert ink_f1(ink.astype(np.uint8), ink) == 1.0  # any array read as booleans
    with pytest.raises(ValueError, match="one shape"):
        ink_f1(blank, blank[:-1])


def test_render_ink_is_the_image_model_thresholded():
    from pyrochar import render

    line = horizontal(-50.0)
    ink = render_ink([line], blur=0.5, eps=0.0)
    assert ink.shape == (105, 105) and ink.dtype == bool
    # at blur 0.5 and no pixel noise the image model draws one stroke as the project's renderer
    cps, n_cp = render.pad_strokes([line])
    assert np.array_equal(ink, render.render_strokes_105(cps, n_cp)[0].numpy() > 0.5)
    assert ink[50, 20:60].all() and not ink[40].any()  # along row 50 (y = -50), x 14..66
    assert not render_ink([line], blur=0.5, eps=0.0, threshold=1.0).any()
    # a wider blur spreads the ink thinner: fewer pixels reach p > 0.5
    assert render_ink([line], blur=3.0, eps=0.0).sum() < ink.sum()
    assert ink_f1(render_ink([line], 0.5, 0.0), ink) == 1.0


# --------------------------------------------------------------------- trajectories


def test_trajectory_points_of_a_straight_spline_are_one_px_apart():
    pts = trajectory_points([horizontal(-50.0)])  # motor px
    # the curve starts at 0.8 cp0 + 0.2 cp1 = 14 px and ends at 66 px: 52 px long
    assert pts[0] == pytest.approx([14.0, -50.0])
    assert pts[-1] == pytest.approx([66.0, -50.0])
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert len(pts) == 52 and steps == pytest.approx(np.full(51, 52 / 51))
    assert trajectory_points([]).shape == (0, 2)
    dot = trajectory_points([norm([[30.0, -40.0]])])
    assert dot == pytest.approx(np.array([[30.0, -40.0], [30.0, -40.0]]))


def test_modified_hausdorff_of_hand_made_point_sets():
    a = np.array([[0.0, 0.0]])
    b = np.array([[0.0, 0.0], [3.0, 4.0]])
    # a -> b: 0; b -> a: (0 + 5) / 2
    assert modified_hausdorff(a, b) == pytest.approx(2.5)
    assert modified_hausdorff(b, a) == pytest.approx(2.5)
    assert modified_hausdorff(b, b) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        modified_hausdorff(a, np.zeros((0, 2)))


def test_modified_hausdorff_over_many_points():
    """More points than one chunk of the nearest-neighbour search: two rows 2 px apart."""
    x = np.arange(3000.0)
    a = np.stack([x, np.zeros_like(x)], axis=1)
    b = np.stack([x, np.full_like(x, 2.0)], axis=1)
    assert modified_hausdorff(a, b) == pytest.approx(2.0)
    # b's last 1000 points lie past a's end: a -> b is 2, b -> a is larger
    b_long = np.stack([np.arange(4000.0), np.full(4000, 2.0)], axis=1)
    far = np.sqrt(4.0 + np.arange(1.0, 1001.0) ** 2)  # distances to a's last point
    expected = (3000 * 2.0 + far.sum()) / 4000
    assert modified_hausdorff(a, b_long) == pytest.approx(expected)


def test_trajectory_mhd_between_drawings():
    line = horizontal(-50.0)
    assert trajectory_mhd([line], [line]) == 0.0
    # the same line 3 px lower: every point's nearest neighbour is 3 px away
    assert trajectory_mhd([line], [horizontal(-53.0)]) == pytest.approx(3.0)
    # order, direction and splitting a stroke in two barely matter
    cross = [line, norm([[40.0, y] for y in np.linspace(-20.0, -80.0, 4)])]
    assert trajectory_mhd(cross, cross[::-1]) == 0.0
    assert trajectory_mhd(cross, [c[::-1] for c in cross]) < 0.5
    halves = [horizontal(-50.0, 10.0, 40.0), horizontal(-50.0, 40.0, 70.0)]
    assert trajectory_mhd([line], halves) < 1.0
    # a missing stroke costs its distance to the rest: far from zero
    assert trajectory_mhd(cross, cross[:1]) > 5.0


# ---------------------------------------------------------------------- true parse


def test_true_parse_keeps_order_direction_and_drops_short_strokes():
    down = np.stack([np.full(61, 30.0), np.linspace(-20.0, -80.0, 61), np.arange(61.0)], axis=1)
    tick = np.array([[60.0, -60.0, 0.0], [65.0, -62.0, 1.0]])  # 5.4 px: dropped
    right = np.stack([np.linspace(20.0, 90.0, 71), np.full(71, -40.0), np.arange(71.0)], axis=1)
    drawing = Drawing(strokes=[down, tick, right])
    parse = true_parse(drawing)
    assert len(parse) == 2
    first = splines.to_motor(parse[0])
    second = splines.to_motor(parse[1])
    # a straight stroke is a spline of 1-2 control points along it, in its direction
    assert first[0, 1] > first[-1, 1] and np.allclose(first[:, 0], 30.0, atol=0.5)
    assert second[0, 0] < second[-1, 0] and np.allclose(second[:, 1], -40.0, atol=0.5)
    # its trajectory is the drawn one, within the preprocessing's fitting error (0.7 px^2 mse)
    raw = [splines.to_normalized(s[:, :2]) for s in (down, right)]
    assert trajectory_mhd(parse, raw) < 1.0
    from_raw = true_parse([down[:, :2], right[:, :2]])  # raw strokes too
    assert len(from_raw) == 2 and all(np.array_equal(a, b) for a, b in zip(from_raw, parse, strict=True))
    assert true_parse([tick]) == []


def test_true_parse_of_a_fixture_drawing(omniglot_fixture_drawing):
    parse = true_parse(omniglot_fixture_drawing)
    assert 1 <= len(parse) <= omniglot_fixture_drawing.n_strokes
    raw = [splines.to_normalized(s[:, :2]) for s in omniglot_fixture_drawing.strokes]
    assert trajectory_mhd(parse, raw) < 1.5


@pytest.fixture
def omniglot_fixture_drawing() -> Drawing:
    from pathlib import Path

    from pyrochar.data.omniglot import read_stroke_file

    folder = Path(__file__).parent / "data" / "omniglot" / "strokes_background" / "Latin"
    return read_stroke_file(sorted(folder.rglob("*.txt"))[0])
