"""Small building blocks shared by the networks (plain nn.Modules, no Pyro)."""

from __future__ import annotations

from torch import nn


def conv_pool_block(c_in: int, c_out: int, activation: str, dropout: float, order: str) -> nn.Sequential:
    """3x3 conv (same padding), batch norm, activation, 2x2 max-pool, dropout.

    ``order`` follows REFERENCE.md section 5: ``"bn_act"`` (conv, BN, activation:
    the location network) or ``"act_bn"`` (conv, activation, BN: the termination
    network). In both the max-pool is applied right after the layer it commutes
    with, before the batch norm, so that the per-pixel layers run on a quarter of
    the pixels: max-pooling commutes exactly with the monotone activations (ReLU,
    tanh), and with batch norm whenever its scale is positive. On this project's
    2-core CPU the first block of the termination network (64 channels at 28 x 28)
    was dominated by these memory-bound layers. The pool floors odd sizes:
    28 -> 14 -> 7 -> 3 -> 1.
    """
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]()
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    if order == "bn_act":  # conv, BN, act, pool  ->  conv, pool, BN, act
        layers = [conv, nn.MaxPool2d(2), nn.BatchNorm2d(c_out), act]
    elif order == "act_bn":  # conv, act, BN, pool  ->  conv, pool, act, BN
        layers = [conv, nn.MaxPool2d(2), act, nn.BatchNorm2d(c_out)]
    else:
        raise ValueError(f"order must be 'bn_act' or 'act_bn', got {order!r}")
    return nn.Sequential(*layers, nn.Dropout(dropout))
