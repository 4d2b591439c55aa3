"""The image model: the differentiable renderer, the token and image Pyro sites."""

from __future__ import annotations

import pytest
import torch

from pyrochar import render
from pyrochar.image import render as image_render

# normalized units; no evaluated point on a pixel boundary (the bilinear splat has a
# kink there, where finite differences straddle two slopes)
STROKE = [[-0.8037, 0.6011], [-0.2029, 0.9043], [0.4013, 0.3051], [0.9021, -0.4017]]
OTHER = [[-0.5047, -0.6023], [0.0031, -0.2057], [0.6041, -0.7033]]


def _padded(drawings, dtype=torch.float64):
    """List of drawings (lists of strokes) -> cps (B, S, P, 2), n_cp (B, S)."""
    s = max(len(d) for d in drawings)
    p = max(len(st) for d in drawings for st in d)
    cps = torch.zeros(len(drawings), s, p, 2, dtype=dtype)
    n_cp = torch.zeros(len(drawings), s, dtype=torch.long)
    for b, d in enumerate(drawings):
        for i, st in enumerate(d):
            cps[b, i, : len(st)] = torch.tensor(st, dtype=dtype)
            n_cp[b, i] = len(st)
    return cps, n_cp


# ------------------------------------------------------------------ the renderer


def test_render_equals_the_project_renderer_at_blur_half_and_no_noise():
    cps, n_cp = _padded([[STROKE]])
    got = image_render.render_probs(cps, n_cp, torch.tensor([0.5], dtype=torch.float64),
                                    torch.tensor([0.0], dtype=torch.float64))  # fmt: skip
    want = render.render_strokes_105(cps[0], n_cp[0], dtype=torch.float64)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_strokes_apart_add_up_as_in_the_project_renderer():
    cps, n_cp = _padded([[STROKE, OTHER]])  # two strokes that do not touch
    got = image_render.ink_images(cps, n_cp)
    each = render.render_strokes_105(cps[0], n_cp[0], dtype=torch.float64)
    eye = image_render.blur_images(got, torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(eye[0], each.sum(0), atol=1e-12, rtol=0)


def test_batches_of_drawings_with_different_stroke_counts():
    drawings = [[STROKE], [OTHER, STROKE], [OTHER]]
    cps, n_cp = _padded(drawings)
    blur = torch.tensor([0.7, 2.0, 9.0], dtype=torch.float64)
    eps = torch.tensor([0.01, 0.2, 1e-4], dtype=torch.float64)
    batched = image_render.render_probs(cps, n_cp, blur, eps)
    assert batched.shape == (3, 105, 105)
    for b, d in enumerate(drawings):
        c, n = _padded([d])
        alone = image_render.render_probs(c, n, blur[b : b + 1], eps[b : b + 1])
        torch.testing.assert_close(batched[b], alone[0], atol=1e-12, rtol=0)
    assert float(batched.min()) >= float(eps.min()) / 2 - 1e-15
    assert float(batched.max()) <= 1 - float(eps.min()) / 2 + 1e-15


def test_blur_is_the_gaussian_and_spreads_with_sigma():
    delta = torch.zeros(2, 105, 105, dtype=torch.float64)
    delta[:, 52, 52] = 1.0
    out = image_render.blur_images(delta, torch.tensor([0.5, 4.0], dtype=torch.float64))
    torch.testing.assert_close(out.sum((1, 2)), torch.ones(2, dtype=torch.float64))
    assert int((out[0, 52] > 0).sum()) == 21  # two passes of 11 taps
    g = image_render.blur_kernels(torch.tensor([0.5], dtype=torch.float64))[0]
    torch.testing.assert_close(out[0, 52, 52], (g * g).sum() ** 2)  # separable: (sum g^2)^2
    d2 = (torch.arange(105.0, dtype=torch.float64) - 52) ** 2
    spread = [float((d2 * o.sum(0)).sum()) for o in out]  # variance along the columns
    assert spread[0] < 1.0 < 10.0 < spread[1]  # about 2 sigma^2 for small sigma
    # near the edge the zero padding loses ink
    edge = torch.zeros(1, 105, 105, dtype=torch.float64)
    edge[0, 0, 52] = 1.0
    assert float(image_render.blur_images(edge, torch.tensor([2.0], dtype=torch.float64)).sum()) < 0.9


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 105, 105, generator=g, dtype=torch.float64)


