"""MAP refinement of candidate parses of images, batched over all candidates.

:func:`refine` takes B candidate parses (ordered strokes of control points, each
explaining one of M images) and maximizes, for each candidate independently, the
joint log-probability of the conditioned program of :mod:`pyrochar.image.model`

    log P(type) + log P(token | type) + log P(image | token)

over the continuous values: the type's control points (``fit_type=True``), the
shape and location noise, the affine, ``blur`` and ``eps``. The discrete structure
(the number of strokes and of control points, the stroke order and directions)
is kept. The objective is a vectorized log-prob, the same sum as a trace of the
conditioned Pyro program (tests/test_refine.py checks them equal):

- type: the type model's teacher-forced program (:func:`pyrochar.scoring.log_likelihood`)
  on the starts and offsets of the candidate's control points; gradients reach the
  control points through those observed values. The canvases the CNNs read (Full
  NS) are rendered from the current control points at each step and held fixed
  within the step (no gradient through them);
- token and image: :func:`~pyrochar.image.model.token_log_prob` and
  :func:`~pyrochar.image.model.image_log_prob` of the rendered probabilities.

Optimizer: Adam on all candidates at once (elementwise, so candidates do not
interact), ``blur`` and ``eps`` in unconstrained space (the logit of their
position in their uniform prior's range). The type term and its gradient are
refreshed every ``type_every`` steps (default 5) and reused in between; the token
and image terms are recomputed at every step. The best values seen per candidate
are returned, with their scores recomputed exactly at those values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..checks import check_control_points, check_positive_int, check_weight
from ..errors import PyrocharError
from ..models.base import CharacterModel, evaluating
from ..scoring import log_likelihood
from .model import (
    PX,
    ParseScores,
    TokenParams,
    TokenValues,
    image_log_prob,
    token_controls,
    token_log_prob,
    type_batch,
)
from .render import IMSIZE, render_probs

__all__ = ["Refined", "refine", "parse_tensors", "joint_log_prob"]

LOGIT_CLAMP = 12.0  # |logit| kept below this: the value stays inside its open range


@dataclass
class Refined:
    """B refined candidates (normalized units; tensors on the type model's device)."""

    type_strokes: list[list[np.ndarray]]  # per candidate, its strokes (n_i, 2)
    token_strokes: list[list[np.ndarray]]  # type + noise, warped by the affine
    affine: torch.Tensor  # (B, 4) scale x, scale y, shift x, shift y
    blur: torch.Tensor  # (B,) px
    eps: torch.Tensor  # (B,)
    scores: ParseScores  # log-probs at these values, (B,) each
    type_cps: torch.Tensor  # (B, S, P, 2) padded
    n_cp: torch.Tensor  # (B, S) control points per stroke, 0 on padding
    values: TokenValues  # every token site's value
    image_index: torch.Tensor  # (B,) the image each candidate explains

    def take(self, index) -> Refined:
        """Some of the candidates, in the order of ``index`` (a list or long tensor),
        e.g. ``refined.take(refined.scores.total.argsort(descending=True)[:5])``."""
        i = torch.as_tensor(index, dtype=torch.long, device=self.affine.device)
        pos = i.tolist()
        return Refined(
            type_strokes=[self.type_strokes[k] for k in pos],
            token_strokes=[self.token_strokes[k] for k in pos],
            affine=self.affine[i],
            blur=self.blur[i],
            eps=self.eps[i],
            scores=self.scores.take(i),
            type_cps=self.type_cps[i],
            n_cp=self.n_cp[i],
            values=self.values.take(i),
            image_index=self.image_index[i],
        )


def parse_tensors(parses, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """B parses (lists of (n, 2) control points) -> cps (B, S, P, 2), n_cp (B, S).

    A stroke of one control point becomes two coincident ones (a dot, as the
    models draw it).
    """
    parses = check_control_points(parses, "parses")
    strokes = [[np.asarray(cp, dtype=np.float64).reshape(-1, 2) for cp in p] for p in parses]
    strokes = [[np.concatenate([cp, cp]) if len(cp) == 1 else cp for cp in p] for p in strokes]
    s = max(len(p) for p in strokes)
    n = max(len(cp) for p in strokes for cp in p)
    cps = np.zeros((len(strokes), s, n, 2))
    n_cp = np.zeros((len(strokes), s), dtype=np.int64)
    for b, p in enumerate(strokes):
        for i, cp in enumerate(p):
            cps[b, i, : len(cp)] = cp
            n_cp[b, i] = len(cp)
    return torch.as_tensor(cps, dtype=dtype, device=device), torch.as_tensor(n_cp, device=device)


def _unpad(cps: torch.Tensor, n_cp: torch.Tensor) -> list[list[np.ndarray]]:
    """(B, S, P, 2), (B, S) -> per candidate the list of its real strokes (n, 2)."""
    c = cps.detach().cpu().double().numpy()
    counts = n_cp.cpu().numpy()
    return [[c[b, i, : counts[b, i]] for i in range(c.shape[1]) if counts[b, i] > 0] for b in range(len(c))]


def type_log_prob(type_model: CharacterModel, cps: torch.Tensor, n_cp: torch.Tensor) -> torch.Tensor:
    """(B,) teacher-forced log-prob of the type, differentiable in the observed values.

    The canvases (for models that read them) are rendered without gradient.
    """
    batch = type_batch(cps, n_cp)
    if type_model.uses_canvases:
        with torch.no_grad():
            canvases = type_model.prepare_batch(type_batch(cps.detach(), n_cp)).canvases
        batch = replace(batch, canvases=canvases)
    total, _ = log_likelihood(type_model, batch)
    return total


def joint_log_prob(
    type_model: CharacterModel,
    params: TokenParams,
    cps: torch.Tensor,
    n_cp: torch.Tensor,
    values: TokenValues,
    images: torch.Tensor,
    type_lp: torch.Tensor | None = None,
) -> ParseScores:
    """Scores of B candidates: type (teacher forced, or ``type_lp`` if given), token, image.

    cps (B, S, P, 2), n_cp (B, S), images (B, 105, 105) (1 = ink).
    """
    if type_lp is None:
        type_lp = type_log_prob(type_model, cps, n_cp)
    token = token_controls(cps, n_cp, values)
    probs = render_probs(token, n_cp, values.blur, values.eps)
    return ParseScores(type_lp, token_log_prob(params, n_cp, values), image_log_prob(probs, images))


def _images(images, device, dtype) -> torch.Tensor:
    """Images as a (M, 105, 105) float tensor, 1 = ink."""
    t = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or tuple(t.shape[1:]) != (IMSIZE, IMSIZE):
        raise PyrocharError(
            f"images must be (M, {IMSIZE}, {IMSIZE}) (or one {IMSIZE} x {IMSIZE} image), "
            f"got shape {tuple(t.shape)}; read pictures with pyrochar.image.io.read_image"
        )
    t = t.to(device=device, dtype=dtype)
    if not bool(((t == 0) | (t == 1)).all()):
        raise PyrocharError("images must hold only 0 and 1 (or False and True; 1 = ink)")
    return t


def _range_logit(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return torch.logit((x - lo) / (hi - lo)).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)


def _from_logit(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(u.clamp(-LOGIT_CLAMP, LOGIT_CLAMP))


def _keep_better(best: dict, best_total: torch.Tensor, current: dict, total: torch.Tensor) -> torch.Tensor:
    """Copy into ``best`` the ``current`` values (each (B, ...)) of the candidates whose
    ``total`` (B,) beats ``best_total``; return the new best totals. NaN never wins."""
    better = total > best_total  # (B,)
    for k, v in current.items():
        m = better.view((-1,) + (1,) * (v.dim() - 1))
        best[k] = torch.where(m, v.detach(), best[k])
    return torch.where(better, total, best_total)


def refine(
    type_model: CharacterModel,
    images,
    parses,
    image_index=None,
    steps: int = 50,
    fit_type: bool = True,
    params: TokenParams | None = None,
    lr: float = 0.02,
    init_affine=None,
    init_blur: float = 1.0,
    init_eps: float = 0.01,
    type_every: int = 5,
    image_weight: float = 1.0,
) -> Refined:
    """MAP of the continuous values of B candidate parses, all at once.

    Args:
        type_model: the type model (any project model), used in eval mode.
        images: (M, 105, 105) bool/float, 1 = ink (tensor or array), or one image.
        parses: B parses, each a list of (n, 2) control points (normalized units);
            order and direction are kept.
        image_index: (B,) which image each parse explains (default: image 0).
        steps: Adam steps (0: only score the initial values).
        fit_type: also fit the type's control points; False refits only the token
            values (noise, affine, blur, eps) with the type fixed (one-shot
            classification refits a training image's parse to a test image so).
        params: the token model's values (:class:`TokenParams`).
        lr: Adam's learning rate (positions in normalized units: 0.02 = 0.4 px;
            the affine and the logits of blur and eps use 5x of it).
        init_affine: (B, 4) or (4,) starting affine, shifts in px (default: identity).
        init_blur, init_eps: starting values of blur (px) and eps.
        type_every: with ``fit_type``, the type model's log-prob and its gradient
            are recomputed every ``type_every`` steps and reused in between (the
            type's networks cost most of a step; the control points move little
            in a few steps). 1 recomputes them at every step.
        image_weight: the image term's weight w in the objective
            ``type + token + w * image`` (a tempered, or power, likelihood: the
            conditioned program with ``pyro.poutine.scale(scale=w)`` on its ``image``
            site). 1 is the model's own posterior; below 1 the token model keeps
            more say against the 11,025 pixels, which are not independent given
            the token (one-shot classification uses :data:`pyrochar.oneshot.refit.IMAGE_WEIGHT`).
            The scores returned are the unweighted log-probs; the best values
            are the best by the weighted objective.

    Returns:
        :class:`Refined`, the best values seen per candidate and their scores.
    """
    steps = int(steps)
    if steps < 0:
        raise PyrocharError(f"steps must be >= 0, got {steps}")
    type_every = check_positive_int(type_every, "type_every")
    image_weight = check_weight(image_weight, "image_weight")
    params = TokenParams() if params is None else params
    device = next(type_model.parameters()).device
    dtype = torch.float32
    cps0, n_cp = parse_tensors(parses, device, dtype)
    b = check_positive_int(cps0.shape[0], "the number of parses")
    imgs = _images(images, device, dtype)
    idx = torch.zeros(b, dtype=torch.long) if image_index is None else torch.as_tensor(image_index)
    idx = idx.to(device=device, dtype=torch.long).reshape(-1)
    if idx.shape != (b,) or bool((idx < 0).any()) or bool((idx >= imgs.shape[0]).any()):
        raise PyrocharError(
            f"image_index must hold {b} indices in [0, {imgs.shape[0]}) (one per parse)"
        )
    target = imgs[idx]  # (B, 105, 105)

    lo_b, hi_b = params.blur_range
    lo_e, hi_e = params.eps_range
    if init_affine is None:
        affine0 = params.affine_mean(dtype, device)
    elif torch.is_tensor(init_affine):
        affine0 = init_affine.detach().to(device=device, dtype=dtype)
    else:
        affine0 = torch.as_tensor(np.asarray(init_affine, dtype=np.float64), dtype=dtype, device=device)
    if affine0.shape not in ((4,), (b, 4)):
        raise PyrocharError(f"init_affine must be (4,) or ({b}, 4), got shape {tuple(affine0.shape)}")
    affine0 = affine0.expand(b, 4) / torch.tensor([1.0, 1.0, PX, PX], dtype=dtype, device=device)  # leaf units
    leaves = {
        "cps": cps0.clone(),
        "shape_noise": torch.zeros_like(cps0),
        "location_noise": torch.zeros(b, cps0.shape[1], 2, dtype=dtype, device=device),
        "affine": affine0.clone(),
        "blur": _range_logit(torch.full((b,), float(init_blur), dtype=dtype, device=device), lo_b, hi_b),
        "eps": _range_logit(torch.full((b,), float(init_eps), dtype=dtype, device=device), lo_e, hi_e),
    }
    trained = [k for k in leaves if k != "cps" or fit_type]
    for k in trained:
        leaves[k].requires_grad_(True)
    scale = {"cps": 1.0, "shape_noise": 1.0, "location_noise": 1.0, "affine": 5.0, "blur": 5.0, "eps": 5.0}
    opt = torch.optim.Adam([{"params": [leaves[k]], "lr": lr * scale[k]} for k in trained])

    def values_of(v: dict) -> TokenValues:
        """The site values (noise and shifts in px) of the leaves (all lengths normalized, so
        that one learning rate suits the control points, the noise and the shifts)."""
        affine = torch.cat([v["affine"][:, :2], v["affine"][:, 2:] * PX], dim=1)
        return TokenValues(v["shape_noise"] * PX, v["location_noise"] * PX, affine,
                           _from_logit(v["blur"], lo_b, hi_b), _from_logit(v["eps"], lo_e, hi_e))  # fmt: skip

    with evaluating(type_model):
        fixed_type = None
        if not fit_type:
            with torch.no_grad():
                fixed_type = type_log_prob(type_model, cps0, n_cp)
        best = {k: v.detach().clone() for k, v in leaves.items()}
        best_total = torch.full((b,), -torch.inf, dtype=dtype, device=device)
        type_now, type_grad = fixed_type, None
        for step in range(steps):
            if fit_type and step % type_every == 0:  # the type model's term, refreshed
                lp = type_log_prob(type_model, leaves["cps"], n_cp)
                type_grad = torch.autograd.grad(lp.sum(), leaves["cps"])[0]
                type_now = lp.detach()
            scores = joint_log_prob(type_model, params, leaves["cps"], n_cp, values_of(leaves),
                                    target, type_now)  # fmt: skip
            # the total with the type's log-prob of its last refresh
            objective = scores.token + image_weight * scores.image  # (B,) the type's term is added below
            best_total = _keep_better(best, best_total, leaves, (scores.type + objective).detach())
            grads = torch.autograd.grad(-objective.sum(), [leaves[k] for k in trained])
            for k, g in zip(trained, grads, strict=True):
                if k == "cps":
                    g = g - type_grad
                leaves[k].grad = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            opt.step()
        final = {k: v.detach() for k, v in leaves.items()}
        with torch.no_grad():
            last = joint_log_prob(type_model, params, final["cps"], n_cp, values_of(final), target, fixed_type)
            _keep_better(best, best_total, final, last.type + last.token + image_weight * last.image)
            values = values_of(best)
            scores = joint_log_prob(type_model, params, best["cps"], n_cp, values, target, fixed_type)
            token = token_controls(best["cps"], n_cp, values)
    return Refined(
        type_strokes=_unpad(best["cps"], n_cp),
        token_strokes=_unpad(token, n_cp),
        affine=values.affine,
        blur=values.blur,
        eps=values.eps,
        scores=scores.detach(),
        type_cps=best["cps"],
        n_cp=n_cp,
        values=values,
        image_index=idx,
    )
