"""The contract every model fulfils (pyrochar/models/base.py), checked for all four.

Model-specific behaviour (architecture, pen decomposition, EM fit, ...) is tested
in each model's own file; what every model must do alike is tested once here.
"""

import dataclasses

import pyro
import pyro.poutine as poutine
import pytest
import torch
from conftest import TINY, adam_losses

from pyrochar.checkpoint import load_checkpoint, save_checkpoint
from pyrochar.handlers import temperature
from pyrochar.models import build_model
from pyrochar.models.batch import CharacterBatch
from pyrochar.models.sites import VARIABLES, site_variable
from pyrochar.sampling import sample_batch
from pyrochar.scoring import log_likelihood, log_likelihood_per_step

pytestmark = pytest.mark.usefixtures("one_thread")

# Drawings of greek_source with 1 to 3 strokes (the first ten have one stroke each)
MIXED = list(range(12, 20))

# Adam settings of the overfitting test, per model (the LSTMs take larger steps); all
# fit MIXED, so that what carries from stroke to stroke (canvases, LSTM memory) is
# trained too. bpl has no such test: it is fitted in closed form (tests/test_bpl.py).
OVERFIT = {
    "full-ns": dict(lr=3e-3, steps=150),
    "hlstm": dict(lr=1e-2, steps=120),
    "baseline": dict(lr=1e-2, steps=150),
}


@pytest.fixture(params=sorted(TINY))
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, TINY[request.param]).eval()


def _batch(model, greek_source, index):
    """Drawings of greek_source (several and single strokes alternate), with canvases
    only for the models that read them."""
    b = greek_source.batch(index)
    return b if model.uses_canvases else CharacterBatch(b.starts, b.offsets, b.n_offsets, b.n_strokes)


def test_fast_path_equals_per_step_model(model, greek_source):
    batch = _batch(model, greek_source, range(12))
    with torch.no_grad():
        fast, fast_parts = log_likelihood(model, batch)
        slow, slow_parts = log_likelihood_per_step(model, batch)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)
    for k in fast_parts:
        assert torch.allclose(fast_parts[k], slow_parts[k], atol=1e-4, rtol=0), k
    assert torch.allclose(sum(fast_parts.values()), fast, atol=1e-4)


def test_padding_values_do_not_change_the_nll(model, greek_source):
    batch = _batch(model, greek_source, range(10))
    with torch.no_grad():
        ref, _ = log_likelihood(model, batch)
        padded = CharacterBatch(
            torch.where(batch.stroke_mask.unsqueeze(-1), batch.starts, torch.tensor(1e3)),
            torch.where(batch.step_mask.unsqueeze(-1), batch.offsets, torch.tensor(-1e3)),
            batch.n_offsets,
            batch.n_strokes,
            batch.canvases,
        )
        got, _ = log_likelihood(model, padded)
        got_slow, _ = log_likelihood_per_step(model, padded)
    assert torch.allclose(ref, got, atol=1e-5)
    assert torch.allclose(ref, got_slow, atol=1e-4)


def test_batch_equals_one_by_one(model, greek_source):
    batch = _batch(model, greek_source, range(8))
    with torch.no_grad():
        together, _ = log_likelihood(model, batch)
        alone = torch.stack([log_likelihood(model, batch[[k]])[0][0] for k in range(8)])
    assert torch.allclose(together, alone, atol=1e-4)


def test_sample_values_are_those_of_the_trace(model):
    pyro.set_rng_seed(3)
    with torch.no_grad():
        tr = poutine.trace(model.model).get_trace(batch_size=4)
    out = tr.nodes["_RETURN"]["value"]
    for k in range(4):
        for i in range(int(out.n_strokes[k])):
            assert torch.equal(out.starts[k, i], tr.nodes[f"loc_{i}"]["value"][k])
            for t in range(int(out.n_offsets[k, i])):
                assert torch.equal(out.offsets[k, i, t], tr.nodes[f"offset_{i}_{t}"]["value"][k])


def test_temperature_leaves_observed_sites_alone(model, greek_source):
    batch = _batch(model, greek_source, range(3))
    conditioned = poutine.condition(model.model, data=batch.condition_dict())
    with torch.no_grad():
        a = poutine.trace(conditioned).get_trace(batch_size=3).log_prob_sum()
        tempered = temperature(conditioned, temperature=0.3)
        b = poutine.trace(tempered).get_trace(batch_size=3).log_prob_sum()
    assert torch.allclose(a, b)


def test_lower_temperature_lowers_the_spread(model):
    def spread(t):
        pyro.set_rng_seed(0)
        with temperature(temperature=t), torch.no_grad():
            tr = poutine.trace(model.model).get_trace(batch_size=400)
        return tr.nodes["loc_0"]["value"].std(0).mean(), tr.nodes["offset_0_0"]["value"].std(0).mean()

    (loc_cold, off_cold), (loc_warm, off_warm) = spread(0.3), spread(1.0)
    assert loc_cold < loc_warm and off_cold < off_warm


def test_checkpoint_round_trip_gives_identical_scores(model, greek_source, tmp_path):
    batch = _batch(model, greek_source, range(5))
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_checkpoint(tmp_path / "m.pt", expected_model=model.name)
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(log_likelihood(model, batch)[0], log_likelihood(loaded, batch)[0])


