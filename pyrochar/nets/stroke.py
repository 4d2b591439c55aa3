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
import torch.nn.functional as F
from torch import nn

from .blocks import CanvasCNN, FastDropout, share_blank_canvases

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, hidden)


@dataclass
class StrokeContext:
    """What the stroke network reads for a batch of N strokes, computed once per stroke."""

    features: torch.Tensor  # (N, 196, C): the canvas feature map, one row per location
    feature_keys: torch.Tensor  # (N, 196, A): features projected for the attention scores
    start_embedding: torch.Tensor  # (N, E)


class StrokeNet(nn.Module):
    # Size of one chunk's (strokes, steps, 196, A) intermediate in the teacher-forced
    # attention, in elements (4 MB in float32): see _attend_sorted.
    attention_chunk_elements = 2**20
    # Strokes per LSTM call in the teacher-forced pass: see _post_sorted.
    lstm_group = 128

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
        # (N,28,28) -> (N,C,14,14): two same-size convs, one stride-2 conv. It trains
        # in float32 whatever the precision: in bfloat16 its features (read by the
        # attention) came out worse, 0.3-0.5 nats of held-out offsets NLL (docs/results.md).
        self.cnn = CanvasCNN(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
            low_precision_in_training=False,
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
            FastDropout(dropout),
            nn.Linear(head_hidden, 6 * n_components + 1),
        )

    # ------------------------------------------------------------------ pieces
    def encode(self, canvas: torch.Tensor, start: torch.Tensor) -> tuple[StrokeContext, LSTMState]:
        """canvas (N, 28, 28), start (N, 2) -> context and the initial LSTM state."""
        n = canvas.shape[0]
        features = share_blank_canvases(self.feature_map, canvas)  # (N, 196, C)
        start_embedding = self.start_embed(start)  # (N, E)
        init = torch.tanh(self.init_state(torch.cat([features.mean(1), start_embedding], -1)))
        init = init.view(n, 2, self.layers, self.hidden).permute(1, 2, 0, 3)  # (2, L, N, H)
        state = (init[0].contiguous(), init[1].contiguous())
        ctx = StrokeContext(features, self.att_keys(features), start_embedding)
        return ctx, state

    def feature_map(self, canvas: torch.Tensor) -> torch.Tensor:
        """canvas (N, 28, 28) -> features (N, 196, C), one row per location."""
        fmap = self.cnn(canvas)  # (N, C, 14, 14), channels-last
        return fmap.flatten(2).transpose(1, 2)  # (N, 196, C): a view, no copy

    def attend(self, ctx: StrokeContext, query: torch.Tensor):
        """Gated soft attention for one step. query (N, H).

        Returns the context (N, C) and the attention weights (N, 196).
        """
        weights = self._attention_weights(ctx.feature_keys, self.att_query(query).unsqueeze(1))  # (N, 196)
        context = torch.bmm(weights.unsqueeze(1), ctx.features).squeeze(1)  # (N, C)
        return torch.sigmoid(self.att_gate(query)) * context, weights

    def _attention_weights(self, keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Additive attention: softmax over locations of ``w . tanh(key + query)``.

        keys (..., 196, A) and query (..., 1, A), broadcast -> weights (..., 196).
        Computed as the softmax of ``2 w . sigmoid(2 (key + query))``, the same
        weights: tanh(x) = 2 sigmoid(2x) - 1, and the softmax ignores the constant
        ``-sum(w)``. torch's CPU tanh costs ten times its sigmoid, and this tensor
        is the largest of a teacher-forced pass.
        """
        hidden = torch.sigmoid(keys * 2.0 + query * 2.0)  # (..., 196, A)
        return torch.softmax(self.att_score(hidden).squeeze(-1) * 2.0, dim=-1)

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
        if n == 0:  # no stroke at all (an empty selection)
            raw = offsets.new_zeros(0, t_max, 6 * self.n_components)
            return raw, offsets.new_zeros(0, t_max)
        prev = torch.cat([offsets.new_zeros(n, 1, 2), offsets[:, :-1]], dim=1)  # (N, T, 2)
        # Both wirings sort the strokes by length, longest first, and compute each
        # stroke's steps up to its length only: on Omniglot a batch's padded (N, T)
        # layout holds 2.6 times as many steps as real ones.
        steps = torch.arange(1, t_max + 1, device=offsets.device)
        lengths = torch.where(step_mask, steps, 0).amax(1)  # (N,) last real step + 1
        order = torch.argsort(lengths, descending=True, stable=True)  # (N,) longest first
        sorted_lengths = lengths.index_select(0, order).tolist()
        if self.attention == "sat":
            outputs, target = self._sat_sorted(ctx, state, prev, order, sorted_lengths)
        else:
            outputs, target = self._post_sorted(ctx, state, prev, step_mask, order, sorted_lengths)
        # outputs (M, 6K + 1) of the steps at flat index `target` (M,) in the caller's layout
        padded = outputs.new_zeros(n * t_max, outputs.shape[-1]).index_copy(0, target, outputs)
        padded = padded.view(n, t_max, -1)
        if self.attention == "sat":  # steps inside a stroke's length but not real
            padded = padded * step_mask.unsqueeze(-1)
        return padded[..., :-1], padded[..., -1]  # (N, T, 6K), (N, T); zeros on padded steps

    def _sat_sorted(self, ctx, state, prev, order, sorted_lengths):
        """Show-Attend-Tell teacher forcing: a Python loop over the steps.

        Step t runs on the strokes still going only: a prefix of the sorted batch,
        so the state and the context are sliced, never gathered. Uses :meth:`step`,
        the per-step model's own code. Returns the outputs of every step below each
        stroke's length and their flat index in the caller's (N, T) layout.
        """
        t_max = prev.shape[1]
        ctx = StrokeContext(
            *(x.index_select(0, order) for x in (ctx.features, ctx.feature_keys, ctx.start_embedding))
        )
        state = tuple(s.index_select(1, order) for s in state)  # (L, N, H) each, sorted
        prev = prev.index_select(0, order)  # (N, T, 2), sorted
        lengths = torch.tensor(sorted_lengths)
        going = (lengths.unsqueeze(1) > torch.arange(t_max)).sum(0).tolist()  # strokes going at each t
        outputs, target = [], []
        for t in range(t_max):
            k = going[t]
            if k == 0:
                break
            sub = StrokeContext(ctx.features[:k], ctx.feature_keys[:k], ctx.start_embedding[:k])
            raw, end, state = self.step(sub, (state[0][:, :k], state[1][:, :k]), prev[:k, t])
            outputs.append(torch.cat([raw, end.unsqueeze(-1)], -1))  # (k, 6K + 1)
            target.append(order[:k] * t_max + t)
        return torch.cat(outputs), torch.cat(target)

    def _post_sorted(self, ctx, state, prev, step_mask, order, sorted_lengths):
        """Teacher forcing with the ``post`` wiring, vectorized over steps.

        On the length-sorted strokes, in groups padded to their own longest stroke:
        the LSTM runs once per group of ``lstm_group`` strokes, the attention once per
        chunk (see :meth:`_attend_sorted`), the output layer on the M real steps
        only. Sorted copies are made once with ``index_select`` and cut with
        ``split``: both have cheap backward passes (``index_add``, a concatenation).
        Returns the outputs of the real steps and their flat index in the caller's
        (N, T) layout.
        """
        t_max = prev.shape[1]
        pe = self.offset_embed(prev.index_select(0, order))  # (N, T, E), sorted
        h0, c0 = (s.index_select(1, order) for s in state)  # (L, N, H) each, sorted
        out = self._lstm_sorted(pe, h0, c0, sorted_lengths)  # (N, T, H)
        keys = ctx.feature_keys.index_select(0, order)  # (N, 196, A)
        features = ctx.features.index_select(0, order)  # (N, 196, C)
        context = self._attend_sorted(keys, features, out, sorted_lengths)  # (N, T, C)
        # The output layer on the real steps, gathered by their flat index in the sorted layout.
        flat = step_mask.index_select(0, order).flatten().nonzero().squeeze(-1)  # (M,)
        rows = order[flat // t_max]  # (M,) each step's stroke, in the caller's order
        per_step = torch.cat([out, context, pe], -1).flatten(0, 1).index_select(0, flat)  # (M, D)
        start = ctx.start_embedding.index_select(0, rows)  # (M, E)
        outputs = self.head(torch.cat([per_step, start], -1))  # (M, 6K + 1)
        return outputs, rows * t_max + flat % t_max

    def _lstm_sorted(self, pe, h0, c0, sorted_lengths):
        """The LSTM over length-sorted strokes, in groups of ``lstm_group``.

        pe (N, T, E), h0 and c0 (L, N, H) -> outputs (N, T, H), zeros beyond each
        group's longest stroke.
        """
        t_max = pe.shape[1]
        group = self.lstm_group
        outs = []
        for x, h, c, t in zip(
            pe.split(group), h0.split(group, 1), c0.split(group, 1), sorted_lengths[::group], strict=True
        ):
            if t == 0:  # no step to compute in this group
                outs.append(x.new_zeros(x.shape[0], t_max, self.hidden))
                continue
            out, _ = self.lstm(x[:, :t], (h.contiguous(), c.contiguous()))  # (g, t, H)
            outs.append(F.pad(out, (0, 0, 0, t_max - t)))
        return torch.cat(outs)

    def _attend_sorted(self, keys, features, out, sorted_lengths):
        """The gated ``post`` attention for every step of length-sorted strokes.

        keys (N, 196, A), features (N, 196, C), out (N, T, H) LSTM outputs;
        sorted_lengths, longest first. Returns the context (N, T, C), zeros beyond
        each chunk's longest stroke.

        A chunk's (strokes, steps, 196, A) intermediate of the additive scores stays
        near ``attention_chunk_elements``: small enough for its memory-bound
        elementwise passes (forward and backward) to run from the CPU's caches.
        Each stroke's keys are broadcast over its steps, never copied per step.
        """
        n, t_max, _ = out.shape
        n_locations, att_dim = keys.shape[1:]
        sizes, steps, first = [], [], 0  # strokes and steps of each chunk
        while first < n:
            t_chunk = sorted_lengths[first]  # the chunk's longest stroke (0: the rest have none)
            budget = self.attention_chunk_elements // max(1, t_chunk * n_locations * att_dim)
            sizes.append(n - first if t_chunk == 0 else min(n - first, max(1, budget)))
            steps.append(t_chunk)
            first += sizes[-1]
        pieces = []
        chunks = zip(steps, keys.split(sizes), features.split(sizes), out.split(sizes), strict=True)
        for t, k, f, h in chunks:
            h = h[:, :t]  # (n, t, H)
            weights = self._attention_weights(k.unsqueeze(1), self.att_query(h).unsqueeze(2))  # (n, t, 196)
            context = torch.sigmoid(self.att_gate(h)) * torch.bmm(weights, f)  # (n, t, C)
            pieces.append(F.pad(context, (0, 0, 0, t_max - t)))  # (n, T, C)
        return torch.cat(pieces)
