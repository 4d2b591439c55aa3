"""The paper's Fig. 7: samples on a grid where neighbours look alike, beside their
nearest training drawings.

1. **Embedding**: the classifier features of the samples (its last hidden layer,
   :mod:`pyrochar.figures.novelty`), each scaled to unit length (the similarity is
   the cosine), projected onto their first two principal components (an SVD of
   the centred features; the sign of each component is fixed so that its largest
   loading is positive, which makes the layout deterministic).
2. **Assignment**: each axis of the 2-D embedding is rescaled to [0, 1] (min-max),
   and points are assigned to the cells of a ``rows x cols`` grid (centres at
   ``((c + 0.5) / cols, (r + 0.5) / rows)``) by an optimal assignment
   (``scipy.optimize.linear_sum_assignment``) minimizing the sum of squared
   distances between points and their cells. Each point gets exactly one cell.
3. **Figure**: the samples in their cells (left) and, in the same cells, the
   nearest training drawing of each (right).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..viz import character_grid
from .grids import hstack, titled


def embed_2d(features: torch.Tensor) -> np.ndarray:
    """(N, H) features -> (N, 2): PCA of the unit-length features (deterministic signs)."""
    x = F.normalize(torch.as_tensor(features, dtype=torch.float64), dim=-1, eps=1e-12)
    x = x - x.mean(0, keepdim=True)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:2]  # (<=2, H)
    flip = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * torch.where(flip == 0, torch.ones_like(flip), flip)
    coords = (x @ comps.T).numpy()
    if coords.shape[1] < 2:
        coords = np.concatenate([coords, np.zeros((len(coords), 2 - coords.shape[1]))], 1)
    return coords


def normalize_coordinates(coords: np.ndarray) -> np.ndarray:
    """Rescale each axis to [0, 1] (min-max); a constant axis goes to 0.5."""
    coords = np.asarray(coords, dtype=np.float64)
    lo, hi = coords.min(0), coords.max(0)
    span = hi - lo
    out = np.full_like(coords, 0.5)
    ok = span > 1e-12
    out[:, ok] = (coords[:, ok] - lo[ok]) / span[ok]
    return out


def grid_centres(n_rows: int, n_cols: int) -> np.ndarray:
    """(n_rows * n_cols, 2) cell centres in [0, 1]^2 as (x, y), cell ``r * n_cols + c``.

    Row 0 is at the top of the picture and at the largest y of the embedding.
    """
    r, c = np.divmod(np.arange(n_rows * n_cols), n_cols)
    return np.stack([(c + 0.5) / n_cols, 1.0 - (r + 0.5) / n_rows], 1)


def grid_assignment(coords: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """The grid cell of each point (an index ``r * n_cols + c``), distinct for every point.

    Minimizes the sum of squared distances between the min-max normalized
    coordinates and the cell centres. Needs ``len(coords) <= n_rows * n_cols``.
    """
    from scipy.optimize import linear_sum_assignment

    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) > n_rows * n_cols:
        raise ValueError(f"{len(coords)} points do not fit a {n_rows} x {n_cols} grid")
    if len(coords) == 0:
        return np.zeros(0, np.int64)
    pts = normalize_coordinates(coords)
    cost = ((pts[:, None, :] - grid_centres(n_rows, n_cols)[None]) ** 2).sum(-1)
    rows, cells = linear_sum_assignment(cost)
    out = np.empty(len(coords), np.int64)
    out[rows] = cells
    return out


def arrange(items: Sequence, cells: np.ndarray, n_cells: int) -> list:
    """Put ``items[p]`` into cell ``cells[p]``; empty cells hold [] (a blank character)."""
    grid: list = [[] for _ in range(n_cells)]
    for item, cell in zip(items, cells, strict=True):
        grid[int(cell)] = item
    return grid


def topology_figure(samples: Sequence, neighbours: Sequence, cells: np.ndarray, n_rows: int,
                    n_cols: int, cell: int = 64, temperature: float = 0.5,
                    title: str = "Full NS") -> Image.Image:
    """Fig. 7: the samples in their ``cells`` (left), their nearest training drawings (right).

    Size: two titled ``viz.character_grid`` of ``n_rows x n_cols`` cells, side by side.
    """
    n = n_rows * n_cols
    left = character_grid(arrange(samples, cells, n), n_cols=n_cols, cell=cell, colour_strokes=False)
    right = character_grid(arrange(neighbours, cells, n), n_cols=n_cols, cell=cell,
                           colour_strokes=False)
    return hstack([titled(left, f"{title} samples (T = {temperature:g})"),
                   titled(right, "nearest training drawings")])
