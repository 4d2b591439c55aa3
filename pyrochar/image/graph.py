"""The skeleton of an ink image as a graph: nodes at end points and junctions,
edges along the pixel paths between them.

Steps (:func:`skeleton_graph`):

1. The ink (bool, True = ink) is thinned with scikit-image's ``skeletonize``.
2. Skeleton pixels are linked to their 8 neighbours, except that a diagonal link is
   dropped when both pixels also touch a common 4-neighbour in the skeleton (the
   staircase corners of a thin line would otherwise look like junctions).
3. A pixel with one link is an end point, with three or more a junction pixel;
   junction pixels that touch are one node (at their mean position). A pixel
   without links is a dot (a node without edges).
4. Edges are traced from every node along pixels of two links to the next node.
   A closed loop without any node (an O) gets one node, its top pixel, and one
   edge from that node back to it.
5. Clean-up, repeated until nothing changes: a spur (an edge from a junction to an
   end point) shorter than ``SPUR_LENGTH`` px is removed; two junctions joined by an
   edge shorter than ``MERGE_LENGTH`` px become one node (a cross thinned into two
   nearby forks); a node left with exactly two edge ends is dissolved and its two
   edges joined into one.
6. End points are moved outwards along their edge to ``END_INSET`` px before the
   ink ends (at most ``MAX_EXTENSION`` px): thinning stops about half a line width
   short of where the pen stopped.

Positions are (row, col) in image pixels (float); an edge's path runs from its
first node's position to its second's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import PyrocharError

__all__ = ["SPUR_LENGTH", "MERGE_LENGTH", "Edge", "SkeletonGraph", "skeletonize", "skeleton_graph"]

#: px: a branch from a junction to an end point shorter than this is a thinning
#: artefact (ink blobs at corners and stroke ends), not a stroke, and is removed.
SPUR_LENGTH = 6.0
#: px: junctions closer than this along the skeleton are one junction.
MERGE_LENGTH = 5.0
#: px: end points are moved this far short of where the ink ends along their edge
#: (the renderer's ink reaches about this far beyond a stroke's end).
END_INSET = 1.5
#: px: an end point moves at most this far.
MAX_EXTENSION = 8.0
#: pixels along an edge that give its direction at an end point.
TANGENT_PIXELS = 6

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@dataclass
class Edge:
    """A pixel path between two nodes (``u == v`` for a closed loop)."""

    u: int
    v: int
    path: np.ndarray  # (L, 2) float (row, col), path[0] at node u, path[-1] at node v

    @property
    def length(self) -> float:
        """Length of the path in px."""
        return float(np.sqrt((np.diff(self.path, axis=0) ** 2).sum(axis=1)).sum())


@dataclass
class SkeletonGraph:
    """Nodes (end points, junctions, loop starts, dots) and the edges between them."""

    skeleton: np.ndarray  # (H, W) bool, the thinned ink
    nodes: np.ndarray  # (V, 2) float (row, col)
    edges: list[Edge] = field(default_factory=list)

    def incident(self, node: int) -> list[tuple[int, bool]]:
        """(edge index, forward) for each edge end at ``node``; a loop appears twice
        (once each way). ``forward`` means the edge is walked from u to v."""
        out = []
        for k, e in enumerate(self.edges):
            if e.u == node:
                out.append((k, True))
            if e.v == node:
                out.append((k, False))
        return out

    def degree(self, node: int) -> int:
        """Number of edge ends at ``node`` (a loop counts twice)."""
        return len(self.incident(node))

    def components(self) -> list[list[int]]:
        """Node indices of each connected part (dots are parts of their own), sorted."""
        parent = list(range(len(self.nodes)))

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for e in self.edges:
            parent[find(e.u)] = find(e.v)
        groups: dict[int, list[int]] = {}
        for n in range(len(self.nodes)):
            groups.setdefault(find(n), []).append(n)
        return sorted(groups.values())


def skeletonize(image: np.ndarray) -> np.ndarray:
    """The thinned ink (bool, same shape) with scikit-image (the ``images`` extra)."""
    try:
        from skimage.morphology import skeletonize as sk_skeletonize
    except ImportError:
        raise PyrocharError(
            'parsing images needs scikit-image: pip install "pyrochar[images]"'
        ) from None
    return sk_skeletonize(np.asarray(image, dtype=bool))


def _links(skel: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Each skeleton pixel -> its linked neighbours (8-neighbours without the
    diagonals that a common 4-neighbour already joins)."""
    h, w = skel.shape
    on = {(int(r), int(c)) for r, c in zip(*np.nonzero(skel), strict=True)}
    links = {}
    for r, c in on:
        out = []
        for dr, dc in _NEIGHBOURS:
            q = (r + dr, c + dc)
            if q not in on:
                continue
            if dr and dc and ((r + dr, c) in on or (r, c + dc) in on):
                continue  # the diagonal step is already made through a 4-neighbour
            out.append(q)
        links[(r, c)] = out
    return links


