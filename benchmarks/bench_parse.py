"""Parsing images into strokes, measured on images whose true strokes are known.

Usage:
    python benchmarks/bench_parse.py --checkpoint runs/a0-full-ns/best.pt
        [--source ../shared/omniglot] [--alphabet "Japanese_(katakana)"]
        [--n-images 40] [--k 5] [--seed 0] [--methods parse,baseline,propose]
        [--threads N] [--truth-batch 20] [--part I/N] [--json-out bench_parse.json]
    python benchmarks/bench_parse.py --merge part0.json part1.json ... [--json-out all.json]

The images are Omniglot's official 105 x 105 images (``images_background/``) of one
alphabet, drawn at random (``--seed``) among its drawings; their true strokes are
the stroke files of the same drawings (``strokes_background/``). The type model
(``--checkpoint``, required) must not have seen that alphabet: the benchmark
rebuilds the checkpoint's split from its name and the data under ``--source``,
checks it against the fingerprint stored in the checkpoint, and refuses an
alphabet that has characters among the split's training or validation characters.
``pyrochar train --model full-ns --source ../shared/omniglot --split alphabet:0
--epochs 20 --seed 0 --out runs/a0-full-ns`` trains the checkpoint of
docs/parsing.md, whose held-out alphabet is Japanese_(katakana).

Methods (``--methods``, a comma-separated list):

``parse``     ``pyrochar.image.parse.parse(model, image, k=K)``: proposals from random
              walks on the skeleton graph, scored by the type model, the best
              refined; the best of the K parses is judged.
``baseline``  one stroke per connected component of the skeleton
              (``component_baseline``, no search), refined the same way.
``propose``   the best proposal of ``parse``'s search, scored with the token and
              image values at their starting point (refinement with 0 steps).

Reference: the true strokes as a type (``true_parse``: the minimal splines of the
project's preprocessing), the type held fixed and the token-level values (token
noise, affine, blur, eps) optimized by the same refinement.

Measures, per method (mean over the images unless said):

* ink F1 between the input image and the best parse rendered by the image model at
  its fitted blur and eps and thresholded at p > 0.5 (goal >= 0.9);
* the share of images where the best parse's joint log-prob (type + token + image)
  is at least the true strokes' (goal >= 80 %), and the quantiles of the
  difference in nats;
* the share of images whose best parse has the true number of strokes;
* the modified Hausdorff distance in px between the best parse's token
  trajectories and the true ones (``trajectory_mhd``);
* seconds per image: wall clock of the method alone (mean and median), and the
  CPU seconds of this process over that time (all threads: on a machine shared with
  other jobs the wall clock grows, the CPU time much less). The load average at each
  image is recorded in the JSON.

The JSON results (``--json-out``) are rewritten atomically after every image, so an
interrupted run keeps the images it finished. A Markdown table is printed at the end.
``--part I/N`` judges every N-th image of the selection from the I-th, so that N
processes share a run; ``--merge`` joins their JSON files (the same settings are
required) and prints the table of the whole.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_splines import default_source  # noqa: E402

from pyrochar.atomic import atomic_write_text  # noqa: E402
from pyrochar.errors import PyrocharError  # noqa: E402
from pyrochar.image.metrics import INK_THRESHOLD, ink_f1, render_ink, trajectory_mhd, true_parse  # noqa: E402

DEFAULT_ALPHABET = "Japanese_(katakana)"
METHODS = ("parse", "baseline", "propose")
#: Quantiles of the log-prob difference (best parse - true strokes) reported, in percent.
QUANTILES = (0, 10, 25, 50, 75, 90, 100)


# ------------------------------------------------------------------------ the data


@dataclass
class Item:
    """One benchmark image: its key, its ink (105, 105) bool and its true strokes."""

    key: str
    image: np.ndarray  # (105, 105) bool, True = ink
    truth: list[np.ndarray]  # (n_i, 2) normalized control points


def drawing_pairs(source: Path, alphabet: str) -> list[tuple[Path, Path]]:
    """(image png, stroke txt) of every drawing of ``alphabet`` that has both, sorted."""
    strokes_dir = source / "strokes_background" / alphabet
    images_dir = source / "images_background" / alphabet
    if not strokes_dir.is_dir() or not images_dir.is_dir():
        raise PyrocharError(
            f"{source} has no {alphabet!r} under strokes_background/ and images_background/: "
            "pass --source with the Omniglot folder (see its README) or another --alphabet"
        )
    pairs = []
    for txt in sorted(strokes_dir.glob("character*/*.txt")):
        png = images_dir / txt.parent.name / (txt.stem + ".png")
        if png.is_file():
            pairs.append((png, txt))
    if not pairs:
        raise PyrocharError(f"no drawing of {alphabet!r} under {source} has both an image and strokes")
    return pairs


def select_items(source: Path, alphabet: str, n: int, seed: int) -> tuple[list[Item], int]:
    """``n`` random drawings of ``alphabet`` (seeded) -> (items, drawings skipped).

    A drawing is skipped when the preprocessing keeps none of its strokes (no true parse).
    """
    from pyrochar.data.omniglot import read_stroke_file
    from pyrochar.image.io import read_image

    pairs = drawing_pairs(source, alphabet)
    order = np.random.default_rng(seed).permutation(len(pairs))
    items, skipped = [], 0
    for i in order:
        if len(items) == n:
            break
        png, txt = pairs[i]
        drawing = read_stroke_file(txt)
        truth = true_parse(drawing)
        if not truth:
            skipped += 1
            continue
        items.append(Item(drawing.key, read_image(png), truth))
    return items, skipped


# ----------------------------------------------------------------------- the model


def check_unseen(payload: dict, source: Path, alphabet: str) -> str:
    """Refuse a checkpoint trained (or validated) on ``alphabet``; return its split's name.

    The split is rebuilt from its name over the characters under ``source`` and must
    match the fingerprint the checkpoint stores.
    """
    from pyrochar.data.splits import make_split
    from pyrochar.train import split_fingerprint

    name, stored = payload.get("split"), payload.get("split_sha256")
    if not name or not stored:
        raise PyrocharError(
            "the checkpoint does not say which characters it was trained on: train one with "
            "pyrochar train --split alphabet:K (docs/parsing.md gives the command)"
        )
    keys = [f"{p.parent.name}/{p.name}" for p in (source / "strokes_background").glob("*/character*")]
    split = make_split(name, keys)
    if split_fingerprint(split) != stored:
        raise PyrocharError(
            f"split {name!r} rebuilt from {source} differs from the checkpoint's: pass the --source "
            "it was trained on"
        )
    seen = [k for k in split.train + split.validation if k.split("/")[0] == alphabet]
    if seen:
        raise PyrocharError(
            f"the checkpoint was trained on {alphabet} ({len(seen)} characters of split {name}): "
            f"judge it on its held-out alphabets ({', '.join(sorted({k.split('/')[0] for k in split.test}))})"
        )
    return name


def load_model(checkpoint: Path, source: Path, alphabet: str):
    """(type model in eval mode, split name) from a checkpoint that never saw ``alphabet``."""
    from pyrochar.checkpoint import model_from_checkpoint, read_checkpoint

    payload = read_checkpoint(checkpoint)
    split = check_unseen(payload, source, alphabet)
    return model_from_checkpoint(payload, str(checkpoint)), split


# ---------------------------------------------------------------------- the methods


@dataclass
class Outcome:
    """The best parse a method returns for one image (its token values, its log-probs)."""

    strokes: list[np.ndarray]  # type strokes, (n_i, 2) normalized
    token_strokes: list[np.ndarray]  # as rendered into the image (noise, affine applied)
    scores: dict[str, float]  # log-probs (nats): type, token, image, total
    blur: float  # px
    eps: float

    def ink(self) -> np.ndarray:
        """The parse as the image model renders it at its blur and eps -> (105, 105) bool."""
        return render_ink(self.token_strokes, self.blur, self.eps)


class MethodFailed(Exception):
    """A method gave no parse of an image (the reason is recorded, the run goes on)."""


def caps_problem(model, strokes: list[np.ndarray]) -> str | None:
    """Why ``strokes`` are beyond the type model's caps (probability 0), or None."""
    return model.caps_problem(len(strokes), max(len(s) for s in strokes) - 1)


