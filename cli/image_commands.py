"""``pyrochar parse``: images of characters -> their most probable strokes;
``pyrochar exemplars``: new drawings of the character in one image."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from pyrochar.image import MAX_K
from pyrochar.image.exemplars import MAX_EXEMPLARS, TYPES

from .model_commands import _load_model, device_option, model_option
from .options import image_out_option, json_out_option, progress_bars, seed_option

CELL = 210  # px of a picture cell (the 105 x 105 frame at 2x)
CAPTION = 44  # px of caption under a cell


def _arrow(draw, tail, head, colour, size: float = 7.0) -> None:
    """An arrowhead at ``head`` pointing away from ``tail`` (pixel coordinates)."""
    d = np.subtract(head, tail, dtype=float)
    n = float(np.hypot(*d))
    if n < 1e-6:
        return
    d /= n
    side = np.array([-d[1], d[0]])
    back = np.asarray(head) - size * d
    draw.polygon([tuple(head), tuple(back + 0.5 * size * side), tuple(back - 0.5 * size * side)], fill=colour)


def _parse_cell(ink: np.ndarray, parse=None):
    """One cell: the image in light grey, the parse's strokes over it in colour with
    their order number at the start and an arrow at the middle (direction)."""
    from PIL import Image, ImageDraw

    from pyrochar.viz import STROKE_COLOURS, splines_to_motor_polylines

    grey = np.where(ink, 170, 255).astype(np.uint8)
    tile = Image.fromarray(grey, mode="L").resize((CELL, CELL), Image.NEAREST).convert("RGB")
    if parse is None:
        return tile
    draw = ImageDraw.Draw(tile)
    scale = CELL / 105.0
    for i, curve in enumerate(splines_to_motor_polylines(parse.drawn_strokes())):
        colour = STROKE_COLOURS[i % len(STROKE_COLOURS)]
        px = np.column_stack([curve[:, 0] * scale, -curve[:, 1] * scale])  # (k, 2) x, y pixels
        draw.line([tuple(p) for p in px], fill=colour, width=3, joint="curve")
        mid = len(px) // 2
        _arrow(draw, px[max(mid - 2, 0)], px[min(mid + 1, len(px) - 1)], colour)
        x, y = px[0]
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=colour)
        draw.text((x - 3, y - 6), str(i + 1), fill=(255, 255, 255))
    return tile


def _caption(parse, rank: int) -> str:
    s = parse.scores
    line = f"#{rank} w {parse.weight:.2f} total {s['total']:.1f}"
    parts = [f"{key} {s[key]:.1f}" for key in ("type", "token", "image") if key in s]
    return line + "\n" + " ".join(parts)


def parses_figure(images: list[np.ndarray], parses: list[list]) -> object:
    """Rows of cells, one row per image: the image, then its parses with captions."""
    from PIL import Image, ImageDraw

    n_cols = 1 + max(len(p) for p in parses)
    full_w, full_h = CELL + 6, CELL + CAPTION
    fig = Image.new("RGB", (n_cols * full_w + 6, len(images) * full_h + 6), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    for r, (ink, ps) in enumerate(zip(images, parses, strict=True)):
        y0 = 6 + r * full_h
        for c, p in enumerate([None, *ps]):
            x0 = 6 + c * full_w
            fig.paste(_parse_cell(ink, p), (x0, y0))
            draw.rectangle([x0 - 1, y0 - 1, x0 + CELL, y0 + CELL], outline=(200, 200, 200))
            text = "image" if p is None else _caption(p, c)
            draw.multiline_text((x0 + 2, y0 + CELL + 3), text, fill=(0, 0, 0))
    return fig


def _json_document(paths: list[Path], parses: list[list]) -> str:
    """All parses as one ``pyrochar-drawings`` document (readable by ``pyrochar score``)."""
    drawings = []
    for path, ps in zip(paths, parses, strict=True):
        for rank, p in enumerate(ps, 1):
            obj = p.to_json(label=f"{path} parse {rank}")
            obj["parse"] = {"image": str(path), "rank": rank, **obj["parse"]}
            drawings.append(obj)
    return json.dumps({"format": "pyrochar-drawings", "version": 1, "drawings": drawings}, indent=1) + "\n"


@click.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...",
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("-k", "k", type=click.IntRange(min=1, max=MAX_K), default=5, show_default=True,
              help="Parses per image.")
@model_option()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A trained checkpoint (default: the shipped weights).")
@click.option("--candidates", type=click.IntRange(min=1, max=100_000), default=None,
              help="Proposals scored per image (default: pyrochar.image.propose.N_CANDIDATES).")
@click.option("--steps", type=click.IntRange(min=0, max=10_000), default=None,
              help="Refinement steps (default: 150, pyrochar.image.parse.STEPS).")
@click.option("--no-refine", is_flag=True,
              help="Skip refinement: rank the proposals by their type log-prob alone (faster).")
@seed_option(default=0, help="Random seed of the proposals (repeatable parses).")
@image_out_option("parses.png", help="Picture to write: each image and its parses over it.")
@json_out_option("Also write the parses to this .json file (the project's drawing format plus "
                 "each parse's values).")
@device_option()
def parse(images, k, model_name, checkpoint, candidates, steps, no_refine, seed, out, json_out, device):
    """Parse images of characters into strokes: the K most probable parses of each.

    IMAGE: Omniglot 105 x 105 PNGs, or any PNG/JPEG (thresholded, cropped and
    scaled into the 105 x 105 frame).
    """
    from tqdm.auto import tqdm

    from pyrochar import distributed
    from pyrochar.atomic import atomic_write_text
    from pyrochar.image.parse import load_image
    from pyrochar.image.parse import parse as parse_image
    from pyrochar.image.propose import N_CANDIDATES
    from pyrochar.viz import save_image

    inks = [load_image(p) for p in images]  # every bad image is reported before any work
    device = distributed.init_from_env(device)  # under torchrun: each process parses its share
    model = _load_model(model_name, checkpoint, device)
    results = []
    mine = distributed.shard(inks)  # this process's images (all of them in one process)
    for ink in tqdm(mine, desc="parsing", unit="image", disable=not (distributed.is_root() and progress_bars())):
        results.append(parse_image(model, ink, k=k, n_candidates=candidates or N_CANDIDATES,
                                   steps=steps, seed=seed, refine=not no_refine))  # fmt: skip
    parts = distributed.gather(results)  # every rank's parses on rank 0, which alone writes
    if parts is None:
        return
    results = distributed.unshard(parts)  # in the order of IMAGE...
    save_image(parses_figure(inks, results), out, "--out")
    click.echo(f"wrote {out}: {sum(map(len, results))} parse(s) of {len(images)} image(s)")
    if json_out:
        atomic_write_text(json_out, _json_document(list(images), results))
        click.echo(f"wrote {json_out}")


# ------------------------------------------------------------------ exemplars

LABEL = 16  # px of a label line under a cell


def _ink_tile(ink: np.ndarray, size: int):
    """A 105 x 105 bool image as black ink on white, scaled to ``size`` px (nearest)."""
    from PIL import Image

    grey = np.where(ink, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((size, size), Image.NEAREST).convert("RGB")


def exemplars_figure(result) -> object:
    """The input image (labelled), its best parse's strokes small under it, and the
    exemplars in a grid beside them, each labelled with its number and its parse's."""
    from PIL import Image, ImageDraw

    n = result.n
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    small = CELL // 2
    left_h = CELL + LABEL + small + LABEL
    grid_x0 = 6 + CELL + 18
    width = grid_x0 + cols * (CELL + 6)
    height = 6 + max(left_h, rows * (CELL + LABEL)) + 6
    fig = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    fig.paste(_ink_tile(result.image, CELL), (6, 6))
    draw.rectangle([5, 5, 6 + CELL, 6 + CELL], outline=(120, 120, 120))
    draw.text((8, 6 + CELL + 2), "input", fill=(0, 0, 0))
    y = 6 + CELL + LABEL
    fig.paste(_parse_cell(result.image, result.parses[0]).resize((small, small), Image.LANCZOS), (6, y))
    draw.text((8, y + small + 2), f"parse 1 (w {result.parses[0].weight:.2f})", fill=(0, 0, 0))
    draw.line([grid_x0 - 10, 6, grid_x0 - 10, height - 6], fill=(200, 200, 200), width=1)
    for i, (ink, j) in enumerate(zip(result.images, result.parse_index.tolist(), strict=True)):
        x0 = grid_x0 + (i % cols) * (CELL + 6)
        y0 = 6 + (i // cols) * (CELL + LABEL)
        fig.paste(_ink_tile(ink, CELL), (x0, y0))
        draw.rectangle([x0 - 1, y0 - 1, x0 + CELL, y0 + CELL], outline=(200, 200, 200))
        draw.text((x0 + 2, y0 + CELL + 2), f"#{i + 1} parse {j + 1}", fill=(0, 0, 0))
    return fig


@click.command()
@click.argument("image", metavar="IMAGE", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("-n", "n", type=click.IntRange(min=1, max=MAX_EXEMPLARS), default=9, show_default=True,
              help="New exemplars to draw.")
@click.option("-k", "k", type=click.IntRange(min=1, max=MAX_K), default=5, show_default=True,
              help="Parses of the image (the types --types posterior draws from).")
@click.option("--types", type=click.Choice(TYPES), default="best", show_default=True,
              help="best: new tokens of the best parse's type; posterior: each exemplar's type "
                   "drawn from the K parses by their weights (types near it).")
@model_option()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A trained checkpoint (default: the shipped weights).")
@click.option("--steps", type=click.IntRange(min=0, max=10_000), default=None,
              help="Refinement steps of the parse (default: 150, pyrochar.image.parse.STEPS).")
@seed_option(default=0, help="Random seed of the parse and the exemplars (repeatable results).")
@image_out_option("exemplars.png", help="Picture to write: the input beside its new exemplars.")
@json_out_option("Also write the exemplars' strokes to this .json file (the project's drawing "
                 "format; each exemplar names the parse its type came from, and the parses are included).")
@device_option()
def exemplars(image, n, k, types, model_name, checkpoint, steps, seed, out, json_out, device):
    """New drawings of the character in IMAGE: parse it, then draw N new tokens of its
    type (or of types near it), rendered with the blur and pixel noise fitted to it.

    IMAGE: an Omniglot 105 x 105 PNG, or any PNG/JPEG (thresholded, cropped and
    scaled into the 105 x 105 frame).
    """
    from pyrochar.atomic import atomic_write_text
    from pyrochar.image.exemplars import exemplars as make_exemplars
    from pyrochar.image.parse import load_image
    from pyrochar.viz import save_image

    ink = load_image(image)  # a bad image is reported before the model loads
    model = _load_model(model_name, checkpoint, device)
    click.echo(f"parsing {image} and drawing {n} exemplar(s)...", err=True)
    result = make_exemplars(model, ink, n=n, k=k, types=types, seed=seed, steps=steps)
    save_image(exemplars_figure(result), out, "--out")
    used = len(set(result.parse_index.tolist()))
    click.echo(f"wrote {out}: {n} exemplar(s) of {image} from {used} parse(s)")
    if json_out:
        atomic_write_text(json_out, json.dumps(result.to_json(source=str(image)), indent=1) + "\n")
        click.echo(f"wrote {json_out}")
