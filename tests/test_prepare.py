"""Prepared datasets: representation, cache, statistics, packaging."""

import re
from pathlib import Path

import numpy as np
import pytest
import tomllib

from pyrochar import splines
from pyrochar.data.prepare import PreparedDataset, prepare_dataset
from pyrochar.errors import PyrocharError

REPO = Path(__file__).resolve().parents[1]


def test_shared_statistics_match_the_independent_implementation(shared_prepared):
    s = shared_prepared.stats()
    assert s["alphabets"] == 6 and s["characters"] == 203
    assert s["drawings"] == 4060 and s["skipped"] == 0 and s["empty_after_filter"] == 1
    assert s["strokes"] == 9382
    assert round(s["strokes_per_character"], 2) == 2.31
    assert round(s["control_points_per_stroke_mean"], 2) == 5.06
    assert s["control_points_per_stroke_median"] == 4
    assert s["control_points_per_stroke_max"] == 32
    assert shared_prepared.stroke_sizes.min() >= 2  # no stroke needed 1 control point


def test_models_see_starts_and_offsets_in_normalized_units(fixture_prepared):
    d = 123
    for cp, (start, offsets) in zip(fixture_prepared.strokes(d), fixture_prepared.starts_offsets(d), strict=True):
        np.testing.assert_allclose(splines.start_offsets_to_stroke(start, offsets), cp, atol=1e-12)
        # the start is the first point of the evaluated spline, in normalized units
        first = splines.evaluate_spline(splines.to_motor(cp), 10)[0]
        np.testing.assert_allclose(splines.to_motor(start), first, atol=1e-9)
        np.testing.assert_allclose(splines.to_normalized(splines.to_motor(start)), start, atol=1e-12)


def test_cache_is_reused_and_keyed_by_content(small_omniglot, tmp_path):
    a = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    files = list(tmp_path.glob("prepared-*.npz"))
    assert len(files) == 1 and a.cache_key in files[0].name
    b = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.control_points, b.control_points)
    assert a.key(5) == b.key(5) and a.stats() == b.stats()
    # another subset of the data gets another key
    c = prepare_dataset(small_omniglot, cache_dir=tmp_path, alphabets=["Greek"])
    assert c.cache_key != a.cache_key and len(list(tmp_path.glob("prepared-*.npz"))) == 2


def test_a_corrupted_cache_is_recomputed(small_omniglot, tmp_path):
    a = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    path = next(tmp_path.glob("prepared-*.npz"))
    path.write_bytes(b"broken")
    with pytest.warns(UserWarning, match="broken cache"):
        b = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.control_points, b.control_points)
    PreparedDataset.load(path)  # rewritten, readable again
    with pytest.raises(PyrocharError, match="not a readable prepared dataset"):
        (tmp_path / "x.npz").write_bytes(b"x")
        PreparedDataset.load(tmp_path / "x.npz")


def test_select_characters(fixture_prepared):
    sub = fixture_prepared.select_characters(["Greek/character03", "Latin/character01"])
    assert len(sub) == 40
    assert set(sub.character_keys()) == {"Greek/character03", "Latin/character01"}
    assert sub.strokes(0)[0].shape[1] == 2


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "pyrochar").rglob("__init__.py")
    }
    assert found <= listed, found - listed
    assert "pyrochar_cli" in listed and not re.search(r'"cli"\s*[,\]]', (REPO / "pyproject.toml").read_text())
