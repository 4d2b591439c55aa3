"""Pyro's own inference utilities work on every model: SVI, Predictive, handlers, conditioning.

Each test runs for the four models (tiny configs); the per-step program and the
teacher-forced program (behind score, train and evaluate) must agree under handlers.
"""

from __future__ import annotations

import dataclasses

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from conftest import TINY
from pyro.infer import SVI, Predictive, Trace_ELBO

from pyrochar.errors import PyrocharError
from pyrochar.handlers import swap_sites, temperature
from pyrochar.models import build_model
from pyrochar.models.base import CapsExceeded
from pyrochar.models.batch import CharacterBatch
from pyrochar.sampling import sample_batch
from pyrochar.scoring import log_likelihood, log_likelihood_per_step

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=sorted(TINY))
def model(request):
    torch.manual_seed(0)
    pyro.clear_param_store()
    m = build_model(request.param, TINY[request.param]).eval()
    if m.name == "bpl":  # untrained, its slots are all alike: make them differ
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return m


def _batch(model, source, index):
    b = source.batch(index)
    return b if model.uses_canvases else CharacterBatch(b.starts, b.offsets, b.n_offsets, b.n_strokes)


def empty_guide(batch):
    """Every site of the teacher-forced program is observed: nothing to guess."""


def test_svi_loss_is_the_training_objective_and_svi_trains(model, greek_source):
    batch = _batch(model, greek_source, range(12, 20))
    elbo = Trace_ELBO()
    with torch.no_grad():
        loss = elbo.loss(model.teacher_forced_model, empty_guide, batch)
        nll = -log_likelihood(model, batch)[0]
    # the training loop minimizes the mean NLL per drawing; the ELBO is its sum
    assert loss == pytest.approx(float(nll.sum()), rel=1e-5)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    svi = SVI(model.teacher_forced_model, empty_guide, pyro.optim.Adam({"lr": 1e-2}), elbo)
    losses = [svi.step(batch) for _ in range(15)]
    assert losses[-1] < losses[0]
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) == len(before), sorted(set(before) - set(changed))  # SVI found every parameter
    store = pyro.get_param_store()
    assert all(f"{model.name}$$${k}" in store for k in before)


def test_a_later_model_takes_the_param_store_name_over(model, greek_source):
    batch = _batch(model, greek_source, range(3))
    Trace_ELBO().loss(model.teacher_forced_model, empty_guide, batch)
    other = build_model(model.name, TINY[model.name]).eval()
    Trace_ELBO().loss(other.teacher_forced_model, empty_guide, batch)
    name, p = next(iter(other.named_parameters()))
    assert pyro.get_param_store()[f"{other.name}$$${name}"] is p


def test_swapping_the_location_prior_acts_on_both_programs_alike(model, greek_source):
    batch = _batch(model, greek_source, range(10, 22))  # one to three strokes
    wide = dist.MultivariateNormal(torch.zeros(2), 4.0 * torch.eye(2))
    handlers = {
        "all starts": {"loc_*": lambda name, d: wide},
        "the first start": {"loc_0": lambda name, d: wide},
        "first offsets": {"offset_*_0": lambda name, d: dist.Normal(torch.zeros(2), 0.5).to_event(1)},
    }
    with torch.no_grad():
        fast0, _ = log_likelihood(model, batch)
        slow0, _ = log_likelihood_per_step(model, batch)
        for what, sites in handlers.items():
            with swap_sites(sites=sites):
                fast, _ = log_likelihood(model, batch)
                slow, _ = log_likelihood_per_step(model, batch)
            assert not torch.allclose(fast, fast0), what
            assert torch.allclose(fast - fast0, slow - slow0, atol=1e-4, rtol=0), what


def test_swap_of_the_first_start_changes_only_that_term(model, greek_source):
    batch = _batch(model, greek_source, range(10, 22))
    wide = dist.MultivariateNormal(torch.zeros(2), 4.0 * torch.eye(2))
    with torch.no_grad():
        _, parts0 = log_likelihood(model, batch)
        with swap_sites(sites={"loc_0": lambda name, d: wide}):
            _, parts = log_likelihood(model, batch)
    expected = wide.log_prob(batch.starts[:, 0])
    assert torch.allclose(parts["loc"] - parts0["loc"], expected - _first_start_lp(model, batch), atol=1e-4)
    for k in ("offset", "stroke_end", "char_end"):
        assert torch.equal(parts[k], parts0[k])


def _first_start_lp(model, batch):
    tr = poutine.trace(poutine.condition(model.model, data=batch.condition_dict())).get_trace(batch.batch_size)
    tr.compute_log_prob()
    return tr.nodes["loc_0"]["log_prob"]


def test_scale_and_mask_handlers_act_alike(model, greek_source):
    batch = _batch(model, greek_source, range(10, 16))
    with torch.no_grad():
        for handler in (poutine.scale(scale=0.5), poutine.mask(mask=False)):
            with handler:
                fast = poutine.trace(model.teacher_forced_model).get_trace(batch).log_prob_sum()
                slow = poutine.trace(poutine.condition(model.model, data=batch.condition_dict())).get_trace(
                    batch.batch_size
                ).log_prob_sum()
            assert torch.allclose(fast, slow, atol=1e-3)


def test_predictive_runs_and_parallel_says_why_not(model):
    pyro.set_rng_seed(0)
    samples = Predictive(model.model, num_samples=4)(batch_size=3)
    c = model.config
    assert samples["loc_0"].shape == (4, 3, 2)
    assert samples[f"stroke_end_{c.max_strokes - 1}_{c.max_steps - 1}"].shape == (4, 3)
    with pytest.raises(PyrocharError, match="parallel=False"):
        Predictive(model.model, num_samples=4, parallel=True)(batch_size=3)


