"""Distributions used by the models, written for speed and numerical care.

- :class:`BivariateGMM`: a K-component mixture of 2-D Gaussians with full
  covariance (means, two scales and a correlation per component). Its log-density
  is computed in log space (log-softmax weights + logsumexp); no built-in torch
  distribution gives full-covariance 2-D mixtures this cheaply
  (``MixtureSameFamily(MultivariateNormal)`` goes through a Cholesky factor per
  component for the same density).
- :func:`gmm_from_raw`: network outputs -> a BivariateGMM with a variance floor
  ``s <- sqrt(s^2 + floor)`` and a bounded correlation ``rho = 0.99 tanh(.)``.
- :class:`RowSubset`: a distribution computed for the rows of a batch still being
  drawn, standing for the whole batch (the per-step program's speed-up).
- :class:`Where`: one distribution on some elements, another elsewhere.
- :func:`temper`: the sampling temperature of Ha & Eck (2018, eq. 8).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import Bernoulli, Categorical, TorchDistribution
from pyro.distributions.torch_distribution import MaskedDistribution
from torch.distributions import Independent, constraints

LOG_2PI = math.log(2 * math.pi)
RHO_BOUND = 0.99
LOG_SCALE_BOUNDS = (-7.0, 4.0)  # scale in exp(-7)..exp(4) normalized units (x20 px)
VARIANCE_FLOOR = 1e-3


class BivariateGMM(TorchDistribution):
    """Mixture of K bivariate Gaussians with full covariance.

    Shapes: ``logits`` (..., K), ``loc`` (..., K, 2), ``scale`` (..., K, 2),
    ``rho`` (..., K). Batch shape ``...``, event shape ``(2,)``.
    """

    arg_constraints = {
        "logits": constraints.real_vector,
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
        "rho": constraints.interval(-1.0, 1.0),
    }
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits, loc, scale, rho, validate_args=None):
        self.logits = logits - logits.logsumexp(-1, keepdim=True)  # normalized log weights
        self.loc, self.scale, self.rho = loc, scale, rho
        batch_shape = logits.shape[:-1]
        super().__init__(batch_shape, torch.Size([2]), validate_args=validate_args)

    @property
    def n_components(self) -> int:
        return self.logits.shape[-1]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BivariateGMM, _instance)
        batch_shape = torch.Size(batch_shape)
        k = self.n_components
        new.logits = self.logits.expand(batch_shape + (k,))
        new.loc = self.loc.expand(batch_shape + (k, 2))
        new.scale = self.scale.expand(batch_shape + (k, 2))
        new.rho = self.rho.expand(batch_shape + (k,))
        super(BivariateGMM, new).__init__(batch_shape, torch.Size([2]), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def component_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log N_k(value) for every component: (..., 2) -> (..., K)."""
        z = (value.unsqueeze(-2) - self.loc) / self.scale  # (..., K, 2)
        z1, z2 = z[..., 0], z[..., 1]
        one_minus_rho2 = 1.0 - self.rho * self.rho
        quad = (z1 * z1 + z2 * z2 - 2.0 * self.rho * z1 * z2) / one_minus_rho2
        log_det = self.scale.log().sum(-1) + 0.5 * one_minus_rho2.log()
        return -LOG_2PI - log_det - 0.5 * quad

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.logsumexp(self.logits + self.component_log_prob(value), dim=-1)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)  # (sample, batch, 2)
        with torch.no_grad():
            k = Categorical(logits=self.logits).sample(sample_shape)  # (sample, batch)
            idx = k.unsqueeze(-1)
            batch = shape[:-1]
            loc = self.loc.expand(batch + self.loc.shape[-2:])
            scale = self.scale.expand(batch + self.scale.shape[-2:])
            rho = self.rho.expand(batch + self.rho.shape[-1:])
            mu = loc.gather(-2, idx.unsqueeze(-1).expand(batch + (1, 2))).squeeze(-2)
            s = scale.gather(-2, idx.unsqueeze(-1).expand(batch + (1, 2))).squeeze(-2)
            r = rho.gather(-1, idx).squeeze(-1)
            eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)
            x1 = mu[..., 0] + s[..., 0] * eps[..., 0]
            x2 = mu[..., 1] + s[..., 1] * (r * eps[..., 0] + (1 - r * r).sqrt() * eps[..., 1])
            return torch.stack([x1, x2], dim=-1)

    @property
    def mean(self):
        return (self.logits.exp().unsqueeze(-1) * self.loc).sum(-2)

    def tempered(self, temperature: float) -> BivariateGMM:
        """Ha & Eck (2018) eq. 8: logits / T, variances x T, correlations unchanged."""
        t = float(temperature)
        return BivariateGMM(self.logits / t, self.loc, self.scale * math.sqrt(t), self.rho)


