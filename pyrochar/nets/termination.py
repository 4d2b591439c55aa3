"""The termination network: the parameter of the distribution of "the character ends".

It reads the canvas after a stroke and outputs one logit of a Bernoulli: 1 when
the character ends after this stroke.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .blocks import CanvasCNN, conv_pool_block

if TYPE_CHECKING:
    from ..models.full_ns import FullNSConfig


class TerminationNet(nn.Module):
    """``n_blocks`` x [conv, ReLU, BN, max-pool, dropout] -> hidden layer -> 1 logit.

    Reads ``config.termination_channels``, ``termination_blocks`` (n_blocks),
    ``termination_hidden``, ``termination_dropout`` and ``canvas_size``.
    """

    def __init__(self, config: FullNSConfig):
        super().__init__()
        channels, n_blocks = config.termination_channels, config.termination_blocks
        blocks, c_in = [], 1
        for _ in range(n_blocks):
            blocks.append(
                conv_pool_block(c_in, channels, "relu", config.termination_dropout, "act_bn")
            )
            c_in = channels
        self.cnn = CanvasCNN(*blocks)  # (N, 28, 28) -> (N, C, s, s), s = 28 // 2**n_blocks
        side = config.canvas_size
        for _ in range(n_blocks):
            side //= 2  # each max-pool floors odd sizes
        self.head = nn.Sequential(
            nn.Flatten(),  # (N, C * s * s)
            nn.Linear(channels * side * side, config.termination_hidden),
            nn.ReLU(),
            nn.Linear(config.termination_hidden, 1),
        )

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        """canvas (N, 28, 28) -> logit (N,)."""
        return self.head(self.cnn(canvas)).squeeze(-1)
