"""Batched BPL ink renderer (the BPL ink model of Lake et al.), in torch, on CPU or CUDA.

Inputs
    Strokes are uniform cubic B-splines given by their control points in
    NORMALIZED units, ``p_norm = (p_motor - (50, -50)) / 20``, padded into a tensor
    ``cps`` of shape (B, N, 2) with the number of real control points per stroke in
    ``n_cp`` (B,). Rows ``n_cp[b]:`` of ``cps[b]`` are never read (any finite or
    non-finite padding is fine). A stroke with ``n_cp == 0`` renders as a blank
    image. The spline basis and its evaluation are those of :mod:`pyrochar.bspline`
    (parameter ``s = linspace(2, n + 1, k)``, cardinal cubic B-spline, weights
    divided by their sums; the four non-zero basis functions per point).

Pixel convention
    Motor ``(x, y) = 20 p + (50, -50)``; image ``row = -y``, ``col = x``; pixel
    ``(r, c)`` of the 105 x 105 canvas has its centre at the real coordinates
    ``(row, col) = (r, c)`` (the BPL convention: ink of a point is shared between
    pixels ``floor`` and ``floor + 1`` of each coordinate). A point is dropped when
    ``row`` or ``col`` lies outside ``[0, 104]`` (BPL: ``floor < 0`` or ``ceil > 104``).

Evaluation points and ink (deterministic, per stroke)
    Each stroke is evaluated at ``k`` points equally spaced in the spline parameter,
    ``k = clamp(max(ceil(L / 1.5), ceil(199 * d_max / 1.8) + 1), 10, 1000)``, where
    ``L`` is the length in motor px of the curve evaluated at 200 points and
    ``d_max`` the largest gap between those 200 points. The first term is BPL's
    rule (one point per 1.5 px on average, BPL caps it at 200); the second raises
    the count for curves whose speed varies a lot, so that consecutive points are
    at most about 1.8 px (< 2 px) apart anywhere on curves up to ~1,500 px long
    (``k`` of 1000 at most). ``k`` depends on the stroke alone, so a
    stroke gets the same points whether it is rendered alone or in a batch (a batch
    is padded to its largest ``k`` with a validity mask). Ink per point follows BPL
    (``ink_pp = 2``, ``ink_max_dist = 2``): point i gets ``min(d_i, 2) * 2 / 2``
    units, ``d_i`` the distance to the previous point (``d_0 = d_1``), i.e. about 1
    unit per px of curve; a stroke with less than 2 units in total is scaled up to
    2 units (equal shares when its length is ~0). Unlike BPL, ink is computed on the
    whole evaluated curve before the off-canvas points are dropped.

Image model
    Ink is splatted bilinearly to the 4 neighbouring pixels, broadened twice with
    ``b * [[a/12, a/6, a/12], [a/6, 1-a, a/6], [a/12, a/6, a/12]]`` (a = 0.5,
    b = 6; zero padding at the canvas edge, as ``F.conv2d(padding=1)``), clamped to
    [0, 1], blurred twice with the normalized 11 x 11 Gaussian of sigma 0.5
    (zero padding), clamped to [0, 1] and, for the 28 x 28 images, downsampled with
    ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``
    (antialiased: a 3.75x reduction would otherwise alias the thin strokes).

How it is computed (speed)
    The result equals the literal pipeline above up to float rounding (tests check
    1e-5 against ``F.conv2d`` + ``F.interpolate``). Two exact rewrites make it fast:

    * Broadening is local: each stroke is splatted and broadened in a window of the
      canvas that holds its whole support (bounding box of its splatted ink + 2 px,
      clipped to the canvas and shifted inside it), of a size taken from
      ``WINDOW_SIZES`` per axis; windows that reach the canvas edge end there, so
      their zero padding is the canvas's. The broadening kernel is written as
      ``(b a / 12) [1,2,1]^T [1,2,1] + b (1 - 4a/3) delta`` (separable + identity).
    * After the first clamp everything is linear: blurring values in [0, 1] with a
      normalized non-negative kernel stays in [0, 1] (the second clamp only removes
      rounding), and both the two zero-padded blurs and the antialiased bilinear
      downsampling are separable. So the image is ``M X M^T`` with one (S, 105)
      matrix ``M = D @ G @ G`` (G the banded 105 x 105 blur matrix, D the
      interpolation matrix obtained by applying ``F.interpolate`` to the identity;
      ``D = I`` for the 105 x 105 images), applied to each window with its slice
      of ``M`` by two batched matmuls.

    Spline geometry (evaluation, ink, pixel fractions) is computed in float64,
    the images in float32 (``dtype``). On the CPU two runs are bit-identical, and a
    stroke rendered alone or in any batch gets the same image (bit-identical in the
    tests; at worst to float rounding, as the batched matmuls may block
    differently). On CUDA the splat uses atomic adds, so results may differ from
    the CPU's (and between runs) by ~1e-7.

Shared with the image model
    :func:`splat_strokes` (points, ink per point, bilinear shares) and
    :func:`broaden_unclamped` are the one copy of the ink model; the image model's
    renderer (:mod:`pyrochar.image.render`) splats a whole character on one canvas
    with them.

Canvases
    A canvas is the 28 x 28 image of the strokes drawn so far; blank = zeros. A new
    stroke is ADDED to the canvas so far: ``canvas_new = clamp(canvas +
    render_strokes(stroke), 0, 1)``. Because every stroke image is non-negative and
    already in [0, 1], this equals ``clamp(cumulative sum of the stroke images, 0,
    1)``, which is how :func:`prefix_canvases` computes all prefixes at once (one
    batched render of all strokes, then a running sum with the clamp, bit-identical
    to adding the strokes one by one). It differs from re-rendering the
    whole character from scratch only through the clamps (overlapping ink is
    clamped per stroke here, after the summed ink there).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pyrochar import bspline
from pyrochar.splines import CENTER, SCALE

__all__ = [
    "IMSIZE",
    "CANVAS_SIZE",
    "normalized_to_image",
    "pad_strokes",
    "n_eval_points_torch",
    "evaluate_splines_torch",
    "render_strokes_105",
    "render_strokes",
    "add_strokes_to_canvas",
    "render_character",
    "prefix_canvases",
    "Splat",
    "splat_strokes",
    "broaden_unclamped",
]

IMSIZE = 105
CANVAS_SIZE = 28
INK_PP = 2.0  # ink units per point at full spacing, and the minimum per stroke
INK_MAX_DIST = 2.0  # px; spacing at which a point gets INK_PP
INK_A = 0.5
INK_B = 6.0
N_BROADEN = 2
BLUR_SIGMA = 0.5
BLUR_SIZE = 11
N_BLUR = 2
SPLINE_GRAIN = 1.5  # px of curve per evaluated point (on average, BPL)
MAX_GAP = 1.8  # px, largest gap wanted between consecutive evaluated points
MIN_EVAL = 10
MAX_EVAL = 1000
LENGTH_PROBE = 200  # points used to measure the curve length
WINDOW_SIZES = (24, 40, 56, 72, 88, IMSIZE)  # window side lengths, per axis


# ------------------------------------------------------------------------- helpers


def normalized_to_image(p: torch.Tensor) -> torch.Tensor:
    """(..., 2) normalized (x, y) -> (..., 2) real image coordinates (row, col)."""
    x = p[..., 0] * SCALE + float(CENTER[0])
    y = p[..., 1] * SCALE + float(CENTER[1])
    return torch.stack([-y, x], dim=-1)


def pad_strokes(
    strokes: Sequence[np.ndarray | torch.Tensor],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (n_i, 2) control points -> (cps (B, N, 2) zero-padded, n_cp (B,) long)."""
    ts = [torch.as_tensor(np.asarray(s) if not torch.is_tensor(s) else s) for s in strokes]
    n = max([len(t) for t in ts], default=1)
    cps = torch.zeros(len(ts), max(n, 1), 2, dtype=dtype, device=device)
    for i, t in enumerate(ts):
        cps[i, : len(t)] = t.to(device=device, dtype=dtype).reshape(-1, 2)
    n_cp = torch.tensor([len(t) for t in ts], dtype=torch.long, device=device)
    return cps, n_cp


