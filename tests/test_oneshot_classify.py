"""``pyrochar classify`` / ``pyrochar.classify``: errors, output JSON, pictures, resume."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_oneshot_runs import make_source

import pyrochar
import pyrochar.oneshot.classify as classify_module
from pyrochar.errors import PyrocharError
from pyrochar.oneshot.mhd import ink_points, modified_hausdorff
from pyrochar.oneshot.runs import LABELS_FILE, build_runs, read_runs


@pytest.fixture
def runs_dir(tmp_path_factory) -> Path:
    """Three runs of four made-up shapes (a bar, a post, a ring, a slash; 3 drawers)."""
    root = tmp_path_factory.mktemp("oneshot")
    make_source(root / "source", {"Shapes": (4, 3)})
    build_runs(root / "source", ["Shapes"], 3, 0, root / "runs")
    return root / "runs"


class Interrupt(Exception):
    """Stands for a kill after the first run."""


def test_distinct_shapes_are_classified_correctly(runs_dir):
    result = pyrochar.classify(None, runs_dir, method="mhd")
    assert [r.run for r in result.runs] == ["run01", "run02", "run03"]
    assert [r.error for r in result.runs] == [0.0, 0.0, 0.0] and result.mean_error == 0.0
    for r, run in zip(result.runs, read_runs(runs_dir), strict=True):
        assert r.choices == list(run.answers)
        train, test = run.images()
        mhd = np.array(r.scores["mhd"])
        assert mhd.shape == (4, 4)
        assert mhd[1, 2] == pytest.approx(modified_hausdorff(ink_points(test[1]), ink_points(train[2])))


def test_the_error_is_the_share_of_wrong_picks(runs_dir):
    labels = runs_dir / "run01" / LABELS_FILE
    lines = [line.split() for line in labels.read_text().splitlines()]
    classes = [b for _, b in lines]
    # name the wrong class on two lines of four (swap their answers): 50 percent error
    lines[0][1], lines[1][1] = classes[1], classes[0]
    labels.write_text("".join(f"{a} {b}\n" for a, b in lines))
    (r,) = pyrochar.classify(None, runs_dir, runs="1", method="mhd").runs
    assert r.n_wrong == 2 and r.error == 50.0


def test_the_output_files(runs_dir, tmp_path):
    out = tmp_path / "out"
    result = pyrochar.classify(None, runs_dir, runs=[1, 3], method="mhd", out=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "run01.json", "run01.png", "run03.json", "run03.png", "summary.json"]
    data = json.loads((out / "run03.json").read_text())
    assert set(data) == {"format", "run", "method", "settings", "score", "pick", "training", "test",
                         "answers", "choices", "correct", "scores", "error", "errors", "n_wrong", "seconds",
                         "fingerprint"}
    assert data["run"] == "run03" and data["method"] == "mhd" and data["settings"] == {}
    assert data["score"] == "mhd" and data["pick"] == {"mhd": "smallest"}
    assert data["errors"] == {"mhd": data["error"]}
    scores = np.array(data["scores"]["mhd"])
    assert scores.shape == (len(data["test"]), len(data["training"])) == (4, 4)
    assert data["choices"] == list(np.argmin(scores, axis=1))
    assert data["correct"] == [c == a for c, a in zip(data["choices"], data["answers"], strict=True)]
    assert data["error"] == 100 * data["n_wrong"] / 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary()))
    assert set(summary) == {"method", "mean_error", "mean_errors", "n_runs", "seconds", "runs"}
    assert [r["run"] for r in summary["runs"]] == ["run01", "run03"]
    assert set(summary["runs"][0]) == {"run", "error", "errors", "n_test", "n_wrong", "seconds", "resumed"}
    from PIL import Image

    with Image.open(out / "run01.png") as img:
        assert img.width > 2 * 105 and img.height > 105


def test_an_interrupted_classification_resumes_at_the_next_run(runs_dir, tmp_path, monkeypatch):
    whole = pyrochar.classify(None, runs_dir, method="mhd")
    out = tmp_path / "out"

    def stop_after_first(result):
        raise Interrupt

    with pytest.raises(Interrupt):
        pyrochar.classify(None, runs_dir, method="mhd", out=out, on_run_done=stop_after_first)
    assert (out / "run01.json").is_file() and not (out / "run02.json").exists()

    scored = []
    real = classify_module._SCORERS["mhd"]

    def counting(run, *args):
        scored.append(run.name)
        return real(run, *args)

    monkeypatch.setitem(classify_module._SCORERS, "mhd", counting)
    again = pyrochar.classify(None, runs_dir, method="mhd", out=out)
    assert scored == ["run02", "run03"]
    assert [r.resumed for r in again.runs] == [True, False, False]
    assert [r.to_json() | {"seconds": 0} for r in again.runs] == [
        r.to_json() | {"seconds": 0} for r in whole.runs]
    scored.clear()
    pyrochar.classify(None, runs_dir, method="mhd", out=out)
    assert scored == []


def test_a_changed_or_damaged_result_is_recomputed(runs_dir, tmp_path):
    out = tmp_path / "out"
    pyrochar.classify(None, runs_dir, runs="1-2", method="mhd", out=out)
    (out / "run01.json").write_text("{not json")
    labels = runs_dir / "run02" / LABELS_FILE
    labels.write_text(labels.read_text() + "\n")  # the run's files changed
    with pytest.warns(UserWarning) as caught:
        again = pyrochar.classify(None, runs_dir, runs="1-2", method="mhd", out=out)
    messages = " ".join(str(w.message) for w in caught)
    assert "run01.json is unreadable" in messages and "run02.json is for other files" in messages
    assert [r.resumed for r in again.runs] == [False, False]
    assert json.loads((out / "run01.json").read_text())["run"] == "run01"


def test_bad_arguments(runs_dir, tmp_path):
    with pytest.raises(PyrocharError, match="unknown method 'x'; choose one of: model, mhd"):
        pyrochar.classify(None, runs_dir, method="x")
    with pytest.raises(PyrocharError, match="method 'model' needs a type model"):
        pyrochar.classify(None, runs_dir)
    with pytest.raises(PyrocharError, match="no run 7"):
        pyrochar.classify(None, runs_dir, runs=[1, 7], method="mhd")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PyrocharError, match="is a file"):
        pyrochar.classify(None, runs_dir, method="mhd", out=tmp_path / "file")


def test_the_command(run, runs_dir, tmp_path):
    res = run("classify", runs_dir, "--runs", "2-3", "--method", "mhd", "--json")
    summary = json.loads(res.stdout)
    assert [r["run"] for r in summary["runs"]] == ["run02", "run03"]
    assert summary["mean_error"] == 0.0 and summary["method"] == "mhd"
    res = run("classify", runs_dir, "--method", "mhd", "--out", tmp_path / "out")
    assert "run01  error   0.0%  (0 of 4 wrong)" in res.stdout
    assert "mean error 0.0% over 3 run(s) (mhd)" in res.stdout
    res = run("classify", runs_dir, "--runs", "1", "--method", "mhd", "--out", tmp_path / "out")
    assert "(resumed from --out)" in res.stdout
    bad = run("classify", runs_dir, "--runs", "x", ok=False)
    assert bad.output.strip().splitlines()[-1].startswith("Error: --runs 'x'")
    bad = run("classify", runs_dir / "run01", ok=False)
    assert "no runNN/ folders" in bad.output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_out_nothing_can_be_written_in_fails_before_any_work(run, runs_dir, monkeypatch):
    """/proc passes the permission bits (as root too) and refuses every new file: found
    by the option's check, not after a run has been classified."""
    scored = []
    monkeypatch.setitem(classify_module._SCORERS, "mhd", lambda run, *a: scored.append(run) or None)
    for out in ("/proc/pyrochar-nope", "/proc"):
        bad = run("classify", runs_dir, "--method", "mhd", "--out", out, ok=False)
        assert bad.exit_code == 2 and bad.output.count("\n") == 1
        assert f"Invalid value for '--out': {out}: cannot write in" in bad.output
        assert "; choose another" in bad.output and bad.output.rstrip().endswith(". See 'main classify --help'.")
    assert scored == []


