"""Full NS: the paper's neuro-symbolic model (Feinman & Lake 2020, Fig. 1).

A character is drawn stroke by stroke on a canvas. For stroke i:

1. the location network reads the canvas and gives a 2-D GMM for the start;
2. the stroke network (CNN + LSTM with attention) reads the canvas and the
   start and gives, step by step, a GMM for the next offset between control
   points and whether the stroke ends after it;
3. the symbolic renderer draws the stroke's spline onto the canvas;
4. the termination network reads the new canvas and decides whether the
   character ends.

The hooks below (``p_loc``, ``begin_stroke``/``stroke_step``, ``end_stroke``,
``p_char_end``) are those four steps; :meth:`CharacterModel.model` runs them as
the Pyro program of Fig. 1 and :meth:`CharacterModel.teacher_forced_model` scores
an observed batch with them, vectorized over strokes and steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from pyro.distributions import Bernoulli

from .. import render
from ..distributions import gmm_from_raw
from ..geometry import controls_from_start_offsets, stroke_end_points
from ..nets.location import LocationNet
from ..nets.stroke import StrokeNet
from ..nets.termination import TerminationNet
from ..priors import NetworkStrokePrior
from .base import CharacterModel
from .batch import CharacterBatch, StrokeBatch
from .sites import TeacherForcedSite


@dataclass
class FullNSConfig:
    """Every size of the Full NS model (defaults: docs/model.md, "The networks")."""

    n_components: int = 20  # K of every GMM
    canvas_size: int = 28
    # location network
    location_channels: tuple[int, ...] = (16, 32, 64, 128)
    location_hidden: int = 128
    location_dropout: float = 0.3
    location_uses_prev_end: bool = False  # paper: canvas only; successor: + previous end point
    # stroke network
    stroke_channels: tuple[int, int, int] = (16, 32, 64)
    stroke_embed: int = 64
    stroke_hidden: int = 256
    stroke_layers: int = 2
    attention: str = "post"  # "post" (after the LSTM, vectorized) or "sat" (Show-Attend-Tell)
    attention_dim: int = 64
    stroke_head_hidden: int = 256
    stroke_dropout: float = 0.3
    stroke_lstm_dropout: float = 0.2
    # termination network
    termination_channels: int = 64
    termination_blocks: int = 4
    termination_hidden: int = 64
    termination_dropout: float = 0.3
    # caps, part of the model (docs/model.md, "Caps")
    max_strokes: int = 10
    max_steps: int = 50

    def __post_init__(self):
        self.location_channels = tuple(self.location_channels)
        self.stroke_channels = tuple(self.stroke_channels)


class GenerateCharacter(CharacterModel):
    """The Full NS model: networks + the Pyro program of Fig. 1."""

    name = "full-ns"
    config_class = FullNSConfig
    teacher_forced_plate = "strokes"
    uses_canvases = True

    def __init__(self, config: FullNSConfig | None = None):
        super().__init__(config)
        self.location = LocationNet(self.config)
        self.stroke = StrokeNet(self.config)
        self.termination = TerminationNet(self.config)
        # User priors replacing a network (pyrochar.priors); a plain dict, so they
        # are not part of the model's weights.
        self.priors: dict[str, object] = {}

    def set_priors(self, location=None, stroke=None, termination=None) -> GenerateCharacter:
        """Replace the location, stroke and/or termination networks by user priors.

        See :mod:`pyrochar.priors` for what each must provide. ``None`` keeps the
        current one; ``set_priors()`` with no argument is a no-op, and
        ``self.priors.clear()`` restores the networks.
        """
        for name, prior in (("location", location), ("stroke", stroke), ("termination", termination)):
            if prior is not None:
                self.priors[name] = prior
        return self

    # ------------------------------------------------------- distributions
    def location_distribution(self, canvas: torch.Tensor, prev_end: torch.Tensor):
        """canvas (N, 28, 28), prev_end (N, 2) -> distribution over the start, batch (N,)."""
        if "location" in self.priors:
            return self.priors["location"](canvas, prev_end)
        return gmm_from_raw(self.location(canvas, prev_end), self.config.n_components)

    def stroke_prior(self):
        """The stroke prior in use: a user's, or the stroke network's."""
        return self.priors.get("stroke") or NetworkStrokePrior(self.stroke, self.config.n_components)

    def termination_distribution(self, canvas: torch.Tensor):
        """canvas after the stroke (N, 28, 28) -> distribution of "the character ends"."""
        if "termination" in self.priors:
            return self.priors["termination"](canvas)
        return Bernoulli(logits=self.termination(canvas))

    # ------------------------------------------------ the generative model
    # The per-step program is CharacterModel.model; Full NS's hooks read like Fig. 1.
    def begin_character(self, batch_size: int) -> Canvas:
        size = self.config.canvas_size
        blank = torch.zeros(batch_size, size, size, device=self.device)
        return Canvas(blank, torch.zeros(batch_size, 2, device=self.device), [blank])

    def p_loc(self, state: Canvas, i, rows):
        """1. The location network reads the canvas: where does stroke i start?"""
        return self.location_distribution(state.image[rows], state.prev_end[rows])

    def begin_stroke(self, state: Canvas, i, rows, start):
        """2. The stroke network reads the canvas and the start..."""
        prior = self.stroke_prior()
        return prior, prior.begin(state.image[rows], start)

    def stroke_step(self, stroke, t, prev_offset, going):
        """... and gives, offset by offset, the next offset and whether the stroke ends."""
        prior, lstm = stroke
        offset_fn, end_fn, lstm = prior.step(lstm, prev_offset)
        return offset_fn, end_fn, (prior, lstm)

    def end_stroke(self, state: Canvas, i, rows, start, offsets, n_offsets, stroke) -> None:
        """3. The symbolic renderer draws the stroke's spline onto the canvas."""
        controls = controls_from_start_offsets(start, offsets, n_offsets)  # (n, T + 1, 2)
        drawn = render.add_strokes_to_canvas(state.image[rows], controls, n_offsets + 1)
        state.image = state.image.index_put((rows,), drawn)
        state.prev_end = state.prev_end.index_put((rows,), stroke_end_points(controls, n_offsets + 1))
        state.history.append(state.image)

    def p_char_end(self, state: Canvas, i, rows, stroke):
        """4. The termination network reads the new canvas: does the character end?"""
        return self.termination_distribution(state.image[rows])

    def drawn(self, state: Canvas, starts, strokes) -> CharacterBatch:
        return CharacterBatch.from_samples(starts, strokes, state.history)

    # ------------------------------------------------- the fast, teacher-forced path
    def prepare_batch(self, batch: CharacterBatch) -> CharacterBatch:
        """Render the canvases of every stroke prefix once (teacher forcing)."""
        if batch.canvases is not None:
            return batch
        return replace(batch, canvases=stroke_canvases(batch))

    def teacher_forced_sites(self, batch: CharacterBatch):
        """Every variable of the batch at once, given the canvases the data renders.

        All real strokes of the batch (N of them) share one plate: given the canvases
        (rendered from the observed strokes), strokes are conditionally independent.
        """
        batch = self.prepare_batch(batch)
        s = StrokeBatch.from_characters(batch)
        before = batch.canvases[s.drawing, s.index]  # (N, 28, 28) canvas the stroke starts on
        after = batch.canvases[s.drawing, s.index + 1]  # (N, 28, 28) canvas after it
        prev_end = _previous_end_points(batch, s)  # (N, 2)
        offset_fn, end_fn = self.stroke_prior().sequence(before, s.starts, s.offsets, s.step_mask)
        every = torch.ones_like(s.index, dtype=torch.bool)  # (N,)
        stroke, step = s.index.unsqueeze(-1), torch.arange(s.offsets.shape[1], device=every.device)
        return s.drawing, [
            TeacherForcedSite("loc", self.location_distribution(before, prev_end), s.starts, every, s.index),
            TeacherForcedSite("offset", offset_fn, s.offsets, s.step_mask, stroke, step),
            TeacherForcedSite("stroke_end", end_fn, s.stroke_ends, s.step_mask, stroke, step),
            TeacherForcedSite("char_end", self.termination_distribution(after), s.char_ends, every, s.index),
        ]


