"""One process x 2 threads against 2 processes x 1 thread (torchrun, gloo).

Usage:
    python benchmarks/bench_distributed.py [--source ../shared/omniglot] [--batches 10]
        [--images 4] [--k 5] [--json-out bench_distributed.json]

Two jobs, each run both ways as real commands (start-up included), one after the
other:

``train``  ``pyrochar train --model full-ns`` (the default config, batches of 200,
           fp32) for one epoch cut to ``--batches`` batches, split alphabet:0,
           after a warm-up command that fills the data cache. Reports the whole
           command's wall time and the epoch's seconds from ``history.json``
           (training steps + validation), with the epoch's train and validation NLL.
``parse``  ``pyrochar parse`` of the first ``--images`` Omniglot images of
           ``images_background/Latin`` (``-k``, default candidates and steps), with
           the shipped Full NS weights. Reports the wall time and whether the JSON
           of the parses is the same all ways (it must be).

"1 x 2" is ``OMP_NUM_THREADS=2 python -m pyrochar ...``; "2 x 1" is
``OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m pyrochar ...``;
"1 x 1", one process on one thread, is the reference for what sharing the work
costs. On a 2-core machine no speed-up is expected. The CPU seconds of the
command's processes (user + system) and the load average before and after each
command are recorded: on a shared machine other jobs change the wall times. Prints a
Markdown table; ``--json-out`` writes every number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCHRUN_2 = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pyrochar"]
#: way -> (python arguments before pyrochar's, OMP_NUM_THREADS)
WAYS = {"1 x 2": (["-m", "pyrochar"], "2"), "2 x 1": (TORCHRUN_2, "1"), "1 x 1": (["-m", "pyrochar"], "1")}


def run_command(way: str, args: list, scratch: Path) -> dict:
    """Run ``pyrochar ARGS`` one way; its wall time, CPU time and the load averages around it."""
    launcher, threads = WAYS[way]
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYROCHAR_CACHE": str(scratch / "cache")}
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_s()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *launcher, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{way}: pyrochar {' '.join(map(str, args[:2]))} failed:\n{done.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": _children_cpu_s() - cpu_before, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def _children_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_train(source: Path, batches: int, scratch: Path) -> dict:
    """The training job both ways (after a warm-up that fills the data cache)."""
    def args(out):
        return ["train", "--model", "full-ns", "--source", source, "--split", "alphabet:0", "--epochs", 1,
                "--max-batches", batches, "--batch-size", 200, "--out", out]

    run_command("1 x 2", args(scratch / "warm-up"), scratch)
    rows = {}
    for way in WAYS:
        out = scratch / f"train {way}"
        row = run_command(way, args(out), scratch)
        history = json.loads((out / "history.json").read_text())
        row.update(epoch_s=history["seconds"][0], train_nll=history["train_nll"][0],
                   val_nll=history["val_nll"][0])
        rows[way] = row
    return rows


def bench_parse(source: Path, n_images: int, k: int, scratch: Path) -> dict:
    """The parsing job both ways; ``same_json``: both wrote the same parses."""
    images = sorted((source / "images_background" / "Latin").rglob("*.png"))[:n_images]
    if len(images) < n_images:
        sys.exit(f"{source}/images_background/Latin holds {len(images)} images, fewer than --images")
    rows = {}
    for way in WAYS:
        js = scratch / f"parse {way}.json"
        rows[way] = run_command(way, ["parse", *images, "-k", k, "-o", scratch / f"parse {way}.png",
                                      "--json-out", js], scratch)
        rows[way]["json"] = js.read_text()
    texts = {rows[way].pop("json") for way in WAYS}
    same = len(texts) == 1
    return {"rows": rows, "same_json": same, "images": n_images}


def table(result: dict) -> str:
    """The Markdown table of a benchmark result."""
    train, parse = result["train"], result["parse"]
    lines = ["| job | processes x threads | wall (whole command) | CPU (all processes) | epoch (history.json) "
             "| NLL train / validation | load avg before-after |",
             "|---|---|---:|---:|---:|---|---|"]
    for way, r in train.items():
        lines.append(f"| train, {result['batches']} batches of 200 | {way} | {r['wall_s']:.1f} s | "
                     f"{r['cpu_s']:.1f} s | {r['epoch_s']:.1f} s | {r['train_nll']:.2f} / {r['val_nll']:.2f} | "
                     f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
    for way, r in parse["rows"].items():
        lines.append(f"| parse, {parse['images']} images, k = {result['k']} | {way} | {r['wall_s']:.1f} s | "
                     f"{r['cpu_s']:.1f} s | | same parses all ways: {'yes' if parse['same_json'] else 'NO'} | "
                     f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "omniglot")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json-out", type=Path, default=None)
    a = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        result = {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(),
                  "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                  "batches": a.batches, "k": a.k,
                  "train": bench_train(a.source, a.batches, scratch),
                  "parse": bench_parse(a.source, a.images, a.k, scratch)}
    print(table(result))
    if a.json_out:
        a.json_out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