def n_eval_points_torch(
    cps: torch.Tensor,
    n_cp: torch.Tensor,
    grain: float = SPLINE_GRAIN,
    max_gap: float = MAX_GAP,
    lo: int = MIN_EVAL,
    hi: int = MAX_EVAL,
) -> torch.Tensor:
    """(B,) evaluation counts per stroke (0 where n_cp == 0).

    ``clamp(max(ceil(L / grain), ceil(199 * d_max / max_gap) + 1), lo, hi)`` with L
    the length of the curve evaluated at 200 points and d_max their largest gap.
    ``cps`` must be in the units of ``grain`` (motor px for the defaults).
    """
    c64 = cps.detach().to(torch.float64)
    n = n_cp.clamp(min=1)
    probe = torch.full_like(n, LENGTH_PROBE)
    s = bspline.parameters(n, probe, LENGTH_PROBE, torch.float64)  # (B, 200)
    pts = bspline.evaluate(c64, n, s)  # (B, 200, 2)
    gaps = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)  # (B, 199)
    gaps = torch.nan_to_num(gaps, nan=0.0, posinf=0.0)
    k_mean = torch.ceil(gaps.sum(dim=1) / grain)  # (B,)
    k_gap = torch.ceil(gaps.amax(dim=1) * (LENGTH_PROBE - 1) / max_gap) + 1.0
    k = torch.maximum(k_mean, k_gap).clamp(min=lo, max=hi).long()
    return torch.where(n_cp > 0, k, torch.zeros_like(k))


