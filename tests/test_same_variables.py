"""Full NS, the H-LSTM and the Baseline score the same variables of a drawing.

docs/model.md ("Likelihood"): the NLLs of the three models are comparable only if each
scores every start (the first one absolutely), every offset, every "stroke ends"
and every "character ends" decision, in the same units.
"""

import math

import numpy as np
import pyro.poutine as poutine
import pytest
import torch
from conftest import TINY_BASELINE, TINY_FULL_NS, TINY_HLSTM
from pyro.distributions import Bernoulli, MultivariateNormal
from torch import nn

from pyrochar.distributions import BivariateGMM, gmm_from_raw
from pyrochar.models import build_model
from pyrochar.models.baseline import pen_site_logits, translated
from pyrochar.models.batch import CharacterBatch
from pyrochar.scoring import log_likelihood, log_likelihood_per_step

TINY = {"full-ns": TINY_FULL_NS, "hlstm": TINY_HLSTM, "baseline": TINY_BASELINE}


pytestmark = pytest.mark.usefixtures("one_thread")

def tiny(name):
    torch.manual_seed(0)
    return build_model(name, TINY[name]).eval()


# three strokes of 4, 2 and 3 control points (normalized units)
DRAWING = [
    np.array([[-1.0, 0.5], [-0.4, 0.9], [0.3, 0.6], [0.5, -0.2]]),
    np.array([[0.8, 1.0], [1.1, -0.7]]),
    np.array([[-0.5, -1.0], [0.0, -1.2], [0.6, -0.9]]),
]


def conditioned_trace(model, batch):
    cond = poutine.condition(model.model, data=batch.condition_dict())
    with torch.no_grad():
        return poutine.trace(cond).get_trace(batch.batch_size)


def sites(trace):
    """The sites of the drawing's variables (not the masked padding up to the caps)."""
    return {
        n: s for n, s in trace.nodes.items()
        if s["type"] == "sample" and n != "characters" and not s["infer"].get("padding")
    }


@pytest.mark.parametrize("source", ["greek", "synthetic"])
def test_the_three_models_have_the_same_observed_sites(greek_source, source):
    if source == "greek":
        ns = greek_source.n_strokes[:40]
        d = int(next(i for i in range(40) if ns[i] >= 3))
        batch = greek_source.batch([d])
    else:
        batch = CharacterBatch.from_control_points([DRAWING])
    shapes = {}
    for name in TINY:
        tr = sites(conditioned_trace(tiny(name), batch))
        assert all(s["is_observed"] for s in tr.values()), name
        shapes[name] = {
            n: (tuple(s["value"].shape), tuple(s["fn"].batch_shape), tuple(s["fn"].event_shape))
            for n, s in tr.items()
        }
    assert shapes["hlstm"] == shapes["full-ns"]
    assert shapes["baseline"] == shapes["full-ns"]
    n_offsets = batch.n_offsets[0].tolist()
    n_sites = 2 * len(n_offsets) + 2 * sum(n_offsets)  # loc + char_end, offset + stroke_end
    assert len(shapes["full-ns"]) == n_sites
    for n, (value, _, event) in shapes["full-ns"].items():
        assert value == ((1, 2) if n.startswith(("loc", "offset")) else (1,)), n
        assert event == ((2,) if n.startswith(("loc", "offset")) else ()), n


def test_the_fast_paths_break_down_into_the_same_site_types():
    batch = CharacterBatch.from_control_points([DRAWING, DRAWING[1:], DRAWING[:1]])
    for name in TINY:
        m = tiny(name)
        with torch.no_grad():
            total, parts = log_likelihood(m, m.prepare_batch(batch))
            slow, slow_parts = log_likelihood_per_step(m, batch)
        assert set(parts) == {"loc", "offset", "stroke_end", "char_end"}
        for k in parts:
            assert torch.allclose(parts[k], slow_parts[k], atol=1e-4), (name, k)
            assert (parts[k] != 0).all(), (name, k)


