"""New priors: the plug-in protocol and the site-swapping handler."""

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from conftest import TINY_FULL_NS

from pyrochar.handlers import swap_sites
from pyrochar.models import FullNSConfig, GenerateCharacter
from pyrochar.priors import ConstantTerminationPrior, GaussianLocationPrior
from pyrochar.sampling import sample_batch
from pyrochar.scoring import log_likelihood, log_likelihood_per_step


def tiny():
    torch.manual_seed(0)
    return GenerateCharacter(FullNSConfig(**TINY_FULL_NS)).eval()


def _site_log_probs(model_fn, batch):
    caps = dict(max_strokes=batch.starts.shape[1], max_steps=batch.offsets.shape[2])
    tr = poutine.trace(poutine.condition(model_fn, data=batch.condition_dict())).get_trace(
        batch_size=batch.batch_size, **caps
    )
    tr.compute_log_prob()
    return {n: s["log_prob"] for n, s in tr.nodes.items() if s["type"] == "sample" and n != "characters"}


def test_a_swapped_prior_changes_only_the_sites_it_targets(greek_source):
    m = tiny()
    batch = greek_source.batch(range(6))

    def wide(name, original):
        return dist.Normal(torch.zeros(2), 10.0).to_event(1).expand(original.batch_shape)

    with torch.no_grad():
        before = _site_log_probs(m.model, batch)
        after = _site_log_probs(swap_sites(m.model, {"loc_0": wide}), batch)
    assert before.keys() == after.keys()
    for name in before:
        if name == "loc_0":
            assert not torch.allclose(before[name], after[name])
        else:
            assert torch.equal(before[name], after[name]), name


def test_swap_keeps_masks(greek_source):
    m = tiny()
    batch = greek_source.batch(range(8))  # characters end after different numbers of strokes

    def wide(name, original):
        return dist.Normal(torch.zeros(2), 10.0).to_event(1).expand(original.batch_shape)

    with torch.no_grad():
        after = _site_log_probs(swap_sites(m.model, {"loc_*": wide}), batch)
    last = batch.starts.shape[1] - 1
    dead = batch.n_strokes <= last
    assert (after[f"loc_{last}"][dead] == 0).all()


def test_user_location_prior_with_learned_stroke_model(fixture_prepared, greek_source):
    m = tiny()
    prior = GaussianLocationPrior.fit(fixture_prepared)
    batch = greek_source.batch(range(6))
    with torch.no_grad():
        base, base_parts = log_likelihood(m, batch)
        m.set_priors(location=prior)
        fast, parts = log_likelihood(m, batch)
        slow, _ = log_likelihood_per_step(m, batch)
    # scoring works on both paths and agrees; only the location term changed
    assert torch.allclose(fast, slow, atol=1e-4)
    assert not torch.allclose(parts["loc"], base_parts["loc"])
    for k in ("offset", "stroke_end", "char_end"):
        assert torch.allclose(parts[k], base_parts[k], atol=1e-5)
    # sampling follows the new prior: starts spread like the fitted Gaussian
    pyro.set_rng_seed(0)
    with torch.no_grad():
        tr = poutine.trace(m.model).get_trace(batch_size=2000)
    starts = tr.nodes["loc_0"]["value"]
    assert torch.allclose(starts.mean(0), prior.mean, atol=0.1)
    assert torch.allclose(starts.std(0), prior.scale, atol=0.1)
    m.priors.clear()
    with torch.no_grad():
        again, _ = log_likelihood(m, batch)
    assert torch.allclose(again, base)


def test_termination_prior_sets_the_number_of_strokes():
    m = tiny().set_priors(termination=ConstantTerminationPrior(0.999))
    pyro.set_rng_seed(0)
    out = sample_batch(m, 50)
    assert (out.n_strokes == 1).float().mean() > 0.9
