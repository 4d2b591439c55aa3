"""The model-based one-shot score: parse, refit, compare (Lake et al. 2015's scheme).

Every term below is of one model, the tempered one: the image log-likelihood weighted
by ``w`` (:data:`IMAGE_WEIGHT`). The renderer's pixels are not independent given the
token (a stroke a pixel off misses a whole row of them), so the full-weight Bernoulli
product lets a wrong character's parse bend far from its type to cover the test ink
at little cost to the token term; with ``w < 1`` that bending costs what the token
model says it should (docs/oneshot.md).

For an image c (a training image): the parser (:func:`pyrochar.parse`) refines its
candidate parses at full weight; of those, the K with the highest joint in the tempered
model, ``total_ck = type + token + w * image``, are its parses, with log weights
``log w_ck`` (the totals normalized over the K) and ``log P(I_c) ~ logsumexp_k total_ck``.
For another image t (a test image), each parse k of c is refitted to t: its type (the
strokes) is kept and the token-level values (shape and location noise, affine, blur,
eps) are refitted by MAP of ``token + w * image`` (:func:`pyrochar.image.refine.refine`
with ``fit_type=False``).
Then::

    log P(I_t | I_c) ~ logsumexp_k ( log w_ck + token_tck + w * image_tck )

The type's own log-probability is left out of the refitted term: it is the same
for every image a parse is refitted to, and already counted in the weights. The
two-way score adds the reverse direction (the parses of t refitted to c)::

    two_way[t, c] = log P(I_t | I_c) + log P(I_c | I_t) - log P(I_c)

Every refit of a call is batched: ``chunk`` candidates per :func:`refine` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ImageParses", "Refits", "log_lik", "log_weights", "parse_candidates", "parse_image", "parse_images",
           "refit", "two_way"]

#: Candidates per refine call (memory: a few MB each on the CPU).
CHUNK = 256
#: A refit starts with this blur (px): wider than a pen's edge, so that a stroke a few
#: pixels off the ink still feels its pull; the fit narrows it (docs/oneshot.md).
INIT_BLUR = 3.0
#: Refit steps by default (``pyrochar classify --steps``): on katakana runs 1-4 at the image
#: weight 0.1, 60 steps gave 10.0 % two-way error against 17.5 % with 30 and 13.8 % with 120
#: (at full weight: 15.0 % against 26.2 % with 10; benchmarks/bench_oneshot.py,
#: docs/oneshot.md "What each part buys").
REFIT_STEPS = 60
#: Parses per image by default (``pyrochar classify -k``): on katakana runs 1-4 at the
#: image weight 0.1, the parses chosen in that model, 10.0 % two-way error for k = 2 to 5
#: and 11.2 % for k = 1 (at full weight, too, k = 2 was as good as 5 at 40 % of the
#: refits; docs/oneshot.md, "What each part buys").
K = 2
#: The image term's weight in the tempered model the parse choice, refits and scores use
#: (``pyrochar classify --image-weight``): chosen on katakana runs 1-4 with
#: benchmarks/bench_oneshot.py (12.5 % two-way error against 15.0 % at 0.2 and at 1, the
#: parses then the parser's k best at full weight; docs/oneshot.md, "What each part buys").
IMAGE_WEIGHT = 0.1
#: The starting scales (ratio of the two images' ink spreads) are kept in this range.
SCALE_RANGE = (0.6, 1.6)


@dataclass
class ImageParses:
    """The K parses of one image and their log-probabilities, in the order they were chosen."""

    strokes: list[list[np.ndarray]]  # (K,) type strokes, each (n_i, 2) normalized units
    prior: np.ndarray  # (K,) type + token log-prob of each parse
    image: np.ndarray  # (K,) its image log-prob, unweighted

    def totals(self, image_weight: float) -> np.ndarray:
        """(K,) the parses' joint log-probs in the tempered model: type + token + w * image
        (-inf, not NaN, for a parse without a finite score)."""
        totals = self.prior + image_weight * self.image
        return np.where(np.isnan(totals), -np.inf, totals)

    def log_weights(self, image_weight: float) -> np.ndarray:
        """(K,) the log of the parses' weights: their totals normalized over the K."""
        totals = self.totals(image_weight)
        return totals - _logsumexp(totals)

    def log_marginal(self, image_weight: float) -> float:
        """The estimate of log P(image): logsumexp of the K totals."""
        return float(_logsumexp(self.totals(image_weight)))

    def best(self, k: int, image_weight: float) -> ImageParses:
        """The k parses with the highest totals in the tempered model, best first."""
        order = np.argsort(-self.totals(image_weight), kind="stable")[:k]
        return ImageParses([self.strokes[i] for i in order], self.prior[order], self.image[order])

    def first(self, k: int) -> ImageParses:
        """The first k parses alone (after :meth:`best`: the k best)."""
        return ImageParses(self.strokes[:k], self.prior[:k], self.image[:k])


