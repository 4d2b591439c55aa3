"""Completing partial drawings and scoring them, with Pyro's conditioning.

A *prefix* of a drawing is its first K strokes, and optionally the first P control
points of stroke K+1. Every variable of the prefix comes early in generative order,
so conditioning on it (``poutine.condition``) and running the model forward samples
the completion from the exact conditional distribution, and the observed sites'
log-probabilities sum to the prefix's exact marginal log-likelihood.

Evidence that comes *later* in generative order (for example "the character has
exactly S strokes") is not reached by a forward run: :func:`importance_complete`
weights forward samples by the probability of that evidence (importance sampling
with the prior as proposal, vectorized over particles in one plate), reports the
effective sample size and warns when it collapses.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.poutine.util import site_is_subsample

from .checks import (
    check_batch,
    check_nonnegative_int,
    check_positive_int,
    check_seed,
    check_temperature,
)
from .errors import PyrocharError
from .handlers import temperature as temper_handler
from .models.base import CapsExceeded, CharacterModel, evaluating
from .models.batch import CharacterBatch
from .models.sites import char_end_site, loc_site, offset_site, stroke_end_site


def prefix_condition_dict(
    batch: CharacterBatch, keep_strokes: int, prefix_points: int = 0, stroke_goes_on: bool = True
) -> dict:
    """Observed values of the prefix of every drawing of ``batch``.

    Keeps strokes 0..K-1 whole (K = ``keep_strokes``) and, with ``prefix_points``
    P >= 1, the start and the first P - 1 offsets of stroke K (its first P control
    points). "Character ends" is observed as 0 after every kept stroke that another
    stroke follows; the decision after the last whole stroke stays free unless a
    partial stroke follows. For the partial stroke, "stroke ends" is observed as 0
    after each of its offsets but the last; after the last one it is observed as 0
    too when ``stroke_goes_on`` (the event "these P control points, and the stroke
    goes on": what a completion continues), and left free otherwise (the marginal
    of the P control points, whatever follows). Every drawing needs more than K
    strokes when P >= 1 (at least K otherwise).
    """
    k, p = int(keep_strokes), int(prefix_points)
    need = k + (1 if p > 0 else 0)
    if k < 0 or p < 0 or (k == 0 and p == 0):
        raise ValueError("keep at least one stroke or one control point")
    if int(batch.n_strokes.min()) < need:
        raise ValueError(f"every drawing needs at least {need} strokes for this prefix")
    ends, data = batch.stroke_ends, {}
    zeros = torch.zeros(batch.batch_size, dtype=batch.starts.dtype, device=batch.starts.device)
    for i in range(k):
        data[loc_site(i)] = batch.starts[:, i]
        for t in range(int(batch.n_offsets[:, i].max())):
            data[offset_site(i, t)] = batch.offsets[:, i, t]
            data[stroke_end_site(i, t)] = ends[:, i, t]
        if i < k - 1 or p > 0:
            data[char_end_site(i)] = zeros
    if p > 0:
        if int(batch.n_offsets[:, k].min()) < p - 1:
            raise ValueError(
                f"stroke {k + 1} has fewer than {p} control points in some drawing: "
                f"use --prefix-points of at most its number of control points"
            )
        data[loc_site(k)] = batch.starts[:, k]
        for t in range(p - 1):
            data[offset_site(k, t)] = batch.offsets[:, k, t]
            if t < p - 2 or stroke_goes_on:
                data[stroke_end_site(k, t)] = zeros
    return data


def _prefix_caps(model: CharacterModel, keep_strokes: int, prefix_points: int) -> int:
    """The strokes a prefix run needs; a clear error if that is more than the model's cap."""
    need = int(keep_strokes) + (1 if prefix_points else 0)
    cap = model.config.max_strokes
    if need > cap:
        what = f"{keep_strokes} stroke(s)" + (" and part of the next" if prefix_points else "")
        raise CapsExceeded(
            f"cannot keep {what}: the {model.name} model draws at most {cap} strokes "
            "(its max_strokes cap); keep fewer strokes"
        )
    if prefix_points and prefix_points - 1 > model.config.max_steps:
        raise CapsExceeded(
            f"cannot keep {prefix_points} control points of a stroke: the {model.name} model "
            f"draws at most {model.config.max_steps + 1} per stroke"
        )
    return need


def _observed_log_prob(trace, batch_size: int) -> torch.Tensor:
    trace.compute_log_prob()
    total = torch.zeros(batch_size)
    for site in trace.nodes.values():
        if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site):
            total = total + site["log_prob"].to(total.device)
    return total


@torch.no_grad()
def log_likelihood_partial(
    model: CharacterModel,
    batch: CharacterBatch,
    keep_strokes: int,
    prefix_points: int = 0,
    stroke_goes_on: bool = True,
) -> torch.Tensor:
    """Exact log p(prefix) per drawing (B,): the first K strokes (+ P control points).

    See :func:`prefix_condition_dict` for what the prefix observes (``stroke_goes_on``).
    """
    check_batch(batch)
    need = _prefix_caps(model, keep_strokes, prefix_points)
    data = prefix_condition_dict(batch, keep_strokes, prefix_points, stroke_goes_on)
    with evaluating(model):
        # The run stops after the prefix's strokes: the decision after the last of them
        # is then certain, and unobserved, so it adds nothing to the observed log-prob.
        trace = poutine.trace(poutine.condition(model.model, data=data)).get_trace(
            batch_size=batch.batch_size, max_strokes=need
        )
    return _observed_log_prob(trace, batch.batch_size)


