"""The stroke network: the parameters of the distributions of a stroke's offsets.

Given the canvas before a stroke and the stroke's start, at each step t it outputs
the 6K raw parameters of a K-component bivariate Gaussian mixture over offset t
(from control point t to t + 1; layout of :func:`pyrochar.distributions.gmm_from_raw`:
K logits, 2K means, 2K log scales, K correlations) and the logit of a Bernoulli:
1 when the stroke ends after offset t.

The architecture (sizes: the ``stroke_*`` fields of ``FullNSConfig``):

- a CNN without pooling turns the canvas into a feature map of 196 locations
  (14 x 14) of C features;
- the initial state of an L-layer LSTM comes from the mean-pooled features and
  an embedding of the start;
- the LSTM reads an embedding of the previous offset (zeros at t = 0);
- a gated additive attention (:class:`GatedAttention`) reads the feature map with
  the LSTM state as its query;
- an output layer on [LSTM output, attention context, previous-offset
  embedding, start embedding] gives the 6K + 1 numbers.

Two ways to wire the attention (``config.attention``):

- ``"sat"`` (Show-Attend-Tell): the context of step t is read with the LSTM state
  of step t-1 and fed into the LSTM's input, which forces a loop over time;
- ``"post"``: the LSTM reads the previous offsets only; the context of step t is
  read with the LSTM output of step t, so the LSTM runs over a whole sequence in
  one call and the attention of every step is one batched operation.

:meth:`StrokeNet.step` computes one step (the per-step Pyro model: sampling,
conditioning, completion). :meth:`StrokeNet.forward_sequence` is teacher forcing
over padded strokes written plainly, the definition;
:func:`pyrochar.nets.fast_stroke.forward_sequence` computes the same numbers
faster and is what training and scoring use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import PyrocharError
from .blocks import CanvasCNN, FastDropout, share_blank_canvases

if TYPE_CHECKING:
    from ..models.full_ns import FullNSConfig

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, hidden)


@dataclass
class StrokeContext:
    """What the stroke network reads for a batch of N strokes, computed once per stroke."""

    features: torch.Tensor  # (N, 196, C): the canvas feature map, one row per location
    feature_keys: torch.Tensor  # (N, 196, A): features projected for the attention scores
    start_embedding: torch.Tensor  # (N, E)

    def index_select(self, index: torch.Tensor) -> StrokeContext:
        """The rows ``index`` (M,), in that order."""
        return StrokeContext(
            self.features.index_select(0, index),
            self.feature_keys.index_select(0, index),
            self.start_embedding.index_select(0, index),
        )

    def prefix(self, k: int) -> StrokeContext:
        """The first k rows (views, no copy)."""
        return StrokeContext(self.features[:k], self.feature_keys[:k], self.start_embedding[:k])


def previous_offsets(offsets: torch.Tensor) -> torch.Tensor:
    """What each step reads: offsets (N, T, 2) -> offsets shifted by one step (N, T, 2), zeros at t = 0."""
    return torch.cat([offsets.new_zeros(offsets.shape[0], 1, 2), offsets[:, :-1]], dim=1)


class GatedAttention(nn.Module):
    """Soft additive attention over the feature map's locations, gated by a sigmoid.

    With features ``f_l`` (C) at location l and a query ``q`` (H, the LSTM state):
    weights ``a_l = softmax_l(w . tanh(K f_l + b + Q q))`` and context
    ``sigmoid(g . q + b_g) * sum_l a_l f_l`` (Show, Attend and Tell). The keys
    ``K f_l + b`` (``self.keys``) are computed once per stroke.
    """

    def __init__(self, feature_dim: int, query_dim: int, attention_dim: int):
        super().__init__()
        self.keys = nn.Linear(feature_dim, attention_dim)
        self.query = nn.Linear(query_dim, attention_dim, bias=False)
        self.score = nn.Linear(attention_dim, 1, bias=False)
        self.gate = nn.Linear(query_dim, 1)

    def weights(self, keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """keys (N, 196, A), queries (N, T, H) -> attention weights (N, T, 196).

        Computed as the softmax of ``2 w . sigmoid(2 (key + Q q))``: the same
        weights, as tanh(x) = 2 sigmoid(2x) - 1 and the softmax ignores the constant
        ``-sum(w)``; torch's CPU sigmoid is much cheaper than its tanh, and this is
        the largest tensor of a teacher-forced pass.
        """
        q = self.query(query).unsqueeze(2)  # (N, T, 1, A)
        hidden = torch.sigmoid(keys.unsqueeze(1) * 2.0 + q * 2.0)  # (N, T, 196, A)
        return torch.softmax(self.score(hidden).squeeze(-1) * 2.0, dim=-1)  # (N, T, 196)

    def forward(
        self, keys: torch.Tensor, features: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        """keys (N, 196, A), features (N, 196, C), queries (N, T, H) -> gated context (N, T, C)."""
        context = torch.bmm(self.weights(keys, query), features)  # (N, T, C)
        return torch.sigmoid(self.gate(query)) * context


class StrokeNet(nn.Module):
    """Canvas + start -> per step, raw GMM parameters of the next offset and a stroke-end logit.

    Reads ``config.n_components`` (K), ``stroke_channels``, ``stroke_embed`` (E),
    ``stroke_hidden`` (H), ``stroke_layers`` (L), ``attention`` (the wiring),
    ``attention_dim`` (A), ``stroke_head_hidden``, ``stroke_dropout`` and
    ``stroke_lstm_dropout``.

    The attention's layers live in ``self.att`` (``att.keys``, ``att.query``, ...);
    in the state dict they keep the flat names of the shipped weights
    (``att_keys``, ``att_query``, ...), see :func:`_flat_attention_names`.
    """

    def __init__(self, config: FullNSConfig):
        super().__init__()
        if config.attention not in ("post", "sat"):
            raise PyrocharError(
                f"attention={config.attention!r} in the Full NS config: use 'post' "
                "(attention read after the LSTM) or 'sat' (Show-Attend-Tell)"
            )
        c1, c2, c3 = config.stroke_channels
        embed, hidden, layers = config.stroke_embed, config.stroke_hidden, config.stroke_layers
        self.wiring = config.attention
        self.n_components = config.n_components
        self.layers, self.hidden = layers, hidden
        # (N, 28, 28) -> (N, C, 14, 14): two same-size convs, one stride-2 conv. It
        # trains in float32 whatever the precision: trained in bfloat16 its features
        # (read by the attention) came out worse (docs/results.md).
        self.cnn = CanvasCNN(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
            low_precision_in_training=False,
        )  # fmt: skip
        self.start_embed = nn.Sequential(nn.Linear(2, embed), nn.Tanh())
        self.offset_embed = nn.Sequential(nn.Linear(2, embed), nn.Tanh())
        self.init_state = nn.Linear(c3 + embed, 2 * layers * hidden)
        lstm_in = embed + (c3 if self.wiring == "sat" else 0)  # sat: [offset embedding, context]
        lstm_dropout = config.stroke_lstm_dropout if layers > 1 else 0.0
        self.lstm = nn.LSTM(lstm_in, hidden, layers, batch_first=True, dropout=lstm_dropout)
        self.att = GatedAttention(c3, hidden, config.attention_dim)
        self.head = nn.Sequential(
            nn.Linear(hidden + c3 + 2 * embed, config.stroke_head_hidden),
            nn.ReLU(),
            FastDropout(config.stroke_dropout),
            nn.Linear(config.stroke_head_hidden, 6 * config.n_components + 1),
        )
        self.register_state_dict_post_hook(_flat_attention_names)
        self.register_load_state_dict_pre_hook(_nested_attention_names)

    # ------------------------------------------------------------------ pieces
    def feature_map(self, canvas: torch.Tensor) -> torch.Tensor:
        """canvas (N, 28, 28) -> features (N, 196, C), one row per location."""
        fmap = self.cnn(canvas)  # (N, C, 14, 14), channels-last
        return fmap.flatten(2).transpose(1, 2)  # (N, 196, C): a view, no copy

    def encode(self, canvas: torch.Tensor, start: torch.Tensor) -> tuple[StrokeContext, LSTMState]:
        """canvas (N, 28, 28), start (N, 2) -> context and the initial LSTM state."""
        n = canvas.shape[0]
        features = share_blank_canvases(self.feature_map, canvas)  # (N, 196, C)
        start_embedding = self.start_embed(start)  # (N, E)
        init = torch.tanh(
            self.init_state(torch.cat([features.mean(1), start_embedding], -1))
        )  # (N, 2LH)
        init = init.view(n, 2, self.layers, self.hidden).permute(1, 2, 0, 3)  # (2, L, N, H)
        state = (init[0].contiguous(), init[1].contiguous())
        ctx = StrokeContext(features, self.att.keys(features), start_embedding)
        return ctx, state

    def attend(self, ctx: StrokeContext, query: torch.Tensor) -> torch.Tensor:
        """The gated attention context of one step: query (N, H) -> (N, C)."""
        return self.att(ctx.feature_keys, ctx.features, query.unsqueeze(1)).squeeze(1)

    def output(self, h, context, prev_embedding, start_embedding) -> torch.Tensor:
        """LSTM output (..., H), context (..., C), embeddings (..., E) -> (..., 6K + 1).

        The last number is the stroke-end logit, the others the raw GMM parameters
        (:meth:`split_output`).
        """
        return self.head(torch.cat([h, context, prev_embedding, start_embedding], dim=-1))

    @staticmethod
    def split_output(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., 6K + 1) -> raw GMM parameters (..., 6K) and the stroke-end logit (...)."""
        return out[..., :-1], out[..., -1]

    # -------------------------------------------------------------------- step
    def step(self, ctx: StrokeContext, state: LSTMState, prev_offset: torch.Tensor):
        """One step for N strokes: prev_offset (N, 2) (zeros at t = 0).

        Returns (raw GMM (N, 6K), end logit (N,), new state).
        """
        pe = self.offset_embed(prev_offset)  # (N, E)
        if self.wiring == "sat":
            context = self.attend(ctx, state[0][-1])  # read with h_{t-1}
            out, state = self.lstm(torch.cat([pe, context], -1).unsqueeze(1), state)  # (N, 1, H)
            h = out[:, 0]
        else:
            out, state = self.lstm(pe.unsqueeze(1), state)  # (N, 1, H)
            h = out[:, 0]
            context = self.attend(ctx, h)  # read with h_t
        raw, end_logit = self.split_output(self.output(h, context, pe, ctx.start_embedding))
        return raw, end_logit, state

    # ------------------------------------------------------- teacher forcing
    def forward_sequence(
        self, ctx: StrokeContext, state: LSTMState, offsets: torch.Tensor, step_mask: torch.Tensor
    ):
        """Teacher forcing over padded strokes, the plain definition.

        offsets (N, T, 2) observed offsets, T >= 1 (padding: any finite value);
        step_mask (N, T) True on real steps. Returns raw GMM parameters (N, T, 6K)
        and stroke-end logits (N, T); padded steps hold zeros. Step t reads offset
        t - 1, as :meth:`step` does. Every stroke runs over all T steps.
        """
        prev = previous_offsets(offsets)  # (N, T, 2)
        if self.wiring == "sat":  # the LSTM reads the context: one step at a time
            outputs = []
            for t in range(offsets.shape[1]):
                raw, end_logit, state = self.step(ctx, state, prev[:, t])
                outputs.append(torch.cat([raw, end_logit.unsqueeze(-1)], -1))  # (N, 6K + 1)
            out = torch.stack(outputs, 1)  # (N, T, 6K + 1)
        else:  # the LSTM reads the previous offsets only: all steps at once
            pe = self.offset_embed(prev)  # (N, T, E)
            h, _ = self.lstm(pe, state)  # (N, T, H)
            context = self.att(ctx.feature_keys, ctx.features, h)  # (N, T, C)
            start = ctx.start_embedding.unsqueeze(1).expand(-1, offsets.shape[1], -1)  # (N, T, E)
            out = self.output(h, context, pe, start)  # (N, T, 6K + 1)
        return self.split_output(torch.where(step_mask.unsqueeze(-1), out, 0.0))


# The state dict keeps the shipped weights' flat names of the attention's layers:
# "att_keys.weight" for the parameter named "att.keys.weight".
_NESTED, _FLAT = "att.", "att_"


def _rename_keys(state_dict: dict, old: str, new: str) -> None:
    """Rename, in place and keeping their order, the keys starting with ``old``."""
    if not any(key.startswith(old) for key in state_dict):
        return
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        state_dict[new + key[len(old) :] if key.startswith(old) else key] = value


def _flat_attention_names(module, state_dict, prefix, local_metadata) -> None:
    """State-dict post-hook of StrokeNet: ``att.keys.*`` -> ``att_keys.*`` (and query, score, gate)."""
    _rename_keys(state_dict, prefix + _NESTED, prefix + _FLAT)


def _nested_attention_names(module, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook of StrokeNet: ``att_keys.*`` -> ``att.keys.*`` (and the others)."""
    _rename_keys(state_dict, prefix + _FLAT, prefix + _NESTED)
