"""A BPL-style parametric prior: the paper's "BPL (unconditional)" comparison (Fig. 5).

Lake et al. (2015)'s Bayesian Program Learning prior draws a character as a
sequence of strokes from simple, separately fitted parametric distributions. Its
strokes are generated largely *independently* of one another, which is what
Feinman & Lake (2020) point at when they compare it with their models: its
samples lack the correlations between parts of human drawings. This module is a
deliberately simple prior in that spirit over the same variables as the other
models (docs/model.md, "Sites"), with no canvas, no renderer and no network:

- **number of strokes**: a hazard. After stroke i the character ends with
  probability ``sigmoid(char_end_logits[min(i, char_end_slots - 1)])`` (the
  ``char_end_{i}`` sites); one logit per stroke index, the last shared by all
  later indices. Fitted in closed form it is the hazard of the empirical
  distribution of stroke counts.
- **start of stroke i** (``loc_{i}``): a K-component full-covariance 2-D GMM
  chosen by the stroke index only, ``min(i, location_slots - 1)``: by default one
  mixture for the first stroke and one shared by all later strokes (BPL treats
  the first stroke apart). It never looks at the content of earlier strokes.
- **number of offsets** of a stroke: a hazard over the step index t
  (``stroke_end_{i}_{t}`` sites), ``stroke_end_logits[min(t, stroke_end_slots - 1)]``.
- **offset t** of a stroke (``offset_{i}_{t}``): a K-component GMM chosen by the
  step index only, ``min(t, offset_slots - 1)``; offsets are independent of each
  other, of the start, of the stroke index and of the stroke's length. (BPL
  proper builds a stroke from sub-strokes drawn from a library of primitives with
  a Markov chain between them, and attaches later strokes to earlier ones through
  relations; both are left out here: the "strokes independent of one another"
  assumption is kept in its plainest form.)

Every distribution is a fixed function of an index, so all parameters are plain
``nn.Parameter`` tensors (GMMs stored as raw ``(6K,)`` rows read through
:func:`~pyrochar.distributions.gmm_from_raw`, the same parameterization as the
networks' outputs) and the generic MLE trainer (:mod:`pyrochar.train`) fits them.
Because the likelihood factorizes into independent pieces, each piece also has a
direct fit: :meth:`BPLPrior.initialize_from_data` (or the constructor
:meth:`BPLPrior.fit`) sets the hazards to their smoothed empirical values and fits
each GMM by EM (k-means++ seeding), which is a (local) maximum-likelihood fit of
the whole model in seconds; gradient training afterwards changes little.

Sites: those of every model (:mod:`pyrochar.models.sites`); the teacher-forced
program has one plate over all real strokes.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from pyro.distributions import Bernoulli
from torch import nn

from ..distributions import (
    LOG_SCALE_BOUNDS,
    RHO_BOUND,
    VARIANCE_FLOOR,
    BivariateGMM,
    gmm_from_raw,
)
from ..errors import PyrocharError
from .base import CharacterModel
from .batch import CharacterBatch, StrokeBatch
from .sites import TeacherForcedSite, flat_variables


@dataclass
class BPLConfig:
    """Every size of the BPL-style prior.

    A "slot" is one set of parameters for an index (stroke index i or step index
    t); indices at or beyond the number of slots share the last one.
    """

    n_components: int = 10  # K of every GMM (starts and offsets)
    location_slots: int = 2  # start GMMs: stroke 0, then one shared by strokes 1, 2, ...
    offset_slots: int = 10  # offset GMMs per step index t
    stroke_end_slots: int = 20  # "stroke ends" logits per step index t
    char_end_slots: int = 10  # "character ends" logits per stroke index i
    # closed-form fit (initialize_from_data)
    em_iterations: int = 200
    em_restarts: int = 2  # EM runs per GMM from different seeds; the best is kept
    hazard_smoothing: float = 0.5  # pseudo-count added to both outcomes of every hazard
    # caps, part of the model (docs/model.md, "Caps")
    max_strokes: int = 10
    max_steps: int = 50

    def __post_init__(self):
        for name in ("n_components", "location_slots", "offset_slots", "stroke_end_slots",
                     "char_end_slots", "em_iterations", "em_restarts", "max_strokes", "max_steps"):
            if int(getattr(self, name)) < 1:
                raise PyrocharError(f"BPLConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hazard_smoothing < 0:
            raise PyrocharError("BPLConfig.hazard_smoothing must be >= 0")


class BPLPrior(CharacterModel):
    """Independent strokes from index-dependent parametric distributions (no canvas)."""

    name = "bpl"
    config_class = BPLConfig
    teacher_forced_plate = "strokes"
    uses_canvases = False

    def __init__(self, config: BPLConfig | None = None):
        super().__init__(config)
        c = self.config
        k = c.n_components
        # raw GMM rows: K logits, 2K means, 2K log scales (pre-bounding), K correlations
        self.location_raw = nn.Parameter(torch.zeros(c.location_slots, 6 * k))
        self.offset_raw = nn.Parameter(torch.zeros(c.offset_slots, 6 * k))
        self.stroke_end_logits = nn.Parameter(torch.zeros(c.stroke_end_slots))
        self.char_end_logits = nn.Parameter(torch.zeros(c.char_end_slots))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The untrained state: broad GMMs with random means, even hazards.

        Starts: means ~ N(0, 1), scales about 1 (20 px); offsets: means
        ~ N(0, 0.5^2), scales about 0.5; hazard logits 0. Uses torch's global RNG.
        """
        k = self.config.n_components
        with torch.no_grad():
            for raw, spread in ((self.location_raw, 1.0), (self.offset_raw, 0.5)):
                n = raw.shape[0]
                means = spread * torch.randn(n, k, 2)
                scales = torch.full((n, k, 2), spread)
                raw.copy_(_raw_from_gmm(torch.zeros(n, k), means, scales, torch.zeros(n, k)))
            self.stroke_end_logits.zero_()
            self.char_end_logits.zero_()

    # ------------------------------------------------------- distributions
    @staticmethod
    def _slots(index: torch.Tensor | int, n_slots: int):
        if isinstance(index, int):
            return min(index, n_slots - 1)
        return index.clamp(max=n_slots - 1)

    def location_distribution(self, i):
        """Start of stroke i (int, or (N,) long tensor) -> BivariateGMM, batch () or (N,)."""
        raw = self.location_raw[self._slots(i, self.config.location_slots)]
        return gmm_from_raw(raw, self.config.n_components)

    def offset_distribution(self, t):
        """Offset t (int, or long tensor of step indices) -> BivariateGMM."""
        raw = self.offset_raw[self._slots(t, self.config.offset_slots)]
        return gmm_from_raw(raw, self.config.n_components)

    def stroke_end_distribution(self, t):
        """"The stroke ends after offset t" -> Bernoulli."""
        slot = self._slots(t, self.config.stroke_end_slots)
        return Bernoulli(logits=self.stroke_end_logits[slot])

    def char_end_distribution(self, i):
        """"The character ends after stroke i" -> Bernoulli."""
        slot = self._slots(i, self.config.char_end_slots)
        return Bernoulli(logits=self.char_end_logits[slot])

    # ------------------------------------------------ the per-step hooks
    # Every distribution depends on the stroke index i or the step index t only.
    def begin_character(self, batch_size: int):
        return None  # no state: strokes are independent of one another

    def p_loc(self, state, i, rows):
        return self.location_distribution(i).expand([len(rows)])

    def begin_stroke(self, state, i, rows, start):
        return len(rows)

    def stroke_step(self, stroke, t, prev_offset, going):
        n = stroke
        return self.offset_distribution(t).expand([n]), self.stroke_end_distribution(t).expand([n]), n

    def p_char_end(self, state, i, rows, stroke):
        return self.char_end_distribution(i).expand([len(rows)])

    # ------------------------------------------------- the fast, teacher-forced path
    def teacher_forced_sites(self, batch: CharacterBatch):
        """Every variable of the batch at once; one plate over all N real strokes."""
        s = StrokeBatch.from_characters(batch)
        n, steps = s.offsets.shape[:2]
        t = torch.arange(steps, device=s.offsets.device)
        offsets = self.offset_distribution(t).expand((n, steps))  # batch (N, T)
        ends = self.stroke_end_distribution(t).expand((n, steps))
        every = torch.ones_like(s.index, dtype=torch.bool)  # (N,)
        stroke = s.index.unsqueeze(-1)
        return s.drawing, [
            TeacherForcedSite("loc", self.location_distribution(s.index), s.starts, every, s.index),
            TeacherForcedSite("offset", offsets, s.offsets, s.step_mask, stroke, t),
            TeacherForcedSite("stroke_end", ends, s.stroke_ends, s.step_mask, stroke, t),
            TeacherForcedSite("char_end", self.char_end_distribution(s.index), s.char_ends, every, s.index),
        ]

    # ------------------------------------------------- closed-form fit
    @classmethod
    def fit(cls, dataset, config: BPLConfig | None = None, seed: int = 0) -> BPLPrior:
        """A new prior fitted to ``dataset`` (a PreparedDataset) in closed form / by EM."""
        model = cls(config)
        model.initialize_from_data(dataset, seed=seed)
        return model.eval()

    @torch.no_grad()
    def initialize_from_data(self, dataset, seed: int = 0) -> BPLPrior:
        """Set every parameter from the statistics of ``dataset`` (in place).

        - hazards: ``(ends + a) / (at risk + 2a)`` per slot (a = ``hazard_smoothing``;
          a shared last slot pools every later index), i.e. the smoothed hazard of
          the empirical distribution of stroke counts and offset counts; a slot no
          drawing reaches copies the slot before it;
        - start and offset GMMs: EM on the starts (resp. offsets) of the slot's
          indices, seeded by k-means++, with each component's variances kept above
          the variance floor of :func:`gmm_from_raw` and ``|rho| <= 0.985``.

        The likelihood factorizes over these pieces, so this is a maximum-likelihood
        fit of the whole model up to EM's local optima and the hazard smoothing.
        Deterministic given ``seed``. Returns ``self``.
        """
        c = self.config
        v = flat_variables(dataset)
        starts, offsets, stroke_index, step_index = v.starts, v.offsets, v.stroke_index, v.step_index
        n_offsets, n_strokes = v.n_offsets, v.n_strokes
        if len(n_strokes) == 0:
            raise PyrocharError("cannot fit the BPL prior to an empty dataset")
        gen = torch.Generator().manual_seed(int(seed))
        dtype, device = self.location_raw.dtype, self.location_raw.device
        with _single_threaded():
            for raw, x, index in (
                (self.location_raw, starts, stroke_index),
                (self.offset_raw, offsets, step_index),
            ):
                n_slots = raw.shape[0]
                slot = np.minimum(index, n_slots - 1)
                for k in range(n_slots):
                    pts = torch.as_tensor(x[slot == k], dtype=torch.float64)
                    if len(pts) == 0:
                        if k > 0:
                            raw[k] = raw[k - 1]
                        continue
                    params = _em_fit(pts, c.n_components, c.em_iterations, c.em_restarts, gen)
                    raw[k] = _raw_from_gmm(*params).to(device=device, dtype=dtype)
        a = float(c.hazard_smoothing)
        self.stroke_end_logits.copy_(_hazard_logits(n_offsets - 1, c.stroke_end_slots, a))
        self.char_end_logits.copy_(_hazard_logits(n_strokes - 1, c.char_end_slots, a))
        return self


