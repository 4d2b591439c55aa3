"""Small building blocks shared by the networks (plain nn.Modules, no Pyro)."""

from __future__ import annotations

from torch import nn


def conv_pool_block(c_in: int, c_out: int, activation: str, dropout: float, order: str) -> nn.Sequential:
    """3x3 conv (same padding) + batch norm + activation + 2x2 max-pool + dropout.

    ``order`` is ``"bn_act"`` (conv, BN, activation) or ``"act_bn"`` (conv,
    activation, BN), the two orders of REFERENCE.md section 5. The pool floors odd
    sizes: 28 -> 14 -> 7 -> 3 -> 1.
    """
    act = {"tanh": nn.Tanh(), "relu": nn.ReLU()}[activation]
    bn = nn.BatchNorm2d(c_out)
    middle = [bn, act] if order == "bn_act" else [act, bn]
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), *middle, nn.MaxPool2d(2), nn.Dropout(dropout)
    )