@pytest.mark.parametrize("option", [["-k", "3"], ["--steps", "5"], ["--seed", "1"], ["--image-weight", "0.5"],
                                    ["--checkpoint", "x.pt"], ["--parse-steps", "3"]])
def test_model_options_with_mhd_are_refused(run, runs_dir, option):
    bad = run("classify", runs_dir, "--method", "mhd", *option, ok=False)
    assert bad.exit_code == 2
    assert f"{option[0]} applies to --method model only; leave it out with --method mhd" in bad.output


def test_bad_step_counts_are_usage_errors(run, runs_dir):
    for option in ("--steps", "--parse-steps"):
        bad = run("classify", runs_dir, option, -1, ok=False)
        assert bad.exit_code == 2 and f"Invalid value for '{option}': -1 is not in the range 0<=x<=10000" \
            in bad.output


def test_the_shipped_weights_on_runs_of_their_training_alphabets_warn(runs_dir, tmp_path):
    from pyrochar_cli.oneshot_commands import _warn_seen_alphabets

    (tmp_path / "runs.json").write_text(json.dumps({"alphabets": ["Greek", "Unseen"]}))
    with pytest.warns(UserWarning, match="trained on every drawing of Greek \\(the runs' alphabets\\)"):
        _warn_seen_alphabets(tmp_path)
    (tmp_path / "runs.json").write_text(json.dumps({"alphabets": ["Unseen"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_seen_alphabets(tmp_path)  # no alphabet they saw
        _warn_seen_alphabets(runs_dir)  # no runs.json (the official runs have none)


def test_ctrl_c_is_one_line_and_status_130(run, runs_dir, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(classify_module._SCORERS, "mhd", interrupted)
    res = run("classify", runs_dir, "--method", "mhd", ok=False)
    assert res.exit_code == 130 and res.output == "Interrupted.\n"


def test_a_bad_image_mid_run_is_the_only_line_on_stderr(run, runs_dir, tmp_path):
    """Redirected (not a terminal), no progress bar is drawn: nothing but the error's
    line, where a bar would leave its redraws and escape codes before it."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(runs_dir, runs)
    (runs / "run02" / "test" / "item01.png").write_bytes(b"not a picture")
    bad = run("classify", runs, "--method", "mhd", "--out", tmp_path / "out", ok=False)
    assert bad.stderr.splitlines() == [
        f"Error: {runs / 'run02' / 'test' / 'item01.png'} is not a picture PIL can read; "
        "give a PNG or JPEG"]
    assert (tmp_path / "out" / "run01.json").exists()  # the run done before it is kept


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import io

    from pyrochar_cli.options import progress_bars

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress_bars()
    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress_bars()


def test_what_differs_from_a_stored_result_is_named():
    from pyrochar.oneshot.classify import _differences

    stored = {"method": "model", "settings": {"k": 2, "steps": 60, "weights_sha256": "a"}}
    assert _differences(stored, "model", {"k": 2, "steps": 60, "weights_sha256": "a"}) == ""
    assert _differences(stored, "model", {"k": 1, "steps": 60, "weights_sha256": "b"}) == (
        "k 2 there, 1 now, another type model (weights_sha256)")
    assert _differences(stored, "mhd", {}) == "method model there, mhd now"
