"""Tests of pyrochar.render: the batched BPL ink renderer and the canvases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyrochar import render as R
from pyrochar import splines as S


def motor_to_norm(cp) -> np.ndarray:
    return S.to_normalized(np.asarray(cp, dtype=np.float64))


def random_strokes(n: int, seed: int = 0) -> list[np.ndarray]:
    """Random strokes in normalized units: 1-9 control points, mostly on the canvas."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 10))
        start = rng.uniform(10, 95, size=2) * [1, -1]
        steps = rng.normal(scale=rng.uniform(2, 20), size=(k, 2))
        out.append(motor_to_norm(start + np.cumsum(steps, axis=0) - steps[0]))
    return out


STROKES = random_strokes(40) + [
    motor_to_norm([[30.0, -50.0], [50.0, -50.0], [70.0, -50.0]]),  # horizontal line
    motor_to_norm([[52.0, -52.0]]),  # a dot
    motor_to_norm([[0.5, -1.0], [20.0, -0.3], [40.0, -104.5], [104.9, -80.0]]),  # edges
    motor_to_norm([[-30.0, -50.0], [60.0, -50.0], [140.0, -60.0]]),  # crosses the edges
    motor_to_norm([[300.0, 300.0], [320.0, 310.0]]),  # far outside
]


def reference_render(strokes: list[np.ndarray], size: int = 28) -> torch.Tensor:
    """The literal pipeline, written independently: numpy ink + F.conv2d + F.interpolate."""
    cps, n_cp = R.pad_strokes(strokes, dtype=torch.float64)
    motor = cps * 20 + torch.tensor([50.0, -50.0], dtype=torch.float64)
    pts, mask = R.evaluate_splines_torch(motor, n_cp)
    imgs = np.zeros((len(strokes), 105, 105))
    for b in range(len(strokes)):
        p = pts[b][mask[b]].numpy()  # (k, 2) motor
        d = np.linalg.norm(np.diff(p, axis=0), axis=1)
        d = np.concatenate([d[:1], d]) if len(d) else np.zeros(len(p))
        ink = np.minimum(d, 2.0)
        if ink.sum() < 2.22e-6:
            ink = np.full(len(p), 2.0 / len(p))
        elif ink.sum() < 2.0:
            ink = ink * 2.0 / ink.sum()
        for (x, y), v in zip(p, ink, strict=True):
            r, c = -y, x
            if not (0 <= r <= 104 and 0 <= c <= 104):
                continue
            rf, cf = math.floor(r), math.floor(c)
            for rr, wr in ((rf, 1 - (r - rf)), (rf + 1, r - rf)):
                for cc, wc in ((cf, 1 - (c - cf)), (cf + 1, c - cf)):
                    if wr * wc > 0:
                        imgs[b, rr, cc] += v * wr * wc
    x = torch.tensor(imgs, dtype=torch.float32).unsqueeze(1)  # (B, 1, 105, 105)
    a, bb = 0.5, 6.0
    h = bb * torch.tensor([[a / 12, a / 6, a / 12], [a / 6, 1 - a, a / 6], [a / 12, a / 6, a / 12]])
    for _ in range(2):
        x = F.conv2d(x, h.view(1, 1, 3, 3), padding=1)
    x = x.clamp(0, 1)
    t = torch.arange(-5, 6, dtype=torch.float64)
    g = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 0.5**2))
    g = (g / g.sum()).float().view(1, 1, 11, 11)
    for _ in range(2):
        x = F.conv2d(x, g, padding=5)
    x = x.clamp(0, 1)
    if size != 105:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        ).clamp(0, 1)
    return x[:, 0]


@pytest.fixture(scope="module")
def batch():
    return R.pad_strokes(STROKES)


# ------------------------------------------------------------------ evaluation


def test_evaluate_matches_numpy_basis():
    rng = np.random.default_rng(3)
    strokes = [rng.normal(size=(k, 2)) * 30 for k in (1, 2, 3, 5, 11)]
    cps, n_cp = R.pad_strokes(strokes, dtype=torch.float64)
    cps[0, 1:] = float("nan")  # padding is never read
    pts, mask = R.evaluate_splines_torch(cps, n_cp, 37)
    assert pts.shape == (5, 37, 2) and mask.all()
    for i, cp in enumerate(strokes):
        np.testing.assert_allclose(pts[i].numpy(), S.bspline_basis(len(cp), 37) @ cp, atol=1e-10)