def _node_pixels(links) -> dict[tuple[int, int], int]:
    """Pixel -> node index for end points, dots and junction clusters (merged)."""
    node_of: dict[tuple[int, int], int] = {}
    n_nodes = 0
    junction = {p for p, q in links.items() if len(q) >= 3}
    for p in sorted(links):
        if p in node_of:
            continue
        if len(links[p]) <= 1:
            node_of[p] = n_nodes
            n_nodes += 1
        elif p in junction:  # flood the cluster of touching junction pixels
            stack = [p]
            node_of[p] = n_nodes
            while stack:
                a = stack.pop()
                for b in links[a]:
                    if b in junction and b not in node_of:
                        node_of[b] = n_nodes
                        stack.append(b)
            n_nodes += 1
    return node_of


def _trace(links, node_of) -> tuple[np.ndarray, list[Edge]]:
    """Node positions (V, 2) and the edges traced between them, loops included."""
    n_nodes = max(node_of.values(), default=-1) + 1
    pos = np.zeros((n_nodes, 2))
    count = np.zeros(n_nodes)
    for p, n in node_of.items():
        pos[n] += p
        count[n] += 1
    pos = [pos[n] / count[n] for n in range(n_nodes)]
    edges: list[Edge] = []
    used: set[tuple[tuple[int, int], tuple[int, int]]] = set()  # directed first steps
    visited: set[tuple[int, int]] = set()

    def walk(start, nxt) -> list[tuple[int, int]]:
        path = [start, nxt]
        prev, cur = start, nxt
        while cur not in node_of and cur != start:
            visited.add(cur)
            step = [q for q in links[cur] if q != prev]
            if not step:  # cannot happen for a pixel of two links; guard anyway
                break
            prev, cur = cur, step[0]
            path.append(cur)
        return path

    for p in sorted(node_of):
        for q in links[p]:
            if (p, q) in used or node_of.get(q, -1) == node_of[p]:
                continue
            path = walk(p, q)
            used.add((p, q))
            used.add((path[-1], path[-2]))
            u, v = node_of[p], node_of[path[-1]]
            pts = np.array(path, dtype=float)
            pts[0], pts[-1] = pos[u], pos[v]
            edges.append(Edge(u, v, pts))
    for p in sorted(links):  # loops without any node: start at the top pixel
        if p in node_of or p in visited:
            continue
        node_of[p] = len(pos)
        pos.append(np.array(p, dtype=float))
        path = walk(p, links[p][0])
        edges.append(Edge(node_of[p], node_of[p], np.array(path, dtype=float)))
    return np.array(pos, dtype=float).reshape(-1, 2), edges


def _degrees(n_nodes: int, edges: list[Edge]) -> np.ndarray:
    deg = np.zeros(n_nodes, dtype=int)
    for e in edges:
        deg[e.u] += 1
        deg[e.v] += 1
    return deg


def _prune_spurs(edges: list[Edge], deg: np.ndarray) -> bool:
    """Remove one short spur (junction -> end point); whether one was removed."""
    for k, e in enumerate(edges):
        if e.u == e.v or e.length >= SPUR_LENGTH:
            continue
        if (deg[e.u] == 1 and deg[e.v] >= 3) or (deg[e.v] == 1 and deg[e.u] >= 3):
            del edges[k]
            return True
    return False


