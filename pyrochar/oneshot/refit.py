"""The model-based one-shot score: parse, refit, compare (Lake et al. 2015's scheme).

For an image c (a training image): its K best parses (:func:`pyrochar.parse`),
with log weights ``log w_ck`` (their totals normalized over the K) and
``log P(I_c) ~ logsumexp_k total_ck``. For another image t (a test image), each
parse k of c is refitted to t: its type (the strokes) is kept and the token-level
values (shape and location noise, affine, blur, eps) are refitted by MAP
(:func:`pyrochar.image.refine.refine` with ``fit_type=False``). Then::

    log P(I_t | I_c) ~ logsumexp_k ( log w_ck + token_tck + image_tck )

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

__all__ = ["ImageParses", "Refits", "parse_images", "refit", "two_way"]

#: Candidates per refine call (memory: a few MB each on the CPU).
CHUNK = 256


@dataclass
class ImageParses:
    """The K parses of one image."""

    strokes: list[list[np.ndarray]]  # (K,) type strokes, each (n_i, 2) normalized units
    log_weights: np.ndarray  # (K,) log of the normalized weights
    log_marginal: float  # logsumexp of the K totals: the estimate of log P(image)


def _logsumexp(x: np.ndarray, axis=None) -> np.ndarray:
    """log sum exp, -inf (not NaN) when every term is -inf."""
    from scipy.special import logsumexp

    with np.errstate(invalid="ignore"):
        return logsumexp(x, axis=axis)


def parse_image(model, image: np.ndarray, k: int, steps: int | None, seed: int) -> ImageParses:
    """The K best parses of one (105, 105) bool image and their weights."""
    from pyrochar.image.parse import parse

    parses = parse(model, image, k=k, steps=steps, seed=seed)
    totals = np.array([p.scores["total"] for p in parses], dtype=np.float64)  # (K,)
    marginal = float(_logsumexp(totals))
    return ImageParses([list(p.strokes) for p in parses], totals - marginal, marginal)


def parse_images(model, images: np.ndarray, k: int, steps: int | None, seed: int, bar) -> list[ImageParses]:
    """:func:`parse_image` of each of (N, 105, 105) images; ``bar`` advances per image."""
    out = []
    for image in images:
        out.append(parse_image(model, image, k, steps, seed))
        bar.update(1)
    return out


def _centroids(images: np.ndarray) -> np.ndarray:
    """(N, 105, 105) bool -> (N, 2) ink centroids in px (x = col, y = -row)."""
    out = []
    for image in images:
        rows, cols = np.nonzero(image)
        out.append([cols.mean(), -rows.mean()])
    return np.array(out)


@dataclass
class Refits:
    """Sources' parses refitted to targets."""

    log_lik: np.ndarray  # (S, M): logsumexp_k(log w_sk + token + image) of s's parses refitted to m
    best_token_strokes: list[list[list[np.ndarray]]]  # [s][m]: the refitted token strokes of the
    # parse contributing most (normalized units), for pictures


def refit(model, sources: Sequence[ImageParses], source_images: np.ndarray, targets: np.ndarray,
          steps: int, bar, chunk: int = CHUNK) -> Refits:
    """Refit every parse of every source to every target (token-level values only).

    source_images (S, 105, 105), targets (M, 105, 105), both bool. Each candidate's
    affine starts at scale 1 and the shift from the source's ink centroid to the
    target's. ``bar`` advances per candidate refitted.
    """
    import torch

    from pyrochar.image.refine import refine

    jobs = [(s, m, k) for s in range(len(sources)) for m in range(len(targets))
            for k in range(len(sources[s].strokes))]
    shift = _centroids(targets)[None, :, :] - _centroids(source_images)[:, None, :]  # (S, M, 2)
    fit = np.empty(len(jobs))  # (J,) token + image log-prob of each refit candidate
    tokens: list[list[np.ndarray]] = []
    images = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    for lo in range(0, len(jobs), chunk):
        part = jobs[lo:lo + chunk]
        affine = np.array([[1.0, 1.0, *shift[s, m]] for s, m, _ in part])  # (B, 4)
        refined = refine(model, images, [sources[s].strokes[k] for s, _, k in part],
                         image_index=[m for _, m, _ in part], steps=steps, fit_type=False,
                         init_affine=affine)
        fit[lo:lo + len(part)] = (refined.scores.token + refined.scores.image).double().cpu().numpy()
        tokens.extend(refined.token_strokes)
        bar.update(len(part))
    n_k = max(len(src.strokes) for src in sources)
    terms = np.full((len(sources), len(targets), n_k), -np.inf)  # (S, M, K), -inf where s has fewer
    for j, (s, m, k) in enumerate(jobs):
        terms[s, m, k] = sources[s].log_weights[k] + fit[j]
    where = {job: j for j, job in enumerate(jobs)}
    best_k = np.argmax(terms, axis=2)  # (S, M)
    best = [[tokens[where[(s, m, int(best_k[s, m]))]] for m in range(len(targets))]
            for s in range(len(sources))]
    return Refits(_logsumexp(terms, axis=2), best)


def two_way(forward: np.ndarray, backward: np.ndarray, log_marginals: np.ndarray) -> np.ndarray:
    """(T, C) two-way scores from ``forward`` (T, C) = log P(I_t | I_c), ``backward``
    (T, C) = log P(I_c | I_t) and ``log_marginals`` (C,) = log P(I_c)."""
    return forward + backward - log_marginals[None, :]