def test_pen_state_decomposes_exactly_into_the_two_end_decisions():
    torch.manual_seed(0)
    logits = 3 * torch.randn(1000, 3, dtype=torch.float64)
    stroke_logit, char_logit = pen_site_logits(logits)
    log_p = logits.log_softmax(-1)  # Sketch-RNN's categorical pen state
    one, zero = torch.ones(1000, dtype=torch.float64), torch.zeros(1000, dtype=torch.float64)
    stroke_end, char_end = Bernoulli(logits=stroke_logit), Bernoulli(logits=char_logit)
    # v = 0: the stroke goes on (no "character ends" decision)
    assert torch.allclose(log_p[:, 0], stroke_end.log_prob(zero))
    # v = 1: the stroke ends, the character goes on
    assert torch.allclose(log_p[:, 1], stroke_end.log_prob(one) + char_end.log_prob(zero))
    # v = 2: the stroke ends and so does the character
    assert torch.allclose(log_p[:, 2], stroke_end.log_prob(one) + char_end.log_prob(one))


def test_translated_gmm_scores_the_absolute_start():
    torch.manual_seed(1)
    raw = torch.randn(5, 6 * 4, dtype=torch.float64)
    gmm = gmm_from_raw(raw, 4)
    shift = torch.randn(5, 2, dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    assert torch.allclose(translated(gmm, shift).log_prob(x), gmm.log_prob(x - shift))
    # one component with known parameters: N(x; mu + shift, Sigma)
    mu, s, rho = torch.tensor([0.3, -0.2]), torch.tensor([0.5, 2.0]), torch.tensor(0.6)
    one = BivariateGMM(torch.zeros(1), mu[None], s[None], rho[None])
    shift = torch.tensor([1.5, -4.0])
    cov = torch.tensor([[s[0] ** 2, rho * s[0] * s[1]], [rho * s[0] * s[1], s[1] ** 2]])
    x = torch.tensor([2.0, -3.0])
    expected = MultivariateNormal(mu + shift, cov).log_prob(x)
    assert torch.allclose(translated(one, shift).log_prob(x), expected)


def last_linear(module: nn.Module) -> nn.Linear:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


OUTPUT_LAYERS = {
    "full-ns": lambda m: [m.location, m.stroke.head, m.termination],
    "hlstm": lambda m: [m.location, m.stroke_head, m.termination],
    "baseline": lambda m: [m.head],
}


@pytest.mark.parametrize("name", list(TINY))
def test_known_parameters_count_every_variable_once(name):
    """Zero output layers: every GMM is N(0, s^2 I) and every logit 0, so the NLL has a
    closed form that counts each start, offset and end decision exactly once."""
    m = tiny(name)
    with torch.no_grad():
        for layer in OUTPUT_LAYERS[name](m):
            last_linear(layer).weight.zero_()
            last_linear(layer).bias.zero_()
    batch = CharacterBatch.from_control_points([DRAWING])
    with torch.no_grad():
        fast, _ = log_likelihood(m, m.prepare_batch(batch))
        slow, _ = log_likelihood_per_step(m, batch)
    # gmm_from_raw of zeros: equal weights, means 0, log scale -7 + 11 / 2, rho 0
    s2 = math.exp(2 * -1.5) + 1e-3

    def log_normal(x):
        return float(-math.log(2 * math.pi * s2) - (x**2).sum() / (2 * s2))

    starts = batch.starts[0].double().numpy()
    offsets = [batch.offsets[0, i, : len(cp) - 1].double().numpy() for i, cp in enumerate(DRAWING)]
    n_offsets = sum(len(o) for o in offsets)
    lp_offsets = sum(log_normal(o) for off in offsets for o in off)
    if name == "baseline":
        # starts relative to the pen: the origin, then the previous last control point
        pen = [np.zeros(2)] + [cp[-1] for cp in DRAWING[:-1]]
        lp_starts = sum(log_normal(st - p) for st, p in zip(starts, pen, strict=True))
        lp_ends = n_offsets * math.log(1 / 3)  # pen logits 0: each of 3 states 1/3
    else:
        lp_starts = sum(log_normal(st) for st in starts)
        lp_ends = (n_offsets + len(DRAWING)) * math.log(0.5)
    expected = lp_starts + lp_offsets + lp_ends
    assert fast.item() == pytest.approx(expected, abs=1e-3)
    assert slow.item() == pytest.approx(expected, abs=1e-3)
