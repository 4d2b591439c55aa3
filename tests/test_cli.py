"""Every command through click's CliRunner, and their error paths."""

import json
import math
import os
from pathlib import Path

import pytest
from conftest import TINY_FULL_NS

TINY_SET = [a for k, v in TINY_FULL_NS.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def test_help_lists_the_commands(run):
    out = run("--help").output
    for cmd in ("data", "train", "score", "sample"):
        assert cmd in out


@pytest.mark.parametrize("args, says, command", [
    (("sample", "-n", "0"), "Invalid value for '-n'", " sample"),
    (("nosuch",), "No such command 'nosuch'", ""),
    (("--bogus",), "No such option '--bogus'", ""),
    (("classify",), "Missing argument 'RUNS_DIR'", " classify"),
    (("data", "oneshot-runs", "--runs", "x"), "Invalid value for '--runs'", " data oneshot-runs"),
])  # fmt: skip
def test_usage_errors_are_one_line_naming_the_help(run, args, says, command):
    r = run(*args, ok=False)
    assert r.exit_code == 2
    (line,) = r.output.strip().splitlines()  # not click's three-line usage block
    assert line.startswith(f"Error: {says}")
    assert line.endswith(f"{command} --help'.")  # "See 'pyrochar sample --help'."


def test_stats_json_on_the_shared_data(run, omniglot_root):
    out = json.loads(run("data", "stats", "--source", omniglot_root, "--json").stdout)
    assert out == {
        "alphabets": 6,
        "characters": 203,
        "drawings": 4060,
        "skipped": 0,
        "strokes_per_drawing": pytest.approx(9382 / 4059),
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


def test_show_names_a_bad_file_it_skipped(run, fixture_root, tmp_path):
    """A drawing whose file is there but unreadable: the message says so, not "no drawing"."""
    import shutil

    root = tmp_path / "omniglot"
    shutil.copytree(fixture_root, root)
    bad = next((root / "strokes_background" / "Greek" / "character03").glob("*_07.txt"))
    bad.write_text("START\nnot,a,number\nBREAK\n")
    res = run("data", "show", "--source", root, "--alphabet", "Greek", "--character", 3,
              "--drawer", 7, "-o", tmp_path / "x.png", ok=False)
    assert "could not be read" in res.output and bad.name in res.output
    assert "no drawing" not in res.output


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


# ------------------------------------------------- options and output paths (checked at the boundary)

FIXTURE = Path(__file__).resolve().parent / "data" / "omniglot"
KOREAN = FIXTURE / "strokes_background" / "Korean" / "character02" / "0644_01.txt"  # 3 strokes


def _one_error_line(res, *texts):
    """The failure is one 'Error: ...' line holding every text."""
    errors = [line for line in res.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, res.output
    for t in texts:
        assert t in errors[0], res.output


BAD_OPTIONS = [
    ("--temperature", "nan"), ("--temperature", "inf"), ("--temperature", "-inf"), ("--temperature", "-1"),
    ("--temperature", "1000"), ("--temperature", "1e-300"), ("--seed", "-1"), ("--seed", str(2**70)),
    ("--seed", str(2**32)),
]


@pytest.mark.parametrize("option, value", BAD_OPTIONS)
@pytest.mark.parametrize("command", ["sample", "complete"])
def test_bad_temperature_and_seed_are_refused(run, tmp_path, command, option, value):
    args = [command] + ([KOREAN] if command == "complete" else []) + ["-o", tmp_path / "x.png"]
    res = run(*args, option, value, ok=False)
    _one_error_line(res, option, value)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [["figures"], ["evaluate", "--models", "bpl"]])
def test_other_commands_refuse_a_bad_seed(run, tmp_path, command):
    res = run(*command, "--seed", -1, "--out" if command[0] == "evaluate" else "-o", tmp_path / "o", ok=False)
    _one_error_line(res, "--seed", "-1")


IMAGE_COMMANDS = {  # each command with an image -o, as a function of the output path
    "sample": lambda out: ("sample", "-n", 1, "-o", out),
    "complete": lambda out: ("complete", KOREAN, "-n", 1, "-o", out),
    "show": lambda out: ("data", "show", "--file", KOREAN, "-o", out),
}


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A folder the user cannot write into (root writes anywhere: os.access is made
    to answer for it what it answers a user)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        def access(path, mode, **kw):
            return not (mode & os.W_OK and Path(path) == folder) and real_access(path, mode, **kw)

        monkeypatch.setattr(os, "access", access)
    return folder


@pytest.mark.parametrize("command", ["sample", "complete", "show"])
def test_bad_output_paths_are_refused(run, tmp_path, read_only_dir, command):
    make = IMAGE_COMMANDS[command]
    (tmp_path / "a_file").write_text("keep me")
    _one_error_line(run(*make(tmp_path), ok=False), "is a folder")
    _one_error_line(run(*make(tmp_path / "a_file" / "x.png"), ok=False), "is a file, not a folder")
    _one_error_line(run(*make(tmp_path / "x.svg"), ok=False), "unknown file type '.svg'", ".png")
    _one_error_line(run(*make(tmp_path / "noext"), ok=False), "(no extension)")
    _one_error_line(run(*make(read_only_dir / "x.png"), ok=False), "not writable")
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert list(read_only_dir.iterdir()) == []


def test_images_are_written_in_the_format_of_their_extension(run, tmp_path):
    from PIL import Image

    for name in ("s.jpg", "deeper/s.GIF", "s.webp"):
        run("sample", "-n", 2, "--seed", 0, "-o", tmp_path / name)
        assert Image.open(tmp_path / name).format == Image.registered_extensions()[Path(name).suffix.lower()]
    run("data", "show", "--file", KOREAN, "-o", tmp_path / "show.bmp")
    assert Image.open(tmp_path / "show.bmp").format == "BMP"


def test_a_failed_image_write_leaves_the_previous_file(run, tmp_path, monkeypatch):
    import errno

    from PIL import Image

    out = tmp_path / "samples.png"
    out.write_bytes(b"previous")

    def disk_full(self, fp, format=None, **params):
        fp.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    _one_error_line(run("sample", "-n", 1, "-o", out, ok=False), "No space left", str(out))
    assert out.read_bytes() == b"previous"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_json_out_and_output_folders_are_checked(run, tmp_path, read_only_dir):
    (tmp_path / "a_file").write_text("x")
    _one_error_line(run("sample", "-n", 1, "--json-out", tmp_path, ok=False), "--json-out", "is a folder")
    _one_error_line(run("sample", "-n", 1, "--json-out", tmp_path / "s.txt", ok=False), ".json")
    _one_error_line(run("complete", KOREAN, "--json-out", tmp_path / "a_file" / "c.json", ok=False),
                    "is a file, not a folder")
    _one_error_line(run("figures", "-o", tmp_path / "a_file", ok=False), "is a file, not a folder")
    _one_error_line(run("evaluate", "--models", "bpl", "--out", tmp_path / "a_file", ok=False),
                    "is a file, not a folder")
    _one_error_line(run("sample", "-n", 1, "--json-out", read_only_dir / "s.json", ok=False), "not writable")
    _one_error_line(run("figures", "-o", read_only_dir / "figs", ok=False), "not writable")
    _one_error_line(run("figures", "-o", read_only_dir, ok=False), "not writable")


def test_score_refuses_options_it_would_ignore(run, tmp_path):
    res = run("score", "--source", FIXTURE, "--prefix-points", 2, ok=False)
    _one_error_line(res, "--prefix-points", "--partial")
    res = run("score", "--alphabets", "Greek", KOREAN, ok=False)
    _one_error_line(res, "--alphabets", "FILES")
    res = run("score", "--source", FIXTURE, "--partial", 1, "--prefix-points", 100, ok=False)
    _one_error_line(res, "100 control points in stroke 2", "--prefix-points")
    assert "stroke(s)" not in res.output
    res = run("score", "--source", FIXTURE, "--partial", 9, ok=False)
    _one_error_line(res, "9 stroke(s)", "the most is 5", "--partial")
    res = run("score", "--source", FIXTURE, "--partial", 1, "--prefix-points", 3, "--json")
    assert json.loads(res.stdout)["partial"] == {"strokes": 1, "prefix_points": 3, "partial_stroke": "goes-on"}
    res = run("score", "--source", FIXTURE, "--partial", 1, "--prefix-points", 3, "--partial-stroke", "any",
              "--json")
    assert json.loads(res.stdout)["partial"]["partial_stroke"] == "any"
    res = run("score", "--source", FIXTURE, "--partial", 1, "--partial-stroke", "any", ok=False)
    _one_error_line(res, "--partial-stroke", "--prefix-points")


def test_complete_names_its_options_in_prefix_errors(run, tmp_path):
    res = run("complete", KOREAN, "--strokes", 1, "--prefix-points", 40, "-o", tmp_path / "c.png", ok=False)
    _one_error_line(res, "stroke 2 has only", "--prefix-points")
    res = run("complete", KOREAN, "--strokes", 0, "-o", tmp_path / "c.png", ok=False)
    _one_error_line(res, "--strokes", "--prefix-points")


def test_complete_beyond_the_stroke_cap_is_refused_clearly(run, tmp_path):
    # 12 horizontal strokes of 30 px, one above the other: more than the cap of 10
    strokes = [[[20.0, -10.0 - 7 * i], [50.0, -10.0 - 7 * i]] for i in range(12)]
    path = tmp_path / "twelve.json"
    path.write_text(json.dumps({"format": "pyrochar-drawing", "version": 1, "strokes": strokes}))
    res = run("complete", path, "--strokes", 11, "-n", 2, "-o", tmp_path / "c.png", ok=False)
    _one_error_line(res, "11 stroke", "at most 10")
    res = run("score", path, ok=False)
    assert "not scored (12 strokes" in res.output and "at most 10" in res.output
    assert "Error: no drawing left to score" in res.output
    # beside a drawing the model can draw, the long one is left out and named
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": "pyrochar-drawing", "version": 1, "strokes": strokes[:2]}))
    res = run("score", good, path, "--per-drawing")
    assert "not scored (12 strokes" in res.output and "good" in res.output


def test_show_refuses_a_file_together_with_an_omniglot_pick(run, tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"format": "pyrochar-drawing", "version": 1,
                                "strokes": [[[20.0, -10.0], [60.0, -30.0]]]}))
    res = run("data", "show", "--file", path, "--alphabet", "Latin", "-o", tmp_path / "x.png", ok=False)
    _one_error_line(res, "--file", "--alphabet")
    run("data", "show", "--file", path, "-o", tmp_path / "x.png")
