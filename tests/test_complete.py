"""Completing partial drawings, partial likelihoods, importance sampling."""

import pyro
import pytest
import torch
from conftest import TINY_FULL_NS

from pyrochar.complete import (
    complete,
    importance_complete,
    log_likelihood_partial,
    prefix_condition_dict,
)
from pyrochar.errors import PyrocharError
from pyrochar.models import FullNSConfig, GenerateCharacter
from pyrochar.models.batch import CharacterBatch
from pyrochar.scoring import log_likelihood


def tiny():
    torch.manual_seed(0)
    return GenerateCharacter(FullNSConfig(**{**TINY_FULL_NS, "max_steps": 40})).eval()


@pytest.fixture
def two_stroke(greek_source):
    """A batch of Greek drawings with at least 2 strokes."""
    idx = [k for k in range(len(greek_source)) if greek_source.n_strokes[k] >= 2][:4]
    return greek_source.batch(idx)


def test_completions_keep_every_observed_site_and_vary_after(two_stroke):
    m = tiny()
    out = complete(m, two_stroke, keep_strokes=1, n=6, seed=0)
    n0 = int(two_stroke.n_offsets[0, 0])
    for k in range(6):
        assert torch.equal(out.starts[k, 0], two_stroke.starts[0, 0])
        assert torch.equal(out.offsets[k, 0, :n0], two_stroke.offsets[0, 0, :n0])
        assert int(out.n_offsets[k, 0]) == n0
    # the sites after the evidence vary: "character ends after stroke 1" is sampled,
    # and so is everything after it
    assert len({tuple(out.starts[k, 1].tolist()) for k in range(6)}) > 1 or len(set(out.n_strokes.tolist())) > 1


def test_partial_control_points_are_kept(two_stroke):
    m = tiny()
    out = complete(m, two_stroke, keep_strokes=1, prefix_points=2, n=4, seed=1)
    for k in range(4):
        assert int(out.n_strokes[k]) >= 2  # stroke 2 exists: it was observed
        assert torch.equal(out.starts[k, 1], two_stroke.starts[0, 1])
        assert torch.equal(out.offsets[k, 1, 0], two_stroke.offsets[0, 1, 0])


def test_partial_likelihood_of_the_whole_drawing_is_the_full_likelihood(two_stroke):
    m = tiny()
    full, _ = log_likelihood(m, two_stroke)
    n = two_stroke.n_strokes
    # keeping every stroke: the prefix is the whole drawing minus the final "ends" decision
    same = two_stroke[(n == n[0]).nonzero().flatten()]
    k = int(same.n_strokes[0])
    prefix = log_likelihood_partial(m, same, keep_strokes=k)
    full_same, parts = log_likelihood(m, same)
    last_end = torch.distributions.Bernoulli(
        logits=m.termination(same.canvases[:, k])
    ).log_prob(torch.ones(same.batch_size))
    assert torch.allclose(prefix + last_end, full_same, atol=1e-4)
    # a shorter prefix is more probable than the whole drawing
    one = log_likelihood_partial(m, two_stroke, keep_strokes=1)
    assert (one > full).all()


def test_a_partial_stroke_that_goes_on_or_not(two_stroke):
    """--partial-stroke goes-on / any: with all of stroke 2's control points, "any" is
    the two-stroke prefix without stroke 2's final "stroke ends" decision; "goes-on"
    asserts the stroke continues, so it is less probable than "any"."""
    m = tiny()
    d = two_stroke[[0]]
    n_cp = int(d.n_offsets[0, 1]) + 1
    whole = log_likelihood_partial(m, d, keep_strokes=2)
    free = log_likelihood_partial(m, d, keep_strokes=1, prefix_points=n_cp, stroke_goes_on=False)
    goes_on = log_likelihood_partial(m, d, keep_strokes=1, prefix_points=n_cp)
    tr = pyro.poutine.trace(pyro.poutine.condition(m.model, data=d.condition_dict())).get_trace(1)
    tr.compute_log_prob()
    last_end = tr.nodes[f"stroke_end_1_{n_cp - 2}"]["log_prob"]  # log p(stroke 2 ends there)
    assert torch.allclose(free + last_end, whole, atol=1e-4)
    assert torch.allclose(goes_on, free + torch.log1p(-last_end.exp()), atol=1e-4)
    assert (goes_on < free).all()


def test_prefix_dict_errors(two_stroke):
    with pytest.raises(ValueError):
        prefix_condition_dict(two_stroke, 0, 0)
    with pytest.raises(ValueError, match="at least"):
        prefix_condition_dict(two_stroke, 10)


def test_importance_weights_constant_when_evidence_is_at_the_start(two_stroke):
    m = tiny()
    data = {"loc_0": two_stroke.starts[0, 0]}
    res = importance_complete(m, data, particles=50, n_out=5, seed=0)
    assert torch.allclose(res.log_weights, res.log_weights[0].expand(50), atol=1e-5)
    assert res.ess == pytest.approx(50, rel=1e-4)
    assert torch.equal(res.completions.starts[:, 0], two_stroke.starts[0, 0].expand(5, 2))


def test_importance_with_later_evidence_reports_ess_and_warns_on_collapse():
    m = tiny()
    pyro.set_rng_seed(0)
    res = importance_complete(m, {"char_end_0": 0.0, "char_end_1": 1.0}, particles=100, n_out=8, seed=0)
    assert (res.completions.n_strokes == 2).all()  # the evidence holds in every resampled completion
    assert 1 <= res.ess <= 100
    with pytest.warns(UserWarning, match="collapsed"):
        res = importance_complete(m, {"offset_0_1": torch.tensor([3.0, -3.0])}, particles=200,
                                  n_out=4, seed=0, min_ess_fraction=0.5)
    # particles whose first stroke ended after one offset cannot carry offset_0_1
    assert (res.completions.n_offsets[:, 0] >= 2).all()
    with pytest.raises(PyrocharError, match="no particle reached"):
        importance_complete(m, {"char_end_0": 1.0, "loc_1": torch.ones(2)}, particles=10, seed=0)


def test_completion_round_trip_scores_finite(two_stroke):
    m = tiny()
    out = complete(m, two_stroke, keep_strokes=1, n=3, seed=2)
    ll, _ = log_likelihood(m, CharacterBatch(out.starts, out.offsets, out.n_offsets, out.n_strokes))
    assert torch.isfinite(ll).all()
