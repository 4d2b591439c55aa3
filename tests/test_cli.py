"""Every command through click's CliRunner, and their error paths."""

import json
import math

import pytest
from conftest import TINY_FULL_NS

TINY_SET = [a for k, v in TINY_FULL_NS.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def test_help_lists_the_commands(run):
    out = run("--help").output
    for cmd in ("data", "train", "score", "sample"):
        assert cmd in out


def test_stats_json_on_the_shared_data(run, omniglot_root):
    out = json.loads(run("data", "stats", "--source", omniglot_root, "--json").stdout)
    assert out == {
        "alphabets": 6,
        "characters": 203,
        "drawings": 4060,
        "skipped": 0,
        "strokes_per_character": pytest.approx(9382 / 4059),
        "control_points_per_stroke_mean": pytest.approx(5.06, abs=0.005),
        "control_points_per_stroke_median": 4.0,
        "control_points_per_stroke_max": 32,
        "empty_after_filter": 1,
    }


def test_stats_text_and_skipped_files(run, small_omniglot, tmp_path):
    import shutil

    bad = tmp_path / "bad" / "strokes_background"
    shutil.copytree(small_omniglot / "strokes_background", bad)
    victim = next((bad / "Greek" / "character01").glob("*.txt"))
    victim.write_text("START\n1,2,3\n")  # no final BREAK
    res = run("data", "stats", "--source", bad.parent)
    assert "skipped 1 bad file" in res.output and victim.name in res.output
    assert "drawings read             35" in res.output
    res = run("data", "stats", "--source", bad.parent, "--strict", ok=False)
    assert victim.name in res.output and "BREAK" in res.output


def test_missing_source_and_no_data(run, tmp_path):
    res = run("data", "stats", "--source", tmp_path / "nope", ok=False)
    assert "does not exist" in res.output
    res = run("data", "stats", ok=False)
    assert "pyrochar data download" in res.output


def test_prepare_twice_reuses_the_cache(run, small_omniglot, tmp_path):
    run("data", "prepare", "--source", small_omniglot)
    files = list((tmp_path / "cache").glob("prepared-*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    run("data", "prepare", "--source", small_omniglot)
    assert files[0].stat().st_mtime_ns == mtime


def test_show_writes_a_picture(run, fixture_root, tmp_path):
    from PIL import Image

    out = tmp_path / "fig.png"
    run("data", "show", "--source", fixture_root, "--alphabet", "Greek", "--character", 3,
        "--drawer", 7, "-o", out)
    assert Image.open(out).size[0] > 3 * 105
    res = run("data", "show", "--source", fixture_root, "--alphabet", "Greek", "--character", 99,
              "-o", out, ok=False)
    assert "no drawing" in res.output


def test_split_command(run, small_omniglot, tmp_path):
    run("data", "split", "--source", small_omniglot, "--split", "alphabet:1", "-o", tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["format"] == "pyrochar-split" and len(data["test"]) == 3
    res = run("data", "split", "--source", small_omniglot, "--split", "bogus", "-o", tmp_path / "t.json", ok=False)
    assert "unknown split" in res.output


def test_train_score_sample_end_to_end(run, small_omniglot, tmp_path):
    out = tmp_path / "run"
    res = run("train", "--source", small_omniglot, "--split", "alphabet:0", "--epochs", 2,
              "--batch-size", 8, *TINY_SET, "--out", out)
    assert "test NLL" in res.output
    assert (out / "best.pt").exists() and (out / "split.json").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["test"]["n"] > 0
    # resume: already finished, nothing left to do but it must not fail
    run("train", "--source", small_omniglot, "--split", "alphabet:0", "--epochs", 2,
        "--batch-size", 8, *TINY_SET, "--out", out, "--resume")

    ck = out / "best.pt"
    res = run("score", "--checkpoint", ck, "--source", small_omniglot, "--json", "--per-drawing")
    data = json.loads(res.stdout)
    assert data["n"] == 36 and len(data["per_drawing"]) == 36
    assert set(data["breakdown"]) == {"loc", "offset", "stroke_end", "char_end"}
    files = sorted((small_omniglot / "strokes_background" / "Greek" / "character01").glob("*.txt"))[:2]
    res = run("score", "--checkpoint", ck, *files)
    assert "mean NLL" in res.output and "n = 2" in res.output

    png, js = tmp_path / "s.png", tmp_path / "s.json"
    run("sample", "--checkpoint", ck, "-n", 4, "--seed", 0, "-o", png, "--json-out", js)
    from pyrochar.data.jsonio import read_drawings_json

    assert len(read_drawings_json(js)) == 4
    res = run("score", "--checkpoint", ck, js, "--json")
    assert json.loads(res.stdout)["n"] >= 1


def test_model_command_errors(run, small_omniglot, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = run("score", "--checkpoint", bad, "--source", small_omniglot, ok=False)
    assert "not a readable pyrochar checkpoint" in res.output
    res = run("sample", "--checkpoint", tmp_path / "missing.pt", ok=False)
    assert "does not exist" in res.output
    res = run("train", "--source", small_omniglot, "--set", "nonsense", "--out", tmp_path / "r", ok=False)
    assert "KEY=VALUE" in res.output
    res = run("train", "--source", small_omniglot, "--set", "no_such_field=1", "--out", tmp_path / "r", ok=False)
    assert "bad config" in res.output
    res = run("sample", "--temperature", 0, ok=False)
    assert "temperature" in res.output.lower()


def test_complete_and_partial_scoring(run, small_omniglot, tmp_path):
    out = tmp_path / "run"
    run("train", "--source", small_omniglot, "--split", "all", "--epochs", 1, "--batch-size", 12,
        *TINY_SET, "--out", out)
    ck = out / "best.pt"
    korean = sorted((small_omniglot / "strokes_background" / "Korean" / "character01").glob("*.txt"))[0]
    png, js = tmp_path / "c.png", tmp_path / "c.json"
    res = run("complete", korean, "--checkpoint", ck, "--strokes", 1, "-n", 4, "--seed", 0,
              "-o", png, "--json-out", js)
    assert "4 completions" in res.output and png.exists()
    from pyrochar.data.jsonio import read_drawings_json

    assert len(read_drawings_json(js)) == 4
    run("complete", korean, "--checkpoint", ck, "--strokes", 1, "--prefix-points", 2, "-n", 2, "-o", png)
    res = run("complete", korean, "--checkpoint", ck, "--strokes", 40, "-o", png, ok=False)
    assert "needs 40" in res.output
    res = run("score", "--checkpoint", ck, "--source", small_omniglot, "--partial", 1, "--json")
    part = json.loads(res.stdout)
    full = json.loads(run("score", "--checkpoint", ck, "--source", small_omniglot, "--json").stdout)
    assert part["n"] == full["n"] and part["mean_nll"] < full["mean_nll"]
    res = run("score", "--checkpoint", ck, "--source", small_omniglot, "--partial", 30, ok=False)
    assert "no drawing" in res.output


def test_sample_with_no_options_uses_the_shipped_weights(run, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    res = run("sample")
    assert "36 characters from full-ns" in res.output
    assert Image.open(tmp_path / "samples.png").size[0] > 6 * 105


def test_score_with_the_shipped_weights_beats_the_trivial_model(run, omniglot_root):
    # the shipped model was trained on these alphabets; the trivial model scores 39.7
    out = json.loads(run("score", "--source", omniglot_root, "--alphabets", "Latin", "--json").stdout)
    assert out["n"] == 520 and out["mean_nll"] < 25


def test_evaluate_command_and_its_errors(run, small_omniglot, tmp_path):
    out = tmp_path / "ev"
    res = run("evaluate", "--source", small_omniglot, "--task", "alphabet", "--models", "baseline,bpl",
              "--splits", "0", "--epochs", 1, "--batch-size", 8, "--set", "baseline:hidden=8",
              "--set", "baseline:layers=1", "--set", "bpl:em_iterations=5", "--out", out)
    assert "| baseline |" in res.output and "t(" in res.output
    assert json.loads((out / "table.json").read_text())["splits"] == ["alphabet:0"]
    res = run("evaluate", "--source", small_omniglot, "--models", "nope", "--out", out, ok=False)
    assert "unknown model" in res.output
    res = run("evaluate", "--source", small_omniglot, "--models", "bpl", "--splits", "a", "--out", out, ok=False)
    assert "--splits" in res.output
    res = run("evaluate", "--source", small_omniglot, "--models", "bpl", "--set", "hlstm:x=1", "--out", out, ok=False)
    assert "MODEL:KEY=VALUE" in res.output


def test_precision_option_trains_and_scores_in_mixed_precision(run, small_omniglot, fixture_root, tmp_path):
    out = tmp_path / "run"
    run("train", "--source", small_omniglot, "--split", "alphabet:0", "--epochs", 1, "--batch-size", 12,
        "--precision", "bf16-mixed", *TINY_SET, "--out", out)
    saved = json.loads((out / "results.json").read_text())
    assert math.isfinite(saved["test"]["mean_nll"])
    args = ("score", "--source", fixture_root, "--alphabets", "Latin", "--json")
    fp32 = json.loads(run(*args).stdout)["mean_nll"]
    bf16 = json.loads(run(*args, "--precision", "bf16-mixed").stdout)["mean_nll"]
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.1  # measured: 0.007 on all 6 alphabets
    res = run(*args, "--precision", "fp16", ok=False)
    assert "fp16" in res.output
