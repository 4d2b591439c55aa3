"""Figures of the fuzz suite: hostile inputs tried and answered, time and peak memory.

Usage: python benchmarks/fuzz_inputs.py [--examples N]

Runs the strategies of ``tests/test_fuzz.py`` (derandomized, so every run tries the
same inputs) through the reader and the spline fit, as every command does: each input
must be accepted or refused with one line naming the file. Then runs ``data show``,
``score`` and ``complete`` in child processes on a 3,000-point scribble and on a drawing
at the stroke and point limits (100 strokes of 200 points zig-zagging across the
canvas), with their wall time
and peak RSS. Prints the tables of docs/reliability.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import test_fuzz as fz  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402


class Tally:
    """Inputs tried, accepted, refused and crashed, and the slowest answer."""

    def __init__(self) -> None:
        self.tried = self.accepted = self.refused = 0
        self.crashes: list[str] = []
        self.slowest = 0.0

    def answer(self, path: Path) -> None:
        t0 = time.perf_counter()
        try:
            refused = fz.answer(path) is not None
        except BaseException as exc:  # noqa: BLE001 - a crash is what we count
            self.crashes.append(f"{path.name}: {type(exc).__name__}: {exc}"[:200])
        else:
            self.accepted += not refused
            self.refused += refused
        self.tried += 1
        self.slowest = max(self.slowest, time.perf_counter() - t0)

    def row(self, kind: str) -> str:
        handled = self.accepted + self.refused
        return (f"| {kind} | {self.tried} | {handled} | {self.accepted} | {self.refused} | "
                f"{len(self.crashes)} | {self.slowest:.2f} |")


def run_strategy(strategy, examples: int, folder: Path, to_file) -> Tally:
    """Answer ``examples`` inputs drawn from ``strategy`` (``to_file(value)`` writes one)."""
    tally = Tally()

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(value) -> None:
        tally.answer(to_file(value))

    one()
    return tally


def reader_table(examples: int, folder: Path) -> list[str]:
    rows = ["| input kind | tried | handled | accepted | refused (one line naming the file) "
            "| crashed | slowest (s) |", "|---|---:|---:|---:|---:|---:|---:|"]
    tallies = []
    for kind, strategy in fz.HOSTILE_DRAWINGS.items():
        for fmt in ("json", "txt"):
            tally = run_strategy(
                strategy, examples, folder,
                lambda s, fmt=fmt: fz.write_input(folder, fz.drawing_text(s, fmt), "." + fmt))
            rows.append(tally.row(f"{kind} (.{fmt})"))
            tallies.append(tally)
    for kind, strategy in fz.HOSTILE_CONTENTS.items():
        tally = run_strategy(strategy, examples, folder,
                             lambda c: fz.write_input(folder, c, ".json"))
        rows.append(tally.row(kind))
        tallies.append(tally)
    tally = Tally()
    for kind in fz.NON_REGULAR:
        if kind != "folder":  # the commands refuse folders before reading (click)
            tally.answer(fz.make_non_regular(folder, kind))
    rows.append(tally.row("FIFO, link to /dev/zero, dangling link, oversized"))
    tallies.append(tally)
    total = Tally()
    for t in tallies:
        total.tried += t.tried
        total.accepted += t.accepted
        total.refused += t.refused
        total.crashes += t.crashes
        total.slowest = max(total.slowest, t.slowest)
    rows.append(total.row("**all**"))
    for c in total.crashes:
        rows.append(f"crash: {c}")
    return rows


def command_table(folder: Path) -> list[str]:
    rows = ["| input | command | exit | wall (s) | peak RSS (MiB) |", "|---|---|---:|---:|---:|"]
    inputs = {
        "3,000-point scribble": fz._uniform_strokes(7, [3000]),
        "100 strokes x 200 points": fz._uniform_strokes(8, [200] * 100),
    }
    for name, strokes in inputs.items():
        path = folder / f"{name.split()[0].replace(',', '')}.json"
        path.write_text(fz.drawing_text(strokes, "json"))
        for args in fz.scribble_commands(path, folder / "out.png"):
            t0 = time.perf_counter()
            code, rss, _ = fz.peak_rss_of_cli(args)
            command = " ".join(args[:2]) if args[0] == "data" else args[0]
            rows.append(f"| {name} | {command} | {code} | {time.perf_counter() - t0:.1f} | "
                        f"{rss / 1024:.0f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--examples", type=int, default=50, help="inputs per kind (default 50)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("\n".join(reader_table(args.examples, folder)))
        print(f"\nreader process peak RSS: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n")
        print("\n".join(command_table(folder)))


if __name__ == "__main__":
    main()
