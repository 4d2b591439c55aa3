"""The paper's Fig. 3: what Full NS predicts while a held-out character is drawn.

For a drawing with S strokes, row i (i = 0..S) starts from the canvas holding its
first i strokes (the "input canvas") and shows:

- **termination**: the probability that the character ends now (the termination
  network on that canvas; never asked on the blank canvas, row 0);
- **location**: the density of the next stroke's start, p(y | canvas), as a
  heatmap over the canvas, the true start as a hollow red circle (rows < S);
- **stroke**: for each step t of the next stroke, the density of its next control
  point as a heatmap, the points the step conditions on as red dots and the true
  next control point as a hollow red circle.

The stroke network predicts offsets between control points: ``cp[t+1] = cp[t] +
offset[t]``, so for t >= 1 the density of ``cp[t+1]`` at x is the offset density at
``x - cp[t]`` (a shift). At t = 0 the known point is the start y, the first point of
the curve, ``y = 0.8 cp[0] + 0.2 cp[1]`` (:mod:`pyrochar.geometry`); then ``cp[1] =
y + 0.8 offset[0]`` and the density of ``cp[1]`` at x is ``p_offset((x - y) / 0.8) /
0.8^2`` (a shift and a scaling, with its Jacobian). The red dots are the start and
``cp[1..t]`` (``cp[0]`` lies off the curve, behind the start).

Densities are evaluated in normalized units at the centre of every pixel of the
heatmap (the 105 x 105 motor canvas mapped onto the cell) through the
distributions' ``log_prob``, all of them from the teacher-forced program
(:meth:`CharacterModel.teacher_forced_sites`), so any location or stroke
prior plugged into Full NS is shown as it is. A heatmap shows ``(density /
max density) ** 0.5`` (the square root keeps the tails visible) as a white-to-blue
ramp over the canvas ink in grey; each heatmap is scaled to its own maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..geometry import FIRST_WEIGHTS, controls_from_start_offsets
from ..models.base import evaluating
from ..models.batch import CharacterBatch, StrokeBatch
from ..splines import CENTER, SCALE
from .grids import TEXT, TITLE_HEIGHT, WHITE, font

HEAT_HUE = (8, 64, 160)  # the ramp runs from white to this blue
BAR_COLOUR = (31, 119, 180)
MARK_COLOUR = (220, 20, 20)
GAMMA = 0.5  # heatmap intensity = (density / max) ** GAMMA
MARGIN = 6  # px around and between cells
HEADER_HEIGHT = 22  # px of the column titles
CHUNK = 2048  # grid points per log_prob call


@dataclass
class Predictions:
    """Full NS's predictions along one drawing of S strokes (heatmaps of ``size`` px)."""

    canvases: np.ndarray  # (S + 1, 28, 28): canvas before stroke i, and after the last
    termination: np.ndarray  # (S,): p(character ends) after stroke i (row i + 1)
    location: np.ndarray  # (S, size, size): density of stroke i's start
    starts: np.ndarray  # (S, 2) true starts, normalized units
    steps: list[np.ndarray]  # per stroke (T_i, size, size): density of control point t + 1
    conditioned: list[list[np.ndarray]]  # per stroke, per step: the points it conditions on (m, 2)
    targets: list[np.ndarray]  # per stroke (T_i, 2): the true control point t + 1

    @property
    def n_strokes(self) -> int:
        return len(self.starts)


def pixel_points(size: int) -> torch.Tensor:
    """Normalized coordinates of the centres of a size x size cell's pixels: (size * size, 2).

    The cell shows the 105 x 105 motor canvas (as :mod:`pyrochar.viz` draws it): pixel
    (row v, column u) is at motor ``x = (u + 0.5) * 105 / size``, ``y = -(v + 0.5) * 105 / size``.
    """
    c = (torch.arange(size, dtype=torch.float64) + 0.5) * 105.0 / size
    v, u = torch.meshgrid(c, c, indexing="ij")
    x = (u - float(CENTER[0])) / SCALE
    y = (-v - float(CENTER[1])) / SCALE
    return torch.stack([x, y], -1).reshape(-1, 2).float()


def to_pixel(p_norm, size: int) -> tuple[float, float]:
    """A point in normalized units -> (x, y) pixel position in a size x size cell."""
    x = float(p_norm[0]) * SCALE + float(CENTER[0])
    y = float(p_norm[1]) * SCALE + float(CENTER[1])
    return x * size / 105.0, -y * size / 105.0


