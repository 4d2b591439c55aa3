"""The networks' fast paths compute what their plain definitions do."""

import pytest
import torch

from pyrochar.errors import PyrocharError
from pyrochar.models.full_ns import FullNSConfig
from pyrochar.nets import fast_stroke
from pyrochar.nets.blocks import FastDropout, share_blank_canvases
from pyrochar.nets.location import LocationNet
from pyrochar.nets.stroke import StrokeNet
from pyrochar.nets.termination import TerminationNet

SMALL = dict(
    n_components=3, stroke_channels=(4, 4, 8), stroke_embed=8, stroke_hidden=16, stroke_layers=2,
    attention_dim=8, stroke_head_hidden=16, location_channels=(4, 4, 4, 4), location_hidden=8,
    termination_channels=4, termination_hidden=8,
)  # fmt: skip


def small_stroke_net(attention: str) -> StrokeNet:
    torch.manual_seed(0)
    return StrokeNet(FullNSConfig(**SMALL, attention=attention)).eval()


def canvases(n: int, blank_rows=()) -> torch.Tensor:
    c = (torch.rand(n, 28, 28) > 0.85).float()
    c[list(blank_rows)] = 0.0
    return c


def stepwise(net: StrokeNet, ctx, state, offsets, step_mask):
    """The definition: one step at a time with StrokeNet.step, padded steps zeroed."""
    prev = torch.cat([offsets.new_zeros(offsets.shape[0], 1, 2), offsets[:, :-1]], 1)
    raws, ends = [], []
    for t in range(offsets.shape[1]):
        raw, end, state = net.step(ctx, state, prev[:, t])
        raws.append(raw)
        ends.append(end)
    m = step_mask.unsqueeze(-1)
    return torch.stack(raws, 1) * m, torch.stack(ends, 1) * step_mask


def ragged_strokes():
    """Strokes of every length, one without any step, in no particular order
    (the fast path sorts them): offsets (9, 7, 2), step_mask (9, 7), canvases, starts."""
    lengths = torch.tensor([3, 0, 7, 1, 7, 2, 5, 1, 4])
    n, t_max = len(lengths), 7
    step_mask = torch.arange(t_max) < lengths.unsqueeze(1)  # (N, T)
    offsets = torch.randn(n, t_max, 2) * step_mask.unsqueeze(-1)
    return offsets, step_mask, canvases(n, blank_rows=[1, 4, 5]), torch.rand(n, 2)


def outputs_and_gradients(net, forward, canvas, start, offsets, step_mask):
    """forward(net, ctx, state, offsets, step_mask) and the gradient of its sum."""
    net.zero_grad()
    ctx, state = net.encode(canvas, start)
    raw, end = forward(net, ctx, state, offsets, step_mask)
    (raw.sum() + end.sum()).backward()
    return raw.detach(), end.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("attention", ["post", "sat"])
def test_plain_teacher_forcing_equals_the_step_by_step_definition(attention):
    net = small_stroke_net(attention)
    offsets, step_mask, canvas, start = ragged_strokes()
    ctx, state = net.encode(canvas, start)
    raw, end = net.forward_sequence(ctx, state, offsets, step_mask)
    raw_ref, end_ref = stepwise(net, ctx, state, offsets, step_mask)
    assert torch.allclose(raw, raw_ref, atol=1e-5)
    assert torch.allclose(end, end_ref, atol=1e-5)
    assert (raw[~step_mask] == 0).all() and (end[~step_mask] == 0).all()