def evaluate_splines_torch(
    cps: torch.Tensor,
    n_cp: torch.Tensor,
    n_eval: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched spline evaluation of padded strokes.

    Args:
        cps: (B, N, 2) control points (any units; motor px when ``n_eval`` is None).
        n_cp: (B,) number of real control points per stroke (0 = empty stroke).
        n_eval: points per stroke: an int for all, a (B,) tensor, or None for
            ``n_eval_points_torch(cps, n_cp)`` (about one point per 1.5 px and
            gaps under 2 px).

    Returns:
        points (B, K, 2) with K = max n_eval, and mask (B, K) of the valid points
        (the first n_eval[b] of row b). Invalid points are set to 0.
    """
    b = cps.shape[0]
    n_cp = n_cp.to(device=cps.device, dtype=torch.long)
    if n_eval is None:
        ne = n_eval_points_torch(cps, n_cp)
    elif isinstance(n_eval, int):
        ne = torch.full((b,), n_eval, dtype=torch.long, device=cps.device)
    else:
        ne = n_eval.to(device=cps.device, dtype=torch.long)
    ne = torch.where(n_cp > 0, ne, torch.zeros_like(ne))
    k = max(int(ne.max().item()) if b else 0, 1)
    n = n_cp.clamp(min=1)
    s = bspline.parameters(n, ne, k, cps.dtype)  # (B, K)
    pts = bspline.evaluate(cps, n, s)  # (B, K, 2)
    mask = torch.arange(k, device=cps.device).view(1, k) < ne.view(b, 1)  # (B, K)
    pts = torch.where(mask.unsqueeze(-1), pts, torch.zeros_like(pts))
    return pts, mask


# ---------------------------------------------------------------------- operators


def _blur_matrix_np() -> np.ndarray:
    """(105, 105) banded matrix of one zero-padded 11-tap Gaussian pass (float64)."""
    r = BLUR_SIZE // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * BLUR_SIGMA**2))
    g /= g.sum()  # the separable factor of the normalized 2-D kernel
    i = np.arange(IMSIZE)
    d = i[None, :] - i[:, None]  # (105, 105) column minus row
    return np.where(np.abs(d) <= r, g[np.clip(d + r, 0, 2 * r)], 0.0)


@functools.lru_cache(maxsize=16)
def _output_matrix_np(size: int) -> np.ndarray:
    """(size, 105) matrix M = D @ G^N_BLUR (float64), read-only."""
    g = np.linalg.matrix_power(_blur_matrix_np(), N_BLUR)  # (105, 105)
    if size == IMSIZE:
        m = g
    else:
        eye = torch.eye(IMSIZE, dtype=torch.float64).view(IMSIZE, 1, 1, IMSIZE)
        d = F.interpolate(
            eye, size=(1, size), mode="bilinear", align_corners=False, antialias=True
        )  # (105, 1, 1, size): row j = the weights of input pixel j
        m = d.view(IMSIZE, size).numpy().T @ g  # (size, 105)
    m = np.ascontiguousarray(m)
    m.setflags(write=False)
    return m


_MATRIX_CACHE: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def _output_matrix(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (size, str(device), dtype)
    m = _MATRIX_CACHE.get(key)
    if m is None:
        m = torch.tensor(_output_matrix_np(size), dtype=dtype, device=device)
        _MATRIX_CACHE[key] = m
    return m


def _smooth121(x: torch.Tensor) -> torch.Tensor:
    """Zero-padded separable [1,2,1] x [1,2,1] filter of (B, H, W) images."""
    p = F.pad(x, (0, 0, 1, 1))  # (B, H+2, W)
    v = p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]  # (B, H, W)
    p = F.pad(v, (1, 1))  # (B, H, W+2)
    return p[:, :, :-2] + 2.0 * p[:, :, 1:-1] + p[:, :, 2:]  # (B, H, W)


def broaden_unclamped(x: torch.Tensor) -> torch.Tensor:
    """N_BROADEN zero-padded passes of the BPL 3x3 kernel over (B, H, W) splatted ink
    (linear: the ink of several strokes may be broadened together or apart)."""
    c_sep = INK_B * INK_A / 12.0
    c_id = INK_B * (1.0 - 4.0 * INK_A / 3.0)
    for _ in range(N_BROADEN):
        x = c_sep * _smooth121(x) + c_id * x
    return x


def _broaden(x: torch.Tensor) -> torch.Tensor:
    """N_BROADEN zero-padded passes of the BPL 3x3 kernel, then clamp to [0, 1]."""
    return broaden_unclamped(x).clamp(0.0, 1.0)


def _window_size(extent: torch.Tensor) -> torch.Tensor:
    sizes = torch.tensor(WINDOW_SIZES, device=extent.device)
    pos = torch.searchsorted(sizes, extent.clamp(max=IMSIZE))
    return sizes[pos]


# ------------------------------------------------------------------------ render


def _ink_per_point(pts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BPL ink per evaluated point: pts (B, K, 2) motor px, mask (B, K) -> (B, K)."""
    d = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)  # (B, K-1)
    d = torch.cat([d[:, :1], d], dim=1) if d.shape[1] else torch.zeros_like(mask, dtype=pts.dtype)
    d = torch.nan_to_num(d, nan=0.0, posinf=INK_MAX_DIST)
    ink = d.clamp(max=INK_MAX_DIST) * (INK_PP / INK_MAX_DIST)
    ink = torch.where(mask, ink, torch.zeros_like(ink))  # (B, K)
    total = ink.sum(dim=1, keepdim=True)  # (B, 1)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(ink.dtype)
    tiny = total < 2.22e-6
    scale = torch.where(total < INK_PP, INK_PP / total.clamp(min=1e-30), torch.ones_like(total))
    ink = torch.where(tiny, mask.to(ink.dtype) * (INK_PP / count), ink * scale)
    return ink