def test_evaluate_counts_and_gaps():
    strokes = [s * 20 for s in random_strokes(60, seed=5)]  # motor-sized, any offset
    strokes.append(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [120.0, 0.0]]))  # uneven
    cps, n_cp = R.pad_strokes(strokes, dtype=torch.float64)
    pts, mask = R.evaluate_splines_torch(cps, n_cp)
    counts = mask.sum(1)
    for i, cp in enumerate(strokes):
        k = int(counts[i])
        assert mask[i, :k].all() and not mask[i, k:].any()
        assert k >= min(max(S.n_eval_points(cp), 10), 1000)  # at least BPL's count
        p = pts[i, :k].numpy()
        np.testing.assert_allclose(p, S.bspline_basis(len(cp), k) @ cp, atol=1e-9)
        if k > 10:
            assert np.linalg.norm(np.diff(p, axis=0), axis=1).max() <= 2.0
    assert (pts[~mask] == 0).all()


# --------------------------------------------------------------------- images


def test_matches_literal_pipeline(batch):
    cps, n_cp = batch
    np.testing.assert_allclose(
        R.render_strokes(cps, n_cp).numpy(), reference_render(STROKES).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        R.render_strokes_105(cps, n_cp).numpy(),
        reference_render(STROKES, 105).numpy(),
        atol=1e-5,
    )


def test_ink_range_and_shapes(batch):
    cps, n_cp = batch
    img = R.render_strokes(cps, n_cp)
    assert img.shape == (len(STROKES), 28, 28) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1
    big = R.render_strokes_105(cps, n_cp)
    assert big.shape == (len(STROKES), 105, 105)
    assert big.min() >= 0 and big.max() <= 1 and big.max() > 0.99  # strokes saturate
    assert R.render_strokes(cps, n_cp, size=56).shape == (len(STROKES), 56, 56)


def test_stroke_outside_gives_blank(batch):
    cps, n_cp = batch
    assert (R.render_strokes(cps[-1:], n_cp[-1:]) == 0).all()
    assert (R.render_strokes_105(cps[-1:], n_cp[-1:]) == 0).all()
    assert (R.render_strokes(cps[:1], torch.zeros(1, dtype=torch.long)) == 0).all()


