"""The Hierarchical LSTM (H-LSTM): the paper's first alternative model (Fig. 4).

A character is drawn stroke by stroke, like Full NS, but with no renderer: what
was drawn so far lives in the memory of a character-level LSTM. For stroke i:

1. the character LSTM's state h_i gives, through an MLP, a 2-D GMM for the start
   ``loc_i``;
2. a stroke LSTM, whose initial state comes from h_i and the start, gives step by
   step a GMM for the next offset between control points and whether the stroke
   ends after it;
3. a bidirectional LSTM (the stroke encoder) reads the stroke's offsets into one
   vector; the character LSTM reads [start, that vector] and moves to h_{i+1};
4. an MLP on h_{i+1} decides whether the character ends.

Before stroke 0 the character LSTM reads a learned "start" input. The paper
(eq. h_t = f_LSTM(y_{t-1}, f_enc(x_{t-1}), h_{t-1})) does not say how the H-LSTM
decides that a character ends; reading the state after the stroke, like Full
NS's termination network reads the canvas after it, keeps the same variables.

The hooks below are those four steps; :class:`CharacterModel` runs them as the
Pyro program with the sites of Full NS, and ``teacher_forced_sites`` gives the same
distribution over an observed batch, every LSTM run over whole padded sequences
(no Python loop over time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro.distributions import Bernoulli
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..distributions import gmm_from_raw
from .base import CharacterModel
from .batch import CharacterBatch, StrokeBatch
from .sites import TeacherForcedSite

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, hidden)


@dataclass
class HLSTMConfig:
    """Every size of the H-LSTM (paper appendix; the character LSTM's are tuned there)."""

    n_components: int = 20  # K of every GMM
    # character-level LSTM (the memory): tuned in the paper
    char_hidden: int = 256
    char_layers: int = 2
    char_dropout: float = 0.3  # between LSTM layers and on its output
    # stroke encoder: bidirectional LSTM, 1 layer (fixed in the paper)
    encoder_hidden: int = 256
    # location model: 2-layer MLP on the character state
    location_hidden: int = 256
    # "character ends": 2-layer MLP on the character state after the stroke
    termination_hidden: int = 64
    # stroke model: LSTM, 1 layer (fixed in the paper)
    stroke_hidden: int = 256
    start_embed: int = 64
    # caps, part of the model (docs/model.md, "Caps")
    max_strokes: int = 10
    max_steps: int = 50


class HierarchicalLSTM(CharacterModel):
    """The H-LSTM: networks + the Pyro program, behind the Full NS contract."""

    name = "hlstm"
    config_class = HLSTMConfig
    teacher_forced_plate = "strokes"
    uses_canvases = False

    def __init__(self, config: HLSTMConfig | None = None):
        super().__init__(config)
        c = self.config
        k = c.n_components
        enc_out = 2 * c.encoder_hidden  # final forward and backward states
        char_in = 2 + enc_out  # [previous start, encoded previous stroke]
        self.encoder = nn.LSTM(2, c.encoder_hidden, 1, batch_first=True, bidirectional=True)
        self.char_start = nn.Parameter(torch.zeros(char_in))  # input before stroke 0
        self.char_lstm = nn.LSTM(
            char_in, c.char_hidden, c.char_layers, batch_first=True,
            dropout=c.char_dropout if c.char_layers > 1 else 0.0,
        )  # fmt: skip
        self.char_dropout = nn.Dropout(c.char_dropout)
        self.location = nn.Sequential(
            nn.Linear(c.char_hidden, c.location_hidden), nn.ReLU(),
            nn.Linear(c.location_hidden, 6 * k),
        )  # fmt: skip
        self.termination = nn.Sequential(
            nn.Linear(c.char_hidden, c.termination_hidden), nn.ReLU(),
            nn.Linear(c.termination_hidden, 1),
        )  # fmt: skip
        self.start_embed = nn.Sequential(nn.Linear(2, c.start_embed), nn.Tanh())
        self.stroke_init = nn.Linear(c.char_hidden + c.start_embed, 2 * c.stroke_hidden)
        self.stroke_lstm = nn.LSTM(2, c.stroke_hidden, 1, batch_first=True)
        self.stroke_head = nn.Linear(c.stroke_hidden, 6 * k + 1)  # GMM + "stroke ends" logit

    # ------------------------------------------------------------ pieces
    def encode_strokes(self, offsets: torch.Tensor, n_offsets: torch.Tensor) -> torch.Tensor:
        """Stroke encoder: offsets (N, T, 2), counts (N,) -> (N, 2 * encoder_hidden).

        The sequences are packed, so padded steps are never read; the vector is the
        forward state after the last real offset and the backward state after the first.
        """
        lengths = n_offsets.clamp(min=1).cpu()  # finished characters' empty strokes: masked anyway
        packed = pack_padded_sequence(offsets, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.encoder(packed)  # h_n (2, N, E): forward, backward
        return torch.cat([h_n[0], h_n[1]], -1)

    def char_input(self, start: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        """What the character LSTM reads after a stroke: [start (N, 2), encoding (N, 2E)]."""
        return torch.cat([start, encoded], -1)

    def location_distribution(self, h: torch.Tensor):
        """Character state (N, H) -> BivariateGMM over the next start, batch (N,)."""
        return gmm_from_raw(self.location(h), self.config.n_components)

    def termination_distribution(self, h: torch.Tensor):
        """Character state after the stroke (N, H) -> Bernoulli("the character ends")."""
        return Bernoulli(logits=self.termination(h).squeeze(-1))

    def stroke_initial_state(self, h: torch.Tensor, start: torch.Tensor) -> LSTMState:
        """Character state (N, H) and start (N, 2) -> the stroke LSTM's (h0, c0), (1, N, Hs) each."""
        init = torch.tanh(self.stroke_init(torch.cat([h, self.start_embed(start)], -1)))
        h0, c0 = init.unsqueeze(0).chunk(2, dim=-1)
        return h0.contiguous(), c0.contiguous()

    def stroke_outputs(self, out: torch.Tensor):
        """Stroke LSTM outputs (..., Hs) -> raw GMM (..., 6K), "stroke ends" logit (...)."""
        o = self.stroke_head(out)
        return o[..., :-1], o[..., -1]

    def _char_step(self, inp: torch.Tensor, state: LSTMState | None):
        """One character-LSTM step: inp (B, D) -> output (B, H) (after dropout), new state."""
        out, state = self.char_lstm(inp.unsqueeze(1), state)
        return self.char_dropout(out[:, 0]), state

    # ------------------------------------------------ the per-step hooks
    def begin_character(self, batch_size: int) -> CharacterMemory:
        """The character LSTM reads the learned "start" input: h before stroke 0."""
        h, lstm = self._char_step(self.char_start.expand(batch_size, -1), None)
        return CharacterMemory(h, lstm)

    def p_loc(self, state: CharacterMemory, i, rows):
        """1. The start of stroke i, from the character state."""
        return self.location_distribution(state.h[rows])

    def begin_stroke(self, state: CharacterMemory, i, rows, start):
        """2. The stroke LSTM starts from the character state and the start..."""
        return self.stroke_initial_state(state.h[rows], start)

    def stroke_step(self, stroke: LSTMState, t, prev_offset, going):
        """... and gives, offset by offset, the next offset and whether the stroke ends."""
        out, stroke = self.stroke_lstm(prev_offset.unsqueeze(1), stroke)  # out (n, 1, Hs)
        raw, end_logit = self.stroke_outputs(out[:, 0])
        return gmm_from_raw(raw, self.config.n_components), Bernoulli(logits=end_logit), stroke

    def end_stroke(self, state: CharacterMemory, i, rows, start, offsets, n_offsets, stroke) -> None:
        """3. The stroke encoder reads the stroke; the character LSTM reads [start, encoding]."""
        encoded = self.encode_strokes(offsets, n_offsets)  # (n, 2E)
        h_c = tuple(x[:, rows] for x in state.lstm)
        h, (h_n, c_n) = self._char_step(self.char_input(start, encoded), h_c)
        state.h = state.h.index_put((rows,), h)
        state.lstm = (state.lstm[0].index_copy(1, rows, h_n), state.lstm[1].index_copy(1, rows, c_n))

    def p_char_end(self, state: CharacterMemory, i, rows, stroke):
        """4. Does the character end? Read off the state after the stroke."""
        return self.termination_distribution(state.h[rows])

    # ------------------------------------------------- the fast, teacher-forced path
    def teacher_forced_sites(self, batch: CharacterBatch):
        """Every variable of the batch at once: three LSTM calls over padded sequences.

        The stroke encoder over the N real strokes (packed), the character LSTM over
        the S + 1 inputs of each drawing, the stroke LSTM over the T steps of the N
        strokes; all strokes share the plate "strokes".
        """
        s = StrokeBatch.from_characters(batch)
        b, n_strokes = batch.stroke_mask.shape
        encoded = self.encode_strokes(s.offsets, s.n_offsets)  # (N, 2E)
        # Character LSTM inputs (B, S + 1, D): the start input, then [start_i, enc_i]
        # of each real stroke at position i + 1 (padding: zeros, read after the end).
        reads = self.char_input(s.starts, encoded)  # (N, D)
        table = reads.new_zeros(b, n_strokes, reads.shape[-1]).index_put((s.drawing, s.index), reads)
        inputs = torch.cat([self.char_start.expand(b, 1, -1), table], 1)  # (B, S + 1, D)
        out, _ = self.char_lstm(inputs)  # (B, S + 1, H); out[:, i] = state before stroke i
        out = self.char_dropout(out)
        h_before = out[s.drawing, s.index]  # (N, H): gives the start and the stroke
        h_after = out[s.drawing, s.index + 1]  # (N, H): after reading the stroke
        # Stroke LSTM over all strokes and steps at once: input = previous offset.
        prev = torch.cat([s.offsets.new_zeros(len(s.drawing), 1, 2), s.offsets[:, :-1]], 1)
        steps, _ = self.stroke_lstm(prev, self.stroke_initial_state(h_before, s.starts))
        raw, end_logits = self.stroke_outputs(steps)  # (N, T, 6K), (N, T)
        k = self.config.n_components
        every = torch.ones_like(s.index, dtype=torch.bool)  # (N,)
        stroke, step = s.index.unsqueeze(-1), torch.arange(s.offsets.shape[1], device=every.device)
        return s.drawing, [
            TeacherForcedSite("loc", self.location_distribution(h_before), s.starts, every, s.index),
            TeacherForcedSite("offset", gmm_from_raw(raw, k), s.offsets, s.step_mask, stroke, step),
            TeacherForcedSite("stroke_end", Bernoulli(logits=end_logits), s.stroke_ends, s.step_mask,
                              stroke, step),  # fmt: skip
            TeacherForcedSite("char_end", self.termination_distribution(h_after), s.char_ends, every, s.index),
        ]


@dataclass
class CharacterMemory:
    """What the H-LSTM remembers of the strokes drawn so far: the character LSTM's state."""

    h: torch.Tensor  # (B, H) its output (after dropout): what the location and termination MLPs read
    lstm: LSTMState  # (h, c), each (layers, B, H)