# ----------------------------------------------------------------- helpers


@contextmanager
def _single_threaded():
    """Run torch on one intra-op thread (restored afterwards).

    EM is thousands of small tensor operations; with several threads on a busy
    machine each parallel region waits for the other cores, which made the fit
    many times slower on a 2-core machine with one core taken.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _hazard_logits(last: np.ndarray, n_slots: int, smoothing: float) -> torch.Tensor:
    """Logits of P(stop at index j | reached j) per slot, from each sequence's last index.

    Slot j < n_slots - 1 counts index j; the last slot pools every index >= n_slots - 1.
    """
    last = last[last >= 0]
    logits = torch.zeros(n_slots)
    for j in range(n_slots):
        if j < n_slots - 1:
            stops, at_risk = np.sum(last == j), np.sum(last >= j)
        else:  # pooled: every decision taken at an index >= j
            stops = np.sum(last >= j)
            at_risk = np.sum(np.maximum(last - j + 1, 0))
        if at_risk == 0:
            logits[j] = logits[j - 1] if j > 0 else 0.0
            continue
        p = (stops + smoothing) / (at_risk + 2 * smoothing)
        p = min(max(p, 1e-6), 1 - 1e-6)
        logits[j] = math.log(p) - math.log1p(-p)
    return logits


def _raw_from_gmm(log_weights, means, scales, rho) -> torch.Tensor:
    """Inverse of :func:`gmm_from_raw`: (log weights (..., K), means (..., K, 2),
    effective scales (..., K, 2), correlations (..., K)) -> raw rows (..., 6K).

    Scales below the variance floor are raised to it (gmm_from_raw cannot go lower).
    """
    lo, hi = LOG_SCALE_BOUNDS
    shape = log_weights.shape
    var = (scales.double() ** 2 - VARIANCE_FLOOR).clamp(min=math.exp(2 * lo) * 1.01)
    frac = ((0.5 * var.log() - lo) / (hi - lo)).clamp(1e-6, 1 - 1e-6)
    log_scale_raw = torch.log(frac) - torch.log1p(-frac)
    rho_raw = torch.atanh((rho.double() / RHO_BOUND).clamp(-0.999, 0.999))
    return torch.cat(
        [
            log_weights.double(),
            means.double().reshape(shape[:-1] + (-1,)),
            log_scale_raw.reshape(shape[:-1] + (-1,)),
            rho_raw,
        ],
        -1,
    ).float()


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: k centres among the points, far apart with high probability."""
    first = torch.randint(len(x), (1,), generator=gen)
    centres = [x[first[0]]]
    d2 = ((x - centres[0]) ** 2).sum(-1)
    for _ in range(1, k):
        if float(d2.sum()) > 0:
            j = torch.multinomial(d2 / d2.sum(), 1, generator=gen)[0]
        else:
            j = torch.randint(len(x), (1,), generator=gen)[0]
        centres.append(x[j])
        d2 = torch.minimum(d2, ((x - x[j]) ** 2).sum(-1))
    return torch.stack(centres)


