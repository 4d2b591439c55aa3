"""Parsing an image into strokes: ``pyrochar.parse(model, image, k=5)``.

Steps:

1. **Propose** (:func:`pyrochar.image.propose.propose`): stroke sets from random walks
   on the image's skeleton, their orders and directions, scored by the type model.
2. **Shortlist** ``n_refine`` candidates (:func:`shortlist`): first the best
   candidate of each stroke set, best first, up to half the shortlist (so that
   refinement sees different ways of cutting the ink into strokes, which only the
   image term can tell apart), then the best remaining by type log-probability.
3. **Refine** (:func:`pyrochar.image.refine.refine`): the shortlisted candidates'
   continuous values (control points, token noise, affine warp, blur, pixel
   noise) are fitted for the joint log-probability of type, token and image, all
   candidates in one batch.
4. **Keep** the ``k`` best by total log-probability; their weights are the
   softmax of their totals (they sum to 1 over the ``k`` parses returned).

With ``refine=False`` step 3 is skipped: the parses are the proposals as they are,
ranked and weighted by type log-probability alone (the ``token`` and ``image``
scores are then absent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import PyrocharError
from . import MAX_K
from .propose import N_CANDIDATES, N_WALKS, Candidate, propose

__all__ = ["MAX_K", "N_REFINE", "STEPS", "Parse", "shortlist", "load_image", "n_refined", "parse"]

#: Candidates refined per image by default (at least 2 k).
N_REFINE = 10
#: Refinement steps by default: with 50 (the refiner's default) the best parse reached
#: the true strokes' joint log-prob on 71 % of 80 held-out images, with 150 on 88 %
#: (the true strokes refined with as many steps; docs/parsing.md).
STEPS = 150


def n_refined(k: int) -> int:
    """How many candidates :func:`parse` refines by default when asked for ``k`` parses."""
    return max(N_REFINE, 2 * k)


@dataclass
class Parse:
    """One parse of an image: strokes in drawing order (normalized control points,
    each drawn from its first point), the token-level values and the log-probs."""

    strokes: list[np.ndarray]  # type: (n_i, 2) control points per stroke, normalized units
    scores: dict[str, float]  # "type", "token", "image", "total" (nats; token/image if refined)
    weight: float = 0.0  # softmax of "total" over the parses returned together
    token_strokes: list[np.ndarray] | None = None  # (n_i, 2): type + shape/location noise, warped
    affine: np.ndarray | None = None  # (4,) scale x, scale y, shift x, shift y (px)
    blur: float | None = None  # px, sigma of the Gaussian blur
    eps: float | None = None  # pixel noise
    extra: dict = field(default_factory=dict)  # e.g. the stroke set it came from

    @property
    def n_strokes(self) -> int:
        return len(self.strokes)

    def drawn_strokes(self) -> list[np.ndarray]:
        """The strokes as they appear in the image: the token's if refined, else the
        type's; (n_i, 2) normalized control points."""
        return self.token_strokes if self.token_strokes is not None else self.strokes

    def to_json(self, label: str | None = None) -> dict:
        """A ``pyrochar-drawing`` object (strokes: the drawn splines evaluated as
        polylines in motor coordinates, readable by ``pyrochar score``) with the
        parse's values under ``"parse"``: control points (normalized units) of the
        type and the token, affine, blur, eps, log-probs and weight."""
        from ..viz import splines_to_motor_polylines

        def points(arrays):
            return None if arrays is None else [np.round(a, 6).tolist() for a in arrays]

        obj = {"format": "pyrochar-drawing", "version": 1}
        if label is not None:
            obj["label"] = label
        obj["strokes"] = [np.round(p, 4).tolist() for p in splines_to_motor_polylines(self.drawn_strokes())]
        obj["parse"] = {
            "type_control_points": points(self.strokes),
            "token_control_points": points(self.token_strokes),
            "affine": None if self.affine is None else [float(v) for v in self.affine],
            "blur": self.blur,
            "eps": self.eps,
            "log_prob": {key: float(v) for key, v in self.scores.items()},
            "weight": float(self.weight),
        }
        return obj


