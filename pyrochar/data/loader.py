"""Turning a prepared dataset into padded, length-grouped batches.

:class:`BatchSource` converts every drawing once to (start, offsets) per stroke
and, for models that read canvases, renders the canvas before every stroke and
after the last one once for the whole dataset (teacher forcing never re-renders).
Batches group drawings of similar length (strokes, then offsets) so padding
stays small; the batch order is shuffled with a seeded generator, so an epoch's
order depends only on (seed, epoch) and a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..models.batch import CharacterBatch
from .prepare import PreparedDataset

CANVAS_CHUNK = 512  # drawings rendered per call while filling the canvas cache


class BatchSource:
    def __init__(self, dataset: PreparedDataset, with_canvases: bool = False, device="cpu"):
        self.dataset = dataset
        self.device = torch.device(device)
        self.strokes = [dataset.starts_offsets(d) for d in range(len(dataset))]
        self.n_strokes = np.array([len(s) for s in self.strokes], dtype=np.int64)
        self.max_offsets = np.array(
            [max((len(o) for _, o in s), default=0) for s in self.strokes], dtype=np.int64
        )
        self._canvases: torch.Tensor | None = None  # (sum of (S_d + 1), 28, 28)
        self._canvas_start = np.concatenate([[0], np.cumsum(self.n_strokes + 1)])
        if with_canvases:
            self._render_all()

    def __len__(self) -> int:
        return len(self.strokes)

    def _render_all(self) -> None:
        from ..models.full_ns import stroke_canvases

        parts = []
        for lo in range(0, len(self), CANVAS_CHUNK):
            idx = np.arange(lo, min(lo + CANVAS_CHUNK, len(self)))
            batch = CharacterBatch.from_strokes([self.strokes[i] for i in idx]).to(self.device)
            with torch.no_grad():
                canv = stroke_canvases(batch)  # (b, S + 1, 28, 28)
            for k, d in enumerate(idx):
                parts.append(canv[k, : self.n_strokes[d] + 1])
        self._canvases = torch.cat(parts) if parts else None

    def batch(self, indices) -> CharacterBatch:
        """The drawings ``indices`` as one padded batch on the source's device."""
        indices = np.asarray(indices, dtype=np.int64)
        batch = CharacterBatch.from_strokes([self.strokes[i] for i in indices]).to(self.device)
        if self._canvases is not None:
            s_max = int(self.n_strokes[indices].max())
            size = self._canvases.shape[-1]
            canv = self._canvases.new_zeros(len(indices), s_max + 1, size, size)
            for k, d in enumerate(indices):
                lo, hi = self._canvas_start[d], self._canvas_start[d + 1]
                canv[k, : hi - lo] = self._canvases[lo:hi]
                canv[k, hi - lo :] = self._canvases[hi - 1]  # a finished canvas stays as it is
            batch.canvases = canv
        return batch

    def index_batches(
        self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0
    ) -> list[np.ndarray]:
        """Drawing indices per batch, grouped by length; shuffled by (seed, epoch)."""
        n = len(self)
        rng = np.random.Generator(np.random.PCG64([seed, epoch]))
        tie = rng.random(n) if shuffle else np.arange(n)
        order = np.lexsort((tie, self.max_offsets, self.n_strokes))
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batches(self, batch_size: int, **kw) -> Iterator[CharacterBatch]:
        for idx in self.index_batches(batch_size, **kw):
            yield self.batch(idx)
