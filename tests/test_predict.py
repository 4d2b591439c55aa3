"""pyrochar.predict: the next stroke's start density and the termination probability,
read from the per-step program's trace, for every shipped model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import FIXTURE_OMNIGLOT

import pyrochar
from pyrochar import splines
from pyrochar.api import score
from pyrochar.data.drawing import Drawing
from pyrochar.models.base import CapsExceeded
from pyrochar.predict import FRAME, Grid, next_stroke_prediction

MODELS = ["full-ns", "hlstm", "baseline", "bpl"]
CELL = 3.0  # px: the frame grid has 35 cells per side; the wide grid extends it with the same cells
FRAME_35 = Grid(35)
WIDE = Grid(35 + 2 * 105, -105 * CELL, 105 * CELL, 105 + 105 * CELL, -105 - 105 * CELL)


@pytest.fixture(scope="module")
def models():
    return {name: pyrochar.load_pretrained(name) for name in MODELS}


@pytest.fixture(scope="module")
def drawing() -> Drawing:
    """A three-stroke fixture drawing (every stroke >= 20 px)."""
    for d in pyrochar.load_drawings(FIXTURE_OMNIGLOT):
        if d.key == "Korean/character02/0644_01":
            return d
    raise AssertionError("fixture drawing missing")


def controls_of(d: Drawing) -> list[np.ndarray]:
    return [splines.to_normalized(cp) for cp in splines.preprocess_drawing(d.strokes)]


def test_the_fixture_drawing_has_three_scored_strokes(drawing):
    assert len(controls_of(drawing)) == 3


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("k", [0, 2])
def test_the_density_integrates_to_one_and_the_frame_holds_its_part(models, drawing, name, k):
    """The location models are GMMs, unbounded: a Riemann sum of the density over a grid
    of 3 px cells reaching 315 px beyond the frame on every side is 1 (1 %); the frame
    grid (the same cells) holds exactly the wide grid's cells inside the frame, a mass
    in (0, 1]."""
    controls = controls_of(drawing)[:k]
    wide = next_stroke_prediction(models[name], controls, WIDE)
    frame = next_stroke_prediction(models[name], controls, FRAME_35)
    assert wide.grid.cell_area == pytest.approx(CELL**2) == frame.grid.cell_area
    total = wide.density.sum() * wide.grid.cell_area
    assert total == pytest.approx(1.0, abs=0.01)
    inside = wide.density[105:140, 105:140]  # rows top to bottom, columns left to right
    np.testing.assert_allclose(frame.density, inside, rtol=1e-5, atol=1e-12)
    mass = frame.density.sum() * frame.grid.cell_area
    assert 0.0 < mass <= total + 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_the_density_at_the_next_start_is_the_loc_site_probability(models, drawing, name):
    """After 2 strokes, the density at stroke 3's true start (a one-cell grid centred on
    it) is exp of the loc log-prob of stroke 3 when the 3 strokes are read: the grid
    geometry, the units (per square px = per square normalized unit / 20^2) and the site."""
    controls = controls_of(drawing)
    start = splines.to_motor(splines.stroke_to_start_offsets(controls[2])[0])
    x, y = float(start[0]), float(start[1])
    one = Grid(1, x - 0.5, y + 0.5, x + 0.5, y - 0.5)
    after_two = next_stroke_prediction(models[name], controls[:2], one)
    after_three = next_stroke_prediction(models[name], controls, FRAME)
    loc = after_three.stroke_log_probs[2]["loc"]
    assert math.log(after_two.density[0, 0] * splines.SCALE**2) == pytest.approx(loc, abs=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_p_end_is_exp_of_the_char_end_log_prob_of_the_scored_drawing(models, drawing, name):
    """Scoring the first K strokes as a complete character (pyrochar.score, the
    teacher-forced program) gives a char_end NLL of -log p_end(K) - sum_{i<K} log(1 - p_end(i));
    the p_end(i) are read after i strokes."""
    controls = controls_of(drawing)
    p = [next_stroke_prediction(models[name], controls[:i]).p_end for i in range(1, 4)]
    assert all(0.0 < v < 1.0 for v in p)
    for k in (1, 2, 3):
        prefix = Drawing(drawing.strokes[:k])
        char_end_nll = float(score(models[name], [prefix]).breakdown["char_end"][0])
        expected = -math.log(p[k - 1]) - sum(math.log(1.0 - v) for v in p[: k - 1])
        assert char_end_nll == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_per_stroke_log_probs_sum_to_the_score(models, drawing, name):
    pred = next_stroke_prediction(models[name], controls_of(drawing))
    scores = score(models[name], [drawing])
    assert -pred.log_prob == pytest.approx(float(scores.nll[0]), abs=1e-4)
    for variable in ("loc", "offset", "stroke_end", "char_end"):
        per_stroke = sum(s[variable] for s in pred.stroke_log_probs)
        assert -per_stroke == pytest.approx(float(scores.breakdown[variable][0]), abs=1e-4)


def test_no_stroke_yet_has_a_density_and_no_termination(models):
    pred = next_stroke_prediction(models["full-ns"], [])
    assert pred.p_end is None and pred.stroke_log_probs == [] and pred.log_prob == 0.0
    assert pred.density.shape == (FRAME.size, FRAME.size) and np.isfinite(pred.density).all()


def test_at_the_stroke_cap_the_character_ends_and_more_is_refused(models):
    model = models["bpl"]
    cap = model.config.max_strokes
    line = [np.array([[-1.0, -1.0 + 0.2 * i], [1.0, -1.0 + 0.2 * i]]) for i in range(cap + 1)]
    pred = next_stroke_prediction(model, line[:cap])
    assert pred.density is None and pred.p_end == 1.0
    assert len(pred.stroke_log_probs) == cap and pred.stroke_log_probs[-1]["char_end"] == 0.0
    with pytest.raises(CapsExceeded, match="at most 10"):
        next_stroke_prediction(model, line)


def test_grid_arguments(models):
    assert next_stroke_prediction(models["bpl"], [], 8).density.shape == (8, 8)
    points = Grid(2).motor_points()
    np.testing.assert_allclose(points, [[26.25, -26.25], [78.75, -26.25], [26.25, -78.75],
                                        [78.75, -78.75]])
    with pytest.raises(ValueError, match="grid size"):
        Grid(0)
    with pytest.raises(ValueError, match="span an area"):
        Grid(4, 0, 0, 0, -105)
    with pytest.raises(ValueError, match="Grid or an int"):
        next_stroke_prediction(models["bpl"], [], grid=2.5)
    with pytest.raises(TypeError, match="pyrochar model"):
        next_stroke_prediction("full-ns", [])


# ------------------------------------------------------------ while a stroke is drawn


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("p", [1, 2])
def test_next_point_density_is_the_offset_site_probability(models, drawing, name, p):
    """Stroke 2 (4 control points) drawn up to P of them: the density at its true control point P is
    the probability of offset P - 1, the difference of two partial log-likelihoods
    (pyrochar.complete: P + 1 points whatever follows, minus P points and "goes on");
    for P = 1 the known point is the start y and control point 1 = y + 0.8 offset."""
    from pyrochar.complete import log_likelihood_partial
    from pyrochar.models.batch import CharacterBatch
    from pyrochar.predict import next_point_prediction

    controls = controls_of(drawing)
    stroke = controls[1]
    start, _ = splines.stroke_to_start_offsets(stroke)
    partial = start[None] if p == 1 else stroke[:p]
    target = splines.to_motor(stroke[p])
    x, y = float(target[0]), float(target[1])
    pred = next_point_prediction(models[name], controls[:1], partial, Grid(1, x - 0.5, y + 0.5, x + 0.5, y - 0.5))
    np.testing.assert_allclose(pred.anchor, splines.to_motor(partial[-1]))
    batch = CharacterBatch.from_control_points([controls])
    more = log_likelihood_partial(models[name], batch, 1, p + 1, stroke_goes_on=False)
    less = log_likelihood_partial(models[name], batch, 1, p, stroke_goes_on=True)
    jacobian = (0.8 if p == 1 else 1.0) ** 2 * splines.SCALE**2
    assert math.log(pred.density[0, 0] * jacobian) == pytest.approx(float(more - less), abs=1e-4)


@pytest.mark.parametrize("name", ["full-ns", "bpl"])
def test_next_point_density_integrates_to_one(models, drawing, name):
    from pyrochar.predict import next_point_prediction

    controls = controls_of(drawing)
    pred = next_point_prediction(models[name], controls[:1], controls[1][:2], WIDE)
    assert pred.density.sum() * pred.grid.cell_area == pytest.approx(1.0, abs=0.01)


def test_next_point_at_the_caps(models):
    from pyrochar.predict import next_point_prediction

    model = models["bpl"]
    long = np.column_stack([np.linspace(-2, 2, model.config.max_steps + 1), np.zeros(model.config.max_steps + 1)])
    assert next_point_prediction(model, [], long).density is None  # the stroke must end
    assert next_point_prediction(model, [], long[:-1]).density is not None
    line = [np.array([[-1.0, 0.2 * i], [1.0, 0.2 * i]]) for i in range(model.config.max_strokes)]
    with pytest.raises(CapsExceeded, match="at most 10 strokes"):
        next_point_prediction(model, line, long[:2])