def _repeat(data: dict, n: int) -> dict:
    return {k: v[:1].expand((n,) + v.shape[1:]) for k, v in data.items()}


@torch.no_grad()
def complete(
    model: CharacterModel,
    drawing: CharacterBatch,
    keep_strokes: int,
    prefix_points: int = 0,
    n: int = 9,
    temperature: float = 1.0,
    seed: int | None = None,
) -> CharacterBatch:
    """n completions of the first drawing of ``drawing``, from the model's conditional.

    The observed sites keep their values exactly; the temperature applies to the
    sampled (unobserved) sites only (``temperature(condition(model))``). A partial
    stroke (``prefix_points``) goes on: its completions continue it.
    """
    check_batch(drawing, "drawing")
    keep_strokes = check_nonnegative_int(keep_strokes, "keep_strokes")
    prefix_points = check_nonnegative_int(prefix_points, "prefix_points")
    n = check_positive_int(n, "n")
    temperature = check_temperature(temperature)
    _prefix_caps(model, keep_strokes, prefix_points)
    if check_seed(seed) is not None:
        pyro.set_rng_seed(seed)
    data = _repeat(prefix_condition_dict(drawing[[0]], keep_strokes, prefix_points), n)
    with evaluating(model):
        program = temper_handler(poutine.condition(model.model, data=data), temperature=temperature)
        return program(batch_size=n)


def _for_particles(value, n: int, device) -> torch.Tensor:
    """A value for one drawing (scalar, (2,), or with a leading batch of 1) -> n copies."""
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    if t.dim() >= 1 and t.shape[0] == 1:
        t = t[0]
    return t.expand((n,) + t.shape)


@dataclass
class ImportanceResult:
    completions: CharacterBatch  # resampled by weight: (n_out drawings)
    log_weights: torch.Tensor  # (particles,) log p(later evidence | particle)
    ess: float  # effective sample size of the weights
    log_evidence: float  # log of the mean weight: log p(later evidence | prefix)


@torch.no_grad()
def importance_complete(
    model: CharacterModel,
    data: dict,
    particles: int = 200,
    n_out: int = 9,
    seed: int | None = None,
    min_ess_fraction: float = 0.05,
) -> ImportanceResult:
    """Condition on arbitrary site values, including ones late in generative order.

    ``data`` maps site names to observed values of shape (1, ...) or scalars, e.g.
    ``{"loc_0": ..., "char_end_0": 0., "char_end_1": 1.}`` for "exactly 2 strokes".
    Forward samples (one plate of ``particles``) are weighted by the probability of
    the observed sites; ``n_out`` completions are resampled by weight. Warns when
    the effective sample size falls below ``min_ess_fraction`` of the particles.
    """
    particles = check_positive_int(particles, "particles")
    n_out = check_positive_int(n_out, "n_out")
    if check_seed(seed) is not None:
        pyro.set_rng_seed(seed)
    batched = {k: _for_particles(v, particles, model.device) for k, v in data.items()}
    with evaluating(model):
        trace = poutine.trace(poutine.condition(model.model, data=batched)).get_trace(batch_size=particles)
    log_w = _observed_log_prob(trace, particles)
    unknown = sorted(set(data) - set(trace.nodes))
    if unknown:
        raise PyrocharError(f"the model has no site(s) {', '.join(unknown)}")
    # A particle that never reaches an observed site (its character or stroke ended
    # before it) contradicts the evidence: weight 0, not the masked site's 0 log-prob.
    missing = sorted(n for n in data if trace.nodes[n]["infer"].get("padding"))
    if missing:
        raise PyrocharError(
            f"no particle reached the observed site(s) {', '.join(missing)}: the other evidence "
            "ends the character or stroke before them"
        )
    for name in data:
        fn = trace.nodes[name]["fn"]
        if isinstance(fn, MaskedDistribution) and torch.is_tensor(fn._mask):
            log_w = torch.where(fn._mask.cpu(), log_w, torch.tensor(-math.inf))
    if not torch.isfinite(log_w).any():
        raise PyrocharError("every particle contradicts the evidence; use more particles")
    w = torch.softmax(log_w, 0)
    ess = float(1.0 / (w * w).sum())
    log_evidence = float(torch.logsumexp(log_w, 0) - math.log(particles))
    if ess < min_ess_fraction * particles:
        warnings.warn(
            f"importance sampling collapsed: effective sample size {ess:.1f} of {particles} "
            "particles; the evidence is unlikely under the model's forward samples. Use more "
            "particles or condition on less.",
            stacklevel=2,
        )
    pick = torch.multinomial(w, n_out, replacement=True)
    return ImportanceResult(trace.nodes["_RETURN"]["value"][pick.cpu()], log_w, ess, log_evidence)