@pytest.mark.parametrize("attention", ["post", "sat"])
@pytest.mark.parametrize("group,chunk", [(128, 2**20), (2, 8 * 196 * 3)])
def test_fast_teacher_forcing_equals_the_plain_one(attention, group, chunk):
    # more strokes than an LSTM group and than an attention chunk in the second case
    net = small_stroke_net(attention)
    offsets, step_mask, canvas, start = ragged_strokes()

    def fast(*args):
        return fast_stroke.forward_sequence(*args, lstm_group=group, chunk_elements=chunk)

    raw, end, grads = outputs_and_gradients(net, fast, canvas, start, offsets, step_mask)
    raw_ref, end_ref, grads_ref = outputs_and_gradients(
        net, StrokeNet.forward_sequence, canvas, start, offsets, step_mask
    )
    assert torch.allclose(raw, raw_ref, atol=1e-5)
    assert torch.allclose(end, end_ref, atol=1e-5)
    assert (raw[~step_mask] == 0).all() and (end[~step_mask] == 0).all()
    for p, g, g_ref in zip(net.parameters(), grads, grads_ref, strict=True):
        assert torch.allclose(g, g_ref, atol=1e-4), p.shape


@pytest.mark.parametrize("attention", ["post", "sat"])
def test_teacher_forcing_of_no_stroke_at_all(attention):
    net = small_stroke_net(attention)
    ctx, state = net.encode(torch.zeros(0, 28, 28), torch.zeros(0, 2))
    offsets, step_mask = torch.zeros(0, 5, 2), torch.zeros(0, 5, dtype=torch.bool)
    for forward in (fast_stroke.forward_sequence, StrokeNet.forward_sequence):
        raw, end = forward(net, ctx, state, offsets, step_mask)
        assert raw.shape == (0, 5, 18) and end.shape == (0, 5)


def test_the_stroke_prior_teacher_forces_with_the_fast_path(monkeypatch):
    from pyrochar.priors import NetworkStrokePrior

    net = small_stroke_net("post")
    offsets, step_mask, canvas, start = ragged_strokes()
    _, expected = fast_stroke.forward_sequence(net, *net.encode(canvas, start), offsets, step_mask)

    def plain_path(*args):
        raise AssertionError("the plain definition is for the tests")

    monkeypatch.setattr(StrokeNet, "forward_sequence", plain_path)
    _, end_dist = NetworkStrokePrior(net, 3).sequence(canvas, start, offsets, step_mask)
    assert torch.equal(end_dist.logits, expected)


@pytest.mark.parametrize("attention", ["post", "sat"])
def test_state_dict_keeps_the_flat_attention_names(attention):
    net = small_stroke_net(attention)
    keys = list(net.state_dict())
    att = [k for k in keys if k.startswith("att")]
    assert att == [
        "att_keys.weight", "att_keys.bias", "att_query.weight", "att_score.weight",
        "att_gate.weight", "att_gate.bias",
    ]  # fmt: skip
    assert (
        keys.index("lstm.weight_ih_l0")
        < keys.index("att_keys.weight")
        < keys.index("head.0.weight")
    )
    other = StrokeNet(FullNSConfig(**SMALL, attention=attention))
    other.load_state_dict(net.state_dict())  # strict: every key found
    assert torch.equal(other.att.keys.weight, net.att.keys.weight)
    assert list(other.state_dict()) == keys


def test_networks_take_their_sizes_from_the_config():
    config = FullNSConfig(**SMALL, location_uses_prev_end=True)
    location, stroke, termination = LocationNet(config), StrokeNet(config), TerminationNet(config)
    assert location.head[-1].out_features == 6 * 3 and location.head[0].in_features == 4 + 2
    assert stroke.head[-1].out_features == 6 * 3 + 1 and stroke.lstm.hidden_size == 16
    assert termination.head[1].in_features == 4 * 1 * 1  # 28 -> 14 -> 7 -> 3 -> 1
    assert location.eval()(canvases(2), torch.zeros(2, 2)).shape == (2, 18)
    assert termination.eval()(canvases(2)).shape == (2,)
    with pytest.raises(PyrocharError, match="'post'.*'sat'"):
        StrokeNet(FullNSConfig(attention="later"))