RHO_FIT_BOUND = 0.985


def _em_fit(x: torch.Tensor, k: int, iterations: int, restarts: int, gen: torch.Generator):
    """EM for a K-component full-covariance 2-D GMM on points x (n, 2), float64.

    Returns the best run's (log weights (K,), means (K, 2), scales (K, 2), rho (K,)),
    with variances kept >= the variance floor and |rho| <= RHO_FIT_BOUND, the range
    :func:`gmm_from_raw` can represent.
    """
    n = len(x)
    min_var = VARIANCE_FLOOR + 1e-6
    best, best_ll = None, -math.inf
    for _ in range(restarts):
        means = _kmeans_pp(x, k, gen)
        var0 = x.var(0, unbiased=False).clamp(min=min_var) if n > 1 else torch.full((2,), 1.0)
        scales = var0.sqrt().expand(k, 2).clone()
        rho = torch.zeros(k, dtype=x.dtype)
        log_w = torch.full((k,), -math.log(k), dtype=x.dtype)
        prev = -math.inf
        for _ in range(iterations):
            gmm = BivariateGMM(log_w, means, scales, rho, validate_args=False)
            comp = gmm.component_log_prob(x)
            joint = comp + log_w  # (n, K)
            ll_each = joint.logsumexp(-1)
            ll = float(ll_each.sum())
            resp = (joint - ll_each.unsqueeze(-1)).exp()  # (n, K)
            nk = resp.sum(0) + 1e-10
            log_w = (nk / nk.sum()).log()
            means = (resp.T @ x) / nk.unsqueeze(-1)
            d = x.unsqueeze(1) - means  # (n, K, 2)
            cov = torch.einsum("nk,nki,nkj->kij", resp, d, d) / nk[:, None, None]
            var = torch.stack([cov[:, 0, 0], cov[:, 1, 1]], -1).clamp(min=min_var)
            scales = var.sqrt()
            rho = cov[:, 0, 1] / (scales[:, 0] * scales[:, 1])
            rho = rho.clamp(-RHO_FIT_BOUND, RHO_FIT_BOUND)
            if ll - prev < 1e-7 * n:
                break
            prev = ll
        final = float(
            BivariateGMM(log_w, means, scales, rho, validate_args=False).log_prob(x).sum()
        )
        if final > best_ll:
            best, best_ll = (log_w, means, scales, rho), final
    return best