def test_conditioning_on_a_drawing_longer_than_the_caps_raises(model, greek_source):
    batch = _batch(model, greek_source, range(10, 22))
    assert int(batch.n_strokes.max()) >= 2
    capped = dataclasses.replace(model.config, max_strokes=1)
    model.config = capped
    with pytest.raises(CapsExceeded, match="cap"):
        poutine.trace(poutine.condition(model.model, data=batch.condition_dict())).get_trace(batch.batch_size)
    with pytest.raises(CapsExceeded, match="max_strokes"):
        log_likelihood(model, batch)


def test_conditioning_on_too_many_offsets_raises(model, greek_source):
    batch = _batch(model, greek_source, range(10, 22))
    model.config = dataclasses.replace(model.config, max_steps=2)
    with pytest.raises(CapsExceeded):
        log_likelihood_per_step(model, batch)
    with pytest.raises(CapsExceeded):
        poutine.trace(poutine.condition(model.model, data=batch.condition_dict())).get_trace(batch.batch_size)


def test_samples_at_the_caps_are_exactly_their_traces(model):
    """At a low temperature strokes run to the cap; the drawing returned is the trace:
    scoring it gives the (untempered) model's log-prob of the trace's values."""
    model.config = dataclasses.replace(model.config, max_strokes=2, max_steps=2)
    pyro.set_rng_seed(2)
    with torch.no_grad(), temperature(temperature=0.25):
        tr = poutine.trace(model.model).get_trace(batch_size=40)
    out = tr.nodes["_RETURN"]["value"]
    assert (out.n_offsets == 2).any() and (out.n_strokes == 2).any()  # the caps were hit
    with torch.no_grad():
        untempered = poutine.trace(poutine.replay(model.model, trace=tr)).get_trace(40)
        drawn = CharacterBatch(out.starts, out.offsets, out.n_offsets, out.n_strokes)
        fast, _ = log_likelihood(model, drawn)
    untempered.compute_log_prob()
    trace_lp = sum(s["log_prob"] for n, s in untempered.nodes.items() if s["type"] == "sample" and n != "characters")
    assert torch.allclose(fast, trace_lp, atol=1e-4, rtol=0)


def test_a_single_control_point_stroke_is_a_dot_both_programs_score(model):
    import numpy as np

    drawing = [np.array([[0.1, 0.2]]), np.array([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])]
    batch = CharacterBatch.from_control_points([drawing])
    assert batch.n_offsets[0].tolist() == [1, 2]
    assert torch.equal(batch.offsets[0, 0, 0], torch.zeros(2))
    with torch.no_grad():
        fast, _ = log_likelihood(model, batch)
        slow, _ = log_likelihood_per_step(model, batch)
    assert torch.isfinite(fast).all()
    assert torch.allclose(fast, slow, atol=1e-4)


def test_no_site_is_left_unobserved_by_conditioning_on_a_whole_drawing(model, greek_source):
    batch = _batch(model, greek_source, range(10, 22))
    tr = poutine.trace(poutine.condition(model.model, data=batch.condition_dict())).get_trace(batch.batch_size)
    unobserved = [n for n, s in tr.nodes.items()
                  if s["type"] == "sample" and n != "characters" and not s["is_observed"]]  # fmt: skip
    assert unobserved == []


def test_public_functions_check_their_arguments(model, greek_source):
    from pyrochar.complete import complete
    from pyrochar.sampling import sample_characters

    batch = _batch(model, greek_source, range(3))
    wrong = [
        (lambda: sample_characters(model, 0), ValueError),
        (lambda: sample_characters(model, 2, seed="1"), TypeError),
        (lambda: sample_batch(model, 2, temperature=float("nan")), ValueError),
        (lambda: poutine.trace(model.model).get_trace(batch_size=0), ValueError),
        (lambda: log_likelihood(model, [batch]), TypeError),
        (lambda: CharacterBatch.from_control_points([]), ValueError),
        (lambda: complete(model, batch, keep_strokes=1, n=2.5), TypeError),
        (lambda: swap_sites(sites={"loc_*": "not a function"}), TypeError),
    ]
    for call, error in wrong:
        with pytest.raises(error):
            call()


def test_conditioning_many_characters_on_one_drawings_values(model, greek_source):
    """Values observed for one drawing (1, ...) hold for every character of the batch."""
    one = _batch(model, greek_source, [12])
    data = {k: v for k, v in one.condition_dict().items() if k in ("loc_0", "offset_0_0")}
    tr = poutine.trace(poutine.condition(model.model, data=data)).get_trace(batch_size=4)
    out = tr.nodes["_RETURN"]["value"]
    assert torch.equal(out.starts[:, 0], one.starts[0, 0].expand(4, 2))
    assert torch.isfinite(tr.log_prob_sum())
    with pytest.raises(PyrocharError, match="loc_0 has shape"):
        poutine.trace(poutine.condition(model.model, data={"loc_0": torch.zeros(3, 2)})).get_trace(batch_size=4)


def test_swap_sites_wants_functions():
    with pytest.raises(TypeError, match="lambda name, original"):
        swap_sites(sites={"loc_0": dist.Normal(0.0, 1.0)})


def test_swap_sites_warns_about_a_pattern_that_matches_nothing(model, greek_source):
    batch = _batch(model, greek_source, range(3))
    normal = lambda name, d: dist.Normal(torch.zeros(2), 1.0).to_event(1)  # noqa: E731
    with pytest.warns(UserWarning, match="'locs_\\*' matched no site"), torch.no_grad():
        with swap_sites(sites={"locs_*": normal}):
            log_likelihood(model, batch)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with swap_sites(sites={"loc_*": normal}), torch.no_grad():
            log_likelihood(model, batch)
            log_likelihood_per_step(model, batch)
