"""Tests of pyrochar.splines: basis, fitting, minimal splines, start/offsets, preprocessing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.interpolate import BSpline

from pyrochar import splines as S


def read_stroke_file(path: Path) -> list[np.ndarray]:
    """Tiny local reader of one Omniglot stroke file -> list of (k, 3) arrays."""
    strokes, cur = [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line == "START":
            continue
        if line == "BREAK":
            strokes.append(np.array(cur, dtype=np.float64).reshape(-1, 3))
            cur = []
        else:
            cur.append([float(v) for v in line.split(",")])
    return strokes


def smooth_curve(coefs: np.ndarray, length: float, k: int = 400) -> np.ndarray:
    """A smooth random curve (sum of sines) rescaled to the given path length."""
    t = np.linspace(0.0, 1.0, k)[:, None]  # (k, 1)
    freqs = np.arange(1, coefs.shape[0] + 1)[None, :]  # (1, F)
    x = (coefs[:, 0] * np.sin(np.pi * freqs * t + coefs[:, 1])).sum(axis=1) + t[:, 0]
    y = (coefs[:, 2] * np.sin(np.pi * freqs * t + coefs[:, 3])).sum(axis=1)
    xy = np.stack([x, y], axis=1)
    return xy * (length / S.path_length(xy)) + np.array([50.0, -50.0])


# ------------------------------------------------------------------------ units


def test_constants():
    np.testing.assert_array_equal(S.CENTER, [50.0, -50.0])
    assert (S.SCALE, S.MIN_STROKE_LENGTH, S.RESIDUAL_THRESHOLD) == (20.0, 20.0, 0.7)
    assert (S.MAX_CONTROL_POINTS, S.RESAMPLE_SPACING) == (50, 1.0)


@given(arrays(np.float64, (7, 2), elements=st.floats(-200, 200)))
def test_normalized_motor_round_trip(p):
    q = S.to_normalized(p)
    np.testing.assert_allclose(S.to_motor(q), p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(S.to_normalized(S.to_motor(q)), q, rtol=0, atol=1e-13)


def test_normalized_values():
    np.testing.assert_allclose(S.to_normalized([50.0, -50.0]), [0.0, 0.0])
    np.testing.assert_allclose(S.to_normalized([70.0, -90.0]), [1.0, -2.0])
    np.testing.assert_allclose(S.to_motor([[1.0, -2.0]]), [[70.0, -90.0]])


# ------------------------------------------------------------------- resampling


def test_path_length():
    assert S.path_length(np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]])) == pytest.approx(9.0)
    assert S.path_length(np.array([[1.0, 2.0, 0.0]])) == 0.0


def test_resample_straight_line_count_and_spacing():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [30.4, 0.0]])
    out = S.resample_by_arclength(xy)
    assert out.shape == (30, 2)  # m = max(2, round(30.4))
    np.testing.assert_array_equal(out[0], xy[0])
    np.testing.assert_array_equal(out[-1], xy[-1])
    d = np.linalg.norm(np.diff(out, axis=0), axis=1)
    np.testing.assert_allclose(d, 30.4 / 29)


@given(
    arrays(np.float64, (5, 4), elements=st.floats(-1, 1)),
    st.floats(2.0, 200.0),
)
@settings(max_examples=50, deadline=None)
def test_resample_spacing_about_one_px(coefs, length):
    xy = smooth_curve(coefs, length)
    out = S.resample_by_arclength(xy)
    # m = max(2, round(L)) with L measured after near-duplicate points are dropped,
    # which can shorten the path by < 1e-4 px: allow for that at half-integer lengths
    length_px = S.path_length(xy)
    assert len(out) == 2 or abs(len(out) - length_px) <= 0.5 + 1e-3
    np.testing.assert_allclose(out[0], xy[0], atol=1e-12)
    np.testing.assert_allclose(out[-1], xy[-1], atol=1e-12)
    d = np.linalg.norm(np.diff(out, axis=0), axis=1)
    step = S.path_length(xy) / (len(out) - 1)
    assert d.max() <= step + 1e-9  # chords never longer than the arc step
    m = len(out)
    assert step == pytest.approx(S.path_length(xy) / (m - 1))
    if length >= 20:
        assert step < 1.08  # ~1 px: round(L) points over L px


def test_resample_drops_duplicates_and_keeps_two_points():
    single = S.resample_by_arclength(np.array([[5.0, -5.0, 0.0], [5.0 + 1e-5, -5.0, 10.0]]))
    assert single.shape == (2, 2)
    np.testing.assert_array_equal(single[0], single[1])
    np.testing.assert_array_equal(single[0], [5.0, -5.0])
    one = S.resample_by_arclength(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(one, [[1.0, 2.0], [1.0, 2.0]])
    short = S.resample_by_arclength(np.array([[0.0, 0.0], [0.3, 0.0]]))
    assert short.shape == (2, 2)


# ------------------------------------------------------------------------ basis


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 50])
@pytest.mark.parametrize("m", [1, 2, 7, 60])
def test_basis_shape_rows_sum_to_one(n, m):
    a = S.bspline_basis(n, m)
    assert a.shape == (m, n)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
    assert (a >= 0).all()
    assert not a.flags.writeable
    assert S.bspline_basis(n, m) is a  # cached


def test_basis_matches_scipy_cardinal_bspline():
    n, m = 6, 23
    s = np.linspace(2, n + 1, m)
    card = BSpline.basis_element(np.arange(5.0), extrapolate=False)
    raw = np.nan_to_num(card(s[:, None] - np.arange(n)[None, :]))
    np.testing.assert_allclose(S.bspline_basis(n, m), raw / raw.sum(1, keepdims=True), atol=1e-12)
    assert card(2.0) == pytest.approx(4 / 6)


def test_basis_special_rows():
    np.testing.assert_array_equal(S.bspline_basis(1, 5), np.ones((5, 1)))
    for n in (2, 3, 7):
        first = S.bspline_basis(n, 10)[0]
        np.testing.assert_allclose(first[:2], [0.8, 0.2])
        np.testing.assert_allclose(first[2:], 0.0)
        last = S.bspline_basis(n, 10)[-1]
        np.testing.assert_allclose(last[-2:], [0.2, 0.8])


# -------------------------------------------------------------------------- fit


def test_fit_recovers_control_points():
    rng = np.random.default_rng(0)
    cp = rng.normal(size=(7, 2)) * 10
    xy = S.bspline_basis(7, 80) @ cp
    got, mse = S.fit_spline(xy, 7)
    np.testing.assert_allclose(got, cp, atol=1e-8)
    assert mse < 1e-16


def test_fit_matches_lstsq_and_mse_definition():
    rng = np.random.default_rng(1)
    xy = np.cumsum(rng.normal(size=(45, 2)), axis=0)
    for n in (1, 3, 8):
        got, mse = S.fit_spline(xy, n)
        a = S.bspline_basis(n, 45)
        ref, *_ = np.linalg.lstsq(a, xy, rcond=None)
        np.testing.assert_allclose(got, ref, atol=1e-9)
        assert mse == pytest.approx(((a @ ref - xy) ** 2).sum() / 45, rel=1e-9)
    # n = 1: the mean of the points
    got, _ = S.fit_spline(xy, 1)
    np.testing.assert_allclose(got[0], xy.mean(axis=0), atol=1e-10)


def test_fit_with_more_control_points_than_points():
    xy = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]])
    cp, mse = S.fit_spline(xy, 5)  # lstsq would report an empty residual here
    assert cp.shape == (5, 2)
    assert mse < 1e-20


def _check_minimal(xy: np.ndarray) -> np.ndarray:
    cp = S.fit_minimal_spline(xy)
    n = len(cp)
    _, mse = S.fit_spline(xy, n)
    np.testing.assert_allclose(cp, S.fit_spline(xy, n)[0])
    assert mse < S.RESIDUAL_THRESHOLD or n == S.MAX_CONTROL_POINTS
    if n > 1:
        assert S.fit_spline(xy, n - 1)[1] >= S.RESIDUAL_THRESHOLD  # minimality
    return cp


def test_minimal_spline_threshold_and_minimality():
    t = np.linspace(0, 1, 120)[:, None]
    arc = np.concatenate([np.cos(3 * t), np.sin(3 * t)], axis=1) * 40
    cp = _check_minimal(S.resample_by_arclength(arc))
    assert 2 < len(cp) < 15
    line = S.resample_by_arclength(np.array([[0.0, 0.0], [40.0, -10.0]]))
    assert len(_check_minimal(line)) == 2


def test_minimal_spline_cap_at_50():
    rng = np.random.default_rng(2)
    zigzag = np.stack([np.arange(300.0), 6.0 * (-1.0) ** np.arange(300)], axis=1)
    zigzag += rng.normal(size=zigzag.shape)
    cp = S.fit_minimal_spline(zigzag)
    assert len(cp) == 50
    assert S.fit_spline(zigzag, 50)[1] >= S.RESIDUAL_THRESHOLD


@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=st.floats(-1, 1)),
    st.floats(20.0, 150.0),
)
@settings(max_examples=60, deadline=None)
def test_minimal_spline_on_random_smooth_curves(coefs, length):
    xy = S.resample_by_arclength(smooth_curve(coefs, length))
    _check_minimal(xy)


# --------------------------------------------------------------------- evaluate


def test_evaluate_spline_counts_and_spacing():
    cp = np.array([[10.0, -10.0], [40.0, -20.0], [60.0, -60.0], [90.0, -80.0]])
    pts = S.evaluate_spline(cp)
    length = S._polyline_length(S.evaluate_spline(cp, 200))
    assert len(pts) == int(np.ceil(length / 1.5))
    gaps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert gaps.mean() == pytest.approx(1.5, abs=0.05)  # uniform in s, not in arc length
    assert len(S.evaluate_spline(cp / 100)) == 10  # tiny: clamped to 10
    assert len(S.evaluate_spline(cp * 10)) == 200  # huge: clamped to 200
    assert S.evaluate_spline(cp, 17).shape == (17, 2)
    np.testing.assert_allclose(S.evaluate_spline(cp[:1], 5), np.repeat(cp[:1], 5, axis=0))


# ---------------------------------------------------------------- start/offsets


@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.just(2)), elements=st.floats(-100, 100)))
def test_start_offsets_round_trip(cp):
    start, offsets = S.stroke_to_start_offsets(cp)
    # a single control point (a dot) is two coincident ones: one zero offset
    assert start.shape == (2,) and offsets.shape == (max(len(cp) - 1, 1), 2)
    np.testing.assert_allclose(start, S.evaluate_spline(cp, 12)[0], atol=1e-9)
    back = S.start_offsets_to_stroke(start, offsets)
    np.testing.assert_allclose(back, cp if len(cp) > 1 else np.concatenate([cp, cp]), atol=1e-9)
    start2, offsets2 = S.stroke_to_start_offsets(back)
    np.testing.assert_allclose(start2, start, atol=1e-9)
    np.testing.assert_allclose(offsets2, offsets, atol=1e-9)


def test_start_is_not_first_control_point():
    cp = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    start, offsets = S.stroke_to_start_offsets(cp)
    np.testing.assert_allclose(start, [2.0, 0.0])
    np.testing.assert_allclose(offsets, [[10.0, 0.0], [0.0, 10.0]])
    np.testing.assert_allclose(S.start_offsets_to_stroke(start, np.zeros((0, 2))), [[2.0, 0.0]])


# ---------------------------------------------------------------- preprocessing


def test_preprocess_drops_short_strokes():
    short = np.array([[10.0, -10.0, 0.0], [25.0, -10.0, 5.0], [29.9, -10.0, 9.0]])  # 19.9 px
    long_ = np.array([[10.0, -30.0, 0.0], [40.0, -30.0, 5.0]])  # 30 px
    out = S.preprocess_drawing([short, long_])
    assert len(out) == 1 and out[0].shape[1] == 2
    np.testing.assert_allclose(S.evaluate_spline(out[0], 2), [[10, -30], [40, -30]], atol=0.5)
    assert S.preprocess_drawing([short]) == []
    assert S.preprocess_drawing([]) == []


def test_shared_data_statistics(omniglot_root):
    """The whole pipeline on the 6 shared alphabets: the statistics of docs/data.md."""
    files = sorted((omniglot_root / "strokes_background").glob("*/character*/*.txt"))
    drawings = [read_stroke_file(f) for f in files]
    t0 = time.perf_counter()
    fitted = [S.preprocess_drawing(d) for d in drawings]
    elapsed = time.perf_counter() - t0
    ncp = np.array([len(c) for d in fitted for c in d])
    assert len(drawings) == 4060
    assert sum(len(d) == 0 for d in fitted) == 1
    assert len(ncp) == 9382
    assert round(float(ncp.mean()), 2) == 5.06
    assert np.median(ncp) == 4 and ncp.max() == 32
    assert (ncp == 1).sum() == 0 and (ncp == 50).sum() == 0
    assert ncp.sum() == 47495  # this implementation's exact count (m = round(L))
    assert elapsed < 30.0  # ~1.5 s on 2 cores; generous against loaded machines


# ------------------------------------------------- fitting long strokes (issue 11)


def _zigzag(k: int, seed: int = 0) -> np.ndarray:
    """A k-point scribble inside the 105 px canvas (about 50 px per segment), motor px."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, 105, k), -rng.uniform(0, 105, k)])


