"""Pictures of characters with pillow: grids, stroke colours, data views.

Strokes are drawn from their minimal splines (evaluated as in
:func:`pyrochar.splines.evaluate_spline`) on a white cell, each stroke in its own
colour (the paper's Fig. 8) or all in black.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .atomic import atomic_open
from .checks import check_image_path
from .splines import evaluate_spline, to_motor

# Tableau's 10 categorical colours, then a few more: distinct on white.
STROKE_COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
BLACK = (0, 0, 0)


def _to_pixels(points_motor: np.ndarray, scale: float, pad: float) -> list[tuple[float, float]]:
    """Motor coordinates (x, y with y negative down) -> image pixels of a cell."""
    return [(pad + x * scale, pad - y * scale) for x, y in points_motor[:, :2]]


def draw_character(
    draw: ImageDraw.ImageDraw,
    strokes_motor: Sequence[np.ndarray],
    origin: tuple[int, int],
    cell: int,
    colours: Sequence[tuple[int, int, int]] | None = None,
    width: int = 2,
    points: bool = False,
) -> None:
    """Draw polylines (motor coordinates, one array per stroke) into a cell at ``origin``."""
    scale = cell / 105.0
    for i, stroke in enumerate(strokes_motor):
        colour = colours[i % len(colours)] if colours else BLACK
        px = [(origin[0] + x, origin[1] + y) for x, y in _to_pixels(np.asarray(stroke), scale, 0)]
        if len(px) == 1:
            x, y = px[0]
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour)
        else:
            draw.line(px, fill=colour, width=width, joint="curve")
        if points:
            for x, y in px:
                draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], outline=colour)


def splines_to_motor_polylines(controls_norm: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Control points (normalized units) -> evaluated curves in motor coordinates."""
    return [evaluate_spline(to_motor(np.asarray(cp))) for cp in controls_norm]


def character_grid(
    characters: Sequence[Sequence[np.ndarray]],
    n_cols: int | None = None,
    cell: int = 105,
    colour_strokes: bool = True,
    margin: int = 4,
) -> Image.Image:
    """A grid of characters given as control points per stroke (normalized units)."""
    n = len(characters)
    n_cols = n_cols or max(1, math.ceil(math.sqrt(n)))
    n_rows = max(1, math.ceil(n / n_cols))
    full = cell + margin
    img = Image.new("RGB", (n_cols * full + margin, n_rows * full + margin), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for k, controls in enumerate(characters):
        r, c = divmod(k, n_cols)
        x0, y0 = margin + c * full, margin + r * full
        tile = Image.new("RGB", (cell, cell), (255, 255, 255))  # clips strokes to the cell
        draw_character(
            ImageDraw.Draw(tile),
            splines_to_motor_polylines(controls),
            (0, 0),
            cell,
            STROKE_COLOURS if colour_strokes else None,
            width=max(1, cell // 40),
        )
        img.paste(tile, (x0, y0))
        draw.rectangle([x0 - 1, y0 - 1, x0 + cell, y0 + cell], outline=(220, 220, 220))
    return img


def canvas_image(canvas: np.ndarray, size: int) -> Image.Image:
    """A [0, 1] ink array (ink = 1) -> a grey image, ink black, scaled to ``size``."""
    arr = (255 * (1.0 - np.clip(canvas, 0, 1))).astype(np.uint8)
    return Image.fromarray(arr, mode="L").resize((size, size), Image.NEAREST).convert("RGB")


def data_figure(
    raw_strokes: Sequence[np.ndarray],
    controls_norm: Sequence[np.ndarray],
    canvas: np.ndarray,
    cell: int = 315,
) -> Image.Image:
    """The paper's Fig. 2: raw trajectory | minimal splines with control points | 28x28 canvas."""
    img = Image.new("RGB", (3 * cell + 40, cell + 20), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw_character(draw, raw_strokes, (10, 10), cell, STROKE_COLOURS, width=2, points=True)
    curves = splines_to_motor_polylines(controls_norm)
    draw_character(draw, curves, (cell + 20, 10), cell, STROKE_COLOURS, width=3)
    scale = cell / 105.0
    for i, cp in enumerate(controls_norm):
        colour = STROKE_COLOURS[i % len(STROKE_COLOURS)]
        for x, y in _to_pixels(to_motor(np.asarray(cp)), scale, 0):
            x, y = x + cell + 20, y + 10
            draw.rectangle([x - 4, y - 4, x + 4, y + 4], outline=colour, width=2)
    img.paste(canvas_image(canvas, cell), (2 * cell + 30, 10))
    for k in range(3):
        draw.rectangle([10 + k * (cell + 10) - 1, 9, 10 + k * (cell + 10) + cell, 10 + cell], outline=(200, 200, 200))
    return img


def completion_grid(
    completions: Sequence[Sequence[np.ndarray]],
    keep_strokes: int,
    observed_partial: np.ndarray | None = None,
    n_cols: int | None = None,
    cell: int = 105,
    margin: int = 4,
) -> Image.Image:
    """Completions (control points per stroke, normalized units): the observed first
    ``keep_strokes`` strokes in black, each completion's new strokes in colour, and
    the observed control points of a partial stroke (``observed_partial``) in black
    on top of the stroke they begin."""
    n = len(completions)
    n_cols = n_cols or max(1, math.ceil(math.sqrt(n)))
    n_rows = max(1, math.ceil(n / n_cols))
    full = cell + margin
    img = Image.new("RGB", (n_cols * full + margin, n_rows * full + margin), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    width = max(1, cell // 40)
    for k, controls in enumerate(completions):
        r, c = divmod(k, n_cols)
        x0, y0 = margin + c * full, margin + r * full
        tile = Image.new("RGB", (cell, cell), (255, 255, 255))
        td = ImageDraw.Draw(tile)
        curves = splines_to_motor_polylines(controls)
        draw_character(td, curves[keep_strokes:], (0, 0), cell, STROKE_COLOURS, width=width)
        draw_character(td, curves[:keep_strokes], (0, 0), cell, None, width=width)
        if observed_partial is not None and len(observed_partial) >= 2:
            draw_character(td, splines_to_motor_polylines([observed_partial]), (0, 0), cell, None,
                           width=width)
        img.paste(tile, (x0, y0))
        draw.rectangle([x0 - 1, y0 - 1, x0 + cell, y0 + cell], outline=(220, 220, 220))
    return img


def save_image(img: Image.Image, path: str | os.PathLike, name: str = "path") -> Path:
    """Write ``img`` to ``path`` atomically, in the format its extension names.

    The path is checked first (:func:`pyrochar.checks.check_image_path`: a known
    image extension, not a folder, a writable folder); a failed write (disk full,
    permissions) raises :class:`~pyrochar.errors.PyrocharError` and leaves any
    previous file at ``path`` as it was. Missing parent folders are made.
    """
    path = check_image_path(path, name)
    fmt = Image.registered_extensions()[path.suffix.lower()]
    with atomic_open(path, "wb") as f:
        img.save(f, format=fmt)
    return path
