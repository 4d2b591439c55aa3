"""Full NS throughput: training, scoring, sampling, and Pyro's overhead.

Usage: python benchmarks/bench_model.py [--source PATH] [--device cpu|cuda]
                                        [--batches 6] [--batch-size 200] [--repeat 3]
                                        [--attention post|sat] [--skip-epoch] [--json]
                                        [--no-malloc-tuning] [--precision fp32|bf16-mixed]
                                        [--profile]

On the drawings of PATH (default ../shared/omniglot), with the default Full NS
config and length-grouped batches of 200 (the paper's size), measures:

- training: drawings per second of full steps (teacher-forced Pyro trace,
  backward, Adam), canvases cached as in `pyrochar train`;
- scoring: drawings per second of the teacher-forced trace under no_grad;
- sampling: characters per second from the per-step Pyro model (batches of 200);
- Pyro against plain torch: the same networks and distributions, log-probs
  summed directly without Pyro, timed in the same run (ratio = Pyro / plain),
  forward only and forward + backward;
- an epoch over all drawings (training), in seconds.

``--profile`` prints instead torch.profiler's table of the operators taking the
most time in one training pass and one scoring pass over the same batches.

Prints the best of --repeat passes of each figure (the median too). Like the
``pyrochar`` command it first calls ``pyrochar.allocator.tune_allocator()``;
``--no-malloc-tuning`` measures without it (glibc's default allocator settings).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyro  # noqa: E402

from pyrochar.allocator import tune_allocator  # noqa: E402
from pyrochar.data.loader import BatchSource  # noqa: E402
from pyrochar.data.prepare import prepare_dataset  # noqa: E402
from pyrochar.models import FullNSConfig, GenerateCharacter  # noqa: E402
from pyrochar.sampling import sample_batch  # noqa: E402
from pyrochar.scoring import log_likelihood  # noqa: E402


def plain_log_likelihood(model, batch):
    """The teacher-forced log-likelihood per drawing without any Pyro machinery."""
    index, sites = model.teacher_forced_sites(batch)
    total = 0.0
    for s in sites:  # masked log-probs, summed over each plate entry's steps
        lp = torch.where(s.mask, s.fn.log_prob(s.value), 0.0)
        total = total + lp.reshape(len(index), -1).sum(-1)
    return total.new_zeros(batch.batch_size).index_add(0, index, total)


def timed(fn, repeat, sync):
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=str(REPO.parent / "shared" / "omniglot"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--attention", choices=["post", "sat"], default="post")
    ap.add_argument("--skip-epoch", action="store_true", help="Do not time a whole epoch.")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-malloc-tuning", action="store_true", help="Keep glibc's defaults.")
    ap.add_argument("--profile", action="store_true", help="Print the operators' time and exit.")
    ap.add_argument("--precision", choices=["fp32", "bf16-mixed"], default="fp32",
                    help="Precision of the canvas CNNs (GenerateCharacter.set_precision).")
    args = ap.parse_args()
    pyro.enable_validation(False)
    malloc_tuned = False if args.no_malloc_tuning else tune_allocator()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    ds = prepare_dataset(args.source)
    t0 = time.perf_counter()
    source = BatchSource(ds, with_canvases=True, device=device)
    canvas_s = time.perf_counter() - t0
    torch.manual_seed(0)
    model = GenerateCharacter(FullNSConfig(attention=args.attention)).to(device).set_precision(args.precision)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    # a fixed, representative set of batches: every k-th of the shuffled epoch
    all_batches = source.index_batches(args.batch_size, shuffle=True, seed=0)
    step = max(1, len(all_batches) // args.batches)
    picked = all_batches[::step][: args.batches]
    batches = [source.batch(idx) for idx in picked]
    n_drawings = sum(b.batch_size for b in batches)

    def train_pass(loglik):
        model.train()
        for b in batches:
            loss = -loglik(model, b).mean() if loglik is plain_log_likelihood else -loglik(model, b)[0].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def score_pass(loglik):
        model.eval()
        with torch.no_grad():
            for b in batches:
                loglik(model, b)

    results = {}
    train_pass(log_likelihood)  # warm-up
    if args.profile:
        from torch.profiler import profile

        for name, fn in [("training", train_pass), ("scoring", score_pass)]:
            with profile() as prof:
                fn(log_likelihood)
            print(f"--- {name}: {n_drawings} drawings")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
        return
    for name, fn in [
        ("train_pyro", lambda: train_pass(log_likelihood)),
        ("train_plain", lambda: train_pass(plain_log_likelihood)),
        ("score_pyro", lambda: score_pass(log_likelihood)),
        ("score_plain", lambda: score_pass(plain_log_likelihood)),
    ]:
        best, med = timed(fn, args.repeat, sync)
        results[name] = {"drawings_per_s": n_drawings / best, "median_drawings_per_s": n_drawings / med}

    model.eval()
    n_samples = args.batch_size
    best, med = timed(lambda: sample_batch(model, n_samples, seed=0), args.repeat, sync)
    results["sample"] = {"characters_per_s": n_samples / best, "median_characters_per_s": n_samples / med}

    def epoch():
        model.train()
        for idx in all_batches:
            ll, _ = log_likelihood(model, source.batch(idx))
            opt.zero_grad()
            (-ll.mean()).backward()
            opt.step()

    if not args.skip_epoch:
        results["epoch_seconds"], _ = timed(epoch, 1, sync)
    results["attention"] = args.attention
    results["malloc_tuned"] = malloc_tuned
    results["precision"] = args.precision
    results["canvas_cache_seconds"] = canvas_s
    results["pyro_over_plain_train"] = results["train_plain"]["drawings_per_s"] / results["train_pyro"]["drawings_per_s"]
    results["pyro_over_plain_score"] = results["score_plain"]["drawings_per_s"] / results["score_pyro"]["drawings_per_s"]
    results["machine"] = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
    }
    results["drawings"] = len(source)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for k, v in results.items():
        print(f"{k:24} {v}")


if __name__ == "__main__":
    main()
