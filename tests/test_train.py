"""Training loop, checkpoints, resume, divergence, scoring of whole sources."""

import math
from pathlib import Path

import pytest
import torch
from conftest import TINY_FULL_NS

from pyrochar.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, tensor_checksum
from pyrochar.errors import CheckpointError, PyrocharError
from pyrochar.models import FullNSConfig, GenerateCharacter
from pyrochar.scoring import score
from pyrochar.train import (
    ResumeMismatch,
    TrainConfig,
    TrainingDiverged,
    parse_allowed,
    prepare_run_dir,
    train,
)


def tiny():
    torch.manual_seed(0)
    return GenerateCharacter(FullNSConfig(**TINY_FULL_NS))


def quiet(_msg):
    pass


def _cfg(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 10, "lr": 3e-3, "seed": 1, **kw})


def test_training_lowers_the_loss_and_writes_checkpoints(greek_source, tmp_path):
    m = tiny()
    hist = train(m, greek_source, greek_source, _cfg(epochs=3), tmp_path, progress=False, log=quiet)
    assert hist.epoch == [1, 2, 3]
    assert hist.val_nll[-1] < hist.val_nll[0]
    for name in ("last.pt", "best.pt", "history.json"):
        assert (tmp_path / name).exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_round_trip_gives_identical_scores(greek_source, tmp_path):
    m = tiny().eval()
    save_checkpoint(tmp_path / "m.pt", m)
    back = load_checkpoint(tmp_path / "m.pt")
    a = score(m, greek_source, 16).nll
    b = score(back, greek_source, 16).nll
    assert (a == b).all()
    assert back.config == m.config


def test_killed_and_resumed_run_matches_an_uninterrupted_one(greek_source, tmp_path, one_thread):
    full = tiny()
    train(full, greek_source, greek_source, _cfg(epochs=3), tmp_path / "full", progress=False, log=quiet)

    part = tiny()
    train(part, greek_source, greek_source, _cfg(epochs=1), tmp_path / "part", progress=False, log=quiet)
    # "killed" after epoch 1: a fresh process builds a new model and resumes
    resumed = tiny()
    torch.manual_seed(12345)  # whatever the RNG did meanwhile, resume restores it
    hist = train(resumed, greek_source, greek_source, _cfg(epochs=3), tmp_path / "part",
                 resume=True, progress=False, log=quiet, allow_changed={"epochs"})
    assert hist.epoch == [1, 2, 3]
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_nan_loss_in_the_first_epoch_says_no_checkpoint_was_written(greek_source, tmp_path):
    m = tiny()
    with torch.no_grad():
        for p in m.stroke.head.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet") as err:
        train(m, greek_source, greek_source, _cfg(epochs=2), tmp_path, progress=False, log=quiet)
    assert "last.pt" not in str(err.value)
    assert not (tmp_path / "last.pt").exists()


def test_nan_loss_later_keeps_the_last_good_checkpoint(greek_source, tmp_path, monkeypatch):
    import pyrochar.train as train_module

    real, calls = train_module.log_likelihood, []

    def nan_from_the_second_batch(model, batch):
        calls.append(1)
        ll, rest = real(model, batch)
        return (ll * math.nan if len(calls) > 1 else ll), rest

    monkeypatch.setattr(train_module, "log_likelihood", nan_from_the_second_batch)
    with pytest.raises(TrainingDiverged, match=f"last good checkpoint is kept in {tmp_path / 'last.pt'}"):
        train(tiny(), greek_source, greek_source, _cfg(epochs=3, max_batches_per_epoch=1), tmp_path,
              progress=False, log=quiet)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 0


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a readable"),
        (b"garbage" * 100, "not a readable"),
    ],
)
def test_bad_checkpoints_give_clear_errors(tmp_path, content, match):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p)


def test_truncated_and_foreign_checkpoints(tmp_path):
    m = tiny()
    save_checkpoint(tmp_path / "ok.pt", m)
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a pyrochar checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    payload = read_checkpoint(tmp_path / "ok.pt")
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_checkpoint(tmp_path / "mismatch.pt")
    payload["checksum"] = tensor_checksum(payload["model"], payload["config"], payload["state_dict"])
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_score_reports_mean_and_breakdown(greek_source):
    m = tiny()
    s = score(m, greek_source, 7)
    summary = s.summary()
    assert summary["n"] == len(greek_source)
    assert math.isclose(sum(summary["breakdown"].values()), summary["mean_nll"], rel_tol=1e-5)


