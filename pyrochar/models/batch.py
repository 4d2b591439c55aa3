"""Padded batches of characters, and the observed values of the model's sites.

Every model of the project scores the same variables of a drawing
(:mod:`pyrochar.models.sites`): per stroke i its start location, its offsets, a
"stroke ends" decision after each offset and a "character ends" decision after the
stroke. Every stroke has at least one offset (a dot is two coincident control points).
:class:`CharacterBatch` holds them for B drawings padded to S strokes and T
offsets. Padding holds finite values (zeros, or 1 for end decisions) and is
always masked: it never changes a log-likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from ..splines import stroke_to_start_offsets
from .sites import char_end_site, loc_site, offset_site, stroke_end_site


@dataclass
class CharacterBatch:
    """B drawings padded to S strokes of at most T offsets (normalized units)."""

    starts: torch.Tensor  # (B, S, 2)
    offsets: torch.Tensor  # (B, S, T, 2)
    n_offsets: torch.Tensor  # (B, S) long; 0 on padded strokes
    n_strokes: torch.Tensor  # (B,) long
    canvases: torch.Tensor | None = None  # (B, S + 1, 28, 28): canvas before stroke i is [:, i]

    @property
    def batch_size(self) -> int:
        return self.starts.shape[0]

    @property
    def stroke_mask(self) -> torch.Tensor:
        """(B, S) True on real strokes."""
        s = torch.arange(self.starts.shape[1], device=self.starts.device)
        return s < self.n_strokes.unsqueeze(-1)

    @property
    def step_mask(self) -> torch.Tensor:
        """(B, S, T) True on real offsets."""
        t = torch.arange(self.offsets.shape[2], device=self.offsets.device)
        return t < self.n_offsets.unsqueeze(-1)

    @property
    def stroke_ends(self) -> torch.Tensor:
        """(B, S, T) observed "stroke ends" decisions: 1 at each stroke's last offset."""
        t = torch.arange(self.offsets.shape[2], device=self.offsets.device)
        return (t >= (self.n_offsets.unsqueeze(-1) - 1)).to(self.starts.dtype)

    @property
    def char_ends(self) -> torch.Tensor:
        """(B, S) observed "character ends" decisions: 1 from the last stroke on."""
        s = torch.arange(self.starts.shape[1], device=self.starts.device)
        return (s >= (self.n_strokes.unsqueeze(-1) - 1)).to(self.starts.dtype)

    def to(self, device) -> CharacterBatch:
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )

    def __getitem__(self, index) -> CharacterBatch:
        """A sub-batch (index: slice, list or tensor of drawing indices)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = None if v is None else v[index]
        return CharacterBatch(**out).trimmed()

    def trimmed(self) -> CharacterBatch:
        """Drop padding columns that no drawing of the batch uses."""
        s = int(self.n_strokes.max()) if self.batch_size else 0
        t = int(self.n_offsets.max()) if self.batch_size else 0
        return CharacterBatch(
            self.starts[:, :s],
            self.offsets[:, :s, :t],
            self.n_offsets[:, :s],
            self.n_strokes,
            None if self.canvases is None else self.canvases[:, : s + 1],
        )

    # -------------------------------------------------------------- building
    @classmethod
    def from_strokes(
        cls,
        drawings: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
        dtype=torch.float32,
    ) -> CharacterBatch:
        """From per drawing a list of (start (2,), offsets (n, 2)) pairs."""
        b = len(drawings)
        s_max = max((len(d) for d in drawings), default=0)
        t_max = max((len(o) for d in drawings for _, o in d), default=0)
        starts = np.zeros((b, s_max, 2))
        offsets = np.zeros((b, s_max, t_max, 2))
        n_offsets = np.zeros((b, s_max), dtype=np.int64)
        for k, drawing in enumerate(drawings):
            for i, (start, offs) in enumerate(drawing):
                if len(offs) == 0:
                    raise ValueError(
                        f"stroke {i + 1} of drawing {k + 1} has no offset (a single control "
                        "point); the models draw every stroke with at least one offset: "
                        "write a dot as two coincident control points"
                    )
                starts[k, i] = start
                offsets[k, i, : len(offs)] = offs
                n_offsets[k, i] = len(offs)
        return cls(
            torch.as_tensor(starts, dtype=dtype),
            torch.as_tensor(offsets, dtype=dtype),
            torch.as_tensor(n_offsets),
            torch.as_tensor([len(d) for d in drawings], dtype=torch.long),
        )

    @classmethod
    def from_control_points(
        cls, drawings: Sequence[Sequence[np.ndarray]], dtype=torch.float32
    ) -> CharacterBatch:
        """From per drawing a list of control-point arrays (n_i, 2), normalized units."""
        from ..checks import check_control_points

        drawings = check_control_points(drawings)
        return cls.from_strokes(
            [[stroke_to_start_offsets(cp) for cp in d] for d in drawings], dtype=dtype
        )

    @classmethod
    def from_samples(cls, starts, strokes, canvases=None) -> CharacterBatch:
        """What a per-step ``model`` drew, stroke by stroke -> a padded batch.

        starts: list over strokes of (B, 2); strokes: list of (offsets (B, T_i, 2),
        n_offsets (B,)), where a stroke with no offset is one the character did not
        draw (it had ended); canvases: optional list of (B, 28, 28), the blank canvas
        then one per stroke. Values drawn after a character or stroke ended (masked
        sites) are zeroed.
        """
        t_max = max(o.shape[1] for o, _ in strokes)
        offsets = torch.stack(
            [torch.nn.functional.pad(o, (0, 0, 0, t_max - o.shape[1])) for o, _ in strokes], 1
        )  # (B, S, T, 2)
        n_offsets = torch.stack([n for _, n in strokes], 1)  # (B, S)
        n_strokes = (n_offsets > 0).sum(1)  # (B,)
        device = offsets.device
        live = torch.arange(len(starts), device=device) < n_strokes.unsqueeze(-1)  # (B, S)
        real = torch.arange(t_max, device=device) < n_offsets.unsqueeze(-1)  # (B, S, T)
        return cls(
            torch.stack(starts, 1) * live.unsqueeze(-1),
            offsets * real.unsqueeze(-1),
            n_offsets,
            n_strokes,
            None if canvases is None else torch.stack(canvases, 1),
        )

    # ----------------------------------------------------------- conditioning
    def condition_dict(self) -> dict[str, torch.Tensor]:
        """Observed values for every per-step site of the batch (padded, finite)."""
        data: dict[str, torch.Tensor] = {}
        ends = self.stroke_ends
        char_ends = self.char_ends
        for i in range(self.starts.shape[1]):
            data[loc_site(i)] = self.starts[:, i]
            t_i = int(self.n_offsets[:, i].max())
            for t in range(t_i):
                data[offset_site(i, t)] = self.offsets[:, i, t]
                data[stroke_end_site(i, t)] = ends[:, i, t]
            data[char_end_site(i)] = char_ends[:, i]
        return data

    def to_strokes(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Back to per drawing a list of (start, offsets) numpy pairs."""
        out = []
        for k in range(self.batch_size):
            strokes = []
            for i in range(int(self.n_strokes[k])):
                n = int(self.n_offsets[k, i])
                strokes.append(
                    (self.starts[k, i].detach().cpu().numpy().astype(np.float64),
                     self.offsets[k, i, :n].detach().cpu().numpy().astype(np.float64))
                )  # fmt: skip
            out.append(strokes)
        return out


@dataclass
class StrokeBatch:
    """The real strokes of a CharacterBatch, flattened: N strokes (teacher forcing)."""

    drawing: torch.Tensor  # (N,) index of the stroke's drawing in the batch
    index: torch.Tensor  # (N,) the stroke's position i within its drawing
    starts: torch.Tensor  # (N, 2)
    offsets: torch.Tensor  # (N, T, 2)
    n_offsets: torch.Tensor  # (N,)
    step_mask: torch.Tensor  # (N, T)
    stroke_ends: torch.Tensor  # (N, T)
    char_ends: torch.Tensor  # (N,)

    @classmethod
    def from_characters(cls, batch: CharacterBatch) -> StrokeBatch:
        mask = batch.stroke_mask  # (B, S)
        drawing, index = mask.nonzero(as_tuple=True)
        return cls(
            drawing,
            index,
            batch.starts[mask],
            batch.offsets[mask],
            batch.n_offsets[mask],
            batch.step_mask[mask],
            batch.stroke_ends[mask],
            batch.char_ends[mask],
        )
