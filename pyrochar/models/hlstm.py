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

:meth:`HierarchicalLSTM.model` is that process as a Pyro program with the sites
of Full NS (``loc_{i}``, ``offset_{i}_{t}``, ``stroke_end_{i}_{t}``,
``char_end_{i}``). :meth:`HierarchicalLSTM.teacher_forced_distributions` is the
same distribution over an observed batch, with every LSTM run over whole padded
sequences (no Python loop over time).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro.distributions import Bernoulli
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..distributions import MaskedSteps, gmm_from_raw
from .base import CharacterModel
from .batch import (
    CharacterBatch,
    StrokeBatch,
    char_end_site,
    loc_site,
    offset_site,
    stroke_end_site,
)

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
    # sampling caps (REFERENCE.md section 8)
    max_strokes: int = 10
    max_steps: int = 50


class HierarchicalLSTM(CharacterModel):
    """The H-LSTM: networks + the Pyro program, behind the Full NS contract."""

    name = "hlstm"
    config_class = HLSTMConfig
    teacher_forced_plate = "strokes"
    uses_canvases = False

    def __init__(self, config: HLSTMConfig | None = None):
        config = config or HLSTMConfig()
        super().__init__(config)
        c = config
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

    # ------------------------------------------------ the generative model
    def model(self, batch_size: int = 1, max_strokes: int | None = None, max_steps: int | None = None):
        """The H-LSTM as a Pyro program, one site per variable (same sites as Full NS).

        ``max_strokes`` and ``max_steps`` (default: the config's caps) bound the
        loops, observed sites included. Returns the drawn characters as a
        :class:`CharacterBatch` (no canvases).
        """
        max_strokes = max_strokes or self.config.max_strokes
        max_steps = max_steps or self.config.max_steps
        b = batch_size
        # `alive` is True while a character has not ended. Characters of a batch
        # end after different numbers of strokes; a finished character's later
        # sites are masked out (they score 0 and their values are ignored), so one
        # batch can hold characters of any lengths.
        alive = torch.ones(b, dtype=torch.bool, device=self.device)
        h, state = self._char_step(self.char_start.expand(b, -1), None)  # h (B, H): before stroke 0
        starts, strokes = [], []
        with pyro.plate("characters", b):
            for i in range(max_strokes):
                start = pyro.sample(loc_site(i), self.location_distribution(h).mask(alive))  # (B, 2)
                offsets, n_offsets = self._sample_stroke(i, h, start, alive, max_steps)
                encoded = self.encode_strokes(offsets, n_offsets)  # (B, 2E)
                h, state = self._char_step(self.char_input(start, encoded), state)  # read stroke i
                ends = pyro.sample(char_end_site(i), self.termination_distribution(h).mask(alive))
                starts.append(start)
                strokes.append((offsets, n_offsets))
                alive = alive & (ends == 0)
                if not alive.any():
                    break
        return CharacterBatch.from_samples(starts, strokes)

    def _sample_stroke(self, i, h, start, alive, max_steps):
        """Offsets of stroke i, one step at a time. Returns offsets (B, T, 2), counts (B,)."""
        state = self.stroke_initial_state(h, start)
        # `drawing` is True while the stroke goes on: a finished stroke's later
        # offsets and decisions are masked like a finished character's strokes.
        drawing = alive.clone()
        prev = torch.zeros_like(start)  # (B, 2): no previous offset at t = 0
        n_offsets = torch.zeros(start.shape[0], dtype=torch.long, device=start.device)
        offsets = []
        k = self.config.n_components
        for t in range(max_steps):
            out, state = self.stroke_lstm(prev.unsqueeze(1), state)  # out (B, 1, Hs)
            raw, end_logit = self.stroke_outputs(out[:, 0])
            prev = pyro.sample(offset_site(i, t), gmm_from_raw(raw, k).mask(drawing))
            ends = pyro.sample(stroke_end_site(i, t), Bernoulli(logits=end_logit).mask(drawing))
            offsets.append(prev)
            n_offsets = n_offsets + drawing.long()
            drawing = drawing & (ends == 0)
            if not drawing.any():
                break
        return torch.stack(offsets, 1), n_offsets

    # ------------------------------------------------- the fast, teacher-forced path
    def teacher_forced_distributions(self, batch: CharacterBatch):
        """The distribution and observed value of every teacher-forced site.

        All real strokes of the batch (N of them) share one plate "strokes". Three
        LSTM calls over padded sequences: the stroke encoder over the N strokes
        (packed), the character LSTM over the S + 1 inputs of each drawing, the
        stroke LSTM over the T steps of the N strokes. Returns each stroke's
        drawing index (N,) and ``{site: (distribution with batch shape (N,), value)}``.
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
        sites = {
            "loc": (self.location_distribution(h_before), s.starts),
            "offsets": (MaskedSteps(gmm_from_raw(raw, k), s.step_mask), s.offsets),
            "stroke_ends": (MaskedSteps(Bernoulli(logits=end_logits), s.step_mask), s.stroke_ends),
            "char_end": (self.termination_distribution(h_after), s.char_ends),
        }
        return s.drawing, sites
