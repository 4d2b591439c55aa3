"""The short public API (pyrochar.load_pretrained / load_drawings / score / sample /
complete) used as a user would, and a table of wrong calls that must fail at the
API with a clear TypeError/ValueError, not deep inside numpy or torch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyrochar
from pyrochar.data.drawing import Drawing

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "omniglot"
GREEK1 = FIXTURE / "strokes_background" / "Greek" / "character01"


@pytest.fixture(scope="module")
def model():
    return pyrochar.load_pretrained("full-ns")


@pytest.fixture(scope="module")
def drawings():
    return pyrochar.load_drawings(FIXTURE)


# ------------------------------------------------------------------ used as a user would


def test_load_pretrained_gives_each_shipped_model_in_eval_mode():
    from pyrochar.models import MODELS

    for name in MODELS:
        m = pyrochar.load_pretrained(name)
        assert m.name == name and not m.training


def test_load_drawings_reads_folders_files_and_lists(drawings, tmp_path):
    reference = json.loads((DATA / "reference_nlls.json").read_text())
    assert [d.key for d in drawings] == reference["drawings"]  # the Omniglot folder, sorted
    files = sorted(GREEK1.glob("*.txt"))
    one = pyrochar.load_drawings(files[0])
    assert len(one) == 1 and one[0].key == "Greek/character01/0394_01"
    assert [d.key for d in pyrochar.load_drawings(GREEK1)] == [d.key for d in pyrochar.load_drawings(files)]
    assert len(pyrochar.load_drawings([str(files[0]), GREEK1])) == 3  # str paths, mixed with folders
    from pyrochar.data.jsonio import write_drawings_json

    write_drawings_json(tmp_path / "two.json", drawings[:2])
    back = pyrochar.load_drawings(tmp_path / "two.json")
    assert len(back) == 2
    np.testing.assert_allclose(back[1].strokes[0][:, :2], drawings[1].strokes[0][:, :2])


def test_score_gives_the_recorded_nlls_in_the_order_given(model, drawings, one_thread):
    reference = json.loads((DATA / "reference_nlls.json").read_text())["models"]["full-ns"]["nll"]
    scores = pyrochar.score(model, drawings)
    np.testing.assert_allclose(scores.nll, reference, atol=1e-4, rtol=0)
    total = sum(scores.breakdown.values())
    np.testing.assert_allclose(total, scores.nll, rtol=1e-6)
    backwards = pyrochar.score(model, drawings[::-1], batch_size=5)
    np.testing.assert_allclose(backwards.nll, scores.nll[::-1], atol=1e-4, rtol=0)
    assert scores.summary()["n"] == len(drawings)


def test_sample_is_repeatable_and_its_drawings_can_be_scored(model):
    a = pyrochar.sample(model, 3, temperature=0.5, seed=7)
    b = pyrochar.sample(model, 3, temperature=0.5, seed=7)
    assert len(a) == 3 and all(isinstance(d, Drawing) and d.strokes for d in a)
    for da, db in zip(a, b, strict=True):
        assert len(da.strokes) == len(db.strokes)
        for sa, sb in zip(da.strokes, db.strokes, strict=True):
            np.testing.assert_array_equal(sa, sb)
            assert sa.shape[1] == 3  # (x, y, t) in motor coordinates, like a file's drawings
    assert np.isfinite(pyrochar.score(model, a).nll).all()


def test_complete_keeps_the_first_stroke_and_is_repeatable(model, drawings):
    from pyrochar import splines

    d = drawings[14]  # Korean, 3 strokes
    out = pyrochar.complete(model, d, keep_strokes=1, n=3, seed=1)
    again = pyrochar.complete(model, d, keep_strokes=1, n=3, seed=1)
    kept = splines.evaluate_spline(splines.preprocess_drawing(d.strokes)[0])
    assert len(out) == 3
    for c, c2 in zip(out, again, strict=True):
        np.testing.assert_allclose(c.strokes[0][:, :2], kept, atol=1e-4)  # the observed stroke, as fitted
        np.testing.assert_array_equal(c.strokes[-1], c2.strokes[-1])
    with_points = pyrochar.complete(model, drawings[8], keep_strokes=1, prefix_points=3, n=2, seed=0)
    assert len(with_points) == 2 and all(len(c.strokes) >= 2 for c in with_points)


def test_the_api_names_stay_functions_when_the_submodule_is_imported():
    import pyrochar.complete  # noqa: F401  (the module of the same name)
    from pyrochar.complete import importance_complete  # still importable by name

    assert callable(importance_complete)
    assert pyrochar.complete.__module__ == "pyrochar.api"
    for name in ("load_pretrained", "load_drawings", "score", "sample", "complete"):
        fn = getattr(pyrochar, name)
        assert callable(fn) and fn.__doc__, name


def test_import_pyrochar_stays_light():
    code = "import sys, pyrochar; print(sorted(m for m in ('torch', 'pyro', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- wrong calls


def _tiny():
    """A drawing whose only stroke is 5 px long: nothing survives the 20 px filter."""
    return Drawing([np.array([[10.0, -10.0, 0.0], [15.0, -10.0, 0.0]])])


WRONG = [
    # (function, args, kwargs, exception, text the message must hold)
    ("load_pretrained", (3,), {}, TypeError, "model name"),
    ("load_pretrained", ("full_ns",), {}, ValueError, "available: baseline, bpl, full-ns, hlstm"),
    ("load_pretrained", (None,), {}, TypeError, "model name"),
    ("load_drawings", (None,), {}, TypeError, "paths"),
    ("load_drawings", (3,), {}, TypeError, "paths"),
    ("load_drawings", ([],), {}, ValueError, "at least one"),
    ("load_drawings", ("",), {}, ValueError, "empty path"),
    ("load_drawings", ([FIXTURE, 5],), {}, TypeError, "paths[1]"),
    ("load_drawings", ("no/such/file.txt",), {}, ValueError, "does not exist"),
    ("load_drawings", (b"tests",), {}, TypeError, "paths"),
    ("score", ("full-ns", "DRAWINGS"), {}, TypeError, "load_pretrained('full-ns')"),
    ("score", ("MODEL", "DRAWING"), {}, TypeError, "[drawing]"),
    ("score", ("MODEL", []), {}, ValueError, "empty"),
    ("score", ("MODEL", "tests/data/omniglot"), {}, TypeError, "load_drawings"),
    ("score", ("MODEL", "STROKES"), {}, TypeError, "drawings[0]"),
    ("score", ("MODEL", [Drawing([])]), {}, ValueError, "no strokes"),
    ("score", ("MODEL", [Drawing([np.array([[1.0, math.nan]])])]), {}, ValueError, "finite"),
    ("score", ("MODEL", [Drawing([np.zeros((3, 4))])]), {}, ValueError, "shape"),
    ("score", ("MODEL", [Drawing([[[1.0, 2.0], [3.0, 4.0]]])]), {}, TypeError, "numpy array"),
    ("score", ("MODEL", [_tiny()]), {}, ValueError, "shorter than 20 px"),
    ("score", ("MODEL", "DRAWINGS"), {"batch_size": 0}, ValueError, "batch_size"),
    ("score", ("MODEL", "DRAWINGS"), {"batch_size": 2.0}, TypeError, "batch_size"),
    ("sample", ("MODEL", 0), {}, ValueError, "n must be"),
    ("sample", ("MODEL", -3), {}, ValueError, "n must be"),
    ("sample", ("MODEL", 2.5), {}, TypeError, "n must be an integer"),
    ("sample", ("MODEL", "4"), {}, TypeError, "n must be an integer"),
    ("sample", ("MODEL", True), {}, TypeError, "n must be an integer"),
    ("sample", ("MODEL", 10**9), {}, ValueError, "10000"),
    ("sample", ("MODEL", 2), {"seed": "0"}, TypeError, "seed"),
    ("sample", ("MODEL", 2), {"seed": 1.0}, TypeError, "seed"),
    ("sample", ("MODEL", 2), {"seed": -1}, ValueError, "seed"),
    ("sample", ("MODEL", 2), {"seed": 2**70}, ValueError, "seed"),
    ("sample", ("MODEL", 2), {"seed": 2**32}, ValueError, "4294967295"),
    ("sample", ("MODEL", 2), {"temperature": math.nan}, ValueError, "temperature"),
    ("sample", ("MODEL", 2), {"temperature": math.inf}, ValueError, "temperature"),
    ("sample", ("MODEL", 2), {"temperature": 0}, ValueError, "temperature"),
    ("sample", ("MODEL", 2), {"temperature": -1.0}, ValueError, "temperature"),
    ("sample", ("MODEL", 2), {"temperature": 1e6}, ValueError, "temperature"),
    ("sample", ("MODEL", 2), {"temperature": "hot"}, TypeError, "temperature"),
    ("sample", (None, 2), {}, TypeError, "model"),
    ("complete", ("MODEL", "DRAWINGS"), {}, TypeError, "one drawing"),
    ("complete", ("MODEL", "tests/x.txt"), {}, TypeError, "load_drawings"),
    ("complete", ("MODEL", "DRAWING"), {"keep_strokes": -1}, ValueError, "keep_strokes"),
    ("complete", ("MODEL", "DRAWING"), {"keep_strokes": 1.5}, TypeError, "keep_strokes"),
    ("complete", ("MODEL", "DRAWING"), {"keep_strokes": 0}, ValueError, "at least one stroke"),
    ("complete", ("MODEL", "DRAWING"), {"keep_strokes": 50}, ValueError, "needs 50"),
    ("complete", ("MODEL", "DRAWING"), {"prefix_points": 100}, ValueError, "control point"),
    ("complete", ("MODEL", "DRAWING"), {"prefix_points": -2}, ValueError, "prefix_points"),
    ("complete", ("MODEL", "DRAWING"), {"n": 0}, ValueError, "n must be"),
    ("complete", ("MODEL", "DRAWING"), {"n": 3.0}, TypeError, "n must be an integer"),
    ("complete", ("MODEL", "DRAWING"), {"seed": -5}, ValueError, "seed"),
    ("complete", ("MODEL", "DRAWING"), {"temperature": math.nan}, ValueError, "temperature"),
    ("complete", ("MODEL", _tiny()), {}, ValueError, "0 stroke(s) of at least 20 px"),
]


@pytest.mark.parametrize("fn, args, kwargs, exc, text", WRONG,
                         ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_calls_fail_clearly_at_the_api(fn, args, kwargs, exc, text, model, drawings):
    stand_in = {"MODEL": model, "DRAWINGS": drawings, "DRAWING": drawings[14],  # 3 strokes
                "STROKES": [drawings[0].strokes]}
    args = [stand_in.get(a, a) if isinstance(a, str) else a for a in args]
    with pytest.raises(exc) as info:
        getattr(pyrochar, fn)(*args, **kwargs)
    message = str(info.value)
    assert text in message and "\n" not in message
    raised_in = Path(info.traceback[-1].path)  # the frame that raised: the API, not numpy/torch
    assert raised_in.parent.name == "pyrochar" and raised_in.name in ("api.py", "checks.py"), raised_in


# -------------------------------------------------------------------------- checkers


def test_output_file_checks(tmp_path):
    from pyrochar.checks import check_image_path, check_output_file, check_output_folder

    (tmp_path / "a_file").write_text("x")
    assert check_image_path(tmp_path / "new" / "deeper" / "x.PNG", "-o").name == "x.PNG"
    with pytest.raises(ValueError, match="is a folder"):
        check_image_path(tmp_path, "-o")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_image_path(tmp_path / "a_file" / "x.png", "-o")
    with pytest.raises(ValueError, match=r"unknown file type '\.svg'"):
        check_image_path(tmp_path / "x.svg", "-o")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "a_file", "--out")
    with pytest.raises(ValueError, match=r"\.json"):
        check_output_file(tmp_path / "x.txt", "--json-out", suffixes=(".json",))


def test_checkers_for_the_internal_functions():
    import torch

    from pyrochar.checks import check_batch, check_control_points
    from pyrochar.models.batch import CharacterBatch

    with pytest.raises(ValueError, match="empty"):
        check_control_points([])
    with pytest.raises(ValueError, match=r"drawings\[0\]\[0\]"):
        check_control_points([[np.zeros((0, 2))]])
    with pytest.raises(TypeError, match="CharacterBatch"):
        check_batch([[np.zeros((2, 2))]])
    empty = CharacterBatch(torch.zeros(0, 0, 2), torch.zeros(0, 0, 0, 2),
                           torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="no drawing"):
        check_batch(empty)
    good = [[np.zeros((3, 2)), np.ones((1, 2))]]
    assert check_control_points(good) == good


def test_score_names_a_drawing_beyond_the_models_caps():
    model = pyrochar.load_pretrained("bpl")
    twelve = Drawing([np.array([[20.0, -10.0 - 7 * i, 0.0], [50.0, -10.0 - 7 * i, 1.0]]) for i in range(12)],
                     source="twelve.json")
    with pytest.raises(ValueError, match="twelve.json has 12 strokes"):
        pyrochar.score(model, [twelve])