def _densities(dist, values_fn, n_points: int) -> torch.Tensor:
    """exp(dist.log_prob(values_fn(lo, hi))) over grid points in chunks -> (P, *batch)."""
    out = []
    for lo in range(0, n_points, CHUNK):
        hi = min(lo + CHUNK, n_points)
        out.append(dist.log_prob(values_fn(lo, hi)).exp())
    return torch.cat(out)


@torch.no_grad()
def stroke_predictions(model, controls, size: int = 105) -> Predictions:
    """Full NS's predictions for one drawing (control points per stroke, normalized units)."""
    if len(controls) == 0:
        raise ValueError("the drawing has no stroke")
    with evaluating(model):
        batch = CharacterBatch.from_control_points([controls]).to(model.device)
        batch = model.prepare_batch(batch)
        sites = {s.variable: s.fn for s in model.teacher_forced_sites(batch)[1]}
    s = StrokeBatch.from_characters(batch)  # strokes in drawing order (one drawing)
    cps = controls_from_start_offsets(s.starts, s.offsets, s.n_offsets).cpu()  # (S, T + 1, 2)
    starts = s.starts.cpu()
    n_off = s.n_offsets.cpu()
    pts = pixel_points(size).to(batch.starts.device)
    n_pts = len(pts)

    loc_dist = sites["loc"]  # batch (S,), event (2,)
    location = _densities(loc_dist, lambda lo, hi: pts[lo:hi, None, :], n_pts)  # (P, S)
    termination = sites["char_end"].probs.reshape(-1).cpu().numpy()

    offsets_dist = sites["offset"]  # batch (S, T), event (2,)
    n_strokes, t_max = s.offsets.shape[:2]
    steps: list[np.ndarray] = []
    if t_max > 0:
        # the point each step's offset is added to, and the scale between them
        w0 = FIRST_WEIGHTS[0]
        anchor = cps[:, :t_max].clone()  # cp[t]
        anchor[:, 0] = starts  # step 0: the start, cp[1] = y + w0 * offset[0]
        scale = torch.ones(n_strokes, t_max)
        scale[:, 0] = w0
        anchor, scale = anchor.to(pts.device), scale.to(pts.device)

        def values(lo, hi):
            return (pts[lo:hi, None, None, :] - anchor) / scale.unsqueeze(-1)

        dens = _densities(offsets_dist, values, n_pts) / (scale * scale)  # (P, S, T)
        dens = dens.cpu().numpy()
    for i in range(n_strokes):
        n_i = int(n_off[i])
        steps.append(dens[:, i, :n_i].T.reshape(n_i, size, size) if n_i else np.zeros((0, size, size)))
    conditioned = [
        [np.concatenate([starts[i : i + 1].numpy(), cps[i, 1 : t + 1].numpy()])
         for t in range(int(n_off[i]))]
        for i in range(n_strokes)
    ]  # fmt: skip
    targets = [cps[i, 1 : int(n_off[i]) + 1].numpy() for i in range(n_strokes)]
    return Predictions(
        canvases=batch.canvases[0].cpu().numpy(),
        termination=termination,
        location=location.cpu().numpy().T.reshape(n_strokes, size, size),
        starts=starts.numpy(),
        steps=steps,
        conditioned=conditioned,
        targets=targets,
    )


# ---------------------------------------------------------------------- drawing
def heatmap_image(density: np.ndarray, canvas: np.ndarray | None = None) -> Image.Image:
    """A density (size, size) as a white-to-blue ramp over the canvas ink in grey."""
    size = density.shape[0]
    d = np.nan_to_num(np.asarray(density, dtype=np.float64), nan=0.0, posinf=0.0)
    top = d.max()
    a = (d / top) ** GAMMA if top > 0 else np.zeros_like(d)
    hue = np.asarray(HEAT_HUE, dtype=np.float64)
    rgb = 255.0 * (1 - a[..., None]) + hue * a[..., None]  # (size, size, 3)
    if canvas is not None:
        ink = np.asarray(
            Image.fromarray((255 * np.clip(canvas, 0, 1)).astype(np.uint8), mode="L").resize(
                (size, size), Image.NEAREST
            ),
            dtype=np.float64,
        ) / 255.0
        rgb = rgb * (1 - 0.55 * ink[..., None])
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")


def _canvas_cell(canvas: np.ndarray, size: int) -> Image.Image:
    arr = (255 * (1.0 - np.clip(canvas, 0, 1))).astype(np.uint8)
    return Image.fromarray(arr, mode="L").resize((size, size), Image.NEAREST).convert("RGB")


