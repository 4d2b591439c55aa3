"""Bottom-up proposals: candidate parses of an ink image, from its skeleton graph.

:func:`propose` turns an image into many candidate parses (ordered, directed
strokes as minimal splines) scored by a type model, best first:

1. **Stroke sets** by random walks over the skeleton graph
   (:func:`pyrochar.image.graph.skeleton_graph`), after BPL's scheme: each walk
   covers every edge exactly once. A stroke starts at a node with unwalked edges
   (end points and other nodes of odd unwalked degree preferred, as a pen would);
   at each node it reaches it either continues along an unwalked edge or stops,
   with weights ``exp(-angle / tau)`` for each edge (``angle`` the turn in radians
   between the incoming and outgoing directions, so the smoothest continuation is
   the likeliest) and ``exp(-stop_angle / tau)`` for stopping. Each walk draws
   ``tau`` and ``stop_angle`` afresh (:data:`TAU_RANGE`, :data:`STOP_ANGLE_RANGE`),
   so walks range from long smooth strokes to many short ones. A dot (a node
   without edges) is a stroke of its own. Identical stroke sets are kept once.
2. **Splines**: a stroke's pixel path becomes motor coordinates (``x = col``,
   ``y = -row``), is smoothed with a moving average over ``SMOOTH_WINDOW`` pixels
   (the thinned path is a staircase; end points stay), resampled every 1 px and
   fitted with the smallest spline below the residual threshold: the same fit as
   ``pyrochar data prepare`` (:mod:`pyrochar.splines`). Strokes are not dropped
   for being short (an image's short strokes are ink to explain).
3. **Search**, in two rounds, over the orders and directions of each stroke set's
   strokes. Round one gives every set a share of half of ``n_candidates`` (at most
   ``FIRST_ROUND`` each); round two gives the rest to the best third of the sets
   (ranked by their best score so far). A set's share holds all its ``n! 2^n``
   arrangements when they fit, else that many distinct ones drawn at random,
   beginning with the order and directions of reading (top left first, each
   stroke from its top-left end). Candidates beyond the type model's caps (too many
   strokes or control points) are dropped; the rest are scored with the model's
   teacher-forced log-probability (:func:`pyrochar.scoring.log_likelihood`) in
   batches of ``batch_size``. Equal drawings from different walks are kept once.

:func:`component_baseline` is the no-search baseline: one stroke per connected part
of the skeleton, walking each part in one go (retracing where it must).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..splines import fit_minimal_spline, resample_by_arclength, to_normalized
from .graph import SkeletonGraph, skeleton_graph

__all__ = [
    "N_CANDIDATES",
    "N_WALKS",
    "Candidate",
    "stroke_sets",
    "stroke_splines",
    "score_types",
    "propose",
    "component_baseline",
]

#: Candidates scored per image by default (the model scores over a thousand a second).
N_CANDIDATES = 1000
#: Arrangements per stroke set in the search's first round.
FIRST_ROUND = 32
#: Random walks per image by default (most give stroke sets already found).
N_WALKS = 150
#: Range of ``tau`` (radians) of a walk: how strongly it prefers smooth continuations.
TAU_RANGE = (0.15, 0.6)
#: Range of ``stop_angle`` (radians) of a walk: the turn that is as likely as stopping.
STOP_ANGLE_RANGE = (0.5, 2.2)
#: Pixels of the moving average that smooths a thinned path before its spline fit.
SMOOTH_WINDOW = 5
#: Pixels along an edge used to measure its direction at a node.
TANGENT_PIXELS = 6

Step = tuple[int, bool]  # (edge index, walked from u to v)
Stroke = tuple[Step, ...]


@dataclass
class Candidate:
    """One parse: strokes in drawing order, each (n, 2) control points in normalized
    units and drawn from its first to its last point; its type log-probability (nats)."""

    strokes: list[np.ndarray]
    type_log_prob: float
    stroke_set: int = 0  # index of the stroke set (partition of the skeleton) it orders


# ------------------------------------------------------------------------- walks


def _directions(graph: SkeletonGraph, step: Step) -> tuple[np.ndarray, np.ndarray]:
    """Unit (row, col) directions of a walked edge: leaving its first node, entering its last."""
    path = graph.edges[step[0]].path if step[1] else graph.edges[step[0]].path[::-1]
    k = min(len(path) - 1, TANGENT_PIXELS)
    out_dir, in_dir = path[k] - path[0], path[-1] - path[-1 - k]
    return out_dir / max(np.linalg.norm(out_dir), 1e-9), in_dir / max(np.linalg.norm(in_dir), 1e-9)


def _end_node(graph: SkeletonGraph, step: Step) -> int:
    e = graph.edges[step[0]]
    return e.v if step[1] else e.u


def _turn(heading: np.ndarray, direction: np.ndarray) -> float:
    """Angle in radians between two unit vectors (0 = straight on, pi = back)."""
    return float(np.arccos(np.clip(heading @ direction, -1.0, 1.0)))


def _walk(graph: SkeletonGraph, rng: np.random.Generator) -> list[Stroke]:
    """One random walk covering every edge once -> strokes (module docstring, step 1)."""
    tau = rng.uniform(*TAU_RANGE)
    stop_weight = math.exp(-rng.uniform(*STOP_ANGLE_RANGE) / tau)
    incident = [graph.incident(n) for n in range(len(graph.nodes))]
    unwalked = set(range(len(graph.edges)))
    strokes: list[Stroke] = []
    while unwalked:
        free = [[s for s in incident[n] if s[0] in unwalked] for n in range(len(graph.nodes))]
        starts = [n for n in range(len(graph.nodes)) if free[n]]
        weights = np.array([3.0 if len(free[n]) % 2 else 1.0 for n in starts])
        node = starts[rng.choice(len(starts), p=weights / weights.sum())]
        options = free[node]
        step = options[rng.integers(len(options))]
        stroke = []
        while True:
            stroke.append(step)
            unwalked.discard(step[0])
            heading = _directions(graph, step)[1]
            node = _end_node(graph, step)
            options = [s for s in incident[node] if s[0] in unwalked]
            if not options:
                break
            w = np.array([math.exp(-_turn(heading, _directions(graph, s)[0]) / tau) for s in options]
                         + [stop_weight])  # fmt: skip
            pick = rng.choice(len(w), p=w / w.sum())
            if pick == len(options):
                break
            step = options[pick]
        strokes.append(tuple(stroke))
    return strokes


def _canonical(stroke: Stroke) -> Stroke:
    """The same stroke whichever way it is walked (the smaller of the two spellings)."""
    back = tuple((e, not f) for e, f in reversed(stroke))
    return min(stroke, back)


def stroke_sets(graph: SkeletonGraph, n_walks: int = N_WALKS, seed: int | None = 0) -> list[list[Stroke]]:
    """Distinct stroke sets from ``n_walks`` random walks (first found first); each
    stroke is a tuple of (edge index, forward) steps in canonical direction. Dots
    (nodes without edges) are not included (see :func:`stroke_splines`)."""
    if not graph.edges:
        return [[]]
    rng = np.random.default_rng(seed)
    seen: dict[tuple, list[Stroke]] = {}
    for _ in range(n_walks):
        strokes = sorted(_canonical(s) for s in _walk(graph, rng))
        seen.setdefault(tuple(strokes), strokes)
    return list(seen.values())


# ----------------------------------------------------------------------- splines


def _smooth(points: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Moving average of (L, 2) points over ``window`` (odd) points; end points kept."""
    if len(points) < 3 or window < 3:
        return points
    half = window // 2
    padded = np.concatenate([np.repeat(points[:1], half, 0), points, np.repeat(points[-1:], half, 0)])
    kernel = np.ones(window) / window
    out = np.column_stack([np.convolve(padded[:, d], kernel, mode="valid") for d in range(2)])
    out[0], out[-1] = points[0], points[-1]
    return out


