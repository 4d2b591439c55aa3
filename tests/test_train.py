"""Training loop, checkpoints, resume, divergence, scoring of whole sources."""

import math

import pytest
import torch
from conftest import TINY_FULL_NS

from pyrochar.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, tensor_checksum
from pyrochar.errors import CheckpointError
from pyrochar.infer import score
from pyrochar.models import FullNSConfig, GenerateCharacter
from pyrochar.train import TrainConfig, TrainingDiverged, train


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
