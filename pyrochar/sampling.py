"""Drawing new characters from a model, at a temperature."""

from __future__ import annotations

import numpy as np
import pyro
import torch

from .checks import check_model, check_positive_int, check_seed, check_temperature
from .handlers import temperature as temper_handler
from .models.base import CharacterModel, evaluating
from .models.batch import CharacterBatch
from .splines import start_offsets_to_stroke


@torch.no_grad()
def sample_batch(
    model: CharacterModel, n: int, temperature: float = 1.0, seed: int | None = None
) -> CharacterBatch:
    """n characters from ``model.model`` (eval mode) at the given temperature."""
    check_model(model)
    n = check_positive_int(n, "n")
    temperature = check_temperature(temperature)
    if check_seed(seed) is not None:
        pyro.set_rng_seed(seed)
    with evaluating(model), temper_handler(temperature=temperature):
        return model.model(batch_size=n)


def batch_to_controls(batch: CharacterBatch) -> list[list[np.ndarray]]:
    """Per character, per stroke, its control points (n, 2) in normalized units."""
    return [
        [start_offsets_to_stroke(start, offsets) for start, offsets in drawing]
        for drawing in batch.to_strokes()
    ]


def sample_characters(
    model: CharacterModel,
    n: int,
    temperature: float = 1.0,
    seed: int | None = None,
    batch_size: int = 200,
) -> list[list[np.ndarray]]:
    """n new characters as control points per stroke (normalized units)."""
    check_model(model)
    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    if check_seed(seed) is not None:
        pyro.set_rng_seed(seed)
    out: list[list[np.ndarray]] = []
    while len(out) < n:
        b = min(batch_size, n - len(out))
        out += batch_to_controls(sample_batch(model, b, temperature))
    return out
