"""The token and image model as Pyro sites, over any type model (docs/image_model.md).

A character image is explained as P(type) P(token | type) P(image | token):

- **type**: the strokes' control points, drawn by a project model
  (:class:`~pyrochar.models.base.CharacterModel`: Full NS, H-LSTM, ...), with its
  own sites (``loc_{i}``, ``offset_{i}_{t}``, ``stroke_end_{i}_{t}``, ``char_end_{i}``);
- **token** (one drawing of the type), sites in NORMALIZED units (px / 20):

  ==================  ===============  ===========================================
  site                value shape      distribution
  ==================  ===============  ===========================================
  ``shape_noise``     (B, S, P, 2)     N(0, 3.3593 px) per control point
  ``location_noise``  (B, S, 2)        N(0, (1.3536, 1.2056) px) per stroke
  ``affine``          (B, 4)           (scale x, scale y, shift x, shift y) ~ MVN
  ``blur``            (B,)             Uniform(0.5, 16) px, the Gaussian's sigma
  ``eps``             (B,)             Uniform(1e-4, 0.5), the pixel noise
  ==================  ===============  ===========================================

  The token's control points are ``type + shape_noise + location_noise`` (the
  location noise moves a whole stroke), then warped by the affine about the
  centre of the drawing: ``x -> (x - c) * scale + c + shift`` with ``c`` the mean
  of its token control points (BPL warps about the centre of mass of the evaluated
  trajectory; the mean of the control points is a close, cheaper stand-in);
- **image**: ``image`` ~ ``Bernoulli(p).to_event(2)``, (B, 105, 105), ``p`` from
  :func:`pyrochar.image.render.render_probs` (ink, blur, pixel noise).

All token and image sites are in the plate ``tokens`` (B; a plate of its own, as
the type model's ``characters`` plate is closed when its program returns). Strokes and control
points vary in number, so they are padded tensors (S strokes of P points); the
per-point and per-stroke sites are masked with ``.mask(m)`` so that padded entries
score 0 (their values are drawn but never read by the renderer, which stops at
each stroke's count).

``pyro.condition(GenerateImage(type_model).model, data={"image": img})`` is the
parsing problem: its posterior over the type and token sites given the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch

from .. import bspline
from ..geometry import controls_from_start_offsets
from ..models.base import CharacterModel
from ..models.batch import CharacterBatch
from .render import render_probs

__all__ = [
    "SITES",
    "TokenParams",
    "TokenValues",
    "ParseScores",
    "GenerateImage",
    "type_controls",
    "type_batch",
    "warp",
    "token_controls",
]

#: The token and image sites, in the order the program samples them.
SITES = ("shape_noise", "location_noise", "affine", "blur", "eps", "image")
PX = 20.0  # px per normalized unit


@dataclass
class TokenParams:
    """The token model's values in motor px (defaults: the successor's public token model)."""

    shape_sd: float = 3.3593  # px, per control point and axis
    location_sd: tuple[float, float] = (1.3536, 1.2056)  # px, per stroke (x, y)
    scale_mean: tuple[float, float] = (1.0, 1.0)
    scale_cov: tuple[tuple[float, float], tuple[float, float]] = ((0.0470, 0.0223), (0.0223, 0.0359))
    shift_sd: tuple[float, float] = (5.2658, 5.0867)  # px (x, y), independent of the scales
    blur_range: tuple[float, float] = (0.5, 16.0)  # px
    eps_range: tuple[float, float] = (1e-4, 0.5)

    def affine_mean(self, dtype=torch.float32, device=None) -> torch.Tensor:
        """(4,) mean of (scale x, scale y, shift x, shift y), shifts normalized."""
        return torch.tensor([*self.scale_mean, 0.0, 0.0], dtype=dtype, device=device)

    def affine_cov(self, dtype=torch.float32, device=None) -> torch.Tensor:
        """(4, 4) covariance: the scales' block, then the shifts' variances (normalized)."""
        cov = torch.zeros(4, 4, dtype=dtype, device=device)
        cov[:2, :2] = torch.tensor(self.scale_cov, dtype=dtype)
        cov[2, 2], cov[3, 3] = (self.shift_sd[0] / PX) ** 2, (self.shift_sd[1] / PX) ** 2
        return cov

    def distributions(self, cp_mask: torch.Tensor, stroke_mask: torch.Tensor, dtype=torch.float32):
        """The token sites' distributions for B drawings of S strokes of P points.

        cp_mask (B, S, P) and stroke_mask (B, S) bool: the real control points and
        strokes. Returns {site: distribution with batch shape (B,)} for every token
        site (not ``image``); the Pyro program and :func:`token_log_prob` share them.
        """
        dev = cp_mask.device
        b = cp_mask.shape[0]

        def t(x):
            return torch.as_tensor(x, dtype=dtype, device=dev)

        shape = dist.Normal(t(0.0), t(self.shape_sd / PX)).expand(cp_mask.shape + (2,))
        loc_sd = t(self.location_sd) / PX  # (2,)
        location = dist.Normal(torch.zeros_like(loc_sd), loc_sd).expand(stroke_mask.shape + (2,))
        lo_b, hi_b = self.blur_range
        lo_e, hi_e = self.eps_range
        return {
            # padded points and strokes score 0 (mask), their values are never read
            "shape_noise": shape.mask(cp_mask.unsqueeze(-1)).to_event(3),
            "location_noise": location.mask(stroke_mask.unsqueeze(-1)).to_event(2),
            "affine": dist.MultivariateNormal(
                self.affine_mean(dtype, dev), covariance_matrix=self.affine_cov(dtype, dev)
            ).expand([b]),
            "blur": dist.Uniform(t(lo_b), t(hi_b)).expand([b]),
            "eps": dist.Uniform(t(lo_e), t(hi_e)).expand([b]),
        }


@dataclass
class TokenValues:
    """The values of the token sites of B drawings (normalized units)."""

    shape_noise: torch.Tensor  # (B, S, P, 2)
    location_noise: torch.Tensor  # (B, S, 2)
    affine: torch.Tensor  # (B, 4)
    blur: torch.Tensor  # (B,)
    eps: torch.Tensor  # (B,)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in SITES[:-1]}

    def take(self, index) -> TokenValues:
        """The values of some drawings (index: a list or a long tensor of positions)."""
        i = torch.as_tensor(index, dtype=torch.long, device=self.blur.device)
        return TokenValues(**{k: v[i] for k, v in self.as_dict().items()})


@dataclass
class ParseScores:
    """Log-probabilities (nats) of B candidate parses: type, token, image and their sum."""

    type: torch.Tensor  # (B,)
    token: torch.Tensor  # (B,)
    image: torch.Tensor  # (B,)
    total: torch.Tensor = field(init=False)  # (B,)

    def __post_init__(self):
        self.total = self.type + self.token + self.image

    def detach(self) -> ParseScores:
        return ParseScores(self.type.detach(), self.token.detach(), self.image.detach())

    def take(self, index) -> ParseScores:
        """The scores of some candidates (index: a list or a long tensor of positions)."""
        i = torch.as_tensor(index, dtype=torch.long, device=self.total.device)
        return ParseScores(self.type[i], self.token[i], self.image[i])


# ------------------------------------------------------------------ geometry


def _masks(n_cp: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n_cp (B, S) -> cp_mask (B, S, P), stroke_mask (B, S)."""
    cp_mask = torch.arange(p, device=n_cp.device) < n_cp.unsqueeze(-1)
    return cp_mask, n_cp > 0


