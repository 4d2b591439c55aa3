import math

import pyro.distributions as dist
import pytest
import torch

from pyrochar.distributions import (
    BivariateGMM,
    Where,
    gmm_from_raw,
    temper,
)


def _reference(g: BivariateGMM):
    s, r = g.scale, g.rho
    cov = torch.zeros(g.loc.shape[:-1] + (2, 2), dtype=g.loc.dtype)
    cov[..., 0, 0] = s[..., 0] ** 2
    cov[..., 1, 1] = s[..., 1] ** 2
    cov[..., 0, 1] = cov[..., 1, 0] = r * s[..., 0] * s[..., 1]
    return dist.MixtureSameFamily(
        dist.Categorical(logits=g.logits), dist.MultivariateNormal(g.loc, covariance_matrix=cov)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_prob_matches_mixture_of_multivariate_normals(seed):
    torch.manual_seed(seed)
    g = gmm_from_raw(torch.randn(7, 3, 6 * 20) * 2, 20)
    x = torch.randn(7, 3, 2) * 2
    assert torch.allclose(g.log_prob(x), _reference(g).log_prob(x), atol=1e-4)


def test_extreme_parameters_stay_finite():
    raw = torch.full((4, 6 * 5), 1e4)
    raw[1] = -1e4
    g = gmm_from_raw(raw, 5)
    assert (g.rho.abs() <= 0.99 + 1e-6).all()
    assert (g.scale >= math.sqrt(1e-3) - 1e-7).all()  # the variance floor
    lp = g.log_prob(torch.randn(4, 2) * 100)
    assert torch.isfinite(lp).all()


def test_sample_moments_match_a_single_component():
    torch.manual_seed(0)
    loc = torch.tensor([[1.0, -2.0]])
    scale = torch.tensor([[0.5, 2.0]])
    rho = torch.tensor([0.7])
    g = BivariateGMM(torch.zeros(1), loc, scale, rho)
    x = g.sample((200_000,))
    assert x.shape == (200_000, 2)
    assert torch.allclose(x.mean(0), loc[0], atol=0.02)
    assert torch.allclose(x.std(0), scale[0], atol=0.02)
    corr = torch.corrcoef(x.T)[0, 1]
    assert abs(corr - 0.7) < 0.01


def test_tempered_shrinks_spread_and_sharpens_weights():
    torch.manual_seed(0)
    g = gmm_from_raw(torch.randn(6 * 4), 4)
    t = g.tempered(0.5)
    assert torch.allclose(t.scale, g.scale * math.sqrt(0.5))
    assert torch.allclose(t.rho, g.rho)
    assert t.logits.exp().max() >= g.logits.exp().max()
    b = temper(dist.Bernoulli(logits=torch.tensor([1.0])), 0.5)
    assert torch.allclose(b.logits, torch.tensor([2.0]))


def test_temper_goes_through_masks():
    g = gmm_from_raw(torch.zeros(3, 6 * 2), 2).mask(torch.tensor([True, False, True]))
    t = temper(g, 0.25)
    assert torch.allclose(t.base_dist.scale, g.base_dist.scale * 0.5)
    assert torch.equal(t._mask, g._mask)


def test_masked_steps_ignore_padding_even_if_huge():
    # how the teacher-forced program scores a whole stroke in one site
    torch.manual_seed(0)
    g = gmm_from_raw(torch.randn(2, 4, 6 * 3, requires_grad=True), 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    x = torch.randn(2, 4, 2)
    d = g.mask(mask).to_event(1)
    assert d.batch_shape == (2,) and d.event_shape == (4, 2)
    lp = d.log_prob(x)
    x2 = x.clone()
    x2[0, 2:] = 1e30
    assert torch.allclose(d.log_prob(x2), lp)
    expected = g.log_prob(x)[0, :2].sum()
    assert torch.allclose(lp[0], expected)
    lp.sum().backward()



def test_row_subset_scores_and_samples_only_its_rows():
    from pyrochar.distributions import RowSubset

    torch.manual_seed(0)
    g = gmm_from_raw(torch.randn(2, 6 * 3), 3)
    rows = torch.tensor([1, 3])
    d = RowSubset(g, rows, 4)
    assert d.batch_shape == (4,) and d.event_shape == (2,)
    x = torch.randn(4, 2)
    lp = d.log_prob(x)
    assert torch.equal(lp[[0, 2]], torch.zeros(2))
    assert torch.allclose(lp[rows], g.log_prob(x[rows]))
    s = d.sample()
    assert s.shape == (4, 2) and torch.equal(s[[0, 2]], torch.zeros(2, 2))
    assert d.expand((4,)) is d
    t = temper(d.mask(torch.ones(4, dtype=torch.bool)), 0.25)
    assert torch.allclose(t.base_dist.base.scale, g.scale * 0.5)


def test_tempering_keeps_pyro_wrappers():
    g = gmm_from_raw(torch.zeros(3, 4, 6 * 2), 2)
    t = temper(g.mask(torch.ones(3, 4, dtype=torch.bool)).to_event(1), 0.5)
    assert t.batch_shape == (3,) and t.event_shape == (4, 2)
    t.mask(torch.tensor([True, False, True]))  # still a Pyro distribution


def test_where_takes_each_element_from_its_distribution():
    a = dist.Normal(torch.zeros(4), 1.0)
    b = dist.Normal(torch.full((4,), 5.0), 1.0)
    cond = torch.tensor([True, False, True, False])
    x = torch.tensor([0.0, 5.0, 1.0, 4.0])
    expected = torch.where(cond, a.log_prob(x), b.log_prob(x))
    assert torch.equal(Where(cond, a, b).log_prob(x), expected)
    s = Where(cond, a, b).sample()
    assert (s[~cond] > 2).all() and (s[cond] < 3).all()
