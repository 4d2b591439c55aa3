"""What each part of the one-shot model method buys: k, refit steps, the image weight,
two-way, the token term.

Usage:
    python benchmarks/bench_oneshot.py RUNS_DIR --checkpoint runs/a0-60/best.pt
        [--runs 1-4] [--k 5] [--steps 10,30,60] [--image-weight 1,0.333] [--parse-steps N]
        [--seed 0] [--json-out bench_oneshot.json]
    python benchmarks/bench_oneshot.py --merge part1.json part2.json   (one table over both)

For each run it does the work of ``pyrochar classify --method model`` once with the
largest settings and reads the smaller ones off it (the same numbers a classify call
with those settings computes, up to float rounding):

* every image is parsed once: the parser's refined candidates for ``--k`` parses
  (:func:`pyrochar.oneshot.refit.parse_candidates`; it refines the same 10 for any
  k <= 5); for each image weight, the ``--k`` best of them in that weight's tempered
  model are the image's parses, and the k best for a smaller k are their first k;
* every parse is refitted to every image of the other side once per value of
  ``--steps`` and of ``--image-weight`` (:func:`pyrochar.oneshot.refit.refit`; the weight
  of the image term in the refit's objective and in the score), keeping each
  candidate's token and image log-probs.

Then, per steps, image weight and k <= ``--k`` (the first k parses, weights
renormalized, log P(I_c) from their totals, all in the tempered model of that weight),
the error of:

* ``one_way``: log P(I_t | I_c), the training parses refitted to the test item;
* ``two_way``: + log P(I_c | I_t) - log P(I_c) (BPL's, what classify picks by);
* ``two_way_no_token``: the two-way score with the token log-prob left out of every
  refitted term (the refits themselves still use the token model as their prior):
  what the token model's density adds to the score.

Times: the seconds spent parsing, and refitting per steps value (all k_max parses);
a classify call with k parses spends about k / k_max of that refit time. The type
model (``--checkpoint``) must not have seen the runs' alphabet.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np


def scores(fwd, bwd, train_parses, test_parses, k, weight, token=True):
    """(T, C) one-way and two-way scores with the first k parses of each image, from the
    refits' (S, M, K) token and image terms (``fwd``: training parses refitted to the test
    items, ``bwd`` the reverse) with the image's weighted by ``weight``; ``token=False``
    leaves the token log-prob out of every refitted term."""
    from pyrochar.oneshot.refit import log_lik, log_weights, two_way

    train_k, test_k = [p.first(k) for p in train_parses], [p.first(k) for p in test_parses]
    forward = log_lik(log_weights(train_k, weight), fwd.token[..., :k], fwd.image[..., :k], weight,
                      token).T  # (T, C)
    backward = log_lik(log_weights(test_k, weight), bwd.token[..., :k], bwd.image[..., :k], weight,
                       token)  # (T, C)
    marginals = np.array([p.log_marginal(weight) for p in train_k])  # (C,)
    return forward, two_way(forward, backward, marginals)


def error(score: np.ndarray, answers) -> float:
    """Percent of rows whose largest column is not the answer."""
    return float(100.0 * np.mean(np.argmax(score, axis=1) != np.asarray(answers)))


class _NoBar:
    def update(self, n):
        pass


def config_key(steps: int, weight: float) -> str:
    """The JSON key of one refit setting."""
    return f"steps={steps},image_weight={weight:.4g}"


def bench_run(model, run, k_max: int, steps_list, weights, parse_steps, seed: int) -> dict:
    """Every measure of one run (see the module docstring)."""
    from pyrochar.oneshot import refit

    train, test = run.images()
    t0 = time.perf_counter()
    # every refined candidate once; each image weight chooses its k_max best of them
    train_candidates = [refit.parse_candidates(model, image, k_max, parse_steps, seed) for image in train]
    test_candidates = [refit.parse_candidates(model, image, k_max, parse_steps, seed) for image in test]
    parse_seconds = time.perf_counter() - t0
    out = {"run": run.name, "parse_seconds": parse_seconds, "by_config": {}}
    for steps, w in itertools.product(steps_list, weights):
        train_parses = [c.best(k_max, w) for c in train_candidates]
        test_parses = [c.best(k_max, w) for c in test_candidates]
        t0 = time.perf_counter()
        fwd = refit.refit(model, train_parses, train, test, steps, _NoBar(), image_weight=w)  # (C, T, K)
        bwd = refit.refit(model, test_parses, test, train, steps, _NoBar(), image_weight=w)  # (T, C, K)
        row = {"refit_seconds": time.perf_counter() - t0, "by_k": {}}
        for k in range(1, k_max + 1):
            one, two = scores(fwd, bwd, train_parses, test_parses, k, w)
            _, two_nt = scores(fwd, bwd, train_parses, test_parses, k, w, token=False)
            row["by_k"][str(k)] = {"one_way": error(one, run.answers), "two_way": error(two, run.answers),
                              "two_way_no_token": error(two_nt, run.answers)}
        out["by_config"][config_key(steps, w)] = row
        print(f"{run.name} steps {steps} image weight {w:.3g}: " + ", ".join(
            f"k={k} {v['two_way']:.0f}/{v['one_way']:.0f}/{v['two_way_no_token']:.0f}"
            for k, v in row["by_k"].items()) + f" (two/one/no-token %), refit {row['refit_seconds']:.0f} s",
            flush=True)
    return out


def table(results: list[dict], k_max: int, steps_list, weights) -> str:
    """A markdown table of the mean errors over runs."""
    lines = ["| refit steps | image weight | k | two-way | one-way | two-way, no token term "
             "| refit s/run (k_max) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for steps, w in itertools.product(steps_list, weights):
        rows = [r["by_config"][config_key(steps, w)] for r in results]
        sec = np.mean([row["refit_seconds"] for row in rows])
        for k in range(1, k_max + 1):
            m = {name: np.mean([row["by_k"][str(k)][name] for row in rows])
                 for name in ("two_way", "one_way", "two_way_no_token")}
            lines.append(f"| {steps} | {w:.3g} | {k} | {m['two_way']:.1f} | {m['one_way']:.1f} | "
                         f"{m['two_way_no_token']:.1f} | {sec:.0f} |")
    parse = np.mean([r["parse_seconds"] for r in results])
    lines.append(f"\nparsing: {parse:.0f} s per run ({len(results)} runs)")
    return "\n".join(lines)


def merge(paths) -> None:
    """Print one table over the runs of several ``--json-out`` files (same k, steps, weights)."""
    docs = [json.loads(Path(p).read_text()) for p in paths]
    # "format" as classify's runNN.json: files scored otherwise (format 1: the parses' weights
    # and log P(I_c) at full weight) are not merged with newer ones
    if len({(d.get("format", 1), d["k"], tuple(d["steps"]), tuple(d["image_weights"]), d["checkpoint"])
            for d in docs}) != 1:
        raise SystemExit("--merge: the files differ in --k, --steps, --image-weight, --checkpoint or "
                         "in the scoring's format (rerun the older ones)")
    results = [r for d in docs for r in d["results"]]
    print(table(results, docs[0]["k"], docs[0]["steps"], docs[0]["image_weights"]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs_dir", nargs="?")
    ap.add_argument("--merge", nargs="+", default=None, help="--json-out files to print one table of")
    ap.add_argument("--checkpoint")
    ap.add_argument("--runs", default=None, help="run numbers, e.g. 1-4")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--steps", default="10,30,60")
    ap.add_argument("--image-weight", default=None,
                    help="image weights to refit with, e.g. 1,0.5,0.333 (default: refit.IMAGE_WEIGHT)")
    ap.add_argument("--parse-steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge)
    if not args.runs_dir or not args.checkpoint:
        ap.error("RUNS_DIR and --checkpoint are required (or --merge FILES)")

    import torch

    from pyrochar.atomic import atomic_write_text
    from pyrochar.checkpoint import load_checkpoint
    from pyrochar.oneshot.refit import IMAGE_WEIGHT
    from pyrochar.oneshot.runs import parse_run_spec, read_runs

    steps_list = [int(s) for s in args.steps.split(",")]
    weights = [IMAGE_WEIGHT] if args.image_weight is None else [float(w) for w in args.image_weight.split(",")]
    runs = read_runs(args.runs_dir, parse_run_spec(args.runs) if args.runs else None)
    model = load_checkpoint(args.checkpoint)
    model.eval()
    results = [bench_run(model, run, args.k, steps_list, weights, args.parse_steps, args.seed) for run in runs]
    print(table(results, args.k, steps_list, weights))
    if args.json_out:
        from pyrochar.oneshot.classify import RESULT_FORMAT

        doc = {"format": RESULT_FORMAT, "runs_dir": str(Path(args.runs_dir)), "checkpoint": args.checkpoint,
               "k": args.k, "steps": steps_list, "image_weights": weights, "parse_steps": args.parse_steps,
               "seed": args.seed, "threads": torch.get_num_threads(), "results": results}
        atomic_write_text(Path(args.json_out), json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
