"""The Full NS model: sites, masks, fast path = per-step model, sampling, overfitting."""

import pyro
import pyro.poutine as poutine
import pytest
import torch
from conftest import TINY_FULL_NS

from pyrochar.handlers import temperature
from pyrochar.infer import log_likelihood, log_likelihood_per_step
from pyrochar.models import FullNSConfig, GenerateCharacter
from pyrochar.models.batch import CharacterBatch
from pyrochar.sampling import sample_batch


def tiny(**kw) -> GenerateCharacter:
    torch.manual_seed(0)
    return GenerateCharacter(FullNSConfig(**{**TINY_FULL_NS, **kw})).eval()


def test_default_stroke_network_has_about_1_2_million_parameters():
    m = GenerateCharacter()
    n = sum(p.numel() for p in m.stroke.parameters())
    assert 1.0e6 < n < 1.4e6


def test_trace_has_exactly_the_documented_sites(greek_source):
    m = tiny()
    batch = greek_source.batch([0])
    n_off = [int(n) for n in batch.n_offsets[0]]
    data = batch.condition_dict()
    tr = poutine.trace(poutine.condition(m.model, data=data)).get_trace(
        batch_size=1, max_steps=max(n_off)
    )
    names = {n for n, s in tr.nodes.items() if s["type"] == "sample" and n != "characters"}
    expected = set()
    for i, n in enumerate(n_off):
        expected |= {f"loc_{i}", f"char_end_{i}"}
        expected |= {f"offset_{i}_{t}" for t in range(n)}
        expected |= {f"stroke_end_{i}_{t}" for t in range(n)}
    assert names == expected
    assert all(tr.nodes[n]["is_observed"] for n in names)


@pytest.mark.parametrize(
    "variant", [{"attention": "post"}, {"attention": "sat"}, {"location_uses_prev_end": True}]
)
def test_fast_path_equals_per_step_model(greek_source, variant):
    m = tiny(**variant)
    batch = greek_source.batch(range(12))
    with torch.no_grad():
        fast, fast_parts = log_likelihood(m, batch)
        slow, slow_parts = log_likelihood_per_step(m, batch)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)
    for k in fast_parts:
        assert torch.allclose(fast_parts[k], slow_parts[k], atol=1e-4, rtol=0), k
    # and the total is the sum of the breakdown
    assert torch.allclose(sum(fast_parts.values()), fast, atol=1e-4)


def test_conditioned_trace_log_prob_is_sum_of_site_log_probs(greek_source):
    m = tiny()
    batch = greek_source.batch(range(5))
    tr = poutine.trace(poutine.condition(m.model, data=batch.condition_dict())).get_trace(
        batch_size=5, max_strokes=batch.starts.shape[1], max_steps=batch.offsets.shape[2]
    )
    tr.compute_log_prob()
    total = sum(s["log_prob"].sum() for n, s in tr.nodes.items() if s["type"] == "sample" and n != "characters")
    assert torch.allclose(tr.log_prob_sum(), total)
    per_drawing, _ = log_likelihood_per_step(m, batch)
    assert torch.allclose(per_drawing.sum(), total, atol=1e-4)


def test_padding_values_do_not_change_the_nll(greek_source):
    m = tiny()
    batch = greek_source.batch(range(10))
    with torch.no_grad():
        ref, _ = log_likelihood(m, batch)
        padded = CharacterBatch(
            torch.where(batch.stroke_mask.unsqueeze(-1), batch.starts, torch.tensor(1e3)),
            torch.where(batch.step_mask.unsqueeze(-1), batch.offsets, torch.tensor(-1e3)),
            batch.n_offsets,
            batch.n_strokes,
            batch.canvases,
        )
        got, _ = log_likelihood(m, padded)
        got_slow, _ = log_likelihood_per_step(m, padded)
    assert torch.allclose(ref, got, atol=1e-5)
    assert torch.allclose(ref, got_slow, atol=1e-4)


def test_batch_equals_one_by_one(greek_source):
    m = tiny()
    batch = greek_source.batch(range(8))
    with torch.no_grad():
        together, _ = log_likelihood(m, batch)
        alone = torch.stack([log_likelihood(m, greek_source.batch([k]))[0][0] for k in range(8)])
    assert torch.allclose(together, alone, atol=1e-4)


def test_canvases_rendered_by_the_model_match_the_cache(greek_source):
    m = tiny()
    batch = greek_source.batch(range(6))
    fresh = m.prepare_batch(CharacterBatch(batch.starts, batch.offsets, batch.n_offsets, batch.n_strokes))
    assert torch.allclose(fresh.canvases, batch.canvases, atol=1e-5)


def test_sample_then_score_round_trip():
    m = tiny()
    pyro.set_rng_seed(1)
    samples = sample_batch(m, 16)
    assert samples.n_strokes.min() >= 1
    assert samples.n_strokes.max() <= m.config.max_strokes
    assert (samples.n_offsets[samples.stroke_mask] >= 1).all()
    assert (samples.n_offsets <= m.config.max_steps).all()
    with torch.no_grad():
        ll, _ = log_likelihood(m, CharacterBatch(samples.starts, samples.offsets, samples.n_offsets, samples.n_strokes))
    assert torch.isfinite(ll).all()


def test_sample_values_are_those_of_the_trace():
    m = tiny()
    pyro.set_rng_seed(3)
    tr = poutine.trace(m.model).get_trace(batch_size=4)
    out = tr.nodes["_RETURN"]["value"]
    for k in range(4):
        for i in range(int(out.n_strokes[k])):
            assert torch.equal(out.starts[k, i], tr.nodes[f"loc_{i}"]["value"][k])
            for t in range(int(out.n_offsets[k, i])):
                assert torch.equal(out.offsets[k, i, t], tr.nodes[f"offset_{i}_{t}"]["value"][k])


def test_lower_temperature_lowers_the_spread():
    m = tiny()

    def spread(t):
        pyro.set_rng_seed(0)
        with temperature(temperature=t), torch.no_grad():
            tr = poutine.trace(m.model).get_trace(batch_size=400)
        return tr.nodes["loc_0"]["value"].std(0).mean()

    assert spread(0.3) < spread(1.0)


def test_temperature_leaves_observed_sites_alone(greek_source):
    m = tiny()
    batch = greek_source.batch(range(3))
    conditioned = poutine.condition(m.model, data=batch.condition_dict())
    with torch.no_grad():
        caps = dict(max_strokes=batch.starts.shape[1], max_steps=batch.offsets.shape[2])
        a = poutine.trace(conditioned).get_trace(batch_size=3, **caps).log_prob_sum()
        tempered = temperature(conditioned, temperature=0.3)
        b = poutine.trace(tempered).get_trace(batch_size=3, **caps).log_prob_sum()
    assert torch.allclose(a, b)


def test_small_model_overfits_ten_characters(greek_source):
    m = tiny()
    m.train()
    batch = greek_source.batch(range(10))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        ll, _ = log_likelihood(m, batch)
        loss = -ll.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