def test_ink_lies_on_the_stroke():
    line = motor_to_norm([[30.0, -40.0], [50.0, -40.0], [70.0, -40.0]])  # row 40
    dot = motor_to_norm([[20.0, -80.0]])  # row 80, col 20
    cps, n_cp = R.pad_strokes([line, dot])
    for size in (105, 28):
        img = R.render_strokes(cps, n_cp, size=size).double()
        grid = (torch.arange(size, dtype=torch.float64) + 0.5) * 105 / size - 0.5
        w = img.sum(dim=(1, 2))
        row = (img.sum(2) * grid).sum(1) / w
        col = (img.sum(1) * grid).sum(1) / w
        np.testing.assert_allclose(row.numpy(), [40.0, 80.0], atol=0.5)
        np.testing.assert_allclose(col.numpy(), [50.0, 20.0], atol=0.5)
        # the line's image is ~1 where the stroke is and 0 far away
        r, c = round((40 + 0.5) * size / 105 - 0.5), round((50 + 0.5) * size / 105 - 0.5)
        assert img[0, r, c] > (0.99 if size == 105 else 0.7)
        assert img[0, r + size // 4, c] == 0


def test_batch_equals_one_by_one(batch):
    cps, n_cp = batch
    together = R.render_strokes(cps, n_cp)
    alone = torch.cat([R.render_strokes(cps[i : i + 1], n_cp[i : i + 1]) for i in range(len(cps))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
    # padding to more control points changes nothing either
    wider = torch.cat([cps, torch.full_like(cps[:, :3], float("nan"))], dim=1)
    torch.testing.assert_close(R.render_strokes(wider, n_cp), together, rtol=0, atol=1e-6)


def test_deterministic_on_cpu(batch):
    cps, n_cp = batch
    assert torch.equal(R.render_strokes(cps, n_cp), R.render_strokes(cps, n_cp))
    assert torch.equal(R.render_strokes_105(cps, n_cp), R.render_strokes_105(cps, n_cp))


def test_gradients_flow():
    cps, n_cp = R.pad_strokes(STROKES[:5], dtype=torch.float32)
    cps.requires_grad_(True)
    R.render_strokes(cps, n_cp).sum().backward()
    assert torch.isfinite(cps.grad).all() and cps.grad.abs().sum() > 0


# -------------------------------------------------------------------- canvases


def test_sequential_add_equals_cumsum_clamp(batch):
    cps, n_cp = batch
    k = 12
    canvas = torch.zeros(1, 28, 28)
    steps = []
    for i in range(k):
        canvas = R.add_strokes_to_canvas(canvas, cps[i : i + 1], n_cp[i : i + 1])
        steps.append(canvas[0])
    per = R.render_strokes(cps[:k], n_cp[:k])
    running = torch.zeros(28, 28)
    expected = []
    for img in per:  # cumulative sum, clamped
        running = running + img
        expected.append(running.clamp(0, 1))
    expected = torch.stack(expected)
    assert torch.equal(torch.stack(steps), expected)
    torch.testing.assert_close(per.cumsum(0).clamp(0, 1), expected, rtol=0, atol=1e-6)
    assert torch.equal(R.render_character(STROKES[:k]), expected[-1])
    assert torch.equal(R.render_character([]), torch.zeros(28, 28))


def test_prefix_canvases_match_sequential_adds():
    drawings = [STROKES[0:3], STROKES[3:4], STROKES[4:9], [STROKES[-2], STROKES[9]]]
    d, s = len(drawings), max(len(x) for x in drawings)
    n_max = max(len(c) for x in drawings for c in x)
    cps = torch.full((d, s, n_max, 2), 7.0)  # padding garbage must not matter
    n_cp = torch.zeros(d, s, dtype=torch.long)
    mask = torch.zeros(d, s, dtype=torch.bool)
    for i, strokes in enumerate(drawings):
        c, n = R.pad_strokes(strokes)
        cps[i, : len(strokes), : c.shape[1]] = c
        n_cp[i, : len(strokes)] = n
        mask[i, : len(strokes)] = True
    n_cp_garbage = torch.where(mask, n_cp, torch.full_like(n_cp, 3))
    before, after = R.prefix_canvases(cps, n_cp_garbage, mask)
    assert before.shape == after.shape == (d, s, 28, 28)
    assert (before[:, 0] == 0).all()
    assert torch.equal(before[:, 1:], after[:, :-1])
    for i, strokes in enumerate(drawings):
        canvas = torch.zeros(1, 28, 28)
        for j in range(s):
            if j < len(strokes):
                c, n = R.pad_strokes([strokes[j]])
                canvas = R.add_strokes_to_canvas(canvas, c, n)
            assert torch.equal(after[i, j], canvas[0])  # padded strokes add nothing
        assert torch.equal(after[i, -1], R.render_character(strokes))
    # n_cp == 0 marks padding too when no mask is given
    before2, after2 = R.prefix_canvases(cps, n_cp)
    assert torch.equal(after2, after) and torch.equal(before2, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(batch):
    cps, n_cp = batch
    cpu = R.render_strokes(cps, n_cp)
    gpu = R.render_strokes(cps.cuda(), n_cp.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        R.render_strokes_105(cps.cuda(), n_cp.cuda()).cpu(),
        R.render_strokes_105(cps, n_cp),
        rtol=0,
        atol=1e-5,
    )
    before, after = R.prefix_canvases(cps.cuda().view(1, *cps.shape), n_cp.cuda().view(1, -1))
    _, after_cpu = R.prefix_canvases(cps.view(1, *cps.shape), n_cp.view(1, -1))
    torch.testing.assert_close(after.cpu(), after_cpu, rtol=0, atol=1e-5)


def test_non_finite_and_huge_control_points_stay_finite():
    cps = torch.tensor(
        [
            [[1e6, 1e6], [0.0, 0.0], [0.0, 0.0]],
            [[float("nan"), 0.0], [0.0, 0.0], [0.0, 0.0]],
            [[float("inf"), 0.0], [0.0, 0.0], [1.0, 1.0]],
            [[0.0, 0.0], [1e30, 1e30], [0.0, 0.0]],
        ]
    )
    img = R.render_strokes(cps, torch.tensor([3, 2, 3, 2]))
    assert torch.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    assert (img[1] == 0).all()  # a NaN point is off the canvas; so is the whole curve
