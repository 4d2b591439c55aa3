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


def test_blur_matrix_is_the_gaussian_and_spreads_with_sigma():
    a = image_render.blur_matrices(torch.tensor([0.5, 4.0], dtype=torch.float64))
    mid = a[:, 52]  # the response to a point in the middle, one axis
    torch.testing.assert_close(mid.sum(1), torch.ones(2, dtype=torch.float64))
    assert int((mid[0] > 0).sum()) == 21  # two passes of 11 taps
    spread = [float(((torch.arange(105.0, dtype=torch.float64) - 52) ** 2 * m).sum()) for m in mid]
    assert spread[0] < 1.0 < 10.0 < spread[1]  # variance ~ 2 sigma^2 for small sigma


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
