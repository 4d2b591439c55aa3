"""Distributed runs (pyrochar.distributed): 2 CPU processes under gloo on loopback,
started by torchrun, give what one process gives; a failed or hung process stops
the run with one clear line within a bounded time."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SUBSET_OMNIGLOT, TINY_HLSTM

from pyrochar import distributed
from pyrochar.errors import PyrocharError

#: Seconds any launched process may take before the test fails instead of hanging.
LAUNCH_LIMIT_S = 120
#: The collectives' timeout given to launched processes (a hung peer is found in this time).
SHORT_TIMEOUT_S = 8


def _env(tmp_path: Path, timeout_s: float = LAUNCH_LIMIT_S) -> dict:
    """The environment of launched processes: the test's cache, one thread each,
    collectives that wait ``timeout_s`` at most."""
    env = dict(os.environ)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update(PYROCHAR_CACHE=str(tmp_path / "cache"), PYROCHAR_DATA=str(tmp_path / "no-data-here"),
               OMP_NUM_THREADS="1", PYROCHAR_DIST_TIMEOUT=str(timeout_s))
    return env


def torchrun(tmp_path: Path, *args, timeout_s: float = LAUNCH_LIMIT_S) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m pyrochar ARGS`` on loopback (a free port is
    picked by the rendezvous); output captured."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "-m", "pyrochar",
               *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=_env(tmp_path, timeout_s), capture_output=True, text=True,
                          timeout=LAUNCH_LIMIT_S)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# ------------------------------------------------------------ sharing work


@pytest.fixture
def as_rank(monkeypatch):
    """``as_rank(r, n)``: the helpers behave as rank r of n (no process group)."""

    def _set(r: int, n: int) -> None:
        monkeypatch.setattr(distributed, "rank", lambda: r)
        monkeypatch.setattr(distributed, "world_size", lambda: n)

    return _set


@pytest.mark.parametrize("n_items", [0, 1, 5, 6, 7])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_then_unshard_gives_the_items_back(as_rank, n_items, world):
    items = [f"image{i}" for i in range(n_items)]
    parts = []
    for r in range(world):
        as_rank(r, world)
        parts.append(distributed.shard(items))
    assert sorted(sum(parts, [])) == sorted(items)  # each item on one rank
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert distributed.unshard(parts) == items


def test_batch_parts_are_contiguous_and_cover_the_batch(as_rank):
    batch = np.array([7, 3, 9, 1, 4])
    parts = []
    for r in range(3):
        as_rank(r, 3)
        parts.append(distributed.batch_part(batch))
    assert [p.tolist() for p in parts] == [[7, 3], [9, 1], [4]]
    as_rank(1, 8)
    assert distributed.batch_part(batch).tolist() == [3]
    as_rank(6, 8)
    assert distributed.batch_part(batch).tolist() == []  # B < N: some ranks get nothing


def test_each_rank_draws_its_own_dropout_seed(as_rank):
    seeds = set()
    for r in range(3):
        as_rank(r, 3)
        seeds.add(distributed.rank_seed(0, 4))
        assert distributed.rank_seed(0, 4) == distributed.rank_seed(0, 4)
        assert 0 <= distributed.rank_seed(0, 4) < 2**63
    assert len(seeds) == 3


def test_one_process_is_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched() and not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_root()) == (0, 1, True)
    assert distributed.init_from_env("cpu") == "cpu"
    assert distributed.all_sum(2.5) == 2.5 and distributed.gather("x") == ["x"]
    assert distributed.from_root(lambda: 3) == 3 and distributed.label("bad") == "bad"


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "1e9"])
def test_a_bad_timeout_is_one_line(monkeypatch, value):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(PyrocharError, match=f"{distributed.TIMEOUT_ENV}=.*expected seconds"):
        distributed.timeout_s()


def test_world_size_without_torchrun_is_one_line(run, monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(distributed.DistributedError, match="start the processes with torchrun"):
        distributed.init_from_env("cpu")
    out = run("train", "--source", SUBSET_OMNIGLOT, "--out", tmp_path / "run", ok=False).output
    assert out.strip() == ("Error: rank ? of 2: WORLD_SIZE is set but RANK, LOCAL_RANK, MASTER_ADDR, "
                           "MASTER_PORT are not: start the processes with torchrun (docs/distributed.md), "
                           "or unset WORLD_SIZE")
    monkeypatch.setenv("WORLD_SIZE", "two")
    out = run("train", "--source", SUBSET_OMNIGLOT, "--out", tmp_path / "run", ok=False).output
    assert out.strip() == ("Error: rank ? of two: WORLD_SIZE='two' is not an integer: start the processes "
                           "with torchrun (docs/distributed.md), or unset WORLD_SIZE")
    assert not (tmp_path / "run").exists()  # nothing written


# --------------------------------------------------- a hung or failed rank

HANG = """
import sys, time
from pyrochar import distributed
from pyrochar.errors import PyrocharError
distributed.init_from_env("cpu")
if distributed.rank() == 1:
    time.sleep(60)  # hangs: never reaches the barrier
