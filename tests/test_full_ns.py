"""The Full NS model: size, variants, site log-probs, canvases, precision.

What all four models must do alike is tested in test_model_contract.py.
"""

import pyro.poutine as poutine
import pytest
import torch
from conftest import TINY_FULL_NS

from pyrochar.models import FullNSConfig, GenerateCharacter
from pyrochar.models.batch import CharacterBatch
from pyrochar.scoring import log_likelihood, log_likelihood_per_step

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> GenerateCharacter:
    torch.manual_seed(0)
    return GenerateCharacter(FullNSConfig(**{**TINY_FULL_NS, **kw})).eval()


def test_default_stroke_network_has_about_1_2_million_parameters():
    m = GenerateCharacter()
    n = sum(p.numel() for p in m.stroke.parameters())
    assert 1.0e6 < n < 1.4e6


@pytest.mark.parametrize("variant", [{"attention": "sat"}, {"location_uses_prev_end": True}])
def test_fast_path_equals_per_step_model_for_the_variants(greek_source, variant):
    # the default config is checked with the other models in test_model_contract.py
    m = tiny(**variant)
    batch = greek_source.batch(range(12))
    with torch.no_grad():
        fast, fast_parts = log_likelihood(m, batch)
        slow, slow_parts = log_likelihood_per_step(m, batch)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)
    for k in fast_parts:
        assert torch.allclose(fast_parts[k], slow_parts[k], atol=1e-4, rtol=0), k


def test_conditioned_trace_log_prob_is_sum_of_site_log_probs(greek_source):
    m = tiny()
    batch = greek_source.batch(range(5))
    tr = poutine.trace(poutine.condition(m.model, data=batch.condition_dict())).get_trace(batch_size=5)
    tr.compute_log_prob()
    total = sum(s["log_prob"].sum() for n, s in tr.nodes.items() if s["type"] == "sample" and n != "characters")
    assert torch.allclose(tr.log_prob_sum(), total)
    per_drawing, _ = log_likelihood_per_step(m, batch)
    assert torch.allclose(per_drawing.sum(), total, atol=1e-4)


def test_canvases_rendered_by_the_model_match_the_cache(greek_source):
    m = tiny()
    batch = greek_source.batch(range(6))
    fresh = m.prepare_batch(CharacterBatch(batch.starts, batch.offsets, batch.n_offsets, batch.n_strokes))
    assert torch.allclose(fresh.canvases, batch.canvases, atol=1e-5)


def test_mixed_precision_changes_scores_a_little_and_fp32_restores_them(greek_source):
    from pyrochar.errors import PyrocharError

    m = tiny()
    batch = greek_source.batch(range(8))
    with torch.no_grad():
        exact, _ = log_likelihood(m, batch)
        mixed, _ = log_likelihood(m.set_precision("bf16-mixed"), batch)
        again, _ = log_likelihood(m.set_precision("fp32"), batch)
    assert not torch.equal(exact, mixed)
    assert torch.allclose(exact, mixed, atol=0.5)
    assert torch.equal(exact, again)
    with pytest.raises(PyrocharError, match="unknown precision"):
        m.set_precision("fp16")