def gmm_from_raw(raw: torch.Tensor, n_components: int, floor: float = VARIANCE_FLOOR) -> BivariateGMM:
    """Unconstrained network output (..., 6K) -> BivariateGMM.

    Layout of the last dimension: K logits, 2K means, 2K log scales, K correlations.
    The log scales are bounded smoothly, the variance gets a floor and the
    correlation is bounded by ``RHO_BOUND`` so densities stay finite.
    """
    k = n_components
    logits, loc, log_scale, rho = raw.split([k, 2 * k, 2 * k, k], dim=-1)
    shape = raw.shape[:-1]
    loc = loc.reshape(shape + (k, 2))
    lo, hi = LOG_SCALE_BOUNDS
    log_scale = lo + (hi - lo) * torch.sigmoid(log_scale.reshape(shape + (k, 2)))
    scale = torch.sqrt(torch.exp(2 * log_scale) + floor)
    return BivariateGMM(logits, loc, scale, RHO_BOUND * torch.tanh(rho))


class Where(TorchDistribution):
    """``a`` where ``cond`` is True, ``b`` elsewhere: elementwise over a common batch shape.

    :func:`pyrochar.handlers.swap_sites` uses it when a pattern selects some
    elements of a teacher-forced site (e.g. the start of stroke 0 only).
    """

    arg_constraints = {}

    def __init__(self, cond: torch.Tensor, a: TorchDistribution, b: TorchDistribution):
        self.cond, self.a, self.b = cond, a, b
        super().__init__(b.batch_shape, b.event_shape, validate_args=False)

    @property
    def support(self):
        return self.b.support

    def log_prob(self, value):
        return torch.where(self.cond, self.a.log_prob(value), self.b.log_prob(value))

    def sample(self, sample_shape=torch.Size()):
        cond = self.cond.reshape(self.cond.shape + (1,) * len(self.event_shape))
        return torch.where(cond, self.a.sample(sample_shape), self.b.sample(sample_shape))


class RowSubset(TorchDistribution):
    """A distribution computed for some rows of a batch, standing for the whole batch.

    ``base`` has batch shape (n,) for the rows ``rows`` (n,) of a batch of size B.
    The other rows (finished characters, whose sites are masked anyway) score 0 and
    sample zeros. The per-step models use it so that their networks run on the
    characters still being drawn only.
    """

    arg_constraints = {}

    def __init__(self, base: TorchDistribution, rows: torch.Tensor, batch_size: int):
        self.base, self.rows, self.size = base, rows, int(batch_size)
        super().__init__(torch.Size([self.size]), base.event_shape, validate_args=False)

    @property
    def support(self):
        return self.base.support

    def log_prob(self, value):
        value = value.expand(self.batch_shape + self.event_shape)  # an observed (1, ...) value too
        lp = self.base.log_prob(value[self.rows])  # (n,)
        return lp.new_zeros(self.size).index_put((self.rows,), lp)

    def expand(self, batch_shape, _instance=None):
        if torch.Size(batch_shape) == self.batch_shape:
            return self  # the plate's broadcast: nothing to do
        return super().expand(batch_shape, _instance)

    def sample(self, sample_shape=torch.Size()):
        if sample_shape:
            raise NotImplementedError("RowSubset samples one value per row")
        x = self.base.sample()  # (n, *event)
        return x.new_zeros((self.size,) + x.shape[1:]).index_put((self.rows,), x)


def temper(fn, temperature: float):
    """Return ``fn`` at sampling temperature T (Ha & Eck 2018, eq. 8).

    Handles the distributions the models use, also inside Pyro's mask/Independent
    wrappers: BivariateGMM (logits / T, variances x T), Bernoulli and Categorical
    (logits / T). Any other distribution is returned unchanged.
    """
    t = float(temperature)
    if t == 1.0:
        return fn
    if isinstance(fn, MaskedDistribution):
        return temper(fn.base_dist, t).mask(fn._mask)
    if isinstance(fn, Independent):  # Pyro's .to_event(), so the result keeps .mask()
        return temper(fn.base_dist, t).to_event(fn.reinterpreted_batch_ndims)
    if isinstance(fn, RowSubset):
        return RowSubset(temper(fn.base, t), fn.rows, fn.size)
    if isinstance(fn, BivariateGMM):
        return fn.tempered(t)
    if isinstance(fn, Bernoulli):
        return Bernoulli(logits=fn.logits / t)
    if isinstance(fn, Categorical):
        return Categorical(logits=fn.logits / t)
    return fn

