"""The contract every character model of the project fulfils.

A model is an ``nn.Module`` holding its networks and a config dataclass, with two
Pyro programs over the same variables (REFERENCE.md section 7):

- ``model(batch_size, max_strokes=None, max_steps=None)``: the generative process,
  one sample site per variable (``loc_{i}``, ``offset_{i}_{t}``,
  ``stroke_end_{i}_{t}``, ``char_end_{i}``, see :mod:`pyrochar.models.batch`),
  inside ``pyro.plate("characters", batch_size)``. It defines the model: sampling,
  conditioning (``poutine.condition``), completion and tests use it. It returns
  the drawn characters as a :class:`CharacterBatch`.
- ``teacher_forced_model(batch)``: the same distribution over a fully observed
  batch, vectorized over steps (and strokes) for speed, with few sites whose
  event dimensions run over the steps. It returns, for the plate its sites live
  in, the index of each plate entry's drawing in the batch. Training and scoring
  use it; tests check it gives the per-step model's log-likelihood.

Scoring, training, sampling and evaluation are written once against this
contract (:mod:`pyrochar.infer`, :mod:`pyrochar.train`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pyro
import torch
from torch import nn

from ..errors import PyrocharError
from ..nets.blocks import PRECISIONS, CanvasCNN
from .batch import CharacterBatch


class CharacterModel(nn.Module):
    """Base class: holds ``config`` (a dataclass) and defines the two programs."""

    name: ClassVar[str] = "?"
    config_class: ClassVar[type]

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def set_precision(self, precision: str) -> CharacterModel:
        """Compute precision of the model's canvas CNNs: ``"fp32"`` or ``"bf16-mixed"``.

        ``"bf16-mixed"`` runs the CNNs reading canvases (Full NS's location,
        stroke and termination networks) under bfloat16 autocast; weights,
        gradients and everything else stay float32. The stroke CNN trains in
        float32 all the same (in bfloat16 it learnt worse features: 0.3-0.5 nats
        of held-out NLL); scoring with it in bfloat16 moves a trained model's NLL
        by less than 0.01 nats. On a CPU with native bfloat16 (AVX-512-BF16, AMX)
        training runs about 1.2 and scoring 1.3 times faster (docs/performance.md).
        Models without such CNNs ignore it. A runtime setting, not saved with the
        weights. Returns ``self``.
        """
        if precision not in PRECISIONS:
            raise PyrocharError(
                f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        for module in self.modules():
            if isinstance(module, CanvasCNN):
                module.compute_dtype = PRECISIONS[precision]
        return self

    def model(self, batch_size: int = 1, max_strokes: int | None = None, max_steps: int | None = None):
        raise NotImplementedError

    #: whether batches must carry the canvases before/after each stroke (Full NS)
    uses_canvases: ClassVar[bool] = False

    #: the plate of the teacher-forced program ("strokes" or "characters")
    teacher_forced_plate: ClassVar[str] = "characters"

    def teacher_forced_distributions(self, batch: CharacterBatch):
        """-> (drawing index of each plate entry (N,), {site: (distribution, observed value)})."""
        raise NotImplementedError

    def teacher_forced_model(self, batch: CharacterBatch) -> torch.Tensor:
        """The teacher-forced Pyro program: every site observed, inside one plate.

        Returns the drawing index of each plate entry, to sum log-probs per drawing.
        """
        index, sites = self.teacher_forced_distributions(batch)
        with pyro.plate(self.teacher_forced_plate, len(index)):
            for name, (fn, value) in sites.items():
                pyro.sample(name, fn, obs=value)
        return index

    def initialize_from_data(self, dataset) -> CharacterModel:
        """Optional hook: set parameters from training-data statistics before training.

        ``dataset`` is the training split (a ``PreparedDataset``). The default does
        nothing; parametric models (the BPL-style prior) fit themselves here in closed
        form. Returns ``self``.
        """
        return self

    def prepare_batch(self, batch: CharacterBatch) -> CharacterBatch:
        """Add whatever the teacher-forced program needs beyond the strokes (e.g. canvases)."""
        return batch
