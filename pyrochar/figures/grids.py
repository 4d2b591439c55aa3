"""Grids of characters: the paper's Fig. 5 (models side by side) and Fig. 8 (strokes).

Everything is drawn with pillow on top of :func:`pyrochar.viz.character_grid`; the
layout helpers here (titles, stacking) are shared by the other figures. Characters
are given, as everywhere in pyrochar, as a list of control-point arrays (n_i, 2)
per character, in normalized units.

Sizes are deterministic: a grid of ``n`` characters in ``n_cols`` columns of
``cell`` px is ``grid_size(n, n_cols, cell)``; a titled panel adds
``TITLE_HEIGHT`` on top; panels side by side are ``GAP`` px apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..splines import CENTER, SCALE, evaluate_spline, to_motor
from ..viz import STROKE_COLOURS, character_grid

Character = Sequence[np.ndarray]  # control points (n_i, 2) per stroke, normalized units

WHITE = (255, 255, 255)
TEXT = (20, 20, 20)
TITLE_HEIGHT = 28  # px of the band holding a panel's title
GAP = 16  # px between panels side by side
GRID_MARGIN = 4  # viz.character_grid's margin between cells
KEY_HEIGHT = 30  # px of Fig. 8's stroke key
CANVAS_CENTRE_NORM = (np.array([52.5, -52.5]) - CENTER) / SCALE  # centre of the 105 px canvas


# --------------------------------------------------------------------- layout
def font(size: int = 14) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` px (a fixed bitmap font on old pillows)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pillow < 10.1: no size argument
        return ImageFont.load_default()


def grid_size(n: int, n_cols: int, cell: int) -> tuple[int, int]:
    """(width, height) of ``viz.character_grid`` for ``n`` characters in ``n_cols`` columns."""
    n_cols = max(1, n_cols)
    n_rows = max(1, math.ceil(n / n_cols))
    full = cell + GRID_MARGIN
    return n_cols * full + GRID_MARGIN, n_rows * full + GRID_MARGIN


def titled(img: Image.Image, title: str, height: int = TITLE_HEIGHT, size: int = 15) -> Image.Image:
    """``img`` under a band of ``height`` px holding ``title`` (centred)."""
    out = Image.new("RGB", (img.width, img.height + height), WHITE)
    out.paste(img, (0, height))
    draw = ImageDraw.Draw(out)
    f = font(size)
    w = draw.textlength(title, font=f)
    draw.text((max(2, (img.width - w) / 2), (height - size) / 2), title, fill=TEXT, font=f)
    return out


def hstack(images: Sequence[Image.Image], gap: int = GAP) -> Image.Image:
    """Images side by side, top-aligned, ``gap`` px apart, on white."""
    width = sum(im.width for im in images) + gap * max(0, len(images) - 1)
    height = max((im.height for im in images), default=1)
    out = Image.new("RGB", (max(1, width), height), WHITE)
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def vstack(images: Sequence[Image.Image], gap: int = GAP) -> Image.Image:
    """Images one under the other, left-aligned, ``gap`` px apart, on white."""
    width = max((im.width for im in images), default=1)
    height = sum(im.height for im in images) + gap * max(0, len(images) - 1)
    out = Image.new("RGB", (width, max(1, height)), WHITE)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + gap
    return out


# ------------------------------------------------------------------ characters
def real_characters(data, n: int, seed: int = 0) -> list[list[np.ndarray]]:
    """``n`` distinct characters of ``data`` (a PreparedDataset) at random, one drawing each.

    Fewer when ``data`` holds fewer characters. Deterministic given ``seed``.
    """
    rng = np.random.default_rng(seed)
    keys = data.character_keys()
    chosen = rng.permutation(sorted(set(keys.tolist())))[:n]
    out = []
    for key in chosen:
        drawings = np.flatnonzero(keys == key)
        out.append([cp.copy() for cp in data.strokes(int(rng.choice(drawings)))])
    return out


def center_characters(characters: Sequence[Character]) -> list[list[np.ndarray]]:
    """Shift each character so that the box around its curves is centred on the canvas.

    The paper's Fig. 5 shows BPL samples centred this way (its footnote 2): they
    often protrude outside the image window otherwise.
    """
    out = []
    for ch in characters:
        ch = [np.asarray(cp, dtype=np.float64) for cp in ch]
        if not ch:
            out.append([])
            continue
        pts = np.concatenate([evaluate_spline(to_motor(cp)) for cp in ch])
        centre_motor = (pts.min(0) + pts.max(0)) / 2
        shift = CANVAS_CENTRE_NORM - (centre_motor - CENTER) / SCALE
        out.append([cp + shift for cp in ch])
    return out


def panel(characters: Sequence[Character], title: str, n_cols: int = 6, cell: int = 64,
          colour_strokes: bool = False) -> Image.Image:
    """One titled grid of characters."""
    return titled(character_grid(characters, n_cols=n_cols, cell=cell,
                                 colour_strokes=colour_strokes), title)


def side_by_side(panels: Mapping[str, Sequence[Character]], n_cols: int = 6, cell: int = 64,
                 colour_strokes: bool = False) -> Image.Image:
    """Fig. 5: one titled grid per entry of ``panels`` ({title: characters}), side by side.

    Size: width ``sum of grid widths + GAP * (panels - 1)``, height
    ``TITLE_HEIGHT + tallest grid`` (see :func:`grid_size`).
    """
    return hstack([panel(chars, title, n_cols, cell, colour_strokes)
                   for title, chars in panels.items()])


def stroke_key(width: int, n: int = len(STROKE_COLOURS)) -> Image.Image:
    """Fig. 8's stroke key: a swatch per stroke colour, numbered, ``KEY_HEIGHT`` px high."""
    img = Image.new("RGB", (width, KEY_HEIGHT), WHITE)
    draw = ImageDraw.Draw(img)
    f = font(13)
    x = 6
    draw.text((x, 8), "stroke key:", fill=TEXT, font=f)
    x += int(draw.textlength("stroke key:", font=f)) + 10
    for i in range(n):
        if x + 44 > width:
            break
        draw.line([(x, 15), (x + 22, 15)], fill=STROKE_COLOURS[i], width=4)
        draw.text((x + 25, 8), str(i + 1), fill=TEXT, font=f)
        x += 46
    return img


def stroke_decomposition(panels: Mapping[str, Sequence[Character]], n_cols: int = 6,
                         cell: int = 64) -> Image.Image:
    """Fig. 8: grids with each stroke in its own colour (one per temperature), and a key.

    Size: that of :func:`side_by_side` with ``colour_strokes=True``, plus
    ``KEY_HEIGHT`` px for the stroke key under it.
    """
    grids = side_by_side(panels, n_cols, cell, colour_strokes=True)
    return vstack([grids, stroke_key(grids.width)], gap=0)