@dataclass
class Splat:
    """Where each evaluated point of B strokes puts its ink on the 105 x 105 canvas.

    ``rf, cf`` (B, K) long: the pixel at or above-left of the point; ``rc, cc`` the
    next row and column (clipped to the canvas); ``kept`` (B, K): the point is a
    real one on the canvas; ``values`` (B, 4K): ink shared bilinearly between the
    pixels ``(rf, cf), (rf, cc), (rc, cf), (rc, cc)``, in this order of blocks of K
    (zero for points not kept). Differentiable in the control points.
    """

    rf: torch.Tensor
    cf: torch.Tensor
    rc: torch.Tensor
    cc: torch.Tensor
    kept: torch.Tensor
    values: torch.Tensor


def splat_strokes(cps: torch.Tensor, n_cp: torch.Tensor, dtype: torch.dtype) -> Splat:
    """The ink of strokes cps (B, N, 2) normalized, n_cp (B,), as a :class:`Splat`.

    Points, ink per point and the off-canvas rule of the module docstring; geometry
    in float64 (float32 motor coordinates carry ~1e-5 px of rounding), the values
    in ``dtype``.
    """
    device = cps.device
    n_cp = n_cp.to(device=device, dtype=torch.long)
    geo = cps.to(torch.float64)
    motor = geo * SCALE + torch.tensor(CENTER, dtype=torch.float64, device=device)  # (B, N, 2)
    pts, mask = evaluate_splines_torch(motor, n_cp)  # (B, K, 2), (B, K)
    ink = _ink_per_point(pts, mask)  # (B, K)
    row = -pts[..., 1]  # (B, K)
    col = pts[..., 0]
    hi = float(IMSIZE - 1)
    kept = mask & (row >= 0) & (row <= hi) & (col >= 0) & (col <= hi)  # NaN -> False
    zero = torch.zeros_like(row)
    ink = torch.where(kept, ink, zero)
    row = torch.where(kept, row, zero)
    col = torch.where(kept, col, zero)
    r0f, c0f = torch.floor(row), torch.floor(col)
    fr, fc = row - r0f, col - c0f  # (B, K) in [0, 1)
    rf, cf = r0f.long(), c0f.long()
    rc, cc = (rf + 1).clamp(max=IMSIZE - 1), (cf + 1).clamp(max=IMSIZE - 1)
    gfr, gfc = fr.to(dtype), fc.to(dtype)
    gi = ink.to(dtype)
    values = torch.cat(
        [
            gi * (1 - gfr) * (1 - gfc),
            gi * (1 - gfr) * gfc,
            gi * gfr * (1 - gfc),
            gi * gfr * gfc,
        ],
        dim=1,
    )  # (B, 4K)
    return Splat(rf, cf, rc, cc, kept, values)