def _stroke_path(graph: SkeletonGraph, stroke: Sequence[Step]) -> np.ndarray:
    """(L, 2) (row, col) pixels along the walked edges of a stroke."""
    parts = []
    for k, (e, forward) in enumerate(stroke):
        path = graph.edges[e].path if forward else graph.edges[e].path[::-1]
        parts.append(path if k == 0 else path[1:])
    return np.concatenate(parts)


def path_to_spline(path_rc: np.ndarray) -> np.ndarray:
    """(L, 2) (row, col) pixels -> (n, 2) control points in normalized units (step 2
    of the module docstring); a single pixel gives a dot (two equal control points)."""
    motor = np.column_stack([path_rc[:, 1], -path_rc[:, 0]])  # x = col, y = -row
    if len(motor) == 1:
        return to_normalized(np.repeat(motor, 2, axis=0))
    cp = fit_minimal_spline(resample_by_arclength(_smooth(motor)))
    return to_normalized(np.repeat(cp, 2, axis=0) if len(cp) == 1 else cp)


def _dots(graph: SkeletonGraph) -> list[np.ndarray]:
    """A dot stroke for each node without edges."""
    deg = np.zeros(len(graph.nodes), dtype=int)
    for e in graph.edges:
        deg[e.u] += 1
        deg[e.v] += 1
    return [path_to_spline(graph.nodes[n][None]) for n in np.flatnonzero(deg == 0)]


