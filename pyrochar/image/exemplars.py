"""New exemplars of the character in one image: ``pyrochar.exemplars(model, image, n=9)``.

The image is parsed (:func:`pyrochar.image.parse.parse`, the ``k`` best parses with
their weights, the approximate posterior over types given the image); then the
token and image sites of :mod:`pyrochar.image.model` are sampled again, ``n`` times
in one batch, with the type fixed to a parse's control points:

- ``types="best"``: every exemplar is a new token of the best parse's type;
- ``types="posterior"`` ("types near it"): each exemplar's type is first drawn from
  the parses by their weights (the Pyro site ``parse``), then a token of it.

**Rendered like the input.** The sites ``blur`` and ``eps`` are conditioned on the
chosen parse's fitted values (``pyro.condition``): drawn from their wide uniform
priors (blur up to 16 px, pixel noise up to 0.5) the new tokens would be blobs and
static, not pen strokes like the input's. The shape and location noise and the
affine warp are drawn from the token model, which is what makes a new exemplar.

**Binarization.** The program's ``image`` site is a Bernoulli draw per pixel. By
default (``binarize="mode"``) an exemplar's 105 x 105 1-bit image is instead the
most probable image given the token, ink where its probability is above 0.5
(:data:`pyrochar.image.metrics.INK_THRESHOLD`, the rule parses are drawn by too).
Omniglot's images are clean 1-bit pictures of pen strokes, while a draw makes the
pixels along a stroke's edge ink or paper at random and sprinkles stray dots on
the paper (each paper pixel is ink with probability ``eps / 2``; the fitted
``eps`` absorbs where the parse misses the ink, it is not a property of the pen);
thresholding the blurred ink at one half keeps the stroke width the fitted blur
gives (the edge of a blurred line is where it crosses one half).
``binarize="sample"`` returns the program's Bernoulli draw itself.

The same ``seed`` gives the same parses and the same exemplars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..errors import PyrocharError
from .metrics import INK_THRESHOLD
from .model import GenerateImage, TokenDraw, type_batch
from .parse import Parse, load_image, parse
from .propose import N_CANDIDATES
from .refine import _unpad, parse_tensors  # _unpad: padded control points -> real strokes

__all__ = ["MAX_EXEMPLARS", "TYPES", "BINARIZE", "Exemplars", "exemplars", "sample_tokens"]

#: Exemplars per call, at most (each is rendered at 105 x 105 and drawn in the picture).
MAX_EXEMPLARS = 100
#: Where the exemplars' types come from: the best parse, or the parses by weight.
TYPES = ("best", "posterior")
#: How a token's ink probabilities become a 1-bit image (module docstring).
BINARIZE = ("mode", "sample")


@dataclass
class Exemplars:
    """``n`` new exemplars of the character in one image (normalized units).

    ``token_strokes[i]`` are exemplar i's token control points, one (n_j, 2) array
    per stroke in drawing order (type + shape and location noise, warped by the
    affine); ``parse_index[i]`` is the position in ``parses`` of its type.
    """

    image: np.ndarray  # (105, 105) bool, the input's ink
    parses: list[Parse]  # the parses the types came from, best first
    parse_index: np.ndarray  # (n,) int
    token_strokes: list[list[np.ndarray]]  # per exemplar, its strokes (n_j, 2)
    images: np.ndarray  # (n, 105, 105) bool, the rendered exemplars
    probs: np.ndarray  # (n, 105, 105) float, their ink probabilities
    types: str = "best"
    binarize: str = "mode"

    @property
    def n(self) -> int:
        return len(self.token_strokes)

    def to_json(self, source: str | None = None) -> dict:
        """A ``pyrochar-drawings`` document (``pyrochar score`` reads it): one drawing
        per exemplar (its token's splines evaluated as polylines in motor
        coordinates) with ``"exemplar"``: its index, its parse's index and its token
        control points; the parses themselves (:meth:`Parse.to_json`) under ``"parses"``."""
        from ..viz import splines_to_motor_polylines

        name = "image" if source is None else str(source)
        drawings = []
        for i, (strokes, j) in enumerate(zip(self.token_strokes, self.parse_index.tolist(), strict=True)):
            drawings.append({
                "format": "pyrochar-drawing",
                "version": 1,
                "label": f"{name} exemplar {i + 1}",
                "strokes": [np.round(p, 4).tolist() for p in splines_to_motor_polylines(strokes)],
                "exemplar": {
                    "index": i,
                    "parse": int(j),
                    "token_control_points": [np.round(s, 6).tolist() for s in strokes],
                },
            })  # fmt: skip
        return {
            "format": "pyrochar-drawings",
            "version": 1,
            "image": name,
            "types": self.types,
            "binarize": self.binarize,
            "drawings": drawings,
            "parses": [p.to_json(label=f"{name} parse {r}") for r, p in enumerate(self.parses, 1)],
        }


def _check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise PyrocharError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_refined(parses) -> list[Parse]:
    """The parses, if they are a non-empty list of refined Parses (blur and eps fitted)."""
    if not isinstance(parses, (list, tuple)) or not parses or not all(isinstance(p, Parse) for p in parses):
        raise PyrocharError("parses must be a non-empty list of pyrochar.image.parse.Parse")
    if any(p.blur is None or p.eps is None for p in parses):
        raise PyrocharError(
            "exemplars need refined parses (with a fitted blur and eps): parse with refine=True"
        )
    weights = np.array([p.weight for p in parses], dtype=np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise PyrocharError("the parses' weights must be finite, >= 0 and not all 0")
    return list(parses)


def _exemplar_program(gen: GenerateImage, cps, n_cp, blur, eps, weights, n: int
                      ) -> tuple[TokenDraw, torch.Tensor]:
    """The Pyro program of ``n`` exemplars given K parses (all tensors on one device).

    cps (K, S, P, 2) and n_cp (K, S): the parses' type control points; blur, eps (K,)
    their fitted values; weights (K,) the probabilities of the types. Site ``parse``
    (n,) draws each exemplar's type, then the token and image sites of
    :meth:`GenerateImage.token_and_image` run with ``blur`` and ``eps`` observed at
    the chosen parses' values. Returns the :class:`TokenDraw` and the chosen parse
    indices (n,).
    """
    with pyro.plate("exemplars", n):  # the token sites' plate "tokens" follows (same size)
        index = pyro.sample("parse", dist.Categorical(probs=weights))  # (n,)
    c, m = cps[index], n_cp[index]  # (n, S, P, 2), (n, S)
    fitted = {"blur": blur[index], "eps": eps[index]}  # (n,) each
    draw = pyro.condition(gen.token_and_image, data=fitted)(type_batch(c, m), c, m)
    return draw, index


def sample_tokens(model, parses: list[Parse], n: int, types: str = "best", seed: int | None = 0):
    """Run the exemplar program once: ``n`` new tokens of the parses' types.

    ``types="best"`` uses ``parses[0]`` only; ``"posterior"`` draws each exemplar's
    type from the parses by their weights. Returns ``(draw, index, trace)``: the
    :class:`~pyrochar.image.model.TokenDraw`, each exemplar's parse index (n,) and
    the Pyro trace of the program (sites ``parse``, the token sites and ``image``).
    """
    from ..checks import check_model, check_positive_int, check_seed

    check_model(model)
    n = check_positive_int(n, "n", MAX_EXEMPLARS)
    _check_choice(types, "types", TYPES)
    parses = _check_refined(parses)
    seed = check_seed(seed)
    used = parses if types == "posterior" else parses[:1]
    device = next(model.parameters()).device
    cps, n_cp = parse_tensors([p.strokes for p in used], device)  # (K, S, P, 2), (K, S)

    def t(values):
        return torch.tensor(values, dtype=cps.dtype, device=device)  # (K,)

    weights = t([p.weight for p in used]) if types == "posterior" else t([1.0])
    args = (GenerateImage(model), cps, n_cp, t([p.blur for p in used]), t([p.eps for p in used]),
            weights / weights.sum(), n)  # fmt: skip
    if seed is not None:
        pyro.set_rng_seed(seed)
    with torch.no_grad():
        trace = pyro.poutine.trace(_exemplar_program).get_trace(*args)
    draw, index = trace.nodes["_RETURN"]["value"]
    return draw, index, trace


def exemplars(
    model,
    image,
    n: int = 9,
    k: int = 5,
    types: str = "best",
    seed: int | None = 0,
    steps: int | None = None,
    n_candidates: int = N_CANDIDATES,
    binarize: str = "mode",
    parses: list[Parse] | None = None,
) -> Exemplars:
    """``n`` new exemplars of the character in ``image`` (module docstring).

    ``image``: a path to a PNG/JPEG or an array (:mod:`pyrochar.image.io`). It is
    parsed with :func:`pyrochar.parse` (``k`` parses, ``steps`` refinement steps,
    ``n_candidates`` proposals, ``seed``), unless ``parses`` (refined, with weights)
    are given. ``types``: ``"best"`` or ``"posterior"``; ``binarize``: ``"mode"``
    (ink probability > 0.5) or ``"sample"`` (the Bernoulli draw). ``n`` in 1..100.
    """
    from ..checks import check_model, check_positive_int

    check_model(model)
    n = check_positive_int(n, "n", MAX_EXEMPLARS)
    _check_choice(types, "types", TYPES)
    _check_choice(binarize, "binarize", BINARIZE)
    ink = load_image(image)
    if parses is None:
        parses = parse(model, ink, k=k, n_candidates=n_candidates, steps=steps, seed=seed)
    draw, index, _ = sample_tokens(model, parses, n, types=types, seed=seed)
    probs = draw.probs.detach().cpu()  # (n, 105, 105)
    chosen = probs if binarize == "mode" else draw.image.detach().cpu()  # (n, 105, 105)
    images = chosen > INK_THRESHOLD
    return Exemplars(
        image=ink,
        parses=list(parses),
        parse_index=index.cpu().numpy().astype(np.int64),
        token_strokes=_unpad(draw.token_cps, draw.n_cp),
        images=images.numpy(),
        probs=probs.double().numpy(),
        types=types,
        binarize=binarize,
    )