def test_gradients_match_finite_differences():
    cps, n_cp = _padded([[STROKE], [OTHER, STROKE]])
    w = _weights()

    def f(c, blur, eps):
        return (w * image_render.render_probs(c, n_cp, blur, eps)).sum()

    cps.requires_grad_(True)
    blur = torch.tensor([1.3, 3.0], dtype=torch.float64, requires_grad=True)
    eps = torch.tensor([0.05, 0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (cps, blur, eps), eps=1e-6, atol=1e-5, rtol=1e-4)
    grad = torch.autograd.grad(f(cps, blur, eps), (cps,))[0]
    assert float(grad[0, 0, :4].abs().min()) > 1e-3  # every real control point matters
    assert float(grad[0, 1].abs().max()) == 0.0  # padding is never read


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_the_cpu():
    cps, n_cp = _padded([[STROKE], [OTHER, STROKE]], dtype=torch.float32)
    blur, eps = torch.tensor([1.0, 2.5]), torch.tensor([0.01, 0.1])
    cpu = image_render.render_probs(cps, n_cp, blur, eps)
    gpu = image_render.render_probs(cps.cuda(), n_cp.cuda(), blur.cuda(), eps.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


# ------------------------------------------------------------ the Pyro program


@pytest.fixture(scope="module")
def tiny_model():
    from conftest import TINY_FULL_NS

    from pyrochar.models import FullNSConfig, GenerateCharacter

    torch.manual_seed(0)
    return GenerateCharacter(FullNSConfig(**TINY_FULL_NS)).eval()


def test_the_program_has_the_documented_sites_and_shapes(tiny_model):
    import pyro
    import pyro.poutine as poutine

    from pyrochar.image.model import SITES, GenerateImage
    from pyrochar.models.sites import site_variable

    pyro.set_rng_seed(1)
    img = torch.zeros(105, 105)
    img[30:70, 50:53] = 1
    program = pyro.condition(GenerateImage(tiny_model).model, data={"image": img})
    trace = poutine.trace(program).get_trace(3, max_strokes=2, max_steps=3)
    draw = trace.nodes["_RETURN"]["value"]
    s, p = draw.type_cps.shape[1:3]
    shapes = {"shape_noise": (3, s, p, 2), "location_noise": (3, s, 2), "affine": (3, 4),
              "blur": (3,), "eps": (3,), "image": (105, 105)}  # fmt: skip
    sample_sites = [n for n, site in trace.nodes.items() if site["type"] == "sample"]
    ours = [n for n in sample_sites if n not in ("characters", "tokens") and site_variable(n) is None]
    assert ours == list(SITES)
    assert any(site_variable(n) == "loc" for n in sample_sites)  # the type model's own sites
    for name, shape in shapes.items():
        site = trace.nodes[name]
        assert tuple(site["value"].shape) == shape, name
        assert tuple(site["fn"].batch_shape) == (3,), name
    assert trace.nodes["image"]["is_observed"]
    assert not trace.nodes["blur"]["is_observed"]
    assert bool(((draw.values.blur >= 0.5) & (draw.values.blur < 16)).all())
    assert draw.probs.shape == (3, 105, 105)
    # padded control points score 0: changing them leaves the log-prob unchanged
    trace.compute_log_prob()
    noise = trace.nodes["shape_noise"]["value"].clone()
    pad = torch.arange(p) >= draw.n_cp.unsqueeze(-1)  # (3, S, P)
    noise[pad] = 100.0
    fn = trace.nodes["shape_noise"]["fn"]
    torch.testing.assert_close(fn.log_prob(noise), trace.nodes["shape_noise"]["log_prob"])


def test_the_image_log_prob_is_the_hand_computed_sum():
    from pyrochar.image.model import image_log_prob

    cps, n_cp = _padded([[STROKE], [OTHER, STROKE]])
    probs = image_render.render_probs(cps, n_cp, torch.tensor([1.0, 2.0], dtype=torch.float64),
                                      torch.tensor([0.01, 0.3], dtype=torch.float64))  # fmt: skip
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(2, 105, 105, generator=g, dtype=torch.float64) < 0.1).double()
    want = (x * probs.log() + (1 - x) * (1 - probs).log()).sum((1, 2))
    torch.testing.assert_close(image_log_prob(probs, x), want, atol=1e-8, rtol=1e-10)


def test_the_token_log_prob_is_the_hand_computed_sum():
    from pyrochar.image.model import TokenParams, TokenValues, token_log_prob

    _, n_cp = _padded([[STROKE], [OTHER, STROKE]])
    g = torch.Generator().manual_seed(4)
    shape = 0.1 * torch.randn(2, 2, 4, 2, generator=g, dtype=torch.float64)
    loc = 0.05 * torch.randn(2, 2, 2, generator=g, dtype=torch.float64)
    affine = torch.tensor([[1.1, 0.9, 0.1, -0.2], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    v = TokenValues(shape, loc, affine, torch.tensor([1.0, 3.0], dtype=torch.float64),
                    torch.tensor([0.1, 0.2], dtype=torch.float64))  # fmt: skip
    got = token_log_prob(TokenParams(), n_cp, v)

    def normal(x, sd):
        return -0.5 * (x / sd) ** 2 - torch.log(sd * torch.sqrt(torch.tensor(2 * torch.pi, dtype=x.dtype)))

    sd = torch.tensor(3.3593 / 20, dtype=torch.float64)
    lsd = torch.tensor([1.3536 / 20, 1.2056 / 20], dtype=torch.float64)
    want = torch.zeros(2, dtype=torch.float64)
    for b in range(2):
        for i in range(2):
            n = int(n_cp[b, i])
            want[b] += normal(shape[b, i, :n], sd).sum() + (normal(loc[b, i], lsd).sum() if n else 0)
    cov = torch.zeros(4, 4, dtype=torch.float64)
    cov[:2, :2] = torch.tensor([[0.0470, 0.0223], [0.0223, 0.0359]], dtype=torch.float64)
    cov[2, 2], cov[3, 3] = (5.2658 / 20) ** 2, (5.0867 / 20) ** 2
    d = affine - torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    maha = (d @ torch.linalg.inv(cov) * d).sum(1)
    want += -0.5 * maha - 0.5 * torch.logdet(2 * torch.pi * cov)
    want += -torch.log(torch.tensor(15.5, dtype=torch.float64)) - torch.log(torch.tensor(0.5 - 1e-4, dtype=torch.float64))
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-10)


def test_affine_warps_about_the_centre_and_its_gradients_match_finite_differences():
    from pyrochar.image.model import warp

    cps, n_cp = _padded([[STROKE], [OTHER, STROKE]])
    ident = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 2, dtype=torch.float64)
    torch.testing.assert_close(warp(cps, n_cp, ident), cps)
    scaled = warp(cps, n_cp, torch.tensor([[2.0, 2.0, 0.0, 0.0]] * 2, dtype=torch.float64))
    real = (torch.arange(4) < n_cp.unsqueeze(-1)).unsqueeze(-1).double()  # (B, S, P, 1)
    centre = lambda c: (c * real).sum((1, 2)) / real.sum((1, 2))  # noqa: E731
    torch.testing.assert_close(centre(scaled), centre(cps))  # the centre stays put
    w = _weights(5)

    def f(affine):
        token = warp(cps, n_cp, affine)
        return (w * image_render.render_probs(token, n_cp, torch.tensor([1.5, 2.5], dtype=torch.float64),
                                              torch.tensor([0.05, 0.05], dtype=torch.float64))).sum()  # fmt: skip

    affine = torch.tensor([[1.031, 0.967, 0.0213, -0.0117], [0.952, 1.043, -0.0311, 0.0271]],
                          dtype=torch.float64, requires_grad=True)  # fmt: skip
    assert torch.autograd.gradcheck(f, (affine,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_type_batch_and_type_controls_are_inverse():
    from pyrochar.image.model import type_batch, type_controls
    from pyrochar.models.batch import CharacterBatch

    drawings = [[STROKE], [OTHER, STROKE]]
    cps, n_cp = _padded(drawings)
    batch = type_batch(cps, n_cp)
    want = CharacterBatch.from_control_points([[torch.tensor(s).numpy() for s in d] for d in drawings],
                                              dtype=torch.float64)  # fmt: skip
    for f in ("starts", "offsets", "n_offsets", "n_strokes"):
        torch.testing.assert_close(getattr(batch, f), getattr(want, f))
    back, n_back = type_controls(batch)
    torch.testing.assert_close(n_back, n_cp)
    torch.testing.assert_close(back * (n_cp.unsqueeze(-1) > torch.arange(4)).unsqueeze(-1),
                               cps, atol=1e-12, rtol=0)  # fmt: skip
