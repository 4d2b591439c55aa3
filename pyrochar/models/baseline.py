"""The Baseline LSTM: the unconditional Sketch-RNN decoder (Ha & Eck 2018, sec. 3.3).

One LSTM (zero initial state) reads a whole character as one sequence of 2-D
moves, each with a 3-state pen: 0 the stroke goes on, 1 the stroke ends, 2 the
drawing ends. At each step it reads the previous move and pen state (one-hot)
and gives a K-component GMM for the next move and 3 logits for its pen state.

The sequence of a drawing, in normalized units:

- a pen-up move from the pen's position to the start of stroke i: from the fixed
  origin (0, 0) (the canvas centre) for stroke 0, from the last control point of
  stroke i - 1 after that. The pen then goes down: this move's pen state is
  always 0 (every stroke has at least one offset), so it is not a variable;
- the offsets between the control points of stroke i, the pen state of the last
  one being 1 (stroke ends) or 2 (drawing ends), of the others 0.

The same variables as Full NS and the H-LSTM (REFERENCE.md section 7):

- ``loc_{i}``, the absolute start = pen position + the move: the move's GMM with
  every mean shifted by the pen position (a translation: no Jacobian);
- ``offset_{i}_{t}``: the GMM of that step;
- the pen state v of offset t splits exactly into ``stroke_end_{i}_{t}`` =
  [v != 0] and, once the stroke has ended, ``char_end_{i}`` = [v == 2]:
  P(v) = P(stroke_end) P(char_end | stroke_end) (see :func:`pen_site_logits`).

:meth:`BaselineLSTM.model` is the per-step Pyro program with those sites;
:meth:`BaselineLSTM.teacher_forced_distributions` runs the LSTM once over the
padded sequences of a batch (plate "characters").
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro.distributions import Bernoulli
from torch import nn

from ..distributions import BivariateGMM, MaskedSteps, gmm_from_raw
from ..geometry import controls_from_start_offsets
from .base import CharacterModel
from .batch import CharacterBatch, char_end_site, loc_site, offset_site, stroke_end_site
from .hlstm import LSTMState

PEN_CONTINUE, PEN_STROKE_END, PEN_DRAWING_END = 0, 1, 2


@dataclass
class BaselineConfig:
    """Every size of the Baseline LSTM (L layers, H units, dropout p: tuned in the paper)."""

    n_components: int = 20  # K of the GMM
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.3  # between LSTM layers and on its output
    # sampling caps (REFERENCE.md section 8)
    max_strokes: int = 10
    max_steps: int = 50


def pen_site_logits(pen_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """3 pen logits (..., 3) -> ("stroke ends" logit, "character ends | stroke ends" logit).

    P(v != 0) = (e^l1 + e^l2) / (e^l0 + e^l1 + e^l2): logit logsumexp(l1, l2) - l0;
    P(v = 2 | v != 0) = e^l2 / (e^l1 + e^l2): logit l2 - l1. So
    log P(v) = log P(stroke ends = [v != 0]) + [v != 0] log P(char ends = [v = 2] | ...).
    """
    l0, l1, l2 = pen_logits.unbind(-1)
    return torch.logaddexp(l1, l2) - l0, l2 - l1


def translated(gmm: BivariateGMM, shift: torch.Tensor) -> BivariateGMM:
    """The GMM of ``x + shift`` for x ~ ``gmm``: every mean moved by shift (..., 2)."""
    return BivariateGMM(gmm.logits, gmm.loc + shift.unsqueeze(-2), gmm.scale, gmm.rho)


def last_control_points(starts, offsets, n_offsets) -> torch.Tensor:
    """The last control point of each stroke: starts (..., 2), offsets (..., T, 2), n (...)."""
    shape = n_offsets.shape
    t = offsets.shape[-2]
    controls = controls_from_start_offsets(
        starts.reshape(-1, 2), offsets.reshape(-1, t, 2), n_offsets.reshape(-1)
    )  # (M, T + 1, 2)
    rows = torch.arange(controls.shape[0], device=controls.device)
    return controls[rows, n_offsets.reshape(-1)].reshape(shape + (2,))


class BaselineLSTM(CharacterModel):
    """The Sketch-RNN decoder as a Pyro program with the sites of Full NS."""

    name = "baseline"
    config_class = BaselineConfig
    teacher_forced_plate = "characters"
    uses_canvases = False

    def __init__(self, config: BaselineConfig | None = None):
        config = config or BaselineConfig()
        super().__init__(config)
        c = config
        # input: previous move (2) + previous pen state, one-hot (3)
        self.lstm = nn.LSTM(
            5, c.hidden, c.layers, batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0
        )
        self.output_dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, 6 * c.n_components + 3)  # GMM + 3 pen logits

    # ------------------------------------------------------------ pieces
    @staticmethod
    def element(move: torch.Tensor, pen: torch.Tensor | int) -> torch.Tensor:
        """An LSTM input: move (..., 2) and pen state (...) or int -> (..., 5)."""
        if isinstance(pen, int):
            pen = torch.full(move.shape[:-1], pen, dtype=torch.long, device=move.device)
        return torch.cat([move, nn.functional.one_hot(pen, 3).to(move.dtype)], -1)

    def start_element(self, batch_size: int) -> torch.Tensor:
        """The first input (B, 5): no move, pen state 1 (the next move is a pen-up move)."""
        return self.element(torch.zeros(batch_size, 2, device=self.device), PEN_STROKE_END)

    def outputs(self, out: torch.Tensor):
        """LSTM outputs (..., H) -> raw GMM (..., 6K), pen logits (..., 3)."""
        o = self.head(self.output_dropout(out))
        return o[..., :-3], o[..., -3:]

    def _step(self, inp: torch.Tensor, state: LSTMState | None):
        """One LSTM step: inp (B, 5) -> raw GMM (B, 6K), pen logits (B, 3), new state."""
        out, state = self.lstm(inp.unsqueeze(1), state)
        raw, pen_logits = self.outputs(out[:, 0])
        return raw, pen_logits, state

    # ------------------------------------------------ the generative model
    def model(self, batch_size: int = 1, max_strokes: int | None = None, max_steps: int | None = None):
        """Sketch-RNN's decoder as a Pyro program, with the sites of Full NS.

        ``max_strokes`` and ``max_steps`` (default: the config's caps) bound the
        loops, observed sites included. Returns the drawn characters as a
        :class:`CharacterBatch` (no canvases).
        """
        max_strokes = max_strokes or self.config.max_strokes
        max_steps = max_steps or self.config.max_steps
        b, k = batch_size, self.config.n_components
        # `alive` is True while a character has not ended. Characters of a batch
        # end after different numbers of strokes; a finished character's later
        # sites are masked out (they score 0 and their values are ignored).
        alive = torch.ones(b, dtype=torch.bool, device=self.device)
        pen = torch.zeros(b, 2, device=self.device)  # (B, 2) pen position: the fixed origin
        inp, state = self.start_element(b), None  # (B, 5), zero initial state
        starts, strokes = [], []
        with pyro.plate("characters", b):
            for i in range(max_strokes):
                # the pen-up move to the start; its pen state (down) is not a variable
                raw, _, state = self._step(inp, state)
                move = translated(gmm_from_raw(raw, k), pen)  # over the absolute start
                start = pyro.sample(loc_site(i), move.mask(alive))  # (B, 2)
                inp = self.element(start - pen, PEN_CONTINUE)
                offsets, n_offsets, last, end_logit, state = self._sample_stroke(
                    i, inp, state, alive, max_steps
                )
                ends = pyro.sample(char_end_site(i), Bernoulli(logits=end_logit).mask(alive))
                # the last offset's pen state: 1 (stroke ends) or 2 (drawing ends)
                inp = self.element(last, PEN_STROKE_END + ends.long())
                pen = last_control_points(start, offsets, n_offsets)  # (B, 2)
                starts.append(start)
                strokes.append((offsets, n_offsets))
                alive = alive & (ends == 0)
                if not alive.any():
                    break
        return CharacterBatch.from_samples(starts, strokes)

    def _sample_stroke(self, i, inp, state, alive, max_steps):
        """The offsets of stroke i and their pen decisions, one step at a time.

        Returns offsets (B, T, 2), counts (B,), the last offset (B, 2), the
        "character ends" logit at the last offset (B,) and the LSTM state.
        """
        k = self.config.n_components
        # `drawing` is True while the stroke goes on; a finished stroke's later
        # sites are masked. A character whose stroke has ended must wait for its
        # "character ends" decision before its LSTM reads the last offset: its
        # state is frozen while the other characters of the batch draw on.
        drawing = alive.clone()
        n_offsets = torch.zeros(inp.shape[0], dtype=torch.long, device=inp.device)
        last = torch.zeros(inp.shape[0], 2, device=inp.device)
        end_logit = torch.zeros(inp.shape[0], device=inp.device)
        offsets = []
        for t in range(max_steps):
            raw, pen_logits, new_state = self._step(inp, state)
            keep = drawing[None, :, None]  # (1, B, 1) against the state's (layers, B, H)
            state = tuple(torch.where(keep, new, old) for new, old in zip(new_state, state, strict=True))
            stroke_logit, char_logit = pen_site_logits(pen_logits)  # (B,), (B,)
            offset = pyro.sample(offset_site(i, t), gmm_from_raw(raw, k).mask(drawing))
            ends = pyro.sample(stroke_end_site(i, t), Bernoulli(logits=stroke_logit).mask(drawing))
            offsets.append(offset)
            last = torch.where(drawing.unsqueeze(-1), offset, last)
            end_logit = torch.where(drawing, char_logit, end_logit)
            n_offsets = n_offsets + drawing.long()
            inp = self.element(offset, PEN_CONTINUE)  # read only by the characters still drawing
            drawing = drawing & (ends == 0)
            if not drawing.any():
                break
        return torch.stack(offsets, 1), n_offsets, last, end_logit, state

    # ------------------------------------------------- the fast, teacher-forced path
    def sequences(self, batch: CharacterBatch) -> dict[str, torch.Tensor]:
        """Each drawing as one padded sequence of L moves (the Sketch-RNN layout).

        Stroke i (n_i offsets) takes elements first_i (its pen-up move to the
        start) to first_i + n_i (its offsets). Returns ``moves`` (B, L, 2),
        ``pens`` (B, L) (pen state after each element), ``first`` (B, S),
        ``pen_before`` (B, S, 2) (pen position before each stroke), and masks
        ``is_offset`` and ``is_last`` (B, L) (offset elements; last offset of a stroke).
        """
        b, s_max = batch.stroke_mask.shape
        real = batch.stroke_mask  # (B, S)
        n = torch.where(real, batch.n_offsets, torch.zeros_like(batch.n_offsets))  # (B, S)
        length = (1 + n) * real.long()  # elements per stroke
        first = length.cumsum(1) - length  # (B, S)
        total = max(int(length.sum(1).max()), 1) if b else 1
        # pen position before stroke i: the origin, then the previous last control point
        last_cp = last_control_points(batch.starts, batch.offsets, n)  # (B, S, 2)
        pen_before = torch.cat([last_cp.new_zeros(b, 1, 2), last_cp[:, :-1]], 1)  # (B, S, 2)
        rows_s, idx_s = real.nonzero(as_tuple=True)  # real strokes
        steps = batch.step_mask & real.unsqueeze(-1)
        rows_t, idx_t, t_t = steps.nonzero(as_tuple=True)  # real offsets
        at_loc = first[rows_s, idx_s]
        at_offset = first[rows_t, idx_t] + 1 + t_t
        at_last = at_loc + n[rows_s, idx_s]
        dtype, device = batch.starts.dtype, batch.starts.device
        moves = torch.zeros(b, total, 2, dtype=dtype, device=device)
        moves = moves.index_put((rows_s, at_loc), (batch.starts - pen_before)[rows_s, idx_s])
        moves = moves.index_put((rows_t, at_offset), batch.offsets[rows_t, idx_t, t_t])
        ended = PEN_STROKE_END + batch.char_ends[rows_s, idx_s].long()  # 1 or 2
        pens = torch.zeros(b, total, dtype=torch.long, device=device)
        pens = pens.index_put((rows_s, at_last), ended)
        flag = torch.zeros(b, total, dtype=torch.bool, device=device)
        true = torch.ones((), dtype=torch.bool, device=device)
        is_offset = flag.index_put((rows_t, at_offset), true)
        is_last = flag.index_put((rows_s, at_last), true) & is_offset
        return dict(moves=moves, pens=pens, first=first, pen_before=pen_before,
                    is_offset=is_offset, is_last=is_last)  # fmt: skip

    def teacher_forced_distributions(self, batch: CharacterBatch):
        """The distribution and observed value of every teacher-forced site.

        One LSTM call over the padded sequences (B, L); plate "characters". Sites:
        ``loc`` (event (S, 2)), ``offsets`` (event (L, 2)), ``stroke_ends`` and
        ``char_end`` (event (L,)), each masked to the elements it scores.
        """
        seq = self.sequences(batch)
        b = batch.batch_size
        elements = self.element(seq["moves"], seq["pens"])  # (B, L, 5)
        inputs = torch.cat([self.start_element(b).unsqueeze(1), elements[:, :-1]], 1)  # shifted
        out, _ = self.lstm(inputs)  # (B, L, H)
        raw, pen_logits = self.outputs(out)  # (B, L, 6K), (B, L, 3)
        k = self.config.n_components
        # the start of stroke i is scored by the output at its pen-up move
        at_loc = seq["first"].clamp(max=raw.shape[1] - 1)  # (B, S); padded strokes masked
        rows = torch.arange(b, device=raw.device).unsqueeze(-1)
        loc = translated(gmm_from_raw(raw[rows, at_loc], k), seq["pen_before"])  # batch (B, S)
        stroke_logit, char_logit = pen_site_logits(pen_logits)  # (B, L) each
        pens = seq["pens"]
        dtype = batch.starts.dtype
        sites = {
            "loc": (MaskedSteps(loc, batch.stroke_mask), batch.starts),
            "offsets": (MaskedSteps(gmm_from_raw(raw, k), seq["is_offset"]), seq["moves"]),
            "stroke_ends": (
                MaskedSteps(Bernoulli(logits=stroke_logit), seq["is_offset"]),
                (pens != PEN_CONTINUE).to(dtype),
            ),
            "char_end": (
                MaskedSteps(Bernoulli(logits=char_logit), seq["is_last"]),
                (pens == PEN_DRAWING_END).to(dtype),
            ),
        }
        return torch.arange(b, device=raw.device), sites
