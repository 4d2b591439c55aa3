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
    assert round(s["strokes_per_drawing"], 2) == 2.31
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


# ----------------------------------------------------------- the cache (issue 11)


def test_an_unwritable_cache_warns_and_goes_on(small_omniglot, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder cannot be created below a file")
    with pytest.warns(UserWarning, match="could not write the cache .*going on without it"):
        ds = prepare_dataset(small_omniglot, cache_dir=blocker / "cache")
    assert len(ds) == 36 and ds.cache_file == ""


def test_cli_commands_go_on_without_an_unwritable_cache(run, small_omniglot, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("PYROCHAR_CACHE", str(blocker / "cache"))
    out = run("data", "stats", "--source", small_omniglot, "--json").output
    assert '"drawings": 36' in out
    out = run("data", "prepare", "--source", small_omniglot).output
    assert "prepared 36 drawings" in out and "(not cached)" in out
    # the warning is one line, without Python's file and line
    (warning,) = [line for line in out.splitlines() if "cache" in line and "Warning" in line]
    assert warning.startswith("Warning: ") and "UserWarning" not in out


def test_prepare_no_cache_prints_no_path_it_did_not_write(run, small_omniglot, tmp_path):
    out = run("data", "prepare", "--source", small_omniglot, "--no-cache").output
    assert "(not cached)" in out and "prepared-" not in out
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    out = run("data", "prepare", "--source", small_omniglot).output
    written = list((tmp_path / "cache").glob("prepared-*.npz"))
    assert len(written) == 1 and f"-> {written[0]}" in out


def _rewrite_npz(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_tampered_cache_file_is_not_trusted(small_omniglot, tmp_path):
    a = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    path = next(tmp_path.glob("prepared-*.npz"))
    _rewrite_npz(path, control_points=a.control_points + 0.5)  # well-formed, wrong
    with pytest.warns(UserWarning, match="changed after it was written"):
        b = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.control_points, b.control_points)
    c = PreparedDataset.load(path, expected_key=a.cache_key)  # rewritten, trusted again
    np.testing.assert_array_equal(a.control_points, c.control_points)
    # inconsistent sizes are refused too
    _rewrite_npz(path, stroke_sizes=a.stroke_sizes[:-1])
    with pytest.raises(PyrocharError, match="inconsistent"):
        PreparedDataset.load(path)


def test_a_cache_file_of_other_drawings_is_not_trusted(small_omniglot, tmp_path):
    greek = prepare_dataset(small_omniglot, cache_dir=tmp_path, alphabets=["Greek"])
    everything = prepare_dataset(small_omniglot, cache_dir=tmp_path / "other")
    target = tmp_path / f"prepared-{everything.cache_key}.npz"
    (tmp_path / f"prepared-{greek.cache_key}.npz").rename(target)
    with pytest.warns(UserWarning, match="prepared data of other drawings"):
        again = prepare_dataset(small_omniglot, cache_dir=tmp_path)
    assert len(again) == len(everything) == 36
    np.testing.assert_array_equal(again.control_points, everything.control_points)


def test_temp_files_of_killed_writers_are_removed(small_omniglot, tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".prepared-0123.npz.{dead_pid}.abcd_123.tmp"
    stale.write_bytes(b"half a cache file")
    live = tmp_path / f".prepared-4567.npz.{os.getppid()}.zyxw_987.tmp"
    live.write_bytes(b"being written by a live process")
    other = tmp_path / "notes.tmp"
    other.write_text("not ours")
    prepare_dataset(small_omniglot, cache_dir=tmp_path)
    assert not stale.exists() and live.exists() and other.exists()