def test_a_long_stroke_is_resampled_to_at_most_2048_points():
    xy = _zigzag(3000)
    assert S.path_length(xy) > 100_000
    p = S.resample_by_arclength(xy)
    assert p.shape == (S.MAX_RESAMPLED_POINTS, 2) == (2048, 2)
    np.testing.assert_array_equal(p[[0, -1]], xy[[0, -1]])
    gaps = np.linalg.norm(np.diff(p, axis=0), axis=1)
    assert gaps.max() <= S.path_length(xy) / 2047 * (1 + 1e-9)
    # strokes up to 2,048 px keep the 1 px spacing
    line = np.array([[0.0, 0.0], [0.0, -2000.0]])
    assert len(S.resample_by_arclength(line)) == 2000


def test_the_long_trajectory_fit_agrees_with_the_pseudo_inverse():
    """Beyond 512 points the fit uses the normal equations: same least squares."""
    p = S.resample_by_arclength(_zigzag(40, seed=1))
    assert len(p) > S.DENSE_FIT_MAX_POINTS
    for n in (1, 4, 23, 50):
        cp, mse = S.fit_spline(p, n)
        ref = np.linalg.pinv(S.bspline_basis(n, len(p))) @ p
        np.testing.assert_allclose(cp, ref, rtol=1e-8, atol=1e-8)
        assert mse == pytest.approx(((S.bspline_basis(n, len(p)) @ ref - p) ** 2).sum() / len(p))


def test_the_fit_cache_stays_within_its_byte_budget(monkeypatch):
    cache = S._FitMatrixCache(max_bytes=2 << 20)
    monkeypatch.setattr(S, "_fit_cache", cache)
    for m in range(400, 513, 7):
        S.fit_minimal_spline(S.resample_by_arclength(_zigzag(3, seed=m), spacing=1.0)[:m])
        assert cache.nbytes <= 2 << 20
    basis, pinv = cache.get(7, 100)
    np.testing.assert_array_equal(basis, S.bspline_basis(7, 100))
    assert not basis.flags.writeable and not pinv.flags.writeable


@pytest.mark.parametrize("bad", [1e300, np.inf, np.nan])
def test_non_finite_or_overflowing_strokes_are_a_value_error(bad):
    with pytest.raises(ValueError, match="non-finite or overflowing"):
        S.preprocess_drawing([np.array([[0.0, 0.0], [bad, -bad]])])
    with pytest.raises(ValueError, match="non-finite or overflowing"):
        S.preprocess_drawing([np.array([[-1e308, 0.0], [1e308, 0.0]])])