def _dot(draw, p, size, r, filled):
    x, y = to_pixel(p, size)
    box = [x - r, y - r, x + r, y + r]
    if filled:
        draw.ellipse(box, fill=MARK_COLOUR)
    else:
        draw.ellipse(box, outline=MARK_COLOUR, width=2)


def _termination_cell(p: float | None, size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), WHITE)
    draw = ImageDraw.Draw(img)
    f = font(max(10, size // 9))
    if p is None:
        draw.text((6, size / 2 - 8), "not asked\n(blank canvas)", fill=(120, 120, 120), font=f)
        return img
    top, bottom = size // 6, size - size // 5
    x0, x1 = size * 3 // 8, size * 5 // 8
    draw.rectangle([x0, top, x1, bottom], outline=(160, 160, 160))
    h = (bottom - top) * float(p)
    draw.rectangle([x0, bottom - h, x1, bottom], fill=BAR_COLOUR)
    draw.text((6, bottom + 4), f"p = {p:.2f}", fill=TEXT, font=f)
    return img


def figure_size(n_strokes: int, n_step_columns: int, cell: int) -> tuple[int, int]:
    """(width, height) of :func:`prediction_figure` for a drawing of ``n_strokes`` strokes."""
    n_cols = 3 + n_step_columns
    n_rows = n_strokes + 1
    return (MARGIN + n_cols * (cell + MARGIN),
            TITLE_HEIGHT + HEADER_HEIGHT + n_rows * (cell + MARGIN) + MARGIN)


def step_columns(pred: Predictions, max_steps_shown: int) -> int:
    """How many stroke-step columns the figure has: the longest stroke, capped."""
    return min(max_steps_shown, max((len(s) for s in pred.steps), default=0))


def prediction_figure(pred: Predictions, cell: int = 120, max_steps_shown: int = 6,
                      title: str = "Full NS predictions") -> Image.Image:
    """Fig. 3 from :func:`stroke_predictions` (computed with ``size == cell``).

    Columns: input canvas, termination, location, then one per stroke step (the
    first ``max_steps_shown`` steps of each stroke). Size: :func:`figure_size`.
    """
    size = pred.location.shape[-1] if pred.n_strokes else cell
    if size != cell:
        raise ValueError(f"predictions were computed on {size} px heatmaps, the figure uses {cell}")
    n_steps = step_columns(pred, max_steps_shown)
    width, height = figure_size(pred.n_strokes, n_steps, cell)
    img = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(img)
    f = font(14)
    draw.text((MARGIN, 6), title, fill=TEXT, font=f)
    headers = ["input canvas", "termination", "location"] + [f"stroke: point {t + 1}"
                                                             for t in range(n_steps)]
    for c, h in enumerate(headers):
        draw.text((MARGIN + c * (cell + MARGIN), TITLE_HEIGHT + 2), h, fill=TEXT, font=font(12))
    r = max(2.0, cell / 40)
    for i in range(pred.n_strokes + 1):
        y0 = TITLE_HEIGHT + HEADER_HEIGHT + i * (cell + MARGIN)
        cells = [_canvas_cell(pred.canvases[i], cell),
                 _termination_cell(float(pred.termination[i - 1]) if i > 0 else None, cell)]
        if i < pred.n_strokes:
            loc = heatmap_image(pred.location[i], pred.canvases[i])
            _dot(ImageDraw.Draw(loc), pred.starts[i], cell, r + 1, filled=False)
            cells.append(loc)
            for t in range(min(n_steps, len(pred.steps[i]))):
                hm = heatmap_image(pred.steps[i][t], pred.canvases[i])
                d = ImageDraw.Draw(hm)
                for p in pred.conditioned[i][t]:
                    _dot(d, p, cell, r, filled=True)
                _dot(d, pred.targets[i][t], cell, r + 1, filled=False)
                cells.append(hm)
        for c, im in enumerate(cells):
            x0 = MARGIN + c * (cell + MARGIN)
            img.paste(im, (x0, y0))
            draw.rectangle([x0 - 1, y0 - 1, x0 + cell, y0 + cell], outline=(200, 200, 200))
    return img


def pick_drawing(dataset, seed: int = 0, min_strokes: int = 2, max_strokes: int = 4) -> int:
    """A drawing of ``dataset`` with ``min_strokes``..``max_strokes`` strokes, at random.

    Falls back to any drawing when none has that many strokes.
    """
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    sizes = np.asarray(dataset.drawing_sizes)
    ok = np.flatnonzero((sizes >= min_strokes) & (sizes <= max_strokes))
    pool = ok if len(ok) else np.arange(len(dataset))
    return int(np.random.default_rng(seed).choice(pool))