def refined(model, images: list[np.ndarray], parses: list[list[np.ndarray]], **kw) -> list[Outcome]:
    """Parse b of ``parses`` explains image b; all refined in one batch (``refine``
    keywords ``kw``) -> one Outcome each."""
    from pyrochar.image.refine import refine

    stack = torch.as_tensor(np.stack(images), dtype=torch.float32)  # (B, 105, 105)
    r = refine(model, stack, parses, image_index=torch.arange(len(parses)), **kw)
    scores = {key: getattr(r.scores, key).tolist() for key in ("type", "token", "image", "total")}
    return [Outcome(r.type_strokes[b], r.token_strokes[b], {key: v[b] for key, v in scores.items()},
                    float(r.blur[b]), float(r.eps[b])) for b in range(len(parses))]  # fmt: skip


def _refine_one(model, item: Item, strokes: list[np.ndarray], **kw) -> Outcome:
    """One parse of ``item`` refined (``refine`` keywords ``kw``); MethodFailed beyond the caps."""
    problem = caps_problem(model, strokes)
    if problem is not None:
        raise MethodFailed(f"beyond the model's caps: {problem}")
    return refined(model, [item.image], [strokes], **kw)[0]


def run_parse(model, item: Item, k: int, seed: int, steps: int | None = None) -> Outcome:
    """``pyrochar.image.parse.parse`` on one image; its best parse."""
    from pyrochar.image.parse import parse

    try:
        best = parse(model, item.image, k=k, seed=seed, steps=steps)[0]
    except PyrocharError as e:
        raise MethodFailed(str(e)) from None
    return Outcome(best.strokes, best.token_strokes, dict(best.scores), best.blur, best.eps)


