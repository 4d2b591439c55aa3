"""Time the spline preprocessing (resample + minimal spline fit) over Omniglot strokes.

Usage: python benchmarks/bench_splines.py [--source PATH] [--against REV]

PATH is a folder holding ``strokes_background/`` (and/or ``strokes_evaluation/``), or
any folder of Omniglot stroke files (default: ../shared/omniglot beside the checkout).
Prints the time and the data statistics to compare with docs/data.md
(6 shared alphabets: 4,060 drawings, 1 left empty, 9,382 strokes, control points
per stroke mean 5.06, median 4, max 32).

``--against REV`` also loads ``pyrochar/splines.py`` as it is at git revision REV
(e.g. ``main``), times both versions in turn on the same drawings (best of
``--repeat`` runs each, fresh caches), prints the speed ratio and checks that every
fitted control point of every drawing is bitwise identical.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyrochar import splines  # noqa: E402


def default_source() -> Path:
    for cand in (REPO.parent / "shared" / "omniglot", Path("/work/shared/omniglot")):
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "omniglot"


def read_stroke_file(path: Path) -> list[np.ndarray]:
    """One Omniglot stroke file -> list of (k, 3) float64 arrays (x, y, t)."""
    strokes: list[np.ndarray] = []
    cur: list[list[float]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line == "START":
            continue
        if line == "BREAK":
            strokes.append(np.array(cur, dtype=np.float64).reshape(-1, 3))
            cur = []
        else:
            cur.append([float(v) for v in line.split(",")])
    return strokes


def read_drawings(source: Path) -> list[list[np.ndarray]]:
    """All drawings under ``source`` (sorted by path)."""
    files = sorted(source.rglob("*.txt"))
    files = [f for f in files if f.name[:4].isdigit()]
    if not files:
        raise SystemExit(f"no Omniglot stroke files found under {source}")
    return [read_stroke_file(f) for f in files]


def splines_at(rev: str):
    """``pyrochar/splines.py`` as of git revision ``rev``, imported as a separate module."""
    text = subprocess.run(
        ["git", "show", f"{rev}:pyrochar/splines.py"], cwd=REPO, check=True,
        capture_output=True, text=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(text)
    spec = importlib.util.spec_from_file_location(f"splines_{rev}", f.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fresh_copy(module):
    """Re-import ``module`` from its file, so its caches start empty."""
    spec = importlib.util.spec_from_file_location(module.__name__, module.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy


def timed_fit(module, drawings) -> tuple[float, list[list[np.ndarray]]]:
    """(seconds, fitted control points) of ``module.preprocess_drawing`` on every drawing."""
    module = fresh_copy(module)
    gc.collect()  # free the previous run's caches before, not during, the timing
    t0 = time.perf_counter()
    fitted = [module.preprocess_drawing(d) for d in drawings]
    return time.perf_counter() - t0, fitted


def compare(rev: str, drawings, repeat: int) -> None:
    """Time this checkout's fit against revision ``rev``'s and check identical results."""
    old = splines_at(rev)
    t_new, t_old = [], []
    for i in range(repeat):  # alternate, so both see the same machine load
        for which in ("old", "new") if i % 2 == 0 else ("new", "old"):
            if which == "old":
                t, fit_old = timed_fit(old, drawings)
                t_old.append(t)
            else:
                t, fit_new = timed_fit(splines, drawings)
                t_new.append(t)
    same = sum(
        len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        for a, b in zip(fit_old, fit_new, strict=True)
    )
    print(f"{rev}: {min(t_old):.2f} s, this checkout: {min(t_new):.2f} s (best of {repeat}); "
          f"time ratio this/{rev} = {min(t_new) / min(t_old):.3f}")
    print(f"drawings with bitwise identical control points: {same} of {len(drawings)}")


def print_maxima(source: Path, drawings: list[list[np.ndarray]]) -> None:
    """The largest values of the raw data, to compare with the input limits
    (docs/reliability.md)."""
    strokes = [s for d in drawings for s in d]
    size = max(f.stat().st_size for f in source.rglob("*.txt") if f.name[:4].isdigit())
    longest = max(
        len(splines.resample_by_arclength(s))
        for s in strokes
        if splines.path_length(s) >= splines.MIN_STROKE_LENGTH
    )
    print(
        f"raw maxima: |x|, |y| {max(np.abs(s[:, :2]).max() for s in strokes):.1f} px; "
        f"points per stroke {max(len(s) for s in strokes)}, per drawing "
        f"{max(sum(len(s) for s in d) for d in drawings)}; strokes per drawing "
        f"{max(len(d) for d in drawings)}; file size {size:,} bytes; "
        f"resampled points of the longest kept stroke {longest}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", type=Path, default=default_source())
    ap.add_argument("--against", metavar="REV", default=None,
                    help="git revision whose splines.py to time and compare against")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each version with --against")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    drawings = read_drawings(args.source)
    t_read = time.perf_counter() - t0
    n_raw = sum(len(d) for d in drawings)

    t0 = time.perf_counter()
    fitted = [splines.preprocess_drawing(d) for d in drawings]
    total = time.perf_counter() - t0

    ncp = np.array([len(c) for d in fitted for c in d])
    print_maxima(args.source, drawings)
    print(f"source: {args.source}")
    print(f"read {len(drawings)} drawings ({n_raw} raw strokes) in {t_read:.2f} s")
    print(
        f"resample + minimal fit: {total:.2f} s total, {len(drawings) / total:,.0f} drawings/s, "
        f"{n_raw / total:,.0f} raw strokes/s, {len(ncp) / total:,.0f} kept strokes/s"
    )
    print(f"drawings read:            {len(drawings)}")
    print(f"drawings left empty:      {sum(len(d) == 0 for d in fitted)}")
    print(
        f"strokes kept:             {len(ncp)} ({len(ncp) / max(len(drawings), 1):.2f} per drawing)"
    )
    if len(ncp):
        print(
            f"control points / stroke:  mean {ncp.mean():.2f}, median {np.median(ncp):g}, "
            f"max {ncp.max()} (total {ncp.sum()})"
        )
        print(
            f"strokes with 1 control point: {(ncp == 1).sum()}; "
            f"with {splines.MAX_CONTROL_POINTS}: {(ncp == splines.MAX_CONTROL_POINTS).sum()}"
        )
    if args.against:
        compare(args.against, drawings, args.repeat)


if __name__ == "__main__":
    main()
