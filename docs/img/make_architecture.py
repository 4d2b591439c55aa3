"""Draw docs/img/architecture.png: the data path and the Full NS loop, with their modules.

Run from anywhere: ``python docs/img/make_architecture.py`` (writes the PNG beside
this script; ``-o PATH`` writes elsewhere). Top: the data path from a file to the
NLL, with one drawing of the committed fixture at each stage (its raw trajectory,
its minimal splines, its canvases) and its NLL under the shipped Full NS weights,
all computed here with the library's own functions. Bottom: the Full NS loop of
``CharacterModel.model``. Pillow only; the layout is fixed, in pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # this checkout's pyrochar, not an installed one
EXAMPLE = REPO / "tests/data/omniglot/strokes_background/Sanskrit/character01/0851_02.txt"
WIDTH, MAX_HEIGHT = 1400, 1400  # cropped to its content

WHITE, INK, GREY = (255, 255, 255), (25, 25, 25), (90, 90, 90)
DATA = ((222, 235, 247), (49, 130, 189))  # (fill, outline): data structures
NET = ((254, 230, 206), (230, 85, 13))  # neural networks
SYMBOLIC = ((235, 225, 245), (117, 80, 160))  # the symbolic renderer
SITE = ((229, 245, 224), (49, 163, 84))  # Pyro sample sites


def fonts():
    """The text sizes of the picture (pillow's bundled font, scalable on pillow >= 10.1)."""
    from pyrochar.figures.grids import font

    return {"title": font(26), "box": font(19), "small": font(14), "tiny": font(13)}


# ------------------------------------------------------------------ drawing helpers
def centred_text(draw, centre, lines, font, fill=INK, spacing=4):
    """Lines of text centred on ``centre`` (x, y)."""
    heights = [font.getbbox(line)[3] for line in lines]
    y = centre[1] - (sum(heights) + spacing * (len(lines) - 1)) / 2
    for line, h in zip(lines, heights, strict=True):
        draw.text((centre[0] - draw.textlength(line, font=font) / 2, y), line, fill=fill, font=font)
        y += h + spacing


def box(draw, xy, lines, font, colours, notes=(), note_font=None, rounded=8):
    """A filled box (x0, y0, x1, y1) with centred ``lines``, and ``notes`` (module names) under it."""
    fill, outline = colours
    draw.rounded_rectangle(xy, radius=rounded, fill=fill, outline=outline, width=3)
    centred_text(draw, ((xy[0] + xy[2]) / 2, (xy[1] + xy[3]) / 2), lines, font)
    y = xy[3] + 6
    for note in notes:
        draw.text(
            ((xy[0] + xy[2]) / 2 - draw.textlength(note, font=note_font) / 2, y),
            note,
            fill=GREY,
            font=note_font,
        )
        y += note_font.getbbox(note)[3] + 3


def arrow(draw, points, fill=INK, width=3, head=12):
    """A polyline through ``points`` with an arrowhead at the last point."""
    draw.line(points, fill=fill, width=width, joint="curve")
    (x0, y0), (x1, y1) = points[-2], points[-1]
    d = np.array([x1 - x0, y1 - y0], dtype=float)
    d /= max(np.linalg.norm(d), 1e-9)
    n = np.array([-d[1], d[0]])
    tip = np.array([x1, y1], dtype=float)
    base = tip - head * d
    draw.polygon(
        [tuple(tip), tuple(base + 0.5 * head * n), tuple(base - 0.5 * head * n)], fill=fill
    )


def text_lines(draw, xy, lines, font, fill=INK, step=18):
    """Left-aligned lines from ``xy``, ``step`` px apart."""
    for j, line in enumerate(lines):
        draw.text((xy[0], xy[1] + j * step), line, fill=fill, font=font)


def label(draw, xy, text, font, fill=INK):
    """Text with a white background, so that it stays legible over a line."""
    w, h = draw.textlength(text, font=font), font.getbbox(text)[3]
    draw.rectangle([xy[0] - 3, xy[1] - 2, xy[0] + w + 3, xy[1] + h + 3], fill=WHITE)
    draw.text(xy, text, fill=fill, font=font)


# ------------------------------------------------------------------ the real example
def example():
    """The fixture drawing at each stage: raw strokes, control points, canvases, NLL."""
    import torch

    from pyrochar import load_pretrained, splines
    from pyrochar.data.omniglot import read_stroke_file
    from pyrochar.models.batch import CharacterBatch
    from pyrochar.models.full_ns import stroke_canvases
    from pyrochar.scoring import log_likelihood

    drawing = read_stroke_file(EXAMPLE)
    controls = [splines.to_normalized(cp) for cp in splines.preprocess_drawing(drawing.strokes)]
    batch = CharacterBatch.from_control_points([controls])
    model = load_pretrained("full-ns")
    with torch.no_grad():
        batch = model.prepare_batch(batch)
        total, parts = log_likelihood(model, batch)
    return {
        "drawing": drawing,
        "controls": controls,
        "batch": batch,
        "canvases": stroke_canvases(batch)[0].numpy(),  # (S + 1, 28, 28)
        "nll": -float(total[0]),
        "parts": {k: -float(v[0]) for k, v in parts.items()},
    }


def character_tile(strokes_motor, controls_norm, size):
    """A size x size white tile with the strokes (motor coordinates), control points as squares."""
    from pyrochar.splines import to_motor
    from pyrochar.viz import STROKE_COLOURS, draw_character

    tile = Image.new("RGB", (size, size), WHITE)
    draw = ImageDraw.Draw(tile)
    draw_character(
        draw, strokes_motor, (0, 0), size, STROKE_COLOURS, width=2, points=controls_norm is None
    )
    for i, cp in enumerate(controls_norm or []):
        for x, y in to_motor(np.asarray(cp)):
            px, py = x * size / 105.0, -y * size / 105.0
            draw.rectangle([px - 3, py - 3, px + 3, py + 3], outline=STROKE_COLOURS[i], width=2)
    ImageDraw.Draw(tile).rectangle([0, 0, size - 1, size - 1], outline=(200, 200, 200))
    return tile


# ------------------------------------------------------------------ the two parts
def data_path(draw, f, top):
    """The top row: file -> Drawing -> splines -> CharacterBatch -> sites -> NLL.

    Returns the boxes' left edges, their width and the top of the example below them.
    """
    draw.text(
        (30, top),
        "Data path  (pyrochar score FILE; the example: a Sanskrit drawing of tests/data)",
        fill=INK,
        font=f["box"],
    )
    w, gap, x0, y0, h = 190, 40, 30, top + 40, 62
    titles = [
        ["file", ".txt / .json"],
        ["Drawing", "raw trajectories"],
        ["minimal splines", "control points"],
        ["CharacterBatch", "padded tensors"],
        ["sites", "4 variable kinds"],
        ["NLL", "per drawing"],
    ]
    notes = [
        ["data/omniglot.py", "data/jsonio.py", "api.read_drawings"],
        ["data/drawing.py", "(x, y, t) per stroke,", "motor px"],
        ["splines.preprocess_drawing", "data/prepare.py:", "PreparedDataset"],
        ["models/batch.py", "data/loader.py:BatchSource", "full_ns.stroke_canvases"],
        ["teacher_forced_model", "(models/base.py)", "loc offset stroke_end char_end"],
        ["scoring.log_likelihood", "scoring.score -> Scores", "(total + breakdown)"],
    ]
    lefts = [x0 + k * (w + gap) for k in range(6)]
    for k, left in enumerate(lefts):
        colours = SITE if k == 4 else DATA
        box(draw, (left, y0, left + w, y0 + h), titles[k], f["box"], colours, notes[k], f["tiny"])
        if k:
            arrow(draw, [(left - gap + 2, y0 + h / 2), (left - 3, y0 + h / 2)])
    return lefts, w, y0 + h + 62


def data_example(img, draw, f, ex, lefts, w, ey):
    """The example drawing under the data path's boxes (columns at ``lefts``, ``w`` wide)."""
    from pyrochar.viz import canvas_image, splines_to_motor_polylines

    size = 150
    text_lines(
        draw, (lefts[0] + 4, ey + 4), EXAMPLE.read_text().splitlines()[:6] + ["..."], f["small"]
    )
    raw = [s[:, :2] for s in ex["drawing"].strokes]
    img.paste(character_tile(raw, None, size), (lefts[1] + (w - size) // 2, ey))
    curves = splines_to_motor_polylines(ex["controls"])
    img.paste(character_tile(curves, ex["controls"], size), (lefts[2] + (w - size) // 2, ey))
    cell, cx0 = (size - 4) // 2, lefts[3] + (w - size) // 2
    for j, canvas in enumerate(ex["canvases"]):  # (28, 28) each, 2 per row
        r, c = divmod(j, 2)
        x, y = cx0 + c * (cell + 4), ey + r * (cell + 4)
        img.paste(canvas_image(canvas, cell), (x, y))
        draw.rectangle([x - 1, y - 1, x + cell, y + cell], outline=(200, 200, 200))
    b = ex["batch"]
    shapes = [f"starts {tuple(b.starts.shape)}", f"offsets {tuple(b.offsets.shape)}",
              f"n_offsets {b.n_offsets[0].tolist()}", f"canvases {tuple(b.canvases.shape)}"]  # fmt: skip
    text_lines(draw, (lefts[3] + 10, ey + size + 26), shapes, f["small"])
    n_off, n_str = int(b.n_offsets.sum()), int(b.n_strokes[0])
    sites = [f"loc: {n_str} starts", f"offset: {n_off} offsets", f"stroke_end: {n_off} decisions",
             f"char_end: {n_str} decisions"]  # fmt: skip
    text_lines(draw, (lefts[4], ey + 4), sites, f["small"])
    draw.text((lefts[5], ey + 4), f"{ex['nll']:.2f} nats", fill=INK, font=f["box"])
    parts = [f"{k:<10} {v:7.2f}" for k, v in ex["parts"].items()]
    text_lines(draw, (lefts[5], ey + 34), parts, f["small"])
    draw.text(
        (lefts[5], ey + 34 + 4 * 18 + 4), "shipped Full NS weights", fill=GREY, font=f["tiny"]
    )
    captions = [
        "the file's first lines",
        "raw trajectory (pen samples)",
        "splines, control points",
        "canvas before each stroke, and after",
    ]
    for k, caption in enumerate(captions):
        draw.text(
            (lefts[k] + w / 2 - draw.textlength(caption, font=f["tiny"]) / 2, ey + size + 6),
            caption,
            fill=GREY,
            font=f["tiny"],
        )
    return ey + size + 26 + 4 * 18


def full_ns_loop(draw, f, top):
    """The bottom part: the Full NS loop over strokes i and offsets t, with modules."""
    draw.line([(30, top), (WIDTH - 30, top)], fill=(200, 200, 200), width=2)
    draw.text(
        (30, top + 14),
        "Full NS: GenerateCharacter's hooks in CharacterModel.model  "
        "(models/full_ns.py, models/base.py)",
        fill=INK,
        font=f["box"],
    )
    h, w = 64, 210
    ya, yb = top + 130, top + 350  # the two lanes
    xs = [40, 320, 600, 880, 1150]
    canvas = (xs[0], ya, xs[0] + w, ya + h)
    loc_net = (xs[1], ya, xs[1] + w, ya + h)
    loc = (xs[2] + 30, ya, xs[2] + w - 30, ya + h)
    stroke = (xs[3], ya, xs[3] + w, ya + h)
    offset = (xs[4], ya, xs[4] + w, ya + h)
    render = (xs[3], yb, xs[3] + w, yb + h)
    new_canvas = (xs[2], yb, xs[2] + w, yb + h)
    term = (xs[1], yb, xs[1] + w, yb + h)
    end = (xs[0], yb, xs[0] + w, yb + h)
    # (rectangle, text in the box, colours, module names under it)
    boxes = [
        (canvas, ["canvas I", "28 x 28 (blank at i = 0)"], DATA, ["begin_character: Canvas"]),
        (loc_net, ["location net"], NET, ["p_loc", "nets/location.py:LocationNet", "-> BivariateGMM"]),
        (loc, ["loc_i"], SITE, ["start of stroke i"]),
        (stroke, ["stroke net"], NET, ["begin_stroke / stroke_step", "nets/stroke.py:StrokeNet"]),
        (offset, ["offset_i_t", "stroke_end_i_t"], SITE, ["GMM / Bernoulli, per t"]),
        (render, ["renderer (symbolic)"], SYMBOLIC, ["end_stroke", "render.add_strokes_to_canvas"]),
        (new_canvas, ["new canvas I"], DATA, ["Canvas.image, .history"]),
        (term, ["termination net"], NET, ["p_char_end", "nets/termination.py:", "TerminationNet"]),
        (end, ["char_end_i"], SITE, ["Bernoulli"]),
    ]  # fmt: skip
    for rect, lines, colours, notes in boxes:
        rounded = 30 if colours is SITE else 8  # sites as pills
        box(draw, rect, lines, f["box"], colours, notes, f["tiny"], rounded=rounded)
    mid_a, mid_b = ya + h / 2, yb + h / 2
    arrow(draw, [(canvas[2], mid_a), (loc_net[0] - 3, mid_a)])
    arrow(draw, [(loc_net[2], mid_a), (loc[0] - 3, mid_a)])
    arrow(draw, [(loc[2], mid_a), (stroke[0] - 3, mid_a)])
    label(draw, (loc[2] + 4, mid_a - 24), "start", f["small"])
    arrow(draw, [(stroke[2], mid_a), (offset[0] - 3, mid_a)])
    # the canvas also goes to the stroke net, over the top
    cx, sx, over = (canvas[0] + canvas[2]) / 2, (stroke[0] + stroke[2]) / 2, ya - 64
    arrow(draw, [(cx, canvas[1]), (cx, over), (sx, over), (sx, stroke[1] - 3)])
    label(draw, ((cx + sx) / 2 - 60, over - 10), "the canvas, read by the stroke CNN", f["small"])
    # loop over t: offset back into the stroke net, above the lane
    ox, loop_y = (offset[0] + offset[2]) / 2, ya - 24
    arrow(
        draw,
        [(ox, offset[1]), (ox, loop_y), (sx + 50, loop_y), (sx + 50, stroke[1] - 3)],
        fill=NET[1],
    )
    label(draw, (sx + 60, loop_y - 24), "next t while stroke_end_i_t = 0", f["small"], fill=NET[1])
    # the stroke goes to the renderer, then round the lower lane
    down = offset[2] - 16  # clear of the note under the box
    arrow(draw, [(down, offset[3]), (down, mid_b), (render[2] + 3, mid_b)])
    label(draw, (down - 130, (offset[3] + mid_b) / 2 + 10), "start + offsets", f["small"])
    arrow(draw, [(render[0], mid_b), (new_canvas[2] + 3, mid_b)])
    arrow(draw, [(new_canvas[0], mid_b), (term[2] + 3, mid_b)])
    arrow(draw, [(term[0], mid_b), (end[2] + 3, mid_b)])
    # loop over i: back to the canvas
    ex = (end[0] + end[2]) / 2
    arrow(draw, [(ex, end[1]), (ex, canvas[3] + 3)], fill=NET[1])
    for k, line in enumerate(["next stroke i + 1", "while char_end_i = 0"]):
        label(draw, (ex + 8, (canvas[3] + end[1]) / 2 - 18 + 20 * k), line, f["small"], fill=NET[1])
    return yb + h + 80


def legend(draw, f, y):
    """The colour key."""
    x = 40
    for colours, text in (
        (DATA, "data / state"),
        (NET, "neural network (pyrochar/nets)"),
        (SYMBOLIC, "symbolic renderer (render.py)"),
        (SITE, "Pyro sample site"),
    ):
        draw.rounded_rectangle(
            (x, y, x + 28, y + 20), radius=5, fill=colours[0], outline=colours[1], width=2
        )
        draw.text((x + 36, y + 2), text, fill=INK, font=f["small"])
        x += 70 + draw.textlength(text, font=f["small"])


def make_picture() -> Image.Image:
    """The whole picture, WIDTH px wide, white background."""
    img = Image.new("RGB", (WIDTH, MAX_HEIGHT), WHITE)
    draw = ImageDraw.Draw(img)
    f = fonts()
    draw.text(
        (30, 18),
        "pyrochar: from a file to an NLL, and the Full NS generative loop",
        fill=INK,
        font=f["title"],
    )
    lefts, w, ey = data_path(draw, f, 70)
    bottom = data_example(img, draw, f, example(), lefts, w, ey)
    bottom = full_ns_loop(draw, f, bottom + 10)
    legend(draw, f, bottom)
    return img.crop((0, 0, WIDTH, bottom + 40))


def main() -> None:
    """Parse ``-o``, draw, write atomically; a failure is one line and exit status 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).with_name("architecture.png")
    parser.add_argument("-o", "--out", type=Path, default=default, help="image to write")
    args = parser.parse_args()
    from pyrochar.checks import check_image_path
    from pyrochar.errors import PyrocharError
    from pyrochar.viz import save_image

    try:
        check_image_path(args.out, "--out")  # before the drawing work
        path = save_image(make_picture(), args.out, "--out")
    except PyrocharError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
