"""The image model's renderer: token strokes -> Bernoulli probabilities of ink.

Differentiable, batched over B drawings (candidate parses) with any numbers of
strokes, on whatever device the inputs are (CPU or CUDA).

For drawing b with strokes ``cps[b, i, :n_cp[b, i]]`` (NORMALIZED units; a stroke
with ``n_cp == 0`` is padding and draws nothing):

1. **Ink** (the project's ink model, :mod:`pyrochar.render`, shared code): every
   stroke's spline is evaluated and its ink splatted bilinearly
   (:func:`pyrochar.render.splat_strokes`); the ink of all the drawing's strokes is
   added on one 105 x 105 canvas, broadened twice with the BPL 3 x 3 kernel
   (:func:`pyrochar.render.broaden_unclamped`) and clamped to [0, 1] once, as BPL
   renders a character (the 28 x 28 canvases of :mod:`pyrochar.render` clamp after
   each stroke instead; for one stroke both agree).
2. **Blur**: two passes of a normalized Gaussian of sigma ``blur[b]`` px with 11
   taps per axis (support radius 5 px per pass, 10 px for both: BPL's 11 x 11
   ``fspecial`` kernel applied twice), zero padding at the canvas edge. The kernel
   is built from sigma, so the result is differentiable in ``blur``; for large
   sigma it tends to a box of 11 px per pass. With ``blur = 0.5`` this is exactly the
   fixed blur of :func:`pyrochar.render.render_strokes_105`.
3. **Pixel noise**: ``p = (1 - eps) * blurred + eps / 2``.

The blur is separable: each pass is an 11-tap filter along the rows, then along
the columns (grouped convolutions, one kernel per drawing).
Gradients reach the control points through the splat's bilinear weights and ink
per point (the point count per stroke is piecewise constant), zero where the ink
is clamped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import render

__all__ = ["IMSIZE", "BLUR_TAPS", "ink_images", "blur_kernels", "blur_images", "render_probs"]

IMSIZE = render.IMSIZE
BLUR_TAPS = render.BLUR_SIZE  # 11 taps per axis and pass
N_BLUR = render.N_BLUR  # passes


def ink_images(cps: torch.Tensor, n_cp: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Broadened, clamped ink of B drawings: cps (B, S, P, 2), n_cp (B, S) -> (B, 105, 105)."""
    b, s = cps.shape[:2]
    dtype = cps.dtype if dtype is None else dtype
    flat = cps.reshape(b * s, cps.shape[2], 2)  # (B S, P, 2)
    sp = render.splat_strokes(flat, n_cp.reshape(b * s), dtype)
    drawing = torch.arange(b, device=cps.device).repeat_interleave(s).view(b * s, 1)  # (B S, 1)
    base = drawing * (IMSIZE * IMSIZE)
    idx = torch.cat(
        [
            base + sp.rf * IMSIZE + sp.cf,
            base + sp.rf * IMSIZE + sp.cc,
            base + sp.rc * IMSIZE + sp.cf,
            base + sp.rc * IMSIZE + sp.cc,
        ],
        dim=1,
    )  # (B S, 4K), the corners in the order of sp.values
    canvas = torch.zeros(b * IMSIZE * IMSIZE, dtype=dtype, device=cps.device)
    canvas = canvas.index_add(0, idx.reshape(-1), sp.values.reshape(-1))
    canvas = canvas.view(b, IMSIZE, IMSIZE)
    return render.broaden_unclamped(canvas).clamp(0.0, 1.0)


def blur_kernels(blur: torch.Tensor) -> torch.Tensor:
    """(B,) sigmas in px -> (B, 11) taps of one pass: the Gaussian of sigma ``blur``
    at offsets -5..5, normalized to sum to 1."""
    r = BLUR_TAPS // 2
    x = torch.arange(-r, r + 1, dtype=blur.dtype, device=blur.device)  # (11,)
    g = torch.exp(-(x**2) / (2.0 * blur.view(-1, 1) ** 2))  # (B, 11)
    return g / g.sum(dim=1, keepdim=True)


def blur_images(x: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """Blur (B, 105, 105) images with per-image sigmas (B,): N_BLUR separable passes
    of :func:`blur_kernels` along rows and columns, zero padding (one grouped
    convolution per axis and pass)."""
    b = x.shape[0]
    g = blur_kernels(blur.to(x.dtype))  # (B, 11)
    r = BLUR_TAPS // 2
    down, across = g.view(b, 1, BLUR_TAPS, 1), g.view(b, 1, 1, BLUR_TAPS)
    y = x.unsqueeze(0)  # (1, B, 105, 105): one channel per image
    for _ in range(N_BLUR):
        y = F.conv2d(y, down, padding=(r, 0), groups=b)
        y = F.conv2d(y, across, padding=(0, r), groups=b)
    return y.squeeze(0)


def render_probs(
    cps: torch.Tensor, n_cp: torch.Tensor, blur: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Bernoulli probabilities of ink for B drawings.

    Args:
        cps: (B, S, P, 2) token control points, normalized units (affine already
            applied); rows past ``n_cp`` are never read.
        n_cp: (B, S) control points per stroke, 0 for padded strokes.
        blur: (B,) Gaussian sigma in px (BPL's range is 0.5-16).
        eps: (B,) pixel noise in (0, 1).

    Returns:
        (B, 105, 105) probabilities ``(1 - eps) * blur(ink) + eps / 2`` in the dtype of ``cps``.
    """
    ink = ink_images(cps, n_cp)  # (B, 105, 105)
    blurred = blur_images(ink, blur).clamp(0.0, 1.0)  # the clamp only removes rounding
    e = eps.to(blurred.dtype).view(-1, 1, 1)
    return (1.0 - e) * blurred + e / 2.0