def _logsumexp(x: np.ndarray, axis=None) -> np.ndarray:
    """log sum exp, -inf (not NaN) when every term is -inf."""
    from scipy.special import logsumexp

    with np.errstate(invalid="ignore"):
        return logsumexp(x, axis=axis)


def parse_candidates(model, image: np.ndarray, k: int, steps: int | None, seed: int) -> ImageParses:
    """Every parse the parser refines when asked for the k best of one (105, 105) bool
    image (:func:`~pyrochar.image.parse.n_refined` of them, at most ``MAX_K``), best first
    at full weight."""
    from pyrochar.image import MAX_K
    from pyrochar.image.parse import n_refined, parse

    n_refine = n_refined(k)
    parses = parse(model, image, k=min(n_refine, MAX_K), n_refine=n_refine, steps=steps, seed=seed)
    prior = np.array([p.scores["type"] + p.scores["token"] for p in parses], dtype=np.float64)  # (K,)
    image_terms = np.array([p.scores["image"] for p in parses], dtype=np.float64)  # (K,)
    return ImageParses([list(p.strokes) for p in parses], prior, image_terms)


def parse_image(model, image: np.ndarray, k: int, steps: int | None, seed: int,
                image_weight: float = IMAGE_WEIGHT) -> ImageParses:
    """The K parses of one (105, 105) bool image: of the parser's refined candidates
    (:func:`parse_candidates`), the k best in the tempered model, best first."""
    return parse_candidates(model, image, k, steps, seed).best(k, image_weight)


def parse_images(model, images: np.ndarray, k: int, steps: int | None, seed: int, bar,
                 image_weight: float = IMAGE_WEIGHT) -> list[ImageParses]:
    """:func:`parse_image` of each of (N, 105, 105) images; ``bar`` advances per image."""
    out = []
    for image in images:
        out.append(parse_image(model, image, k, steps, seed, image_weight))
        bar.update(1)
    return out


def _centroids(images: np.ndarray) -> np.ndarray:
    """(N, 105, 105) bool -> (N, 2) ink centroids in px (x = col, y = -row)."""
    out = []
    for image in images:
        rows, cols = np.nonzero(image)
        out.append([cols.mean(), -rows.mean()])
    return np.array(out)


def _spreads(images: np.ndarray) -> np.ndarray:
    """(N, 105, 105) bool -> (N, 2) standard deviations of the ink's x and y, in px (+1:
    a straight line has none across it)."""
    out = []
    for image in images:
        rows, cols = np.nonzero(image)
        out.append([cols.std() + 1.0, rows.std() + 1.0])
    return np.array(out)


