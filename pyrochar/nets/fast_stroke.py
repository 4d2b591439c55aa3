"""Teacher forcing of the stroke network, fast: the strokes sorted by length.

:func:`forward_sequence` computes what :meth:`StrokeNet.forward_sequence
<pyrochar.nets.stroke.StrokeNet.forward_sequence>` computes (tests/test_nets.py
compares the values and the gradients) without computing padded steps: a batch's
padded (strokes x longest stroke) layout holds far more steps than real ones. The
strokes are sorted by length, longest first, and

- ``"post"`` wiring: the LSTM runs once per group of ``lstm_group`` strokes, padded
  to the group's longest stroke; the attention once per chunk of strokes whose
  (strokes, steps, 196, A) intermediate holds about ``chunk_elements`` elements
  (small enough for its elementwise passes to run from the CPU's caches); the
  output layer on the real steps only;
- ``"sat"`` wiring: step t runs :meth:`StrokeNet.step` on the strokes still going
  only, a prefix of the sorted batch.

Sorted copies are made once with ``index_select`` and cut with ``split`` or
slices: both have cheap backward passes. docs/performance.md has the measurements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .stroke import LSTMState, StrokeContext, StrokeNet, previous_offsets

LSTM_GROUP = 128  # strokes per LSTM call
ATTENTION_CHUNK_ELEMENTS = 2**20  # one attention chunk's intermediate: 4 MB in float32


def forward_sequence(
    net: StrokeNet,
    ctx: StrokeContext,
    state: LSTMState,
    offsets: torch.Tensor,
    step_mask: torch.Tensor,
    lstm_group: int = LSTM_GROUP,
    chunk_elements: int = ATTENTION_CHUNK_ELEMENTS,
):
    """``net.forward_sequence(ctx, state, offsets, step_mask)``, computed on real steps only.

    offsets (N, T, 2), step_mask (N, T) -> raw GMM parameters (N, T, 6K) and
    stroke-end logits (N, T), zeros on padded steps.
    """
    n, t_max, _ = offsets.shape
    if n == 0:  # no stroke at all (an empty selection)
        return net.split_output(offsets.new_zeros(0, t_max, 6 * net.n_components + 1))
    prev = previous_offsets(offsets)  # (N, T, 2)
    steps = torch.arange(1, t_max + 1, device=offsets.device)
    lengths = torch.where(step_mask, steps, 0).amax(1)  # (N,) last real step + 1
    order = torch.argsort(lengths, descending=True, stable=True)  # (N,) longest first
    sorted_lengths = lengths.index_select(0, order).tolist()
    if net.wiring == "sat":
        outputs, target = _sat_sorted(net, ctx, state, prev, order, sorted_lengths)
    else:
        outputs, target = _post_sorted(
            net, ctx, state, prev, step_mask, order, sorted_lengths, lstm_group, chunk_elements
        )
    # outputs (M, 6K + 1) of the steps at flat index `target` (M,) in the caller's (N, T) layout
    padded = outputs.new_zeros(n * t_max, outputs.shape[-1]).index_copy(0, target, outputs)
    padded = padded.view(n, t_max, -1)  # (N, T, 6K + 1)
    if net.wiring == "sat":  # steps inside a stroke's length but not real
        padded = torch.where(step_mask.unsqueeze(-1), padded, 0.0)
    return net.split_output(padded)


def _sat_sorted(net, ctx, state, prev, order, sorted_lengths):
    """Show-Attend-Tell teacher forcing: a Python loop over the steps.

    Step t runs on the strokes still going only: a prefix of the sorted batch, so
    the state and the context are sliced, never gathered. Uses :meth:`StrokeNet.step`,
    the per-step model's own code. Returns the outputs (M, 6K + 1) of every step
    below each stroke's length and their flat index (M,) in the caller's (N, T) layout.
    """
    t_max = prev.shape[1]
    ctx = ctx.index_select(order)  # sorted
    state = tuple(s.index_select(1, order) for s in state)  # (L, N, H) each, sorted
    prev = prev.index_select(0, order)  # (N, T, 2), sorted
    lengths = torch.tensor(sorted_lengths)
    going = (lengths.unsqueeze(1) > torch.arange(t_max)).sum(0).tolist()  # strokes going at each t
    outputs, target = [], []
    for t in range(t_max):
        k = going[t]
        if k == 0:
            break
        raw, end, state = net.step(ctx.prefix(k), (state[0][:, :k], state[1][:, :k]), prev[:k, t])
        outputs.append(torch.cat([raw, end.unsqueeze(-1)], -1))  # (k, 6K + 1)
        target.append(order[:k] * t_max + t)
    return torch.cat(outputs), torch.cat(target)


def _post_sorted(
    net, ctx, state, prev, step_mask, order, sorted_lengths, lstm_group, chunk_elements
):
    """Teacher forcing with the ``post`` wiring, vectorized over steps.

    Returns the outputs (M, 6K + 1) of the M real steps and their flat index (M,)
    in the caller's (N, T) layout.
    """
    t_max = prev.shape[1]
    pe = net.offset_embed(prev.index_select(0, order))  # (N, T, E), sorted
    h0, c0 = (s.index_select(1, order) for s in state)  # (L, N, H) each, sorted
    out = _lstm_sorted(net, pe, h0, c0, sorted_lengths, lstm_group)  # (N, T, H)
    keys = ctx.feature_keys.index_select(0, order)  # (N, 196, A)
    features = ctx.features.index_select(0, order)  # (N, 196, C)
    context = _attend_sorted(net, keys, features, out, sorted_lengths, chunk_elements)  # (N, T, C)
    # The output layer on the real steps, gathered by their flat index in the sorted layout.
    flat = step_mask.index_select(0, order).flatten().nonzero().squeeze(-1)  # (M,)
    rows = order[flat // t_max]  # (M,) each step's stroke, in the caller's order

    def real_steps(x):  # (N, T, D) sorted -> (M, D)
        return x.flatten(0, 1).index_select(0, flat)

    start = ctx.start_embedding.index_select(0, rows)  # (M, E)
    outputs = net.output(real_steps(out), real_steps(context), real_steps(pe), start)  # (M, 6K + 1)
    return outputs, rows * t_max + flat % t_max


def _lstm_sorted(net, pe, h0, c0, sorted_lengths, group):
    """The LSTM over length-sorted strokes, in groups of ``group`` strokes.

    pe (N, T, E), h0 and c0 (L, N, H) -> outputs (N, T, H), zeros beyond each
    group's longest stroke.
    """
    t_max = pe.shape[1]
    outs = []
    for x, h, c, t in zip(
        pe.split(group),
        h0.split(group, 1),
        c0.split(group, 1),
        sorted_lengths[::group],
        strict=True,
    ):
        if t == 0:  # no step to compute in this group
            outs.append(x.new_zeros(x.shape[0], t_max, net.hidden))
            continue
        out, _ = net.lstm(x[:, :t], (h.contiguous(), c.contiguous()))  # (g, t, H)
        outs.append(F.pad(out, (0, 0, 0, t_max - t)))  # (g, T, H)
    return torch.cat(outs)


def _attend_sorted(net, keys, features, out, sorted_lengths, chunk_elements):
    """The gated attention for every step of length-sorted strokes, in chunks.

    keys (N, 196, A), features (N, 196, C), out (N, T, H) LSTM outputs;
    sorted_lengths, longest first. Returns the context (N, T, C), zeros beyond
    each chunk's longest stroke. Each stroke's keys are broadcast over its steps,
    never copied per step.
    """
    n, t_max, _ = out.shape
    n_locations, att_dim = keys.shape[1:]
    sizes, steps, first = [], [], 0  # strokes and steps of each chunk
    while first < n:
        t_chunk = sorted_lengths[first]  # the chunk's longest stroke (0: the rest have none)
        budget = chunk_elements // max(1, t_chunk * n_locations * att_dim)
        sizes.append(n - first if t_chunk == 0 else min(n - first, max(1, budget)))
        steps.append(t_chunk)
        first += sizes[-1]
    pieces = []
    chunks = zip(steps, keys.split(sizes), features.split(sizes), out.split(sizes), strict=True)
    for t, k, f, h in chunks:
        context = net.att(k, f, h[:, :t])  # (n, t, C)
        pieces.append(F.pad(context, (0, 0, 0, t_max - t)))  # (n, T, C)
    return torch.cat(pieces)