try:
    distributed.barrier("test barrier")
except PyrocharError as e:
    print("Error:", distributed.label(str(e)))
    sys.exit(1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_hung_rank_stops_the_others_after_the_timeout(tmp_path):
    env = {**_env(tmp_path, SHORT_TIMEOUT_S), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", HANG], cwd=REPO, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in range(2)]
    try:
        out, _ = procs[0].communicate(timeout=LAUNCH_LIMIT_S)
    finally:
        procs[1].kill()
        procs[1].wait()
    assert procs[0].returncode == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("Error: rank 0 of 2: test barrier failed: another process of this run")
    assert f"within {SHORT_TIMEOUT_S} s" in lines[0] and distributed.TIMEOUT_ENV in lines[0]


# --------------------------------------------------------------- training

TINY = [x for key, value in {**TINY_HLSTM, "char_dropout": 0.0}.items()
        for x in ("--set", f"{key}={value}")]


def _train_args(out: Path, epochs: int) -> list:
    """A tiny dropout-free H-LSTM, 5 batches of 7 per epoch (parts of 4 and 3 drawings)."""
    return ["train", "--model", "hlstm", "--source", SUBSET_OMNIGLOT, "--split", "character:0",
            "--epochs", epochs, "--max-batches", 5, "--batch-size", 7, *TINY, "--out", out]


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _same_run(one: Path, two: Path) -> None:
    """Two run folders hold the same weights (1e-5), history and test NLL (1e-4)."""
    a, b = _weights(one / "last.pt"), _weights(two / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5, msg=key)
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (one, two))
    assert ha["epoch"] == hb["epoch"] and ha["lr"] == hb["lr"]
    for key in ("train_nll", "val_nll"):
        np.testing.assert_allclose(hb[key], ha[key], rtol=1e-6, atol=1e-4)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert rb["test"]["n"] == ra["test"]["n"] == 68
    assert rb["test"]["mean_nll"] == pytest.approx(ra["test"]["mean_nll"], abs=1e-4)
    assert rb["config"] == ra["config"]


def test_two_processes_train_the_weights_of_one_and_resume(run, one_thread, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run(*_train_args(one, 1))  # prepares the data into the cache the launched processes share
    out = _ok(torchrun(tmp_path, *_train_args(two, 1)))
    assert out.count("epoch 1: train NLL") == 1 and out.count("test NLL") == 1  # rank 0 alone logs
    assert not list(two.glob(".*.tmp"))
    _same_run(one, two)  # k = 5 steps
    resume = ["--resume", "--allow-changed", "epochs"]
    run(*_train_args(one, 2), *resume)
    out = _ok(torchrun(tmp_path, *_train_args(two, 2), *resume))
    assert "resuming from" in out and "epoch 2: train NLL" in out
    _same_run(one, two)  # 5 more steps after the resume
    assert json.loads((two / "history.json").read_text())["epoch"] == [1, 2]


# ---------------------------------------------------- parse and classify


def test_sharded_parse_equals_one_process(run, one_thread, tmp_path):
    pytest.importorskip("skimage")
    from test_cli_parse import _omniglot_png

    images = [tmp_path / f"{name}.png" for name in ("t", "plus", "l")]
    for path, segs in zip(images, ([(20, 20, 20, 85), (20, 52, 88, 52)],
                                   [(15, 52, 90, 52), (52, 15, 52, 90)],
                                   [(15, 30, 90, 30), (90, 30, 90, 80)]), strict=True):
        _omniglot_png(path, segs)
    args = ["parse", *images, "-k", 2, "--candidates", 40, "--steps", 2]
    run(*args, "-o", tmp_path / "one.png", "--json-out", tmp_path / "one.json")
    out = _ok(torchrun(tmp_path, *args, "-o", tmp_path / "two.png", "--json-out", tmp_path / "two.json"))
    assert out.count("parse(s) of 3 image(s)") == 1
    assert (tmp_path / "two.json").read_text() == (tmp_path / "one.json").read_text()
    assert (tmp_path / "two.png").read_bytes() == (tmp_path / "one.png").read_bytes()


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    """Three runs of four made-up shapes (as tests/test_oneshot_classify.py builds them)."""
    from test_oneshot_runs import make_source

    from pyrochar.oneshot.runs import build_runs

    make_source(tmp_path / "source", {"Shapes": (4, 3)})
    build_runs(tmp_path / "source", ["Shapes"], 3, 0, tmp_path / "runs")
    return tmp_path / "runs"


def _without_seconds(data):
    """A JSON value with every ``seconds`` entry taken out (wall times differ)."""
    if isinstance(data, dict):
        return {k: _without_seconds(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [_without_seconds(v) for v in data]
    return data


@pytest.mark.parametrize("method", [
    ["--method", "mhd"],
    pytest.param(["--method", "model", "--runs", "1,3", "-k", 1, "--steps", 1, "--parse-steps", 0],
                 marks=pytest.mark.slow),  # 18 s; the mhd case covers the same sharding
], ids=["mhd", "model"])
def test_sharded_classify_equals_one_process(run, one_thread, runs_dir, tmp_path, method):
    one, two = tmp_path / "one", tmp_path / "two"
    run("classify", runs_dir, *method, "--out", one)
    out = _ok(torchrun(tmp_path, "classify", runs_dir, *method, "--out", two))
    assert out.count("mean error") == 1  # rank 0 alone prints
    names = sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in two.iterdir()) == names and len(names) >= 5
    for name in names:
        if name.endswith(".json"):  # every score, bit for bit
            a, b = (json.loads((d / name).read_text()) for d in (one, two))
            assert _without_seconds(b) == _without_seconds(a), name
        else:
            assert (two / name).read_bytes() == (one / name).read_bytes(), name
    runs = [r["run"] for r in json.loads((two / "summary.json").read_text())["runs"]]
    assert runs == (["run01", "run02", "run03"] if "mhd" in method else ["run01", "run03"])


def test_a_rank_that_fails_stops_the_run_with_one_line(runs_dir, tmp_path):
    (runs_dir / "run02" / "test" / "item01.png").write_bytes(b"not a png")  # rank 1's run
    start = time.monotonic()
    result = torchrun(tmp_path, "classify", runs_dir, "--method", "mhd", "--out", tmp_path / "out",
                      timeout_s=SHORT_TIMEOUT_S)
    assert time.monotonic() - start < LAUNCH_LIMIT_S  # never a hang (the call would have raised)
    assert result.returncode != 0
    # rank 1 says what was wrong; rank 0, if torchrun did not stop it first, that rank 1 stopped
    # (a progress bar may precede a message on its line)
    errors = dict(re.findall(r"Error: rank (\d) of 2: (.*)", result.stderr))
    assert "item01.png is not a picture" in errors["1"], result.stderr
    assert set(errors) <= {"0", "1"}
    if "0" in errors:
        assert errors["0"].startswith("gathering the ranks' results failed: another process"), errors
    assert "Traceback" not in errors["1"] + errors.get("0", "")
    assert not (tmp_path / "out" / "run02.json").exists()
