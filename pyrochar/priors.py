"""Plugging new priors into Full NS: the extension protocol.

Full NS draws each character from three conditional distributions, each reading
the state the paper's model reads. Any object with the right method can replace
the network that provides one of them (``GenerateCharacter.set_priors``); the
per-step Pyro model (sampling, conditioning, completion) and the teacher-forced
path (training, scoring) both use it, over the same sites.

**Location prior** (sites ``loc_{i}``): ``prior(canvas, prev_end) -> distribution``
  with ``canvas`` (N, 28, 28) the canvas before the stroke (ink in [0, 1]),
  ``prev_end`` (N, 2) the previous stroke's end point (zeros before the first),
  and a result of batch shape (N,) and event shape (2,) over the start, in
  normalized units ``(p - (50, -50)) / 20``.

**Stroke prior** (sites ``offset_{i}_{t}`` and ``stroke_end_{i}_{t}``): three methods,
  - ``begin(canvas, start) -> state``: canvas (N, 28, 28), start (N, 2);
  - ``step(state, prev_offset) -> (offset distribution, stroke-end distribution, state)``:
    ``prev_offset`` (N, 2) (zeros at the first step), distributions of batch (N,)
    (event (2,) and () over {0, 1});
  - ``sequence(canvas, start, offsets, step_mask) -> (offset distribution, stroke-end distribution)``:
    teacher forcing over padded strokes, offsets (N, T, 2), step_mask (N, T);
    distributions of batch shape (N, T). Must agree with ``step``.

**Termination prior** (sites ``char_end_{i}``): ``prior(canvas) -> distribution`` over
  {0, 1} of batch (N,), reading the canvas after the stroke.

:class:`NetworkStrokePrior` is the network-backed stroke prior Full NS uses by
default; :class:`GaussianLocationPrior` and :class:`ConstantTerminationPrior`
are small examples of user priors. To swap the distribution of chosen sites of
an existing model without touching it at all, see
:func:`pyrochar.handlers.swap_sites`.
"""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli

from .distributions import BivariateGMM, gmm_from_raw
from .nets import fast_stroke


class NetworkStrokePrior:
    """The Full NS stroke network as a stroke prior (the default)."""

    def __init__(self, net, n_components: int):
        self.net, self.k = net, n_components

    def begin(self, canvas, start):
        return self.net.encode(canvas, start)  # (context, LSTM state)

    def step(self, state, prev_offset):
        ctx, lstm_state = state
        raw, end_logit, lstm_state = self.net.step(ctx, lstm_state, prev_offset)
        return gmm_from_raw(raw, self.k), Bernoulli(logits=end_logit), (ctx, lstm_state)

    def sequence(self, canvas, start, offsets, step_mask):
        ctx, lstm_state = self.net.encode(canvas, start)
        raw, end_logits = fast_stroke.forward_sequence(self.net, ctx, lstm_state, offsets, step_mask)
        return gmm_from_raw(raw, self.k), Bernoulli(logits=end_logits)


class GaussianLocationPrior:
    """Starts from one 2-D Gaussian, ignoring the canvas (normalized units).

    ``mean`` (2,), ``scale`` (2,) standard deviations and ``rho`` the correlation.
    :meth:`fit` estimates them from the starts of a prepared dataset.
    """

    def __init__(self, mean=(0.0, 0.0), scale=(1.0, 1.0), rho: float = 0.0):
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.scale = torch.as_tensor(scale, dtype=torch.float32)
        self.rho = torch.as_tensor(float(rho))

    @classmethod
    def fit(cls, dataset) -> GaussianLocationPrior:
        import numpy as np

        starts = np.array([s for d in range(len(dataset)) for s, _ in dataset.starts_offsets(d)])
        cov = np.cov(starts.T)
        sd = np.sqrt(np.diag(cov))
        return cls(starts.mean(0), sd, cov[0, 1] / (sd[0] * sd[1]))

    def __call__(self, canvas, prev_end):
        n, dev = canvas.shape[0], canvas.device
        return BivariateGMM(
            torch.zeros(n, 1, device=dev),
            self.mean.to(dev).expand(n, 1, 2),
            self.scale.to(dev).expand(n, 1, 2),
            self.rho.to(dev).expand(n, 1),
        )


class ConstantTerminationPrior:
    """The character ends after each stroke with a fixed probability."""

    def __init__(self, p_end: float):
        if not 0 < p_end < 1:
            raise ValueError("p_end must be in (0, 1)")
        self.logit = torch.logit(torch.tensor(float(p_end)))

    def __call__(self, canvas):
        return Bernoulli(logits=self.logit.to(canvas.device).expand(canvas.shape[0]))
