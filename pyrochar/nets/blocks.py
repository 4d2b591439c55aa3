"""Small building blocks shared by the networks (plain nn.Modules, no Pyro).

The canvas CNNs (:class:`CanvasCNN`), the convolution block of the location and
termination networks (:func:`conv_pool_block`), a dropout with a cheaper random
mask (:class:`FastDropout`) and one pass for the blank canvases of a batch
(:func:`share_blank_canvases`). docs/performance.md has the measurements behind
the speed choices.
"""

from __future__ import annotations

import torch
from torch import nn

# The CNNs keep their feature maps in channels-last layout (N, H, W, C in memory):
# oneDNN's convolutions run faster on the CPU in that layout. It changes no value.
CHANNELS_LAST = torch.channels_last


# Compute precisions of the canvas CNNs (CharacterModel.set_precision): "fp32", or
# "bf16-mixed": the CNNs run under bfloat16 autocast (convolutions in bfloat16,
# weights and outputs in float32); everything else stays float32.
PRECISIONS = {"fp32": None, "bf16-mixed": torch.bfloat16}


class CanvasCNN(nn.Sequential):
    """A CNN reading canvases (N, H, W): channels-last layout, optional mixed precision.

    The same parameters (and state-dict keys) as the ``nn.Sequential`` of its
    layers. ``compute_dtype`` (None: float32) is set by ``set_precision``; with
    ``low_precision_in_training=False`` the CNN uses it in eval mode only (scoring,
    sampling) and trains in float32.
    """

    compute_dtype: torch.dtype | None = None

    def __init__(self, *layers: nn.Module, low_precision_in_training: bool = True):
        super().__init__(*layers)
        self.low_precision_in_training = low_precision_in_training
        self.to(memory_format=CHANNELS_LAST)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        images = canvas.unsqueeze(1).contiguous(memory_format=CHANNELS_LAST)  # (N, 1, H, W)
        dtype = self.compute_dtype
        if dtype is None or (self.training and not self.low_precision_in_training):
            return super().forward(images)
        with torch.autocast(images.device.type, dtype=dtype):
            return super().forward(images).float()


def share_blank_canvases(net, canvas: torch.Tensor) -> torch.Tensor:
    """``net(canvas)`` where the blank canvases of the batch share one pass.

    canvas (N, H, W) -> net's output (N, ...). Every character's first stroke starts
    on the blank canvas, so a CNN reading the canvas before each stroke would
    compute the same output again for each. Only for a
    ``net`` whose output row depends on its own canvas alone: no batch statistics
    (batch norm in training) and no dropout.
    """
    blank = ~canvas.flatten(1).any(1)  # (N,)
    n_drawn = int((~blank).sum())
    if canvas.shape[0] - n_drawn < 2:
        return net(canvas)
    drawn = (~blank).nonzero().squeeze(-1)  # (n,)
    out = net(torch.cat([canvas[drawn], canvas.new_zeros(1, *canvas.shape[1:])]))  # (n + 1, ...)
    source = torch.full_like(blank, n_drawn, dtype=torch.long)  # (N,) row of out to use
    source[drawn] = torch.arange(n_drawn, device=canvas.device)
    return out.index_select(0, source)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper random mask on the CPU.

    Each unit is kept with probability 1 - p' and kept units are scaled by
    1 / (1 - p'), where p' is p rounded to a multiple of 2^-16 (p = 0.3 gives
    0.3000031). The mask compares 16-bit slices of random 64-bit words with a
    threshold: a quarter of a random draw per unit, where torch's CPU dropout
    draws a ``bernoulli_`` per unit. On other devices it is ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p in (0.0, 1.0) or x.device.type != "cpu":
            return super().forward(x)
        dropped = round(self.p * 65536)  # out of 65536
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        slices = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-32768, 32767]
        keep = slices >= dropped - 32768
        return x * keep.to(x.dtype).mul_(65536 / (65536 - dropped))


def conv_pool_block(c_in: int, c_out: int, activation: str, dropout: float, order: str) -> nn.Sequential:
    """3x3 conv (same padding), batch norm, activation, 2x2 max-pool, dropout.

    ``order``: ``"bn_act"`` (conv, BN, activation: the location network) or
    ``"act_bn"`` (conv, activation, BN: the termination network). In both the
    max-pool is applied right after the convolution, before the batch norm, so that
    the memory-bound per-pixel layers run on a quarter of the pixels: max-pooling
    commutes exactly with the monotone activations (ReLU, tanh), and with batch norm
    whenever its scale is positive. The pool floors odd sizes: 28 -> 14 -> 7 -> 3 -> 1.
    """
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]()
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    if order == "bn_act":  # conv, BN, act, pool  ->  conv, pool, BN, act
        layers = [conv, nn.MaxPool2d(2), nn.BatchNorm2d(c_out), act]
    elif order == "act_bn":  # conv, act, BN, pool  ->  conv, pool, act, BN
        layers = [conv, nn.MaxPool2d(2), act, nn.BatchNorm2d(c_out)]
    else:
        raise ValueError(f"order must be 'bn_act' or 'act_bn', got {order!r}")
    return nn.Sequential(*layers, FastDropout(dropout))
