"""The drawing pad's server: latency of a live reading and of completions, and a load run.

Usage: python benchmarks/bench_serve.py [--repeat 30] [--load-seconds 30] [--clients 4]
                                        [--model full-ns] [--json]

Starts ``pyrochar serve --port 0`` as a subprocess (the real server: uvicorn on
loopback) and measures, with a 3-stroke drawing of the committed fixture
(tests/data/omniglot, Korean/character02/0644_01):

- **read**: ``POST /api/read`` (score + next-start heat map + termination), for
  each model, ``--repeat`` times one after another;
- **complete**: ``POST /api/complete`` with n = 9 after the first 2 strokes, each
  model, ``--repeat`` / 3 times (seeds 0, 1, ...);
- **load**: ``--clients`` threads, each with its own connection, posting the
  reading of ``--model`` back to back for ``--load-seconds`` seconds: requests,
  errors (any non-200 answer or failed request), throughput, median and p95
  latency as each client saw it.

Server-side times are the app's own (its ``Server-Timing`` header: from the
request reaching the app to the response being ready, JSON included), with the
CPU time the server process spent meanwhile (all its threads: on a machine shared
with other work it varies less than the elapsed time); client times add HTTP on
loopback. Medians are printed, with the p95 for the load run.
Every request is bounded (the server's limits), so the run takes about
``--load-seconds`` + 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyrochar  # noqa: E402

DRAWING = "Korean/character02/0644_01"
MODELS = ["full-ns", "hlstm", "baseline", "bpl"]


def start_server() -> tuple[subprocess.Popen, str]:
    """``pyrochar serve --port 0`` in a subprocess -> (process, base URL it printed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pyrochar_cli.main", "serve", "--port", "0"],
                            cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    line = proc.stdout.readline()
    if not line.startswith("pyrochar drawing pad: "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line.strip()}")
    return proc, line.split()[3].rstrip("/")


def server_ms(response: httpx.Response) -> tuple[float, float]:
    """(the app's own time for a request, the server's CPU time meanwhile), in ms, from
    its Server-Timing header ``app;dur=X, cpu;dur=Y``."""
    app, cpu = (float(part.split("dur=")[1]) for part in response.headers["server-timing"].split(","))
    return app, cpu


def timed(client: httpx.Client, path: str, body: dict) -> tuple[float, float, float]:
    """POST once -> (server ms, server CPU ms, client ms); raises on an error answer."""
    start = time.perf_counter()
    r = client.post(path, json=body)
    wall = 1000 * (time.perf_counter() - start)
    r.raise_for_status()
    return (*server_ms(r), wall)


def medians(samples: list[tuple[float, float, float]]) -> dict:
    return {key: round(statistics.median(s[i] for s in samples), 1)
            for i, key in enumerate(("server_ms", "cpu_ms", "client_ms"))} | {"n": len(samples)}


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def load_run(base: str, body: dict, clients: int, seconds: float) -> dict:
    """``clients`` threads posting ``body`` to /api/read back to back for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client_loop():
        with httpx.Client(base_url=base, timeout=60) as c:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    r = c.post("/api/read", json=body)
                    ok = r.status_code == 200
                    why = f"{r.status_code} {r.text[:80]}"
                except httpx.HTTPError as e:
                    ok, why = False, repr(e)
                with lock:
                    if ok:
                        latencies.append(1000 * (time.perf_counter() - start))
                    else:
                        errors.append(why)

    began = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies) + len(errors),
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "throughput_per_s": round(len(latencies) / elapsed, 1),
            "median_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--model", default="full-ns", choices=MODELS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    drawing = next(d for d in pyrochar.load_drawings(REPO / "tests" / "data" / "omniglot")
                   if d.key == DRAWING)
    strokes = [s.tolist() for s in drawing.strokes]
    proc, base = start_server()
    try:
        out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
               "load_average_before": os.getloadavg(), "read": {}, "complete_9": {}}
        with httpx.Client(base_url=base, timeout=120) as c:
            for model in MODELS:
                body = {"model": model, "strokes": strokes}
                timed(c, "/api/read", body)  # warm-up
                out["read"][model] = medians([timed(c, "/api/read", body) for _ in range(args.repeat)])
                req = {"model": model, "strokes": strokes[:2], "n": 9}
                timed(c, "/api/complete", req)
                out["complete_9"][model] = medians(
                    [timed(c, "/api/complete", {**req, "seed": i})
                     for i in range(max(1, args.repeat // 3))])
        out["load"] = load_run(base, {"model": args.model, "strokes": strokes}, args.clients,
                               args.load_seconds)
        out["load"]["model"] = args.model
        out["load_average_after"] = os.getloadavg()
    finally:
        proc.kill()
        proc.wait()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"machine: {out['machine']}; load average before {out['load_average_before'][0]:.2f}, "
          f"after {out['load_average_after'][0]:.2f}")
    print("median ms: server (server CPU) client")
    print(f"{'model':<10} {'read':>24} {'complete n=9':>28}")
    for m in MODELS:
        r, c = out["read"][m], out["complete_9"][m]
        print(f"{m:<10} {r['server_ms']:>8.1f} ({r['cpu_ms']:>6.1f}) {r['client_ms']:>7.1f} "
              f"{c['server_ms']:>12.1f} ({c['cpu_ms']:>6.1f}) {c['client_ms']:>7.1f}")
    ld = out["load"]
    print(f"load: {ld['clients']} clients x {ld['seconds']} s reading with {ld['model']}: "
          f"{ld['requests']} requests, {ld['errors']} errors, {ld['throughput_per_s']} req/s, "
          f"median {ld['median_ms']} ms, p95 {ld['p95_ms']} ms")


if __name__ == "__main__":
    main()