def stroke_splines(graph: SkeletonGraph, strokes: Sequence[Stroke], cache: dict | None = None) -> list[np.ndarray]:
    """Control points (normalized) of each stroke of a set, then the graph's dots."""
    cache = {} if cache is None else cache
    out = []
    for s in strokes:
        if s not in cache:
            cache[s] = path_to_spline(_stroke_path(graph, s))
        out.append(cache[s])
    return out + _dots(graph)


# ------------------------------------------------------------------------ search


def _reading_arrangement(strokes: Sequence[np.ndarray]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """The order and directions a writer most often uses: each stroke starts at its
    end nearer the top left (smaller ``x - y``), strokes by that start, top left first."""
    flips = tuple(bool(s[-1, 0] - s[-1, 1] < s[0, 0] - s[0, 1]) for s in strokes)
    starts = [s[-1] if f else s[0] for s, f in zip(strokes, flips, strict=True)]
    order = tuple(sorted(range(len(strokes)), key=lambda i: float(starts[i][0] - starts[i][1])))
    return order, flips


def _arrangements(strokes: Sequence[np.ndarray], budget: int, rng: np.random.Generator,
                  exclude: frozenset | set = frozenset()) -> list[tuple[tuple[int, ...], tuple[bool, ...]]]:
    """Up to ``budget`` (order, reversed flags) of a stroke set not in ``exclude``:
    all n! 2^n of them when they fit, else the reading arrangement
    (:func:`_reading_arrangement`) and others drawn at random, all distinct."""
    n = len(strokes)
    total = math.factorial(n) * 2**n
    if total <= budget + len(exclude):
        every = [(p, f) for p in itertools.permutations(range(n))
                 for f in itertools.product((False, True), repeat=n)]  # fmt: skip
        return [a for a in every if a not in exclude][:budget]
    found: dict[tuple, None] = {}
    reading = _reading_arrangement(strokes)
    if reading not in exclude:
        found[reading] = None
    for _ in range(20 * budget):  # bounded; repeats are rare when total >> budget
        if len(found) >= budget:
            break
        a = (tuple(int(i) for i in rng.permutation(n)), tuple(bool(b) for b in rng.integers(0, 2, n)))
        if a not in exclude:
            found[a] = None
    return list(found)


def _budgets(sizes: Sequence[int], n_candidates: int, cap: int | None = None) -> list[int]:
    """Share ``n_candidates`` among stroke sets of ``sizes`` strokes (at most ``cap``
    each): small sets take all their arrangements, what they leave goes to the others."""
    budgets = [0] * len(sizes)
    left = n_candidates
    order = sorted(range(len(sizes)), key=lambda i: math.factorial(sizes[i]) * 2 ** sizes[i])
    for k, i in enumerate(order):
        share = max(1, left // (len(order) - k))
        budgets[i] = min(math.factorial(sizes[i]) * 2 ** sizes[i], share, cap or share)
        left -= budgets[i]
    return budgets


@torch.no_grad()
def score_types(model, drawings: Sequence[Sequence[np.ndarray]], batch_size: int = 500) -> np.ndarray:
    """Type log-probability (nats) of each drawing (control points per stroke,
    normalized units) under ``model`` (eval mode, teacher forced) -> (D,) float64.
    The drawings must be within the model's caps."""
    from ..models.base import evaluating
    from ..models.batch import CharacterBatch
    from ..scoring import log_likelihood

    out = np.zeros(len(drawings))
    with evaluating(model):
        for i in range(0, len(drawings), batch_size):
            batch = CharacterBatch.from_control_points(list(drawings[i : i + batch_size]))
            batch = model.prepare_batch(batch.to(model.device))
            out[i : i + batch_size] = log_likelihood(model, batch)[0].double().cpu().numpy()
    return out


def _within_caps(model, strokes: Sequence[np.ndarray]) -> bool:
    return model.caps_problem(len(strokes), max(len(s) - 1 for s in strokes)) is None


def _arranged(type_model, splines, budgets, rng, tried) -> tuple[list, list[int]]:
    """The drawings (control points per stroke) of new arrangements of each stroke
    set within the model's caps, and the set of each; ``tried`` {set: arrangements}
    is updated."""
    drawings, set_of = [], []
    for k, budget in budgets.items():
        strokes = splines[k]
        for order, flips in _arrangements(strokes, budget, rng, tried[k]):
            tried[k].add((order, flips))
            d = [strokes[i][::-1].copy() if f else strokes[i] for i, f in zip(order, flips, strict=True)]
            if _within_caps(type_model, d):
                drawings.append(d)
                set_of.append(k)
    return drawings, set_of


def propose(
    image: np.ndarray,
    type_model,
    n_candidates: int = N_CANDIDATES,
    n_walks: int = N_WALKS,
    seed: int | None = 0,
    batch_size: int = 500,
    graph: SkeletonGraph | None = None,
) -> list[Candidate]:
    """Candidate parses of ``image`` (bool (105, 105), True = ink), best type
    log-probability first (module docstring). At most ``n_candidates`` are scored;
    an image whose every arrangement is beyond the model's caps gives []."""
    graph = skeleton_graph(image) if graph is None else graph
    rng = np.random.default_rng(seed)
    cache: dict = {}
    splines = [stroke_splines(graph, s, cache) for s in stroke_sets(graph, n_walks, seed)]
    live = [k for k, s in enumerate(splines) if s]
    tried: dict[int, set] = {k: set() for k in live}
    sizes = [len(splines[k]) for k in live]
    first = _budgets(sizes, max(1, n_candidates // 2), cap=FIRST_ROUND)
    drawings, set_of = _arranged(type_model, splines, dict(zip(live, first, strict=True)), rng, tried)
    lp = score_types(type_model, drawings, batch_size) if drawings else np.zeros(0)
    left = n_candidates - sum(first)
    if left > 0 and len(lp):  # second round: the best third of the sets by their best score
        best_of = {}
        for k, v in zip(set_of, lp, strict=True):
            best_of[k] = max(best_of.get(k, -np.inf), v)
        top = sorted(best_of, key=lambda k: -best_of[k])[: max(1, math.ceil(len(best_of) / 3))]
        more = _budgets([len(splines[k]) for k in top], left)
        d2, s2 = _arranged(type_model, splines, dict(zip(top, more, strict=True)), rng, tried)
        if d2:
            drawings, set_of = drawings + d2, set_of + s2
            lp = np.concatenate([lp, score_types(type_model, d2, batch_size)])
    out, seen = [], set()
    for i in np.argsort(-lp, kind="stable"):  # different walks can give the same drawing
        key = tuple(np.round(s, 6).tobytes() for s in drawings[i])
        if key not in seen:
            seen.add(key)
            out.append(Candidate(drawings[i], float(lp[i]), set_of[i]))
    return out


# ---------------------------------------------------------------------- baseline


def _tour(graph: SkeletonGraph, start: int, walked: set[int]) -> list[Step]:
    """All edges reachable from ``start`` in one pen path: depth first, smoothest
    continuation first, walking back over an edge when a branch ends; the walk back
    after the last new edge is left out."""
    steps: list[Step] = []
    fresh_end = 0  # len(steps) after the last new edge

    def visit(node: int, heading: np.ndarray | None) -> None:
        nonlocal fresh_end
        while True:
            options = [s for s in graph.incident(node) if s[0] not in walked]
            if not options:
                return
            if heading is not None:
                options.sort(key=lambda s: _turn(heading, _directions(graph, s)[0]))
            step = options[0]
            walked.add(step[0])
            steps.append(step)
            fresh_end = len(steps)
            visit(_end_node(graph, step), _directions(graph, step)[1])
            steps.append((step[0], not step[1]))  # back to ``node``

    visit(start, None)
    return steps[:fresh_end]


def component_baseline(image: np.ndarray, graph: SkeletonGraph | None = None) -> list[np.ndarray]:
    """One parse without search: a stroke per connected part of the skeleton (left
    to right), each starting at the part's top-left end point (or top-left node) and
    walking all its edges (:func:`_tour`). Control points (n, 2), normalized units."""
    graph = skeleton_graph(image) if graph is None else graph
    parts = graph.components()
    parts.sort(key=lambda nodes: float(graph.nodes[nodes, 1].min()))
    walked: set[int] = set()
    out = []
    for nodes in parts:
        ends = [n for n in nodes if graph.degree(n) % 2 == 1] or nodes
        start = min(ends, key=lambda n: float(graph.nodes[n].sum()))
        steps = _tour(graph, start, walked)
        path = _stroke_path(graph, steps) if steps else graph.nodes[start][None]
        out.append(path_to_spline(path))
    return out
