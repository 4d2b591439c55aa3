"""Scoring with Pyro's own machinery: the log-probability of conditioned traces.

The negative log-likelihood of a character is the sum (never the mean) of the
log-probabilities of all its sites: every start location, every offset, every
"stroke ends" and every "character ends" decision, in nats, in normalized units
(docs/model.md, "Likelihood"). It is read off ``poutine.trace`` of the model with
the drawing observed, split by variable (``loc``, ``offset``, ``stroke_end``,
``char_end``) for the breakdown. Effect handlers around these functions act on the
traced program (e.g. :func:`pyrochar.handlers.swap_sites`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from .checks import check_batch, check_positive_int
from .models.base import CharacterModel, evaluating
from .models.batch import CharacterBatch
from .models.sites import VARIABLES, site_variable


def _per_drawing(trace, index: torch.Tensor | None, batch_size: int):
    """Sum each sample site's log-prob into its drawing: -> total (B,), breakdown {variable: (B,)}."""
    trace.compute_log_prob()
    breakdown = {v: None for v in VARIABLES}
    total = None
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue  # plates are recorded as (unscored) sample sites too
        lp = site["log_prob"]
        if index is not None:
            lp = lp.new_zeros(batch_size).index_add(0, index, lp)
        kind = site_variable(name)
        breakdown[kind] = lp if breakdown[kind] is None else breakdown[kind] + lp
        total = lp if total is None else total + lp
    zero = torch.zeros(batch_size)
    breakdown = {k: (zero if v is None else v) for k, v in breakdown.items()}
    return (zero if total is None else total), breakdown


def log_likelihood(model: CharacterModel, batch: CharacterBatch):
    """Per-drawing log-likelihood via the teacher-forced program (fast path).

    Returns (total (B,), {variable: (B,)}), differentiable.
    """
    check_batch(batch)
    trace = poutine.trace(model.teacher_forced_model).get_trace(batch)
    index = trace.nodes["_RETURN"]["value"]
    return _per_drawing(trace, index, batch.batch_size)


def log_likelihood_per_step(model: CharacterModel, batch: CharacterBatch):
    """Per-drawing log-likelihood via the per-step model conditioned on the batch.

    The definition the fast path is tested against; slower (a site per variable).
    Raises :class:`~pyrochar.models.base.CapsExceeded` for drawings longer than the caps.
    """
    check_batch(batch)
    model.check_caps(batch)
    conditioned = poutine.condition(model.model, data=batch.condition_dict())
    trace = poutine.trace(conditioned).get_trace(batch_size=batch.batch_size)
    return _per_drawing(trace, None, batch.batch_size)


def beyond_caps(model: CharacterModel, dataset) -> dict[int, str]:
    """The drawings of a ``PreparedDataset`` longer than the model's caps (probability 0):
    {index: why}. Scoring them raises :class:`~pyrochar.models.base.CapsExceeded`."""
    out = {}
    for d in range(len(dataset)):
        strokes = dataset.starts_offsets(d)
        problem = model.caps_problem(len(strokes), max((len(o) for _, o in strokes), default=0))
        if problem:
            out[d] = problem
    return out


@dataclass
class Scores:
    """NLL per drawing (nats, normalized units) and its breakdown by variable."""

    nll: np.ndarray  # (D,)
    breakdown: dict[str, np.ndarray] = field(default_factory=dict)  # variable -> (D,)

    @property
    def mean(self) -> float:
        return float(self.nll.mean()) if len(self.nll) else float("nan")

    def summary(self) -> dict:
        return {
            "mean_nll": self.mean,
            "n": int(len(self.nll)),
            "breakdown": {k: float(v.mean()) if len(v) else float("nan") for k, v in self.breakdown.items()},
        }


@torch.no_grad()
def score(model: CharacterModel, source, batch_size: int = 200, progress: bool = False) -> Scores:
    """Score every drawing of a :class:`~pyrochar.data.loader.BatchSource` (eval mode)."""
    batch_size = check_positive_int(batch_size, "batch_size")
    n = len(source)
    nll = np.zeros(n)
    parts = {v: np.zeros(n) for v in VARIABLES}
    with evaluating(model):
        batches = source.index_batches(batch_size)
        for idx in tqdm(batches, desc="scoring", unit="batch", disable=not progress):
            total, breakdown = log_likelihood(model, model.prepare_batch(source.batch(idx)))
            nll[idx] = -total.cpu().double().numpy()
            for k, v in breakdown.items():
                parts[k][idx] = -v.cpu().double().numpy()
    return Scores(nll, parts)
