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

The same variables as Full NS and the H-LSTM (docs/model.md, "Sites"):

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

import torch
from pyro.distributions import Bernoulli
from torch import nn

from ..distributions import BivariateGMM, gmm_from_raw
from ..geometry import controls_from_start_offsets
from .base import CharacterModel
from .batch import CharacterBatch
from .hlstm import LSTMState
from .sites import TeacherForcedSite

PEN_CONTINUE, PEN_STROKE_END, PEN_DRAWING_END = 0, 1, 2


@dataclass
class BaselineConfig:
    """Every size of the Baseline LSTM (L layers, H units, dropout p: tuned in the paper)."""

    n_components: int = 20  # K of the GMM
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.3  # between LSTM layers and on its output
    # caps, part of the model (docs/model.md, "Caps")
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
        super().__init__(config)
        c = self.config
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
        """One LSTM step: inp (n, 5) -> raw GMM (n, 6K), pen logits (n, 3), new state."""
        out, state = self.lstm(inp.unsqueeze(1), state)
        raw, pen_logits = self.outputs(out[:, 0])
        return raw, pen_logits, state

    # ------------------------------------------------ the per-step hooks
    def begin_character(self, batch_size: int) -> Pen:
        c = self.config
        zeros = torch.zeros(c.layers, batch_size, c.hidden, device=self.device)  # zero initial state
        origin = torch.zeros(batch_size, 2, device=self.device)  # the pen starts at the canvas centre
        return Pen((zeros, zeros.clone()), origin, origin.clone(), self.start_element(batch_size))

    def p_loc(self, state: Pen, i, rows):
        """The pen-up move to stroke i's start, as a GMM over the absolute start.

        The LSTM reads the last element and gives the move's GMM; every mean is
        shifted by the pen position (a translation: no Jacobian). The move's pen
        state (down) is not a variable.
        """
        raw, _, lstm = self._step(state.inp[rows], _rows_of(state.lstm, rows))
        state.lstm = _put_rows(state.lstm, rows, lstm)
        return translated(gmm_from_raw(raw, self.config.n_components), state.pen[rows])

    def begin_stroke(self, state: Pen, i, rows, start):
        move = self.element(start - state.pen[rows], PEN_CONTINUE)  # the first input: the move
        return PenStroke(move, _rows_of(state.lstm, rows), torch.zeros(len(rows), device=start.device))

    def stroke_step(self, stroke: PenStroke, t, prev_offset, going):
        """Offset t and its pen state: P(v) = P(stroke ends) P(character ends | stroke ends).

        A character whose stroke has ended waits for its "character ends" decision
        before its LSTM reads the last offset: its state is frozen (``going``) while
        the other characters of the batch draw on.
        """
        inp = stroke.inp if t == 0 else self.element(prev_offset, PEN_CONTINUE)
        raw, pen_logits, new = self._step(inp, stroke.lstm)
        keep = going[None, :, None]  # (1, n, 1) against the state's (layers, n, H)
        lstm = tuple(torch.where(keep, a, b) for a, b in zip(new, stroke.lstm, strict=True))
        stroke_logit, char_logit = pen_site_logits(pen_logits)  # (n,), (n,)
        end_logit = torch.where(going, char_logit, stroke.end_logit)  # at the stroke's last offset
        offset_fn = gmm_from_raw(raw, self.config.n_components)
        return offset_fn, Bernoulli(logits=stroke_logit), PenStroke(inp, lstm, end_logit)

    def end_stroke(self, state: Pen, i, rows, start, offsets, n_offsets, stroke: PenStroke) -> None:
        state.lstm = _put_rows(state.lstm, rows, stroke.lstm)
        last = offsets[torch.arange(len(rows), device=rows.device), n_offsets - 1]  # (n, 2)
        state.last = state.last.index_put((rows,), last)
        state.pen = state.pen.index_put((rows,), last_control_points(start, offsets, n_offsets))

    def p_char_end(self, state: Pen, i, rows, stroke: PenStroke):
        """The pen state of the stroke's last offset: 2 (drawing ends) rather than 1."""
        return Bernoulli(logits=stroke.end_logit)

    def after_char_end(self, state: Pen, i, rows, ends) -> None:
        """The LSTM next reads the last offset with its pen state, 1 or 2."""
        state.inp = state.inp.index_put((rows,), self.element(state.last[rows], PEN_STROKE_END + ends.long()))

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
        # which variable each element is: stroke i (its pen-up move and offsets), step t
        stroke_of = torch.zeros(b, total, dtype=torch.long, device=device)
        stroke_of = stroke_of.index_put((rows_s, at_loc), idx_s).index_put((rows_t, at_offset), idx_t)
        step_of = torch.zeros(b, total, dtype=torch.long, device=device).index_put((rows_t, at_offset), t_t)
        return dict(moves=moves, pens=pens, first=first, pen_before=pen_before,
                    is_offset=is_offset, is_last=is_last, stroke_of=stroke_of, step_of=step_of)  # fmt: skip

    def teacher_forced_sites(self, batch: CharacterBatch):
        """Every variable of the batch at once: one LSTM call over the padded sequences (B, L).

        Plate "characters"; each site's event runs over the strokes (``loc``) or the
        sequence elements (the others), masked to the elements it scores.
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
        pens, dtype = seq["pens"], batch.starts.dtype
        stroke, step = seq["stroke_of"], seq["step_of"]  # (B, L) each
        every_stroke = torch.arange(batch.starts.shape[1], device=raw.device)  # (S,)
        return torch.arange(b, device=raw.device), [
            TeacherForcedSite("loc", loc, batch.starts, batch.stroke_mask, every_stroke),
            TeacherForcedSite("offset", gmm_from_raw(raw, k), seq["moves"], seq["is_offset"], stroke, step),
            TeacherForcedSite("stroke_end", Bernoulli(logits=stroke_logit),
                              (pens != PEN_CONTINUE).to(dtype), seq["is_offset"], stroke, step),
            TeacherForcedSite("char_end", Bernoulli(logits=char_logit),
                              (pens == PEN_DRAWING_END).to(dtype), seq["is_last"], stroke),
        ]  # fmt: skip


@dataclass
class Pen:
    """The Baseline LSTM's state between strokes."""

    lstm: LSTMState  # (h, c), each (layers, B, H)
    pen: torch.Tensor  # (B, 2) pen position: the origin, then the last control point drawn
    last: torch.Tensor  # (B, 2) the last offset drawn
    inp: torch.Tensor  # (B, 5) the element the LSTM reads next


@dataclass
class PenStroke:
    """The Baseline LSTM's state within a stroke (rows being drawn only)."""

    inp: torch.Tensor  # (n, 5) the element read at this step
    lstm: LSTMState  # (h, c), each (layers, n, H)
    end_logit: torch.Tensor  # (n,) "character ends" logit at the last offset so far


def _rows_of(state: LSTMState, rows: torch.Tensor) -> LSTMState:
    return tuple(x[:, rows] for x in state)


def _put_rows(state: LSTMState, rows: torch.Tensor, new: LSTMState) -> LSTMState:
    return tuple(x.index_copy(1, rows, y) for x, y in zip(state, new, strict=True))