def type_controls(batch: CharacterBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """A CharacterBatch -> control points cps (B, S, T + 1, 2), n_cp (B, S) (0 on padding)."""
    b, s, t = batch.offsets.shape[:3]
    flat = controls_from_start_offsets(
        batch.starts.reshape(b * s, 2), batch.offsets.reshape(b * s, t, 2), batch.n_offsets.reshape(b * s)
    )  # (B S, T + 1, 2)
    n_cp = torch.where(batch.stroke_mask, batch.n_offsets + 1, torch.zeros_like(batch.n_offsets))
    return flat.view(b, s, t + 1, 2), n_cp


def type_batch(cps: torch.Tensor, n_cp: torch.Tensor) -> CharacterBatch:
    """Control points (B, S, P, 2), n_cp (B, S) (>= 2 on real strokes, 0 on padding)
    -> the CharacterBatch of their starts and offsets; differentiable in ``cps``.

    ``start = w0 cp[0] + w1 cp[1]`` (the first point of the curve), ``offsets =
    cp[1:] - cp[:-1]``, padding zeroed: the inverse of :func:`type_controls`.
    """
    w0, w1 = bspline.START_WEIGHTS
    cp_mask, stroke_mask = _masks(n_cp, cps.shape[2])
    starts = (w0 * cps[:, :, 0] + w1 * cps[:, :, 1]) * stroke_mask.unsqueeze(-1)  # (B, S, 2)
    real = cp_mask[:, :, 1:].unsqueeze(-1)  # (B, S, P - 1, 1)
    offsets = torch.where(real, cps[:, :, 1:] - cps[:, :, :-1], torch.zeros_like(cps[:, :, 1:]))
    n_offsets = (n_cp - 1).clamp(min=0)
    return CharacterBatch(starts, offsets, n_offsets, stroke_mask.sum(1)).trimmed()


def warp(cps: torch.Tensor, n_cp: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Apply the affine (B, 4) to control points (B, S, P, 2) about each drawing's centre
    (the mean of its real control points)."""
    cp_mask, _ = _masks(n_cp, cps.shape[2])
    w = cp_mask.to(cps.dtype).unsqueeze(-1)  # (B, S, P, 1)
    centre = (cps * w).sum((1, 2)) / w.sum((1, 2)).clamp(min=1)  # (B, 2)
    c = centre.view(-1, 1, 1, 2)
    scale, shift = affine[:, :2].view(-1, 1, 1, 2), affine[:, 2:].view(-1, 1, 1, 2)
    return (cps - c) * scale + c + shift


def token_controls(cps: torch.Tensor, n_cp: torch.Tensor, values: TokenValues) -> torch.Tensor:
    """The token's warped control points (B, S, P, 2): type + noise, then the affine."""
    noisy = cps + values.shape_noise + values.location_noise.unsqueeze(2)
    return warp(noisy, n_cp, values.affine)


# ------------------------------------------------------------- log-probabilities


def token_log_prob(params: TokenParams, n_cp: torch.Tensor, values: TokenValues) -> torch.Tensor:
    """(B,) log-prob of the token sites (the same distributions as the program's)."""
    cp_mask, stroke_mask = _masks(n_cp, values.shape_noise.shape[2])
    fns = params.distributions(cp_mask, stroke_mask, values.affine.dtype)
    return sum(fns[k].log_prob(v) for k, v in values.as_dict().items())


def image_distribution(probs: torch.Tensor) -> dist.TorchDistribution:
    """The image site's distribution: Bernoulli(probs (B, 105, 105)).to_event(2)."""
    return dist.Bernoulli(probs=probs).to_event(2)


def image_log_prob(probs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(B,) log-prob of images (B, 105, 105) (1 = ink) under probs (B, 105, 105)."""
    return image_distribution(probs).log_prob(images.to(probs.dtype))


# ------------------------------------------------------------------ the program


@dataclass
class TokenDraw:
    """What :meth:`GenerateImage.model` returns (B drawings)."""

    type: CharacterBatch
    type_cps: torch.Tensor  # (B, S, P, 2)
    n_cp: torch.Tensor  # (B, S)
    token_cps: torch.Tensor  # (B, S, P, 2) warped
    values: TokenValues
    probs: torch.Tensor  # (B, 105, 105)
    image: torch.Tensor  # (B, 105, 105)


class GenerateImage:
    """P(type) P(token | type) P(image | token) as one Pyro program.

    ``model(batch_size)`` runs the type model's program (its sites unchanged), then
    the token and image sites of the module docstring. ``params``: a
    :class:`TokenParams` (the successor's values by default).
    """

    def __init__(self, type_model: CharacterModel, params: TokenParams | None = None):
        self.type_model = type_model
        self.params = TokenParams() if params is None else params

    def model(self, batch_size: int = 1, **type_kwargs) -> TokenDraw:
        """The whole program; ``pyro.condition(self.model, data={"image": img})`` is parsing.

        ``img``: a float tensor (105, 105) or (batch_size, 105, 105), 1 = ink.
        ``type_kwargs`` go to the type model's program (e.g. ``max_strokes``).
        """
        batch = self.type_model.model(batch_size, **type_kwargs).trimmed()
        cps, n_cp = type_controls(batch)
        return self.token_and_image(batch, cps, n_cp)

    def token_and_image(self, batch: CharacterBatch, cps: torch.Tensor, n_cp: torch.Tensor) -> TokenDraw:
        """The token and image sites given the type's control points (B, S, P, 2), n_cp (B, S)."""
        b, _, p = cps.shape[:3]
        cp_mask, stroke_mask = _masks(n_cp, p)
        fns = self.params.distributions(cp_mask, stroke_mask, cps.dtype)
        with pyro.plate("tokens", b):
            values = TokenValues(**{name: pyro.sample(name, fn) for name, fn in fns.items()})
            token = token_controls(cps, n_cp, values)
            probs = render_probs(token, n_cp, values.blur, values.eps)
            image = pyro.sample("image", image_distribution(probs))
        return TokenDraw(batch, cps, n_cp, token, values, probs, image)