def _render(cps: torch.Tensor, n_cp: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """cps (B, N, 2) normalized -> (B, size, size) images; size 105 = no downsampling."""
    device = cps.device
    b = cps.shape[0]
    out = torch.zeros(b, size, size, dtype=dtype, device=device)
    if b == 0:
        return out
    sp = splat_strokes(cps, n_cp, dtype)
    rf, cf, rc, cc, kept = sp.rf, sp.cf, sp.rc, sp.cc, sp.kept

    # Support of the broadened ink of each stroke, and its window.
    big = torch.full_like(rf, IMSIZE)
    any_kept = kept.any(dim=1)  # (B,)
    lo_r = torch.where(kept, rf, big).amin(dim=1)
    lo_c = torch.where(kept, cf, big).amin(dim=1)
    hi_r = torch.where(kept, rc, -big).amax(dim=1)
    hi_c = torch.where(kept, cc, -big).amax(dim=1)
    lo_r = torch.where(any_kept, (lo_r - N_BROADEN).clamp(min=0), torch.zeros_like(lo_r))
    lo_c = torch.where(any_kept, (lo_c - N_BROADEN).clamp(min=0), torch.zeros_like(lo_c))
    hi_r = torch.where(any_kept, (hi_r + N_BROADEN).clamp(max=IMSIZE - 1), lo_r)
    hi_c = torch.where(any_kept, (hi_c + N_BROADEN).clamp(max=IMSIZE - 1), lo_c)
    wr = _window_size(hi_r - lo_r + 1)  # (B,)
    wc = _window_size(hi_c - lo_c + 1)
    r0 = torch.minimum(lo_r, IMSIZE - wr)  # window origin, inside the canvas
    c0 = torch.minimum(lo_c, IMSIZE - wc)

    # One flat buffer holding every stroke's window, strokes sorted by window shape
    # so that each shape is one contiguous (G, h, w) block; one splat for all.
    key = wr * (IMSIZE + 1) + wc  # (B,)
    order = torch.argsort(key, stable=True)  # (B,)
    hw = wr * wc  # (B,)
    hw_sorted = hw[order]
    off_sorted = torch.cumsum(hw_sorted, 0) - hw_sorted  # window start, sorted order
    offset = torch.empty_like(off_sorted)
    offset[order] = off_sorted  # (B,)
    r0c, c0c = r0.view(b, 1), c0.view(b, 1)
    wrc, wcc = wr.view(b, 1), wc.view(b, 1)

    def local(v: torch.Tensor, origin: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return torch.minimum((v - origin).clamp(min=0), side - 1)  # (B, K) in the window

    r_lo, r_hi = local(rf, r0c, wrc), local(rc, r0c, wrc)
    c_lo, c_hi = local(cf, c0c, wcc), local(cc, c0c, wcc)
    base = offset.view(b, 1)
    idx = torch.cat(
        [
            base + r_lo * wcc + c_lo,
            base + r_lo * wcc + c_hi,
            base + r_hi * wcc + c_lo,
            base + r_hi * wcc + c_hi,
        ],
        dim=1,
    )  # (B, 4K)
    buf = torch.zeros(int(hw.sum().item()), dtype=dtype, device=device)
    buf.index_add_(0, idx.reshape(-1), sp.values.reshape(-1))

    m = _output_matrix(size, device, dtype)  # (S, 105)
    mt = m.t()  # (105, S)
    shapes, counts = torch.unique_consecutive(key[order], return_counts=True)
    starts = off_sorted.tolist()
    first = 0
    for shape, count in zip(shapes.tolist(), counts.tolist(), strict=True):
        h, w = divmod(shape, IMSIZE + 1)
        g = order[first : first + count]  # strokes of this window shape
        start = starts[first]
        first += count
        x = _broaden(buf[start : start + count * h * w].view(count, h, w))  # (G, h, w)
        rows = r0[g].view(count, 1) + torch.arange(h, device=device).view(1, h)  # (G, h)
        cols = c0[g].view(count, 1) + torch.arange(w, device=device).view(1, w)  # (G, w)
        mr = mt[rows]  # (G, h, S)
        mc = mt[cols]  # (G, w, S)
        img = torch.bmm(mr.transpose(1, 2), torch.bmm(x, mc))  # (G, S, S)
        out[g] = img.clamp(0.0, 1.0)
    return out


def render_strokes_105(
    cps: torch.Tensor, n_cp: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """One 105 x 105 image per stroke: cps (B, N, 2) normalized, n_cp (B,) -> (B, 105, 105)."""
    return _render(cps, n_cp, IMSIZE, dtype)


def render_strokes(
    cps: torch.Tensor,
    n_cp: torch.Tensor,
    size: int = CANVAS_SIZE,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One size x size image per stroke (105 image, antialiased bilinear downsampling).

    cps (B, N, 2) normalized control points, n_cp (B,) -> (B, size, size) in [0, 1].
    """
    return _render(cps, n_cp, int(size), dtype)


def add_strokes_to_canvas(
    canvas: torch.Tensor, cps: torch.Tensor, n_cp: torch.Tensor
) -> torch.Tensor:
    """Add one new stroke's ink to each canvas so far: (B, S, S) -> (B, S, S).

    ``clamp(canvas + render_strokes(cps, n_cp), 0, 1)``; strokes with n_cp == 0
    leave their canvas unchanged.
    """
    ink = render_strokes(cps, n_cp, size=canvas.shape[-1], dtype=canvas.dtype)
    return (canvas + ink).clamp(0.0, 1.0)


def render_character(
    strokes: Sequence[np.ndarray | torch.Tensor],
    size: int = CANVAS_SIZE,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(size, size) canvas of one drawing given as (n_i, 2) normalized control points.

    The strokes are rendered in one batch and added one after the other (the same
    as :func:`add_strokes_to_canvas` stroke by stroke).
    """
    canvas = torch.zeros(size, size, device=device)
    if len(strokes) == 0:
        return canvas
    cps, n_cp = pad_strokes(strokes, device=device)
    imgs = render_strokes(cps, n_cp, size=size)  # (S, size, size)
    for img in imgs:
        canvas = (canvas + img).clamp(0.0, 1.0)
    return canvas


def prefix_canvases(
    cps: torch.Tensor,
    n_cp: torch.Tensor,
    stroke_mask: torch.Tensor | None = None,
    size: int = CANVAS_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvases before and after each stroke of a batch of drawings.

    Args:
        cps: (D, S, N, 2) normalized control points, S strokes per drawing (padded).
        n_cp: (D, S) control points per stroke.
        stroke_mask: (D, S) bool, True for real strokes (default ``n_cp > 0``);
            padded strokes (False, or n_cp == 0) contribute nothing.

    Returns:
        before (D, S, size, size): canvas before stroke s (zeros for s = 0);
        after (D, S, size, size): canvas after stroke s. Equal, bit for bit, to
        adding the strokes one by one with :func:`add_strokes_to_canvas`.
    """
    d, s = cps.shape[:2]
    n_cp = n_cp.to(device=cps.device, dtype=torch.long)
    real = n_cp > 0
    if stroke_mask is not None:
        real = real & stroke_mask.to(device=cps.device, dtype=torch.bool)
    imgs = torch.zeros(d, s, size, size, device=cps.device)  # (D, S, size, size)
    if bool(real.any()):
        imgs[real] = render_strokes(cps[real], n_cp[real], size=size)
    # Running sum with a clamp after each stroke: the same float operations as
    # add_strokes_to_canvas (torch.cumsum accumulates in double on CPU, which
    # would differ in the last bit).
    after = torch.empty_like(imgs)
    canvas = torch.zeros_like(imgs[:, 0])  # (D, size, size)
    for j in range(s):
        canvas = (canvas + imgs[:, j]).clamp(0.0, 1.0)
        after[:, j] = canvas
    before = torch.cat([torch.zeros_like(after[:, :1]), after[:, :-1]], dim=1)
    return before, after