def run_baseline(model, item: Item, k: int, seed: int, steps: int | None = None) -> Outcome:
    """One stroke per connected component of the skeleton, refined as ``parse`` refines."""
    from pyrochar.image.propose import component_baseline

    return _refine_one(model, item, component_baseline(item.image), **_steps(steps))


def run_propose(model, item: Item, k: int, seed: int, steps: int | None = None) -> Outcome:
    """The best proposal by type log-prob, scored at the refiner's starting values (0 steps)."""
    from pyrochar.image.propose import propose

    candidates = propose(item.image, model, seed=seed)
    if not candidates:
        raise MethodFailed("no proposal within the model's caps")
    return _refine_one(model, item, candidates[0].strokes, steps=0)


RUNNERS: dict[str, Callable] = {"parse": run_parse, "baseline": run_baseline, "propose": run_propose}


def _steps(steps: int | None) -> dict:
    """``refine``'s keyword for ``--steps`` (none: the refiner's default)."""
    return {} if steps is None else {"steps": steps}


def run_truths(model, items: list[Item], batch: int, steps: int | None = None) -> list[Outcome | None]:
    """The true strokes of each item as a type, held fixed, with the token-level values
    refined (``fit_type=False``), ``batch`` images per refine call; None for an item
    whose true strokes are beyond the model's caps."""
    from tqdm.auto import tqdm

    out: list[Outcome | None] = [None] * len(items)
    fit = [i for i, it in enumerate(items) if caps_problem(model, it.truth) is None]
    for j in tqdm(range(0, len(fit), batch), desc="true strokes", unit="batch"):
        chunk = fit[j : j + batch]
        done = refined(model, [items[i].image for i in chunk], [items[i].truth for i in chunk], fit_type=False,
                       **_steps(steps))
        for i, o in zip(chunk, done, strict=True):
            out[i] = o
    return out


# ------------------------------------------------------------------------ measures


def timed(method: str, model, item: Item, args: argparse.Namespace) -> tuple[Outcome, float, float]:
    """Run one method on one image -> (its best parse, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = RUNNERS[method](model, item, args.k, args.seed, args.steps)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(out: Outcome, item: Item, truth: Outcome) -> dict:
    """The per-image record of one method's best parse against the truth (times added later)."""
    return {
        "n_strokes": len(out.strokes),
        "ink_f1": ink_f1(out.ink(), item.image),
        "mhd_px": trajectory_mhd(out.token_strokes, item.truth),
        "scores": out.scores,
        "blur": out.blur,
        "eps": out.eps,
        "minus_true": out.scores["total"] - truth.scores["total"],
    }


def summarize(records: list[dict], method: str) -> dict:
    """Means and shares over the images of one method (records: per-image dicts).

    An image the method failed on counts as not reaching the truth's log-prob and not
    finding the stroke count, with ink F1 0; the MHD and the times are over the others.
    """
    rows = [r[method] for r in records]
    done = [r for r in rows if "failed" not in r]
    diff = np.array([r["minus_true"] for r in done])
    secs = np.array([r["seconds"] for r in done])
    cpu = np.array([r["cpu_seconds"] for r in done])
    n = len(rows)
    return {
        "n_images": n,
        "failed": n - len(done),
        "ink_f1_mean": sum(r["ink_f1"] for r in done) / n,
        "at_least_true": float((diff >= 0).sum()) / n,
        "minus_true_quantiles": {f"p{q}": float(np.percentile(diff, q)) if len(done) else None
                                 for q in QUANTILES},  # fmt: skip
        "true_stroke_count": sum(r[method].get("n_strokes") == r["n_true_strokes"] for r in records) / n,
        "mhd_px_mean": float(np.mean([r["mhd_px"] for r in done])) if done else None,
        "seconds_mean": float(secs.mean()) if done else None,
        "seconds_median": float(np.median(secs)) if done else None,
        "cpu_seconds_mean": float(cpu.mean()) if done else None,
    }


