"""Refinement speed: B candidate parses of one image refined together (pyrochar.image.refine).

Usage: python benchmarks/bench_refine.py [--batch 50] [--steps 50] [--threads 2]
                                         [--repeat 3] [--checkpoint PATH] [--device cpu]

The image is the committed Omniglot picture tests/data/images/omniglot/0683_01.png;
the candidates are its true strokes (minimal splines of
tests/data/omniglot/.../0683_01.txt) with Gaussian noise of 3 px on every control
point. Times ``refine(..., steps)`` with the type fitted (``fit_type=True``) and
the token refit alone (``fit_type=False``); prints the best and the median of
``--repeat`` runs (the median suffers most when other processes share the cores)
and the mean total log-prob before and after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyrochar.api import load_drawings  # noqa: E402
from pyrochar.checkpoint import load_checkpoint, load_pretrained  # noqa: E402
from pyrochar.image.io import read_image  # noqa: E402
from pyrochar.image.refine import refine  # noqa: E402
from pyrochar.splines import preprocess_drawing, to_normalized  # noqa: E402

IMAGE = REPO / "tests" / "data" / "images" / "omniglot" / "0683_01.png"
STROKES = REPO / "tests" / "data" / "omniglot" / "strokes_background" / "Latin" / "character01" / "0683_01.txt"


def candidates(n: int, seed: int = 0) -> list[list[np.ndarray]]:
    """n noisy copies (3 px per control point) of the drawing's true strokes."""
    drawing = load_drawings(STROKES)[0]
    true = [to_normalized(cp) for cp in preprocess_drawing(drawing.strokes)]
    rng = np.random.default_rng(seed)
    return [[cp + rng.normal(0.0, 3.0 / 20.0, cp.shape) for cp in true] for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkpoint", default=None, help="a Full NS checkpoint (default: the shipped weights)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_pretrained("full-ns") if args.checkpoint is None else load_checkpoint(args.checkpoint)
    model = model.to(args.device)
    image = torch.as_tensor(read_image(IMAGE))
    parses = candidates(args.batch)
    start = refine(model, image, parses, steps=0).scores.total.mean().item()
    print(f"{args.batch} candidates x {args.steps} steps, {args.threads} threads, {args.device}; "
          f"mean total log-prob before: {start:.1f}")  # fmt: skip
    for fit_type, every in ((True, 1), (True, 5), (False, 1)):
        times, total = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = refine(model, image, parses, steps=args.steps, fit_type=fit_type, type_every=every)
            if args.device != "cpu":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            total = out.scores.total.mean().item()
        print(f"fit_type={fit_type!s:5} type_every={every}: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
              f"({1000 * min(times) / max(args.steps, 1):.0f} ms/step); mean total after: {total:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
