"""The stroke network: canvas + start location -> offsets between control points.

A CNN without pooling turns the canvas into a feature map (64 x 14 x 14, i.e.
196 locations of 64 features). An LSTM (2 x 256) runs over the stroke's previous
offsets; at each step a soft additive attention reads the feature map, gated by a
sigmoid (Show-Attend-Tell). An output layer on [LSTM state, attention context,
previous-offset embedding, start embedding] gives a K-component 2-D GMM for the
next offset and one logit for "the stroke ends after this offset".

Two ways to wire the attention (``attention=``):

- ``"sat"`` (Show-Attend-Tell): the context at step t is read with the LSTM state
  of step t-1 and fed into the LSTM's input. This forces a Python loop over time.
- ``"post"``: the LSTM reads the previous offsets only; the context for step t is
  read with the LSTM output of step t. The LSTM then runs over the whole sequence
  in one call and every step's attention is one batched operation.

Both give :meth:`StrokeNet.step` (one step, used by the per-step Pyro model) and
:meth:`StrokeNet.forward_sequence` (teacher forcing over padded sequences, used by
training and scoring); for the same inputs they compute the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, hidden)


@dataclass
class StrokeContext:
    """What the stroke network reads for a batch of N strokes, computed once per stroke."""

    features: torch.Tensor  # (N, 196, C): the canvas feature map, one row per location
    feature_keys: torch.Tensor  # (N, 196, A): features projected for the attention scores
    start_embedding: torch.Tensor  # (N, E)


class StrokeNet(nn.Module):
    def __init__(
        self,
        n_components: int,
        channels: tuple[int, int, int] = (16, 32, 64),
        embed: int = 64,
        hidden: int = 256,
        layers: int = 2,
        attention_dim: int = 64,
        head_hidden: int = 256,
        dropout: float = 0.3,
        lstm_dropout: float = 0.2,
        attention: str = "post",
    ):
        super().__init__()
        if attention not in ("post", "sat"):
            raise ValueError(f"attention must be 'post' or 'sat', got {attention!r}")
        c1, c2, c3 = channels
        self.attention = attention
        self.n_components = n_components
        self.layers, self.hidden = layers, hidden
        # (N,1,28,28) -> (N,C,14,14): two same-size convs, one stride-2 conv.
        self.cnn = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.start_embed = nn.Sequential(nn.Linear(2, embed), nn.Tanh())
        self.offset_embed = nn.Sequential(nn.Linear(2, embed), nn.Tanh())
        self.init_state = nn.Linear(c3 + embed, 2 * layers * hidden)
        lstm_in = embed + (c3 if attention == "sat" else 0)
        self.lstm = nn.LSTM(
            lstm_in, hidden, layers, batch_first=True, dropout=lstm_dropout if layers > 1 else 0.0
        )
        self.att_keys = nn.Linear(c3, attention_dim)
        self.att_query = nn.Linear(hidden, attention_dim, bias=False)
        self.att_score = nn.Linear(attention_dim, 1, bias=False)
        self.att_gate = nn.Linear(hidden, 1)
        self.head = nn.Sequential(
            nn.Linear(hidden + c3 + 2 * embed, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, 6 * n_components + 1),
        )

    # ------------------------------------------------------------------ pieces
    def encode(self, canvas: torch.Tensor, start: torch.Tensor) -> tuple[StrokeContext, LSTMState]:
        """canvas (N, 28, 28), start (N, 2) -> context and the initial LSTM state."""
        n = canvas.shape[0]
        fmap = self.cnn(canvas.unsqueeze(1))  # (N, C, 14, 14)
        features = fmap.flatten(2).transpose(1, 2)  # (N, 196, C)
        start_embedding = self.start_embed(start)  # (N, E)
        init = torch.tanh(self.init_state(torch.cat([features.mean(1), start_embedding], -1)))
        init = init.view(n, 2, self.layers, self.hidden).permute(1, 2, 0, 3)  # (2, L, N, H)
        state = (init[0].contiguous(), init[1].contiguous())
        ctx = StrokeContext(features, self.att_keys(features), start_embedding)
        return ctx, state

    def attend(self, ctx: StrokeContext, query: torch.Tensor):
        """Gated soft attention for one step. query (N, H).

        Returns the context (N, C) and the attention weights (N, 196).
        """
        keys = ctx.feature_keys  # (N, 196, A)
        scores = self.att_score(torch.tanh(keys + self.att_query(query).unsqueeze(1)))
        weights = torch.softmax(scores.squeeze(-1), dim=-1)  # (N, 196)
        context = torch.bmm(weights.unsqueeze(1), ctx.features).squeeze(1)  # (N, C)
        return torch.sigmoid(self.att_gate(query)) * context, weights

    def _output(self, h, context, prev_embedding, start_embedding):
        """-> raw GMM parameters (..., 6K) and the stroke-end logit (...)."""
        out = self.head(torch.cat([h, context, prev_embedding, start_embedding], dim=-1))
        return out[..., :-1], out[..., -1]

    # -------------------------------------------------------------------- step
    def step(self, ctx: StrokeContext, state: LSTMState, prev_offset: torch.Tensor):
        """One step for N strokes: prev_offset (N, 2) (zeros at t = 0).

        Returns (raw GMM (N, 6K), end logit (N,), new state).
        """
        pe = self.offset_embed(prev_offset)  # (N, E)
        if self.attention == "sat":
            context, _ = self.attend(ctx, state[0][-1])  # read with h_{t-1}
            out, state = self.lstm(torch.cat([pe, context], -1).unsqueeze(1), state)
            h = out[:, 0]
        else:
            out, state = self.lstm(pe.unsqueeze(1), state)
            h = out[:, 0]
            context, _ = self.attend(ctx, h)  # read with h_t
        raw, end_logit = self._output(h, context, pe, ctx.start_embedding)
        return raw, end_logit, state

    # ------------------------------------------------------- teacher forcing
    def forward_sequence(
        self, ctx: StrokeContext, state: LSTMState, offsets: torch.Tensor, step_mask: torch.Tensor
    ):
        """Teacher forcing over padded strokes.

        offsets (N, T, 2) observed offsets (padding: any finite value);
        step_mask (N, T) True on real steps. Returns raw GMM parameters
        (N, T, 6K) and stroke-end logits (N, T); padded steps hold zeros.
        """
        n, t_max, _ = offsets.shape
        prev = torch.cat([offsets.new_zeros(n, 1, 2), offsets[:, :-1]], dim=1)  # (N, T, 2)
        if self.attention == "sat":
            raws, ends = [], []
            for t in range(t_max):
                raw, end, state = self.step(ctx, state, prev[:, t])
                raws.append(raw)
                ends.append(end)
            raw, end = torch.stack(raws, 1), torch.stack(ends, 1)  # (N, T, 6K), (N, T)
            zero = torch.zeros((), dtype=raw.dtype, device=raw.device)
            return torch.where(step_mask.unsqueeze(-1), raw, zero), torch.where(step_mask, end, zero)
        pe = self.offset_embed(prev)  # (N, T, E)
        out, _ = self.lstm(pe, state)  # (N, T, H)
        # Attention for every step at once, in the padded (N, T) layout: each stroke's
        # keys are broadcast over its steps (no gather of per-step copies of the
        # feature map, whose copying and backward scatter dominated the cost).
        query = self.att_query(out).unsqueeze(2)  # (N, T, 1, A)
        scores = self.att_score(torch.tanh(ctx.feature_keys.unsqueeze(1) + query))  # (N, T, 196, 1)
        weights = torch.softmax(scores.squeeze(-1), dim=-1)  # (N, T, 196)
        context = torch.bmm(weights, ctx.features)  # (N, T, C)
        context = torch.sigmoid(self.att_gate(out)) * context
        start = ctx.start_embedding.unsqueeze(1).expand(-1, t_max, -1)  # (N, T, E)
        raw, end = self._output(out, context, pe, start)  # (N, T, 6K), (N, T)
        zero = torch.zeros((), dtype=raw.dtype, device=raw.device)
        raw = torch.where(step_mask.unsqueeze(-1), raw, zero)
        end = torch.where(step_mask, end, zero)
        return raw, end
