"""pyrochar.parse: drawings rendered to images and parsed back; determinism; output."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("skimage")

import pyrochar  # noqa: E402
from pyrochar.errors import PyrocharError  # noqa: E402
from pyrochar.image.parse import Parse, shortlist  # noqa: E402
from pyrochar.image.propose import Candidate  # noqa: E402
from pyrochar.render import render_character  # noqa: E402
from pyrochar.splines import preprocess_drawing, to_normalized  # noqa: E402

#: Simple characters as raw pen trajectories (motor coordinates: x = col, y = -row).
CHARACTERS = {
    "L": [[(30, -15), (30, -80), (85, -80)]],
    "plus": [[(52, -15), (52, -90)], [(15, -52), (90, -52)]],
    "T": [[(20, -22), (88, -22)], [(54, -22), (54, -90)]],
}


def _trajectory(corners) -> np.ndarray:
    """A pen path through ``corners``, one point per px."""
    pts = [np.linspace(a, b, int(np.hypot(*np.subtract(b, a))) + 1)[:-1]
           for a, b in zip(corners[:-1], corners[1:], strict=True)]  # fmt: skip
    return np.concatenate([*pts, np.array(corners[-1:], dtype=float)])


def character(name: str) -> list[np.ndarray]:
    """The character's minimal splines (normalized units), fitted as for training."""
    return [to_normalized(cp) for cp in preprocess_drawing([_trajectory(c) for c in CHARACTERS[name]])]


def ink(strokes) -> np.ndarray:
    """The strokes rendered at 105 x 105 with the project's ink model, thresholded."""
    return render_character(strokes, size=105).numpy() > 0.5


def f1(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def model():
    return pyrochar.load_pretrained("full-ns")


@pytest.mark.parametrize("name", sorted(CHARACTERS))
def test_rendered_character_is_parsed_back(model, name, one_thread):
    strokes = character(name)
    image = ink(strokes)
    parses = pyrochar.parse(model, image, k=3, n_candidates=200, n_refine=4, steps=100, seed=0)
    best = parses[0]
    assert best.n_strokes == len(strokes)
    assert f1(image, ink(best.drawn_strokes())) >= 0.9


def test_parses_are_ranked_weighted_and_repeatable(model, one_thread):
    image = ink(character("T"))
    a = pyrochar.parse(model, image, k=4, n_candidates=100, n_refine=6, steps=5, seed=5)
    b = pyrochar.parse(model, image, k=4, n_candidates=100, n_refine=6, steps=5, seed=5)
    assert len(a) == 4
    totals = [p.scores["total"] for p in a]
    assert totals == sorted(totals, reverse=True)
    assert sum(p.weight for p in a) == pytest.approx(1.0)
    assert [p.weight for p in a] == sorted((p.weight for p in a), reverse=True)
    for p in a:
        assert set(p.scores) == {"type", "token", "image", "total"}
        assert p.scores["total"] == pytest.approx(p.scores["type"] + p.scores["token"] + p.scores["image"],
                                                  abs=1e-3)  # fmt: skip
        assert p.affine.shape == (4,) and 0.5 <= p.blur <= 16 and 1e-4 <= p.eps <= 0.5
        assert [len(s) for s in p.token_strokes] == [len(s) for s in p.strokes]
    for p, q in zip(a, b, strict=True):
        assert p.scores == q.scores
        assert all(np.array_equal(s, t) for s, t in zip(p.strokes, q.strokes, strict=True))


def test_without_refinement_ranks_by_type(model):
    image = ink(character("plus"))
    parses = pyrochar.parse(model, image, k=3, n_candidates=100, refine=False, seed=0)
    assert [set(p.scores) for p in parses] == [{"type", "total"}] * 3
    assert parses[0].token_strokes is None and parses[0].drawn_strokes() is parses[0].strokes
    assert sum(p.weight for p in parses) == pytest.approx(1.0)


def test_to_json_is_a_drawing_with_the_parse_values(model, tmp_path):
    from pyrochar.data.jsonio import read_drawings_json

    p = pyrochar.parse(model, ink(character("L")), k=1, n_candidates=50, refine=False)[0]
    obj = p.to_json(label="an L")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(obj))
    (drawing,) = read_drawings_json(path)
    assert len(drawing.strokes) == p.n_strokes
    assert obj["parse"]["log_prob"] == p.scores
    back = [np.array(s) for s in obj["parse"]["type_control_points"]]
    assert all(np.allclose(s, t, atol=1e-6) for s, t in zip(back, p.strokes, strict=True))


def test_shortlist_keeps_the_best_of_each_stroke_set():
    cands = [Candidate([np.zeros((2, 2))], lp, s) for lp, s in
             [(-1, 0), (-2, 0), (-3, 0), (-4, 1), (-5, 0), (-6, 2), (-7, 3)]]  # fmt: skip
    got = shortlist(cands, 4)
    assert [(c.type_log_prob, c.stroke_set) for c in got] == [(-1, 0), (-2, 0), (-3, 0), (-4, 1)]
    got = shortlist(cands, 6)  # 3 heads: sets 0, 1, 2; then the best others
    assert {c.stroke_set for c in got} == {0, 1, 2} and len(got) == 6
    assert [c.type_log_prob for c in got] == sorted((c.type_log_prob for c in got), reverse=True)


def test_bad_images_are_one_clear_error(model, tmp_path):
    with pytest.raises(PyrocharError, match="ink"):
        pyrochar.parse(model, np.zeros((105, 105), dtype=bool))
    with pytest.raises(TypeError, match="model"):
        pyrochar.parse("full-ns", ink(character("L")))
    with pytest.raises(ValueError, match="k"):
        pyrochar.parse(model, ink(character("L")), k=0)
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(PyrocharError, match="notes.png"):
        pyrochar.parse(model, text)


def test_parse_is_exported():
    from pyrochar.image.parse import parse

    assert pyrochar.parse is parse
    assert isinstance(Parse([], {"total": 0.0}).n_strokes, int)