def shortlist(candidates: list[Candidate], n: int) -> list[Candidate]:
    """At most ``n`` candidates (best first in, best first out): the best of each
    stroke set up to ``n // 2`` (at least 1), then the best of the rest (step 2)."""
    heads, seen = [], set()
    for c in candidates:
        if c.stroke_set not in seen and len(heads) < max(1, n // 2):
            seen.add(c.stroke_set)
            heads.append(c)
    chosen = {id(c) for c in heads}
    rest = [c for c in candidates if id(c) not in chosen][: n - len(heads)]
    return sorted(heads + rest, key=lambda c: -c.type_log_prob)


def load_image(image) -> np.ndarray:
    """A path (PNG/JPEG) or an array -> (105, 105) bool ink (:mod:`pyrochar.image.io`)."""
    from .io import image_from_array, read_image

    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    return image_from_array(image)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def _refined_parses(model, image: np.ndarray, shortlisted: list[Candidate], steps: int | None) -> list[Parse]:
    """Refine the shortlist with :func:`pyrochar.image.refine.refine` -> Parses."""
    import torch

    from .refine import refine

    images = torch.as_tensor(image, dtype=torch.float32, device=model.device)[None]  # (1, 105, 105)
    r = refine(model, images, [c.strokes for c in shortlisted], steps=STEPS if steps is None else steps)
    scores = {key: getattr(r.scores, key).detach().double().cpu().numpy()
              for key in ("type", "token", "image", "total")}  # fmt: skip
    affine = r.affine.detach().double().cpu().numpy()  # (B, 4)
    blur, eps = (t.detach().double().cpu().numpy() for t in (r.blur, r.eps))  # (B,) each
    return [
        Parse(
            strokes=[np.asarray(s, dtype=np.float64) for s in r.type_strokes[i]],
            scores={key: float(v[i]) for key, v in scores.items()},
            token_strokes=[np.asarray(s, dtype=np.float64) for s in r.token_strokes[i]],
            affine=affine[i],
            blur=float(blur[i]),
            eps=float(eps[i]),
            extra={"stroke_set": c.stroke_set, "proposal_type_log_prob": c.type_log_prob},
        )
        for i, c in enumerate(shortlisted)
    ]


def parse(
    model,
    image,
    k: int = 5,
    n_candidates: int = N_CANDIDATES,
    n_refine: int | None = None,
    steps: int | None = None,
    seed: int | None = 0,
    refine: bool = True,
    n_walks: int = N_WALKS,
) -> list[Parse]:
    """The ``k`` best parses of ``image`` under ``model`` (module docstring), best first.

    ``image``: a path to a PNG/JPEG or an array (see :mod:`pyrochar.image.io`);
    ``n_candidates`` proposals are scored, ``n_refine`` (default ``max(N_REFINE, 2 k)``)
    refined for ``steps`` optimizer steps (:data:`STEPS` when None). The same
    ``seed`` gives the same parses. Fewer than ``k`` parses come back when the image
    has fewer distinct proposals.
    """
    from ..checks import check_model, check_positive_int, check_seed

    check_model(model)
    k = check_positive_int(k, "k", MAX_K)
    n_candidates = check_positive_int(n_candidates, "n_candidates")
    n_refine = n_refined(k) if n_refine is None else check_positive_int(n_refine, "n_refine")
    seed = check_seed(seed)
    ink = load_image(image)
    candidates = propose(ink, model, n_candidates=n_candidates, n_walks=n_walks, seed=seed)
    if not candidates:
        raise PyrocharError(
            f"no parse of the image fits the {model.name} model's caps (at most "
            f"{model.config.max_strokes} strokes of {model.config.max_steps + 1} control points): "
            "the ink is too intricate for it"
        )
    chosen = shortlist(candidates, max(n_refine, k))
    if refine:
        parses = _refined_parses(model, ink, chosen, steps)
    else:
        parses = [Parse(c.strokes, {"type": c.type_log_prob, "total": c.type_log_prob},
                        extra={"stroke_set": c.stroke_set}) for c in chosen]  # fmt: skip
    parses.sort(key=lambda p: -p.scores["total"])
    parses = parses[:k]
    for p, w in zip(parses, _softmax(np.array([p.scores["total"] for p in parses])), strict=True):
        p.weight = float(w)
    return parses