def _merge_junctions(nodes: np.ndarray, edges: list[Edge], deg: np.ndarray) -> bool:
    """Contract one short junction-junction edge into a single node; whether done."""
    for k, e in enumerate(edges):
        if e.u == e.v or deg[e.u] < 3 or deg[e.v] < 3 or e.length >= MERGE_LENGTH:
            continue
        keep, gone = e.u, e.v
        nodes[keep] = (nodes[keep] + nodes[gone]) / 2
        del edges[k]
        for f in edges:
            if f.u == gone:
                f.u = keep
            if f.v == gone:
                f.v = keep
            if f.u == keep:
                f.path[0] = nodes[keep]
            if f.v == keep:
                f.path[-1] = nodes[keep]
        return True
    return False


def _join_through(edges: list[Edge], deg: np.ndarray) -> bool:
    """Dissolve one node with exactly two edge ends of two different edges (joining
    them); whether done."""
    for n in np.flatnonzero(deg == 2):
        ends = [(k, e.v == n) for k, e in enumerate(edges) if e.u == n or e.v == n]
        if len(ends) != 2 or ends[0][0] == ends[1][0]:
            continue  # a loop through its own node stays as it is
        (a, a_ends_here), (b, b_ends_here) = ends
        pa = edges[a].path if a_ends_here else edges[a].path[::-1]  # ... -> n
        pb = edges[b].path[::-1] if b_ends_here else edges[b].path  # n -> ...
        start = edges[a].u if a_ends_here else edges[a].v
        end = edges[b].u if b_ends_here else edges[b].v
        joined = Edge(start, end, np.concatenate([pa, pb[1:]]))
        for k in sorted((a, b), reverse=True):
            del edges[k]
        edges.append(joined)
        return True
    return False


def _clean(nodes: np.ndarray, edges: list[Edge]) -> tuple[np.ndarray, list[Edge]]:
    """Prune spurs, merge near junctions, join through nodes of degree 2; then drop
    nodes left without edges (unless they were dots from the start) and renumber."""
    dots = set(np.flatnonzero(_degrees(len(nodes), edges) == 0).tolist())
    changed = True
    while changed:
        deg = _degrees(len(nodes), edges)
        changed = (_prune_spurs(edges, deg) or _merge_junctions(nodes, edges, deg)
                   or _join_through(edges, deg))  # fmt: skip
    deg = _degrees(len(nodes), edges)
    keep = [n for n in range(len(nodes)) if deg[n] > 0 or n in dots]
    new = {n: i for i, n in enumerate(keep)}
    for e in edges:
        e.u, e.v = new[e.u], new[e.v]
    return nodes[keep].reshape(-1, 2), edges


def _extend_ends(image: np.ndarray, nodes: np.ndarray, edges: list[Edge]) -> None:
    """Move each end point (a node of one edge end) outwards along its edge's
    direction to ``END_INSET`` px before the ink ends (thinning stops about half a
    line width short of the pen's end), in place."""
    deg = _degrees(len(nodes), edges)
    h, w = image.shape
    for e in edges:
        for at_end in (False, True):
            n = e.v if at_end else e.u
            if deg[n] != 1 or e.u == e.v:
                continue
            path = e.path if at_end else e.path[::-1]  # towards the end point
            k = min(len(path) - 1, TANGENT_PIXELS)
            d = path[-1] - path[-1 - k]
            if k == 0 or not np.linalg.norm(d):
                continue
            d = d / np.linalg.norm(d)
            reach = 0.0
            while reach < MAX_EXTENSION:
                r, c = np.rint(path[-1] + (reach + 0.5) * d).astype(int)
                if not (0 <= r < h and 0 <= c < w and image[r, c]):
                    break
                reach += 0.5
            reach = max(0.0, reach - END_INSET)
            if reach > 0:
                tip = path[-1] + reach * d
                grown = np.concatenate([path, tip[None]])
                e.path = grown if at_end else grown[::-1]
                nodes[n] = tip


def skeleton_graph(image: np.ndarray) -> SkeletonGraph:
    """Thin ``image`` (bool (H, W), True = ink) and build its graph (module docstring)."""
    image = np.asarray(image, dtype=bool)
    skel = skeletonize(image)
    links = _links(skel)
    node_of = _node_pixels(links)
    nodes, edges = _trace(links, node_of)
    nodes, edges = _clean(nodes, edges)
    _extend_ends(image, nodes, edges)
    return SkeletonGraph(skel, nodes, edges)
