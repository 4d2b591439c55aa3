"""Full NS: the paper's neuro-symbolic model (Feinman & Lake 2020, Fig. 1).

A character is drawn stroke by stroke on a canvas. For stroke i:

1. the location network reads the canvas and gives a 2-D GMM for the start;
2. the stroke network (CNN + LSTM with attention) reads the canvas and the
   start and gives, step by step, a GMM for the next offset between control
   points and whether the stroke ends after it;
3. the symbolic renderer draws the stroke's spline onto the canvas;
4. the termination network reads the new canvas and decides whether the
   character ends.

:meth:`GenerateCharacter.model` is that pseudo-code as a Pyro program.
:meth:`GenerateCharacter.teacher_forced_model` is the same distribution over an
observed batch with one site per stroke and variable, vectorized over steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyro
import torch
from pyro.distributions import Bernoulli

from .. import render
from ..distributions import MaskedSteps, RowSubset, gmm_from_raw
from ..geometry import controls_from_start_offsets, stroke_end_points
from ..nets.location import LocationNet
from ..nets.stroke import StrokeNet
from ..nets.termination import TerminationNet
from ..priors import NetworkStrokePrior
from .base import CharacterModel
from .batch import (
    CharacterBatch,
    StrokeBatch,
    char_end_site,
    loc_site,
    offset_site,
    stroke_end_site,
)


@dataclass
class FullNSConfig:
    """Every size of the Full NS model (defaults: REFERENCE.md section 5)."""

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
    # sampling caps (REFERENCE.md section 8)
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
        config = config or FullNSConfig()
        super().__init__(config)
        self.location = LocationNet(config)
        self.stroke = StrokeNet(config)
        self.termination = TerminationNet(config)
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
    def model(self, batch_size: int = 1, max_strokes: int | None = None, max_steps: int | None = None):
        """GenerateCharacter as a Pyro program, one site per variable.

        ``max_strokes`` and ``max_steps`` (default: the config's caps, 10 and 50)
        bound the loops; they apply to observed sites too, so pass caps at least as
        large as the data when conditioning on long drawings
        (:func:`pyrochar.infer.log_likelihood_per_step` does).
        Returns the drawn characters as a :class:`CharacterBatch` (with canvases).
        """
        max_strokes = max_strokes or self.config.max_strokes
        max_steps = max_steps or self.config.max_steps
        b, device = batch_size, self.device
        size = self.config.canvas_size
        canvas = torch.zeros(b, size, size, device=device)  # the blank canvas
        prev_end = torch.zeros(b, 2, device=device)
        # `alive` is True while a character has not ended. Characters of a batch
        # end after different numbers of strokes; a finished character's later
        # sites are masked out (they score 0 and their values are ignored).
        alive = torch.ones(b, dtype=torch.bool, device=device)
        starts, strokes, canvases = [], [], [canvas]
        with pyro.plate("characters", b):
            for i in range(max_strokes):
                # The networks run on the characters still being drawn (`rows`) only;
                # RowSubset gives the finished ones a 0 log-prob (masked anyway).
                rows = alive.nonzero().squeeze(-1)  # (n,)
                start = pyro.sample(
                    loc_site(i),
                    RowSubset(self.location_distribution(canvas[rows], prev_end[rows]), rows, b)
                    .mask(alive),
                )
                offsets, n_offsets = self._sample_stroke(i, canvas, start, alive, rows, max_steps)
                controls = controls_from_start_offsets(start, offsets, n_offsets)
                canvas = canvas.index_put(
                    (rows,),
                    render.add_strokes_to_canvas(canvas[rows], controls[rows], n_offsets[rows] + 1),
                )
                prev_end = stroke_end_points(controls, n_offsets + 1)
                ends = pyro.sample(
                    char_end_site(i),
                    RowSubset(self.termination_distribution(canvas[rows]), rows, b).mask(alive),
                )
                starts.append(start)
                strokes.append((offsets, n_offsets))
                canvases.append(canvas)
                alive = alive & (ends == 0)
                if not alive.any():
                    break
        return CharacterBatch.from_samples(starts, strokes, canvases)

    def _sample_stroke(self, i, canvas, start, alive, rows, max_steps):
        """Offsets of stroke i, one step at a time, computed for ``rows`` (the characters
        still being drawn). Returns offsets (B, T, 2) and counts (B,)."""
        b = start.shape[0]
        prior = self.stroke_prior()
        state = prior.begin(canvas[rows], start[rows])
        drawing = alive.clone()  # True while the stroke goes on
        prev = torch.zeros_like(start)
        n_offsets = torch.zeros(b, dtype=torch.long, device=start.device)
        offsets = []
        for t in range(max_steps):
            offset_dist, end_dist, state = prior.step(state, prev[rows])
            prev = pyro.sample(offset_site(i, t), RowSubset(offset_dist, rows, b).mask(drawing))
            ends = pyro.sample(stroke_end_site(i, t), RowSubset(end_dist, rows, b).mask(drawing))
            offsets.append(prev)
            n_offsets = n_offsets + drawing.long()
            drawing = drawing & (ends == 0)
            if not drawing.any():
                break
        return torch.stack(offsets, 1), n_offsets

    # ------------------------------------------------- the fast, teacher-forced path
    def prepare_batch(self, batch: CharacterBatch) -> CharacterBatch:
        """Render the canvases of every stroke prefix once (teacher forcing)."""
        if batch.canvases is not None:
            return batch
        return replace(batch, canvases=prefix_canvases(batch))

    def teacher_forced_distributions(self, batch: CharacterBatch):
        """The distribution and observed value of every teacher-forced site.

        All real strokes of the batch (N of them) share one plate: given the
        canvases (rendered from the observed strokes), strokes are conditionally
        independent. Returns each stroke's drawing index (N,) and
        ``{site: (distribution with batch shape (N,), observed value)}``.
        """
        batch = self.prepare_batch(batch)
        s = StrokeBatch.from_characters(batch)
        before = batch.canvases[s.drawing, s.index]  # (N, 28, 28) canvas the stroke starts on
        after = batch.canvases[s.drawing, s.index + 1]  # (N, 28, 28) canvas after it
        prev_end = _previous_end_points(batch, s)  # (N, 2)
        offset_dist, end_dist = self.stroke_prior().sequence(before, s.starts, s.offsets, s.step_mask)
        sites = {
            "loc": (self.location_distribution(before, prev_end), s.starts),
            "offsets": (MaskedSteps(offset_dist, s.step_mask), s.offsets),
            "stroke_ends": (MaskedSteps(end_dist, s.step_mask), s.stroke_ends),
            "char_end": (self.termination_distribution(after), s.char_ends),
        }
        return s.drawing, sites


def prefix_canvases(batch: CharacterBatch) -> torch.Tensor:
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