def summarize_truth(records: list[dict]) -> dict:
    """The reference row: the true strokes refined (F1 of their rendering, their log-prob)."""
    return {
        "n_images": len(records),
        "ink_f1_mean": float(np.mean([r["truth"]["ink_f1"] for r in records])),
        "total_mean": float(np.mean([r["truth"]["scores"]["total"] for r in records])),
    }


def _num(value: float | None, fmt: str) -> str:
    """``value`` formatted, or "n/a" when there is none (every image failed)."""
    return "n/a" if value is None else format(value, fmt)


def markdown_table(summary: dict) -> str:
    """The results as a Markdown table, one row per method and one for the true strokes."""
    lines = [
        "| method | ink F1 | best >= true log-prob | difference, median [p10, p90] nats "
        "| true stroke count | MHD px | s / image, mean (median) | CPU s / image |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, s in summary["methods"].items():
        q = s["minus_true_quantiles"]
        name = method + (f" ({s['failed']} failed)" if s["failed"] else "")
        lines.append(
            f"| {name} | {s['ink_f1_mean']:.3f} | {100 * s['at_least_true']:.0f} % "
            f"| {_num(q['p50'], '+.1f')} [{_num(q['p10'], '+.1f')}, {_num(q['p90'], '+.1f')}] "
            f"| {100 * s['true_stroke_count']:.0f} % | {_num(s['mhd_px_mean'], '.2f')} "
            f"| {_num(s['seconds_mean'], '.1f')} ({_num(s['seconds_median'], '.1f')}) "
            f"| {_num(s['cpu_seconds_mean'], '.1f')} |"
        )
    t = summary["truth"]
    lines.append(f"| true strokes (reference) | {t['ink_f1_mean']:.3f} | | | 100 % | 0 | | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def machine() -> dict:
    """Where the benchmark ran."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def write_results(path: Path | None, payload: dict) -> None:
    """Rewrite the JSON results atomically (a reader never sees half a file)."""
    if path is not None:
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required="--merge" not in (argv if argv is not None else sys.argv),
                    help="a type model trained without --alphabet (docs/parsing.md: how to train it)")
    ap.add_argument("--source", type=Path, default=default_source(), help="the Omniglot folder")
    ap.add_argument("--alphabet", default=DEFAULT_ALPHABET, help="the held-out alphabet judged")
    ap.add_argument("--n-images", type=int, default=40)
    ap.add_argument("--k", type=int, default=5, help="parses kept per image")
    ap.add_argument("--steps", type=int, default=None,
                    help="refinement steps, for the parses and the true strokes alike "
                         "(default: pyrochar.image.parse.STEPS, parse's own default)")
    ap.add_argument("--seed", type=int, default=0, help="picks the images and seeds the search")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--truth-batch", type=int, default=20,
                    help="images whose true strokes are refined together (one batch of refine)")
    ap.add_argument("--part", default="0/1", metavar="I/N",
                    help="judge only images I, I+N, I+2N, ... of the selection (to run N processes)")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="merge the --json-out files of the parts of one run (into --json-out) and print the table")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.steps is None:
        from pyrochar.image.parse import STEPS

        args.steps = STEPS
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown or not args.methods:
        ap.error(f"--methods: choose among {', '.join(METHODS)} (got {', '.join(unknown) or 'none'})")
    try:
        part, parts = (int(v) for v in args.part.split("/"))
        if not 0 <= part < parts:
            raise ValueError
    except ValueError:
        ap.error(f"--part: expected I/N with 0 <= I < N, got {args.part!r}")
    args.part = (part, parts)
    if min(args.n_images, args.k, args.truth_batch) < 1:
        ap.error("--n-images, --k and --truth-batch must be at least 1")
    return args


def git_commit() -> str | None:
    """The commit of the code measured (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def summary_of(images: list[dict], methods: list[str]) -> dict:
    """The summary of per-image records: per method, and the true strokes."""
    return {"methods": {m: summarize(images, m) for m in methods}, "truth": summarize_truth(images)}


#: Settings that must agree between the parts merged by --merge.
SAME_SETTINGS = ("checkpoint", "split", "alphabet", "n_images", "k", "seed", "methods", "ink_threshold", "steps")


def merge(paths: list[Path]) -> dict:
    """The parts of one run (--part I/N, one JSON each) as one result with its summary."""
    parts = []
    for path in paths:
        try:
            parts.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise PyrocharError(f"{path}: cannot read benchmark results: {e}") from None
        if parts[-1].get("format") != "pyrochar-bench-parse":
            raise PyrocharError(f"{path} is not a result of benchmarks/bench_parse.py")
    first = parts[0]["settings"]
    for path, p in zip(paths, parts, strict=True):
        differ = [k for k in SAME_SETTINGS if p["settings"].get(k) != first.get(k)]
        if differ:
            raise PyrocharError(f"{path} was run with other settings ({', '.join(differ)}) than {paths[0]}")
    merged = dict(parts[0])
    merged["parts"] = [{"file": str(path), "command": p["command"], "date": p["date"],
                        "commit": p.get("commit"), "n_images": len(p["images"])}
                       for path, p in zip(paths, parts, strict=True)]  # fmt: skip
    merged["images"] = [im for p in parts for im in p["images"]]
    merged["skipped_truth_beyond_caps"] = [k for p in parts for k in p.get("skipped_truth_beyond_caps", [])]
    merged["summary"] = summary_of(merged["images"], first["methods"])
    return merged


def judge(model, item: Item, truth: Outcome, args: argparse.Namespace) -> dict:
    """The record of one image: the truth's refined scores and each method's measures
    (``{"failed": reason}`` for a method that gave no parse)."""
    record = {"key": item.key, "n_true_strokes": len(item.truth), "load_average": os.getloadavg()[0],
              "truth": {"scores": truth.scores, "ink_f1": ink_f1(truth.ink(), item.image),
                        "blur": truth.blur, "eps": truth.eps}}  # fmt: skip
    for method in args.methods:
        try:
            out, wall, cpu = timed(method, model, item, args)
        except MethodFailed as e:
            record[method] = {"failed": str(e)}
            continue
        record[method] = {**measure(out, item, truth), "seconds": wall, "cpu_seconds": cpu}
    return record


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark; return (and write, image by image) the results."""
    from tqdm.auto import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    model, split = load_model(args.checkpoint, args.source, args.alphabet)
    items, skipped = select_items(args.source, args.alphabet, args.n_images, args.seed)
    part, parts = args.part
    items = items[part::parts]
    payload = {
        "format": "pyrochar-bench-parse",
        "command": "python benchmarks/bench_parse.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git_commit(),
        "settings": {"checkpoint": str(args.checkpoint), "split": split, "alphabet": args.alphabet,
                     "n_images": args.n_images, "part": f"{part}/{parts}", "skipped_no_true_strokes": skipped,
                     "k": args.k, "seed": args.seed, "methods": args.methods, "ink_threshold": INK_THRESHOLD,
                     "steps": args.steps},
        "images": [],
    }
    truths = run_truths(model, items, args.truth_batch, args.steps)
    payload["skipped_truth_beyond_caps"] = [it.key for it, t in zip(items, truths, strict=True) if t is None]
    bar = tqdm([(it, t) for it, t in zip(items, truths, strict=True) if t is not None],
               desc="images", unit="image")  # fmt: skip
    for item, truth in bar:
        payload["images"].append(judge(model, item, truth, args))
        payload["summary"] = summary_of(payload["images"], args.methods)
        write_results(args.json_out, payload)
        first = payload["summary"]["methods"][args.methods[0]]
        bar.set_postfix(f1=f"{first['ink_f1_mean']:.3f}", mode=f"{first['at_least_true']:.0%}")
    return payload


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.merge:
            payload = merge(args.merge)
            write_results(args.json_out, payload)
        else:
            payload = run(args)
    except PyrocharError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    st = payload["settings"]
    print(markdown_table(payload["summary"]))
    print(f"{len(payload['images'])} images of {st['alphabet']}, checkpoint {st['checkpoint']} "
          f"(split {st['split']}), K = {st['k']}, seed {st['seed']}; "
          f"{payload['machine']['cpu_count']} CPUs, {payload['machine']['torch_threads']} torch threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