@dataclass
class Canvas:
    """What Full NS has drawn so far: the state its networks read."""

    image: torch.Tensor  # (B, 28, 28) ink in [0, 1]
    prev_end: torch.Tensor  # (B, 2) end point of the last stroke (zeros before the first)
    history: list  # the canvas before each stroke and after the last, (B, 28, 28) each


def stroke_canvases(batch: CharacterBatch) -> torch.Tensor:
    """Canvases before each stroke and after the last: (B, S + 1, 28, 28).

    Each stroke is rendered once (one batched call); the canvases are then added up
    stroke by stroke with a clamp after each, exactly as ``model`` does
    (:func:`pyrochar.render.prefix_canvases`). Padded strokes add nothing.
    """
    s = StrokeBatch.from_characters(batch)
    controls = controls_from_start_offsets(s.starts, s.offsets, s.n_offsets)  # (N, T + 1, 2)
    b, n_strokes = batch.stroke_mask.shape
    padded = controls.new_zeros(b, n_strokes, controls.shape[1], 2)  # (B, S, T + 1, 2)
    padded = padded.index_put((s.drawing, s.index), controls)
    n_controls = torch.zeros(b, n_strokes, dtype=torch.long, device=controls.device)
    n_controls = n_controls.index_put((s.drawing, s.index), s.n_offsets + 1)  # 0 on padding
    before, after = render.prefix_canvases(padded, n_controls)  # each (B, S, 28, 28)
    return torch.cat([before, after[:, -1:]], 1)


def _previous_end_points(batch: CharacterBatch, s: StrokeBatch) -> torch.Tensor:
    """For each stroke the end point of the stroke before it (zeros for the first)."""
    controls = controls_from_start_offsets(s.starts, s.offsets, s.n_offsets)
    ends = stroke_end_points(controls, s.n_offsets + 1)  # (N, 2)
    b, n_strokes = batch.stroke_mask.shape
    table = ends.new_zeros(b, n_strokes + 1, 2).index_put((s.drawing, s.index + 1), ends)
    return table[s.drawing, s.index]