def initial_affines(source_images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(S, M, 4) starting affines of sources' parses refitted to targets: per axis the
    ratio of the target's ink spread to the source's (kept in :data:`SCALE_RANGE`), and
    the shift from the source's ink centroid to the target's (px)."""
    scale = np.clip(_spreads(targets)[None] / _spreads(source_images)[:, None], *SCALE_RANGE)  # (S, M, 2)
    shift = _centroids(targets)[None, :, :] - _centroids(source_images)[:, None, :]  # (S, M, 2)
    return np.concatenate([scale, shift], axis=2)


@dataclass
class Refits:
    """Sources' parses refitted to targets."""

    log_lik: np.ndarray  # (S, M): log P(m | s), :func:`log_lik` of the terms below
    token: np.ndarray  # (S, M, K): the token log-prob of each refitted parse (-inf where s has fewer)
    image: np.ndarray  # (S, M, K): its image log-prob, unweighted (-inf where s has fewer)
    best_token_strokes: list[list[list[np.ndarray]]]  # [s][m]: the refitted token strokes of the
    # parse contributing most (normalized units), for pictures


def refit(model, sources: Sequence[ImageParses], source_images: np.ndarray, targets: np.ndarray,
          steps: int, bar, chunk: int = CHUNK, image_weight: float = IMAGE_WEIGHT) -> Refits:
    """Refit every parse of every source to every target (token-level values only).

    source_images (S, 105, 105), targets (M, 105, 105), both bool. Each candidate's
    affine starts at :func:`initial_affines` and its blur at :data:`INIT_BLUR`; the
    refit maximizes ``token + image_weight * image`` and the score weights the image
    term alike. ``bar`` advances per candidate refitted.
    """
    import torch

    from pyrochar.image.refine import refine

    jobs = [(s, m, k) for s in range(len(sources)) for m in range(len(targets))
            for k in range(len(sources[s].strokes))]
    start = initial_affines(source_images, targets)  # (S, M, 4)
    token = np.empty(len(jobs))  # (J,) token log-prob of each refit candidate
    image = np.empty(len(jobs))  # (J,) its image log-prob
    token_strokes: list[list[np.ndarray]] = []  # (J,) refitted token strokes
    images = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    for lo in range(0, len(jobs), chunk):
        part = jobs[lo:lo + chunk]
        affine = np.array([start[s, m] for s, m, _ in part])  # (B, 4)
        refined = refine(model, images, [sources[s].strokes[k] for s, _, k in part],
                         image_index=[m for _, m, _ in part], steps=steps, fit_type=False,
                         init_affine=affine, init_blur=INIT_BLUR, image_weight=image_weight)
        token[lo:lo + len(part)] = refined.scores.token.double().cpu().numpy()
        image[lo:lo + len(part)] = refined.scores.image.double().cpu().numpy()
        token_strokes.extend(refined.token_strokes)
        bar.update(len(part))
    n_k = max(len(src.strokes) for src in sources)
    tokens_smk = np.full((len(sources), len(targets), n_k), -np.inf)  # (S, M, K), -inf where s has fewer
    images_smk = tokens_smk.copy()
    for j, (s, m, k) in enumerate(jobs):
        tokens_smk[s, m, k], images_smk[s, m, k] = token[j], image[j]
    terms = _terms(log_weights(sources, image_weight), tokens_smk, images_smk, image_weight)
    where = {job: j for j, job in enumerate(jobs)}
    best_k = np.argmax(terms, axis=2)  # (S, M)
    best = [[token_strokes[where[(s, m, int(best_k[s, m]))]] for m in range(len(targets))]
            for s in range(len(sources))]
    return Refits(_logsumexp(terms, axis=2), tokens_smk, images_smk, best)


def log_weights(sources: Sequence[ImageParses], image_weight: float) -> np.ndarray:
    """(S, K) each source's parse log weights, -inf where it has fewer than K parses."""
    out = np.full((len(sources), max(len(src.strokes) for src in sources)), -np.inf)
    for s, src in enumerate(sources):
        out[s, : len(src.strokes)] = src.log_weights(image_weight)
    return out


def _terms(weights: np.ndarray, token: np.ndarray, image: np.ndarray, image_weight: float,
           token_term: bool = True) -> np.ndarray:
    """(S, M, K) ``log w_sk + token + w * image``, -inf (not NaN) where s has fewer parses."""
    terms = weights[:, None, :] + image_weight * image + (token if token_term else 0.0)
    return np.where(np.isfinite(terms), terms, -np.inf)


def log_lik(weights: np.ndarray, token: np.ndarray, image: np.ndarray, image_weight: float,
            token_term: bool = True) -> np.ndarray:
    """(S, M) log P(I_m | I_s) from each source's (S, K) parse log weights and the (S, M, K)
    token and image log-probs of its parses refitted to each target;
    ``token_term=False`` leaves the token log-prob out (what it adds to the score)."""
    return _logsumexp(_terms(weights, token, image, image_weight, token_term), axis=2)


def two_way(forward: np.ndarray, backward: np.ndarray, log_marginals: np.ndarray) -> np.ndarray:
    """(T, C) two-way scores from ``forward`` (T, C) = log P(I_t | I_c), ``backward``
    (T, C) = log P(I_c | I_t) and ``log_marginals`` (C,) = log P(I_c)."""
    return forward + backward - log_marginals[None, :]
