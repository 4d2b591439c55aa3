"""The location network: canvas -> mixture density of the next stroke's start."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import CanvasCNN, conv_pool_block, share_blank_canvases


class LocationNet(nn.Module):
    """4 x [conv, BN, tanh, max-pool, dropout] (28 -> 1) -> hidden layer -> 6K raw GMM outputs.

    The paper's model reads the canvas only. With ``use_prev_end`` (the successor
    model of the public code) it also reads the previous stroke's end point
    (zeros before the first stroke).
    """

    def __init__(
        self,
        n_components: int,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        hidden: int = 128,
        dropout: float = 0.3,
        use_prev_end: bool = False,
    ):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks.append(conv_pool_block(c_in, c, "tanh", dropout, "bn_act"))
            c_in = c
        self.cnn = CanvasCNN(*blocks, nn.Flatten())  # (N, 28, 28) -> (N, channels[-1])
        self.use_prev_end = use_prev_end
        n_in = channels[-1] + (2 if use_prev_end else 0)
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 6 * n_components))

    def forward(self, canvas: torch.Tensor, prev_end: torch.Tensor | None = None) -> torch.Tensor:
        """canvas (N, 28, 28), prev_end (N, 2) -> raw GMM parameters (N, 6K)."""
        if self.training:  # batch norm reads the batch's statistics, dropout draws per row
            h = self.cnn(canvas)  # (N, C)
        else:
            h = share_blank_canvases(self.cnn, canvas)  # (N, C)
        if self.use_prev_end:
            h = torch.cat([h, prev_end], dim=-1)
        return self.head(h)
