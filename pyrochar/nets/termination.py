"""The termination network: canvas after a stroke -> logit of "the character ends"."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import CanvasCNN, conv_pool_block


class TerminationNet(nn.Module):
    """``n_blocks`` x [conv, ReLU, BN, max-pool, dropout] -> hidden -> 1 logit."""

    def __init__(self, channels: int = 64, n_blocks: int = 4, hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        blocks, c_in = [], 1
        for _ in range(n_blocks):
            blocks.append(conv_pool_block(c_in, channels, "relu", dropout, "act_bn"))
            c_in = channels
        self.cnn = CanvasCNN(*blocks)  # (N, 28, 28) -> (N, C, s, s), s = 28 // 2**n_blocks
        n_features = channels * self._spatial(n_blocks) ** 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    @staticmethod
    def _spatial(n_blocks: int, size: int = 28) -> int:
        for _ in range(n_blocks):
            size //= 2
        return size

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        """canvas (N, 28, 28) -> logit (N,)."""
        return self.head(self.cnn(canvas)).squeeze(-1)
