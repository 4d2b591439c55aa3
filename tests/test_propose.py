"""Skeleton graphs of hand-made images, random-walk stroke sets, proposals, baseline."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from pyrochar.image.graph import SPUR_LENGTH, skeleton_graph  # noqa: E402
from pyrochar.image.propose import (  # noqa: E402
    component_baseline,
    path_to_spline,
    propose,
    stroke_sets,
)
from pyrochar.splines import to_motor  # noqa: E402


def _disk_brush(im: np.ndarray, r: float, c: float, radius: float = 2.0) -> None:
    rr, cc = np.mgrid[: im.shape[0], : im.shape[1]]
    im |= (rr - r) ** 2 + (cc - c) ** 2 <= radius**2


def segments(*segs, radius: float = 2.0) -> np.ndarray:
    """A 105 x 105 ink image of thick straight segments (r0, c0, r1, c1)."""
    im = np.zeros((105, 105), dtype=bool)
    for r0, c0, r1, c1 in segs:
        n = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
        for t in np.linspace(0, 1, n):
            _disk_brush(im, r0 + t * (r1 - r0), c0 + t * (c1 - c0), radius)
    return im


def ring(r0=52, c0=52, radius=30) -> np.ndarray:
    im = np.zeros((105, 105), dtype=bool)
    for a in np.linspace(0, 2 * np.pi, 400, endpoint=False):
        _disk_brush(im, r0 + radius * np.sin(a), c0 + radius * np.cos(a))
    return im


def degrees(g) -> list[int]:
    return sorted(g.degree(n) for n in range(len(g.nodes)))


def test_line_is_one_edge_between_two_end_points():
    g = skeleton_graph(segments((20, 50, 80, 50)))
    assert len(g.nodes) == 2 and len(g.edges) == 1
    assert degrees(g) == [1, 1]
    assert g.edges[0].length == pytest.approx(60, abs=6)  # thinning shortens the ends a little


def test_l_corner_is_not_a_node():
    g = skeleton_graph(segments((20, 30, 80, 30), (80, 30, 80, 80)))
    assert degrees(g) == [1, 1] and len(g.edges) == 1
    assert g.edges[0].length == pytest.approx(110, abs=8)


def test_t_has_one_junction_of_three():
    g = skeleton_graph(segments((20, 20, 20, 80), (20, 50, 85, 50)))
    assert degrees(g) == [1, 1, 1, 3]
    junction = [n for n in range(len(g.nodes)) if g.degree(n) == 3][0]
    assert np.allclose(g.nodes[junction], (20, 50), atol=2.5)


@pytest.mark.parametrize("segs", [((20, 50, 80, 50), (50, 20, 50, 80)),  # plus
                                  ((20, 20, 80, 80), (20, 80, 80, 20))])  # X
def test_cross_has_one_junction_of_four(segs):
    g = skeleton_graph(segments(*segs))
    assert degrees(g) == [1, 1, 1, 1, 4]


def test_circle_is_one_loop_on_one_node():
    g = skeleton_graph(ring())
    assert len(g.nodes) == 1 and len(g.edges) == 1
    e = g.edges[0]
    assert e.u == e.v == 0
    assert e.length == pytest.approx(2 * np.pi * 30, rel=0.1)
    assert np.allclose(e.path[0], e.path[-1], atol=1.5)  # closed


def test_two_separate_parts_and_a_dot():
    im = segments((20, 20, 80, 20), (20, 70, 80, 70))
    im[90, 45] = True  # a dot
    g = skeleton_graph(im)
    parts = g.components()
    assert len(parts) == 3
    assert sorted(len(p) for p in parts) == [1, 2, 2]


def test_short_spur_is_pruned_long_branch_kept():
    base = (20, 50, 85, 50)
    spur = (50, 50, 50, 50 + SPUR_LENGTH - 3)  # sticks out < SPUR_LENGTH beyond the ink
    branch = (50, 50, 50, 80)
    assert degrees(skeleton_graph(segments(base, spur))) == [1, 1]
    assert degrees(skeleton_graph(segments(base, branch))) == [1, 1, 1, 3]


def test_edges_start_and_end_at_their_nodes():
    g = skeleton_graph(segments((20, 20, 20, 80), (20, 50, 85, 50), (60, 30, 60, 70)))
    for e in g.edges:
        assert np.allclose(e.path[0], g.nodes[e.u]) and np.allclose(e.path[-1], g.nodes[e.v])
        steps = np.sqrt((np.diff(e.path, axis=0) ** 2).sum(axis=1))
        assert steps.max() < 4  # a connected pixel path (node centres may sit off-pixel)


def test_walks_cover_every_edge_exactly_once():
    g = skeleton_graph(segments((20, 20, 20, 80), (20, 50, 85, 50), (60, 30, 60, 70)))
    sets = stroke_sets(g, n_walks=60, seed=3)
    assert len(sets) > 1  # the walks find several ways to cut the ink into strokes
    for strokes in sets:
        walked = sorted(e for s in strokes for e, _ in s)
        assert walked == list(range(len(g.edges)))
        for s in strokes:  # consecutive steps meet at a node
            for (e1, f1), (e2, f2) in zip(s[:-1], s[1:], strict=True):
                end = g.edges[e1].v if f1 else g.edges[e1].u
                start = g.edges[e2].u if f2 else g.edges[e2].v
                assert end == start
    assert stroke_sets(g, n_walks=60, seed=3) == sets  # repeatable


def test_path_to_spline_units_and_dot():
    path = np.column_stack([np.full(41, 30.0), np.arange(20.0, 61.0)])  # row 30, cols 20..60
    cp = to_motor(path_to_spline(path))
    assert len(cp) == 2  # a straight line is two control points
    assert np.allclose(cp[:, 1], -30, atol=0.5)  # y = -row
    assert cp[0, 0] < cp[-1, 0]  # drawn from col 20 to col 60: x = col
    dot = path_to_spline(np.array([[10.0, 20.0]]))
    assert dot.shape == (2, 2) and np.allclose(dot[0], dot[1])


@pytest.fixture(scope="module")
def tiny_model():
    import torch
    from conftest import TINY_FULL_NS

    from pyrochar.models import build_model

    torch.manual_seed(0)
    return build_model("full-ns", TINY_FULL_NS).eval()


def test_propose_scores_sorted_distinct_and_within_caps(tiny_model):
    im = segments((20, 20, 20, 80), (20, 50, 85, 50))
    cands = propose(im, tiny_model, n_candidates=100, seed=0)
    lps = [c.type_log_prob for c in cands]
    assert lps == sorted(lps, reverse=True)
    keys = {tuple(tuple(np.round(s, 6).ravel()) for s in c.strokes) for c in cands}
    assert len(keys) == len(cands)
    assert all(tiny_model.caps_problem(len(c.strokes), max(len(s) - 1 for s in c.strokes)) is None
               for c in cands)  # fmt: skip
    # the T's 3 edges in 1-3 strokes: every arrangement of the small sets fits in 100
    assert {len(c.strokes) for c in cands} >= {2, 3}


def test_propose_matches_scoring_of_the_same_drawing(tiny_model):
    from pyrochar.models.batch import CharacterBatch
    from pyrochar.scoring import log_likelihood

    cands = propose(segments((20, 50, 80, 50), (50, 20, 50, 80)), tiny_model, n_candidates=50, seed=1)
    batch = tiny_model.prepare_batch(CharacterBatch.from_control_points([cands[0].strokes]))
    total = log_likelihood(tiny_model, batch)[0]
    assert float(total[0].detach()) == pytest.approx(cands[0].type_log_prob, abs=1e-3)


def test_propose_drops_candidates_beyond_caps(tiny_model):
    import dataclasses

    im = segments((20, 20, 20, 80), (20, 50, 85, 50))  # a T: 2 or 3 strokes
    capped = dataclasses.replace(tiny_model.config, max_strokes=2)
    old = tiny_model.config
    tiny_model.config = capped
    try:
        cands = propose(im, tiny_model, n_candidates=200, seed=0)
    finally:
        tiny_model.config = old
    assert cands and {len(c.strokes) for c in cands} == {2}


def test_component_baseline_one_stroke_per_part():
    im = segments((20, 20, 80, 20), (20, 50, 20, 90), (20, 70, 80, 70))  # | and T
    strokes = component_baseline(im)
    assert len(strokes) == 2
    first = to_motor(strokes[0])
    assert first[:, 0].max() < 30  # the left part comes first
    again = component_baseline(im)  # no randomness
    assert all(np.array_equal(a, b) for a, b in zip(again, strokes, strict=True))


def test_component_baseline_walks_a_junction_in_one_stroke():
    im = segments((20, 20, 20, 80), (20, 50, 85, 50))  # T: one part, three branches
    (stroke,) = component_baseline(im)
    pts = to_motor(stroke)
    assert pts[:, 0].min() < 30 and pts[:, 0].max() > 70 and pts[:, 1].min() < -75  # reaches all 3 ends
