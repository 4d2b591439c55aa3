"""The modified Hausdorff distance (MHD) baseline of the official one-shot demo.

An image's ink pixels are points (row, col), each set centred on its own mean;
between two point sets A and B (Dubuisson & Jain 1994)::

    MHD(A, B) = max( mean_{a in A} min_{b in B} |a - b|,  mean_{b in B} min_{a in A} |a - b| )

A test item is given the training image at the smallest distance (the first of the
sorted training images on a tie, like the demo's argmin).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ink_points", "modified_hausdorff", "mhd_row"]


def ink_points(image: np.ndarray) -> np.ndarray:
    """The ink pixels of a bool image (H, W) as (n, 2) float64 (row, col) points,
    centred on their mean. An image without ink is refused (its MHD is undefined)."""
    rows, cols = np.nonzero(np.asarray(image, dtype=bool))
    if rows.size == 0:
        raise ValueError("an image without ink has no modified Hausdorff distance")
    points = np.stack([rows, cols], axis=1).astype(np.float64)  # (n, 2)
    return points - points.mean(axis=0)


def modified_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """MHD between point sets ``a`` (n, 2) and ``b`` (m, 2), both non-empty."""
    from scipy.spatial.distance import cdist

    d = cdist(a, b)  # (n, m) Euclidean distances
    return float(max(d.min(axis=1).mean(), d.min(axis=0).mean()))


def mhd_row(test: np.ndarray, training: Sequence[np.ndarray]) -> np.ndarray:
    """MHD from one test point set to each training point set: (C,) float64."""
    return np.array([modified_hausdorff(test, t) for t in training], dtype=np.float64)
