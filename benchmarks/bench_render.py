"""Rendering throughput: strokes per second rendered into 28 x 28 images.

Usage: python benchmarks/bench_render.py [--source PATH] [--batch 1000] [--threads N]
                                         [--repeat 3] [--synthetic-only]

Renders (1) synthetic typical strokes (5 control points, about 60 px long) and (2)
the minimal-spline strokes of the Omniglot data under PATH (default
../shared/omniglot), in batches, with ``pyrochar.render.render_strokes``. Prints
the best and the median of ``--repeat`` passes (the median suffers most when other
processes share the cores).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_splines import default_source, read_drawings  # noqa: E402

from pyrochar import render, splines  # noqa: E402


def synthetic_strokes(n: int, seed: int = 0) -> list[np.ndarray]:
    """n strokes of 5 control points, ~60 px of curve, on the canvas (normalized units)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        heading = rng.uniform(0, 2 * np.pi)
        turns = heading + np.cumsum(rng.normal(scale=0.5, size=4))
        steps = 17.0 * np.stack([np.cos(turns), np.sin(turns)], axis=1)  # (4, 2) px
        cp = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])  # (5, 2)
        cp += np.array([52.5, -52.5]) - cp.mean(axis=0) + rng.uniform(-15, 15, size=2)
        out.append(splines.to_normalized(cp))
    return out


def time_render(strokes: list[np.ndarray], batch: int, repeat: int) -> tuple[float, float]:
    """(best, median) strokes/s over `repeat` passes of render_strokes in batches."""
    batches = [render.pad_strokes(strokes[i : i + batch]) for i in range(0, len(strokes), batch)]
    render.render_strokes(*batches[0])  # warm-up (operator matrices, allocator)
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for cps, n_cp in batches:
            render.render_strokes(cps, n_cp)
        rates.append(len(strokes) / (time.perf_counter() - t0))
    return max(rates), statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", type=Path, default=default_source())
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic-only", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")

    syn = synthetic_strokes(10_000)
    lengths = [
        splines._polyline_length(splines.evaluate_spline(splines.to_motor(s), 200)) for s in syn
    ]
    best, med = time_render(syn, args.batch, args.repeat)
    print(
        f"synthetic (5 control points, mean length {np.mean(lengths):.0f} px): "
        f"{best:,.0f} strokes/s best, {med:,.0f} median"
    )

    if not args.synthetic_only and args.source.is_dir():
        drawings = read_drawings(args.source)
        strokes = [
            splines.to_normalized(c) for d in drawings for c in splines.preprocess_drawing(d)
        ]
        best, med = time_render(strokes, args.batch, args.repeat)
        print(
            f"Omniglot ({len(strokes)} strokes from {args.source}): "
            f"{best:,.0f} strokes/s best, {med:,.0f} median"
        )


if __name__ == "__main__":
    main()