def test_trace_has_exactly_the_documented_sites(model, greek_source):
    # a drawing of 3 strokes: every kind of site, for several strokes
    d = int(next(i for i in range(40) if greek_source.n_strokes[i] >= 3))
    batch = _batch(model, greek_source, [d])
    n_off = [int(n) for n in batch.n_offsets[0]]
    tr = poutine.trace(poutine.condition(model.model, data=batch.condition_dict())).get_trace(batch_size=1)
    sites = {n: s for n, s in tr.nodes.items() if s["type"] == "sample" and n != "characters"}
    names = {n for n, s in sites.items() if not s["infer"].get("padding")}
    expected = set()
    for i, n in enumerate(n_off):
        expected |= {f"loc_{i}", f"char_end_{i}"}
        expected |= {f"offset_{i}_{t}" for t in range(n)}
        expected |= {f"stroke_end_{i}_{t}" for t in range(n)}
    assert names == expected
    # every run has the sites up to the caps: the rest are observed zeros, masked out
    c = model.config
    assert len(sites) == c.max_strokes * (2 + 2 * c.max_steps)
    assert all(s["is_observed"] for s in sites.values())
    assert all(site_variable(n) == s["infer"]["variable"] for n, s in sites.items())
    assert all([f.name for f in s["cond_indep_stack"]] == ["characters"] for s in sites.values())

    # the teacher-forced program: one site per type, all in the model's one plate
    plate = model.teacher_forced_plate
    fast = poutine.trace(model.teacher_forced_model).get_trace(batch)
    fast_names = {n for n, s in fast.nodes.items() if s["type"] == "sample" and n != plate}
    assert fast_names == set(VARIABLES)
    assert all(fast.nodes[n]["is_observed"] for n in fast_names)
    assert all([f.name for f in fast.nodes[n]["cond_indep_stack"]] == [plate] for n in fast_names)


def test_sample_then_score_round_trip(model):
    # caps the untrained samples run into, so that capped strokes and characters are
    # scored too (bpl's tiny config keeps the default 10 strokes of 50 offsets)
    model.config = dataclasses.replace(model.config, max_strokes=4, max_steps=6)
    if model.name == "bpl":
        # untrained, its hazard logits are all 0: make every slot differ, so that a
        # slot mix-up between the two programs shows
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
    samples = sample_batch(model, 64, seed=1)
    assert samples.n_strokes.min() >= 1
    assert samples.n_strokes.max() <= 4
    assert (samples.n_offsets[samples.stroke_mask] >= 1).all()
    assert (samples.n_offsets[~samples.stroke_mask] == 0).all()
    assert (samples.n_offsets <= 6).all()
    assert (samples.starts[~samples.stroke_mask] == 0).all()
    assert (samples.offsets[~samples.step_mask] == 0).all()
    strokes = CharacterBatch(samples.starts, samples.offsets, samples.n_offsets, samples.n_strokes)
    if model.uses_canvases:  # the canvases it drew on are those scoring renders
        assert torch.allclose(samples.canvases, model.prepare_batch(strokes).canvases, atol=1e-5)
    else:
        assert samples.canvases is None
    with torch.no_grad():
        ll, _ = log_likelihood(model, strokes)
        slow, _ = log_likelihood_per_step(model, strokes)
    assert torch.isfinite(ll).all()
    assert torch.allclose(ll, slow, atol=1e-4, rtol=0)


@pytest.mark.parametrize("model", sorted(OVERFIT), indirect=True)
def test_small_model_overfits_a_few_characters(model, greek_source):
    model.train()
    losses = adam_losses(model, _batch(model, greek_source, MIXED), **OVERFIT[model.name])
    assert losses[-1] < 0.6 * losses[0]


# Sites that moving stroke 1's first offset must change, per model (each model's
# memory of earlier strokes: Full NS's canvas, the LSTMs' state; bpl draws strokes
# independently, tests/test_bpl.py checks that more closely).
CHANGED_BY_STROKE_1 = {
    "full-ns": ["offset_1_0", "offset_1_1", "char_end_1", "loc_2"],
    "hlstm": ["offset_1_0", "char_end_1", "loc_2"],
    "baseline": ["offset_1_0", "offset_1_1", "char_end_1", "loc_2"],
    "bpl": ["offset_1_0"],
}


def test_later_strokes_do_not_change_earlier_sites(model, greek_source):
    """Causality: moving an offset of stroke 1 never changes a site drawn before it."""
    # a drawing of 3 strokes or more whose stroke 1 has at least 2 offsets
    d = next(i for i in range(40) if greek_source.n_strokes[i] >= 3 and greek_source.batch([i]).n_offsets[0, 1] >= 2)
    batch = _batch(model, greek_source, [d])
    moved = CharacterBatch(batch.starts, batch.offsets.clone(), batch.n_offsets, batch.n_strokes)
    moved.offsets[0, 1, 0] += 0.5

    def site_log_probs(b):
        data = b.condition_dict()
        with torch.no_grad():
            tr = poutine.trace(poutine.condition(model.model, data=data)).get_trace(1)
        tr.compute_log_prob()
        return {k: s["log_prob"] for k, s in tr.nodes.items() if k in data}

    a, b = site_log_probs(batch), site_log_probs(moved)
    for site in ["loc_0", "char_end_0", "loc_1", "stroke_end_1_0"]:
        assert torch.equal(a[site], b[site]), site
    for site in CHANGED_BY_STROKE_1[model.name]:
        assert not torch.allclose(a[site], b[site]), site
