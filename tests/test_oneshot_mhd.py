"""The modified Hausdorff distance baseline on hand-made point sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyrochar.oneshot.mhd import ink_points, mhd_row, modified_hausdorff


def test_single_points():
    assert modified_hausdorff(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(5.0)


def test_the_larger_of_the_two_directed_means():
    a = np.array([[0.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 0.0], [0.0, 3.0]])
    # a -> b: nearest distances 0 and 1 (mean 0.5); b -> a: 0 and 2 (mean 1)
    assert modified_hausdorff(a, b) == pytest.approx(1.0)
    assert modified_hausdorff(b, a) == pytest.approx(1.0)


def test_a_mean_not_a_maximum():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    b = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    # a -> b: 0, 0, 0, 8 (mean 2; the Hausdorff distance would be 8); b -> a: 0
    assert modified_hausdorff(a, b) == pytest.approx(2.0)
    assert modified_hausdorff(a, a) == 0.0


def test_ink_points_are_centred_row_col():
    img = np.zeros((105, 105), dtype=bool)
    img[10, 20] = img[10, 24] = img[14, 20] = True
    pts = ink_points(img)
    centre = np.array([34 / 3, 64 / 3])
    expected = np.array([[10, 20], [10, 24], [14, 20]]) - centre
    np.testing.assert_allclose(np.sort(pts, axis=0), np.sort(expected, axis=0))
    with pytest.raises(ValueError, match="without ink"):
        ink_points(np.zeros((105, 105), dtype=bool))


def test_images_compare_after_centring():
    img = np.zeros((105, 105), dtype=bool)
    img[30:33, 20:60] = True  # a bar
    moved = np.roll(img, (17, -9), axis=(0, 1))
    assert modified_hausdorff(ink_points(img), ink_points(moved)) == 0.0
    longer = img.copy()
    longer[30:33, 60:64] = True  # 4 columns longer: its ends are up to 2 px from the bar
    d = modified_hausdorff(ink_points(img), ink_points(longer))
    assert 0.0 < d < 2.0 and math.isfinite(d)
    row = mhd_row(ink_points(img), [ink_points(longer), ink_points(moved)])
    assert row.shape == (2,) and row[1] == 0.0 and row[0] == pytest.approx(d)