def test_attention_weights_are_the_additive_tanh_scores():
    att = small_stroke_net("post").att
    keys, query = torch.randn(5, 196, 8), torch.randn(5, 3, 16)  # (N, 196, A), (N, T, H)
    scores = att.score(
        torch.tanh(keys.unsqueeze(1) + att.query(query).unsqueeze(2))
    )  # (N, T, 196, 1)
    expected = torch.softmax(scores.squeeze(-1), -1)  # (N, T, 196)
    assert torch.allclose(att.weights(keys, query), expected, atol=1e-6)


def test_blank_canvases_share_one_pass_with_the_same_values_and_gradients():
    net = small_stroke_net("post")
    canvas = canvases(6, blank_rows=[0, 2, 5])
    shared = share_blank_canvases(net.feature_map, canvas)
    direct = net.feature_map(canvas)
    assert shared.shape == direct.shape == (6, 196, 8)
    assert torch.allclose(shared, direct, atol=1e-6)
    weights = torch.randn_like(direct)
    (g_shared,) = torch.autograd.grad((shared * weights).sum(), net.cnn[0].weight)
    (g_direct,) = torch.autograd.grad((direct * weights).sum(), net.cnn[0].weight)
    assert torch.allclose(g_shared, g_direct, atol=1e-4)


def test_location_net_in_eval_mode_scores_blank_canvases_like_any_other():
    torch.manual_seed(0)
    net = LocationNet(FullNSConfig(**SMALL)).eval()
    canvas = canvases(5, blank_rows=[1, 3, 4])
    together = net(canvas, None)
    one_by_one = torch.cat([net(canvas[i : i + 1], None) for i in range(5)])
    assert torch.allclose(together, one_by_one, atol=1e-5)


def test_fast_dropout_keeps_units_with_probability_one_minus_p_and_rescales():
    torch.manual_seed(0)
    drop = FastDropout(0.3)
    x = torch.ones(50, 40, 101)  # an odd count of units: the mask's last word is cut
    y = drop(x)
    assert y.shape == x.shape
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    p = 19661 / 65536  # 0.3 rounded to a multiple of 2^-16
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.01
    # the units are dropped independently: neighbours (in one 64-bit word) too
    flat = kept.flatten()[: 4 * (kept.numel() // 4)].view(-1, 4).float()
    both = (flat[:, 0] * flat[:, 1]).mean().item()
    assert abs(both - 0.49) < 0.01
    assert FastDropout(0.3)(torch.ones(3, dtype=torch.bfloat16)).dtype == torch.bfloat16
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(FastDropout(0.0)(x), x)
    assert (FastDropout(1.0)(x) == 0).all()


def test_bf16_mixed_trains_the_stroke_cnn_in_float32_and_scores_with_it_in_bfloat16():
    from pyrochar.models import FullNSConfig, GenerateCharacter

    torch.manual_seed(0)
    model = GenerateCharacter(FullNSConfig())
    canvas = canvases(4)
    exact = model.stroke.feature_map(canvas)  # the stroke CNN has no batch norm or dropout
    model.set_precision("bf16-mixed")
    for mode, stroke_exact in (("train", True), ("eval", False)):
        getattr(model, mode)()
        mixed = model.stroke.feature_map(canvas)
        assert torch.equal(mixed, exact) is stroke_exact, mode
        assert mixed.dtype == torch.float32 and torch.allclose(mixed, exact, atol=0.05)
    # the other CNNs run in bfloat16 in both modes
    for mode in ("train", "eval"):
        getattr(model, mode)()
        torch.manual_seed(1)  # the same dropout masks in both passes
        mixed = model.termination.cnn(canvas)
        torch.manual_seed(1)
        exact = model.set_precision("fp32").termination.cnn(canvas)
        model.set_precision("bf16-mixed")
        assert not torch.equal(mixed, exact), mode
        if mode == "eval":  # (in training, batch norm over 4 canvases magnifies the rounding)
            assert torch.allclose(mixed, exact, atol=0.1)