def test_half_precision_checkpoint_is_smaller_and_close(greek_source, tmp_path):
    m = tiny().eval()
    save_checkpoint(tmp_path / "full.pt", m)
    save_checkpoint(tmp_path / "half.pt", m, half=True)
    assert (tmp_path / "half.pt").stat().st_size < (tmp_path / "full.pt").stat().st_size
    back = load_checkpoint(tmp_path / "half.pt")
    assert next(back.parameters()).dtype == torch.float32
    a = score(m, greek_source, 16).nll
    b = score(back, greek_source, 16).nll
    assert abs(a - b).max() < 0.05 * abs(a).max()


def test_checkpoints_get_the_usual_file_mode(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.pt", tiny())
        assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


# --- resume with other settings, run folders, failed writes (issue 11) ---


def _run_one_epoch(source, out, **kw):
    m = tiny()
    train(m, source, source, _cfg(epochs=1, max_batches_per_epoch=1, **kw), out, progress=False, log=quiet)
    return m


def test_resume_with_other_settings_is_refused_naming_each(greek_source, tmp_path):
    _run_one_epoch(greek_source, tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ResumeMismatch) as err:
        train(tiny(), greek_source, greek_source, _cfg(epochs=2, max_batches_per_epoch=1, lr=0.01, seed=5),
              tmp_path, resume=True, progress=False, log=quiet)
    message = str(err.value)
    for phrase in ("--lr 0.01 differs from the run's 0.003", "--seed 5 differs from the run's 1",
                   "--epochs 2 differs from the run's 1", "--allow-changed epochs,lr,seed"):
        assert phrase in message
    assert "\n" not in message
    assert (tmp_path / "last.pt").read_bytes() == before


def test_allowed_changes_take_effect_and_are_recorded(greek_source, tmp_path):
    _run_one_epoch(greek_source, tmp_path)
    logged = []
    train(tiny(), greek_source, greek_source, _cfg(epochs=2, max_batches_per_epoch=1, lr=0.01), tmp_path,
          resume=True, progress=False, log=logged.append, allow_changed=parse_allowed("epochs,lr"))
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.01  # not the run's 0.003
    assert state["train_config"]["lr"] == 0.01
    assert {c["setting"]: (c["run"], c["now"]) for c in state["resume_changes"]} == {
        "epochs": (1, 2), "lr": (0.003, 0.01)}
    assert any("--lr 0.01 instead of the run's 0.003" in line for line in logged)


def test_model_config_and_split_never_change_on_resume(greek_source, tmp_path):
    from conftest import TINY_FULL_NS

    from pyrochar.data.splits import Split

    split_a = Split("a", ["x"], ["y"], ["z"])
    _run_one_epoch(greek_source, tmp_path)
    other = GenerateCharacter(FullNSConfig(**{**TINY_FULL_NS, "stroke_hidden": 8}))
    with pytest.raises(ResumeMismatch, match="--set stroke_hidden=8 differs from the run's 16.*never change"):
        train(other, greek_source, greek_source, _cfg(epochs=1), tmp_path, resume=True,
              progress=False, log=quiet, allow_changed=set(parse_allowed("epochs")))
    with pytest.raises(PyrocharError, match="--allow-changed split: not a training setting"):
        parse_allowed("lr,split")
    # a split stored with the run is compared too
    out = tmp_path / "with-split"
    train(tiny(), greek_source, greek_source, _cfg(epochs=1, max_batches_per_epoch=1), out,
          progress=False, log=quiet, split=split_a)
    split_json = (out / "split.json").read_bytes()
    with pytest.raises(ResumeMismatch, match="split b differs from the run's a"):
        train(tiny(), greek_source, greek_source, _cfg(epochs=1, max_batches_per_epoch=1), out, resume=True,
              progress=False, log=quiet, split=Split("b", ["x", "y"], [], ["z"]))
    with pytest.raises(ResumeMismatch, match="the characters of split a differ from the run's"):
        train(tiny(), greek_source, greek_source, _cfg(epochs=1, max_batches_per_epoch=1), out, resume=True,
              progress=False, log=quiet, split=Split("a", ["x", "y"], [], ["z"]))
    assert (out / "split.json").read_bytes() == split_json
    # a folder with only a split.json (the run died before its first checkpoint)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "split.json").write_bytes(split_json)
    with pytest.raises(ResumeMismatch, match="split 'b' differs from the split of the run.*'a', split.json"):
        train(tiny(), greek_source, greek_source, _cfg(epochs=1), fresh, progress=False, log=quiet,
              split=Split("b", ["x", "y"], [], ["z"]))
    assert (fresh / "split.json").read_bytes() == split_json


def test_resume_from_a_weights_only_checkpoint_says_what_is_missing(greek_source, tmp_path):
    _run_one_epoch(greek_source, tmp_path)
    (tmp_path / "last.pt").replace(tmp_path / "kept.pt")
    with pytest.raises(CheckpointError, match="best.pt \\(weights only\\) but no last.pt.*optimizer"):
        train(tiny(), greek_source, greek_source, _cfg(epochs=1), tmp_path, resume=True, progress=False, log=quiet)
    (tmp_path / "best.pt").replace(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="cannot be resumed: it lacks optimizer, history"):
        train(tiny(), greek_source, greek_source, _cfg(epochs=1), tmp_path, resume=True, progress=False, log=quiet)


def test_a_new_run_never_overwrites_an_old_one(greek_source, tmp_path):
    _run_one_epoch(greek_source, tmp_path)
    before = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(PyrocharError, match="already holds a run.*--resume"):
        _run_one_epoch(greek_source, tmp_path)
    assert (tmp_path / "best.pt").read_bytes() == before


def test_out_must_be_a_writable_folder(tmp_path):
    import os

    (tmp_path / "file").write_text("x")
    with pytest.raises(PyrocharError, match="is a file, not a folder"):
        prepare_run_dir(tmp_path / "file")
    with pytest.raises(PyrocharError, match="cannot write there"):
        prepare_run_dir(tmp_path / "file" / "run")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: /sys refuses even root
        read_only = Path("/sys/kernel")
    with pytest.raises(PyrocharError, match="cannot write there.*Permission denied"):
        prepare_run_dir(read_only)


def test_a_full_disk_during_training_is_one_line_and_keeps_the_last_epoch(greek_source, tmp_path, monkeypatch):
    import pyrochar.checkpoint as ck

    _run_one_epoch(greek_source, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(PyrocharError) as err:
        train(tiny(), greek_source, greek_source, _cfg(epochs=2, max_batches_per_epoch=1), tmp_path, resume=True,
              progress=False, log=quiet, allow_changed={"epochs"})
    message = str(err.value)
    assert "\n" not in message
    assert "disk is full" in message and "Epoch 2 was not saved" in message and "--resume" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_resume_refuses_another_split_and_lr(run, small_omniglot, tmp_path):
    import json

    from conftest import TINY_FULL_NS

    tiny_set = [a for k, v in TINY_FULL_NS.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    out = tmp_path / "run"
    common = ["train", "--source", small_omniglot, "--epochs", 1, "--batch-size", 8, "--max-batches", 1,
              *tiny_set, "--out", out]
    run(*common, "--split", "alphabet:0")
    kept = {name: (out / name).read_bytes() for name in ("split.json", "results.json", "last.pt")}
    res = run(*common, "--split", "alphabet:1", "--resume", ok=False)
    assert "split alphabet:1 differs from the run's alphabet:0" in res.output
    res = run(*common, "--split", "alphabet:0", "--resume", "--lr", "0.01", ok=False)
    assert "--lr 0.01 differs from the run's 0.001" in res.output and "--allow-changed lr" in res.output
    res = run(*common, "--split", "alphabet:0", "--resume", "--allow-changed", "split", ok=False)
    assert "not a training setting" in res.output
    res = run(*common, "--split", "alphabet:0", ok=False)
    assert "already holds a run" in res.output
    assert {name: (out / name).read_bytes() for name in kept} == kept
    res = run(*common[:-2], "--split", "alphabet:0", "--out", out / "split.json", ok=False)
    assert "is a file, not a folder" in res.output
    run(*common, "--split", "alphabet:0", "--resume", "--lr", "0.01", "--epochs", 2,
        "--allow-changed", "lr,epochs")
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert (out / "split.json").read_bytes() == kept["split.json"]
