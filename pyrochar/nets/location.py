"""The location network: the parameters of the distribution of a stroke's start.

It reads the canvas before the stroke (and, optionally, the previous stroke's
end point) and outputs the 6K raw parameters of a K-component bivariate Gaussian
mixture over the start location (layout of
:func:`pyrochar.distributions.gmm_from_raw`: K logits, 2K means, 2K log scales, K
correlations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .blocks import CanvasCNN, conv_pool_block, share_blank_canvases

if TYPE_CHECKING:
    from ..models.full_ns import FullNSConfig


class LocationNet(nn.Module):
    """4 x [conv, BN, tanh, max-pool, dropout] (28 -> 1) -> hidden layer -> 6K raw GMM outputs.

    Reads ``config.n_components`` (K), ``location_channels``, ``location_hidden``,
    ``location_dropout`` and ``location_uses_prev_end``. The paper's model reads the
    canvas only; with ``location_uses_prev_end`` (the successor model of the public
    code) it also reads the previous stroke's end point (zeros before the first).
    """

    def __init__(self, config: FullNSConfig):
        super().__init__()
        blocks, c_in = [], 1
        for c in config.location_channels:
            blocks.append(conv_pool_block(c_in, c, "tanh", config.location_dropout, "bn_act"))
            c_in = c
        self.cnn = CanvasCNN(*blocks, nn.Flatten())  # (N, 28, 28) -> (N, C), C = last channels
        self.use_prev_end = config.location_uses_prev_end
        n_in = c_in + (2 if self.use_prev_end else 0)
        self.head = nn.Sequential(
            nn.Linear(n_in, config.location_hidden),
            nn.Tanh(),
            nn.Linear(config.location_hidden, 6 * config.n_components),
        )

    def forward(self, canvas: torch.Tensor, prev_end: torch.Tensor | None = None) -> torch.Tensor:
        """canvas (N, 28, 28), prev_end (N, 2) -> raw GMM parameters (N, 6K)."""
        if self.training:  # batch norm reads the batch's statistics, dropout draws per row
            h = self.cnn(canvas)  # (N, C)
        else:
            h = share_blank_canvases(self.cnn, canvas)  # (N, C)
        if self.use_prev_end:
            h = torch.cat([h, prev_end], dim=-1)  # (N, C + 2)
        return self.head(h)  # (N, 6K)
