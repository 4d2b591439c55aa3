"""Checkpoint integrity: pinned shipped weights, checksums, finite weights, keys and
configs checked before use, failed writes (a full disk) reported in one line."""

import errno
import hashlib
import shutil
import warnings

import pytest
import torch
from conftest import TINY_BPL, TINY_FULL_NS

import pyrochar.checkpoint as ck
from pyrochar.checkpoint import (
    UnverifiedCheckpointWarning,
    add_checksum,
    load_checkpoint,
    load_pretrained,
    read_checkpoint,
    save_checkpoint,
    tensor_checksum,
)
from pyrochar.errors import CheckpointError, PyrocharError
from pyrochar.models import build_model
from pyrochar.weights import SHA256

SHIPPED = sorted(p for p in ck.pretrained_path("full-ns").parent.glob("*.pt"))


def tiny():
    torch.manual_seed(0)
    return build_model("full-ns", TINY_FULL_NS).eval()


def flip_byte_in_tensor_data(path, tensor: torch.Tensor) -> None:
    """Flip one byte in the middle of ``tensor``'s bytes as stored in the file."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0
    data[at + len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_pins_match_the_shipped_files():
    assert sorted(SHA256) == [p.name for p in SHIPPED]
    for p in SHIPPED:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == SHA256[p.name], (
            f"{p.name} changed: update its pin in pyrochar/weights/__init__.py (sha256sum {p})"
        )


@pytest.mark.parametrize("n_bytes", [1, 200])
def test_a_damaged_shipped_file_is_refused(tmp_path, monkeypatch, n_bytes):
    copy = tmp_path / "bpl.pt"
    shutil.copy(ck.pretrained_path("bpl"), copy)
    data = bytearray(copy.read_bytes())
    for i in range(n_bytes):  # bytes of the tensor data, past the pickled header
        data[1300 + 7 * i] ^= 0x01
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(ck, "pretrained_path", lambda name: tmp_path / f"{name}.pt")
    with pytest.raises(CheckpointError, match="damaged.*reinstall pyrochar"):
        load_pretrained("bpl")


@pytest.mark.parametrize("name", [p.stem for p in SHIPPED])
def test_shipped_weights_carry_a_checksum_and_load_without_warning(name):
    assert len(read_checkpoint(ck.pretrained_path(name))["checksum"]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_pretrained(name).name == name


def test_a_flipped_byte_in_a_saved_checkpoint_is_caught(tmp_path):
    m = tiny()
    save_checkpoint(tmp_path / "m.pt", m)
    biggest = max(m.state_dict().values(), key=lambda t: t.numel())
    flip_byte_in_tensor_data(tmp_path / "m.pt", biggest)
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_checkpoint(tmp_path / "m.pt")


def test_checksum_covers_names_dtypes_shapes_and_config():
    sd = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}
    base = tensor_checksum("bpl", {"k": 1}, sd)
    assert tensor_checksum("bpl", {"k": 1}, dict(reversed(sd.items()))) == base  # order of the dict
    variants = [
        ("bpl", {"k": 2}, sd),
        ("hlstm", {"k": 1}, sd),
        ("bpl", {"k": 1}, {"c": sd["a"], "b": sd["b"]}),
        ("bpl", {"k": 1}, {**sd, "a": sd["a"].reshape(3, 2)}),
        ("bpl", {"k": 1}, {**sd, "a": sd["a"].double()}),
        ("bpl", {"k": 1}, {**sd, "a": sd["a"] + 1e-6}),
    ]
    for v in variants:
        assert tensor_checksum(*v) != base


def _save_payload(path, payload, fix_checksum=True):
    if fix_checksum:
        payload["checksum"] = tensor_checksum(payload["model"], payload["config"], payload["state_dict"])
    torch.save(payload, path)


def test_non_finite_weights_are_refused_on_load(tmp_path):
    save_checkpoint(tmp_path / "m.pt", tiny())
    payload = read_checkpoint(tmp_path / "m.pt")
    name = next(k for k, t in payload["state_dict"].items() if t.is_floating_point())
    payload["state_dict"][name][0] = float("inf")
    _save_payload(tmp_path / "inf.pt", payload)
    with pytest.raises(CheckpointError, match=f"NaN or infinite values \\({name}"):
        load_checkpoint(tmp_path / "inf.pt")


def test_non_finite_weights_are_never_written(tmp_path):
    m = tiny()
    save_checkpoint(tmp_path / "m.pt", m)
    before = (tmp_path / "m.pt").read_bytes()
    with torch.no_grad():
        next(m.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="refusing to write"):
        save_checkpoint(tmp_path / "m.pt", m)
    assert (tmp_path / "m.pt").read_bytes() == before


@pytest.mark.parametrize("key", ["model", "config", "state_dict"])
def test_missing_keys_are_named(tmp_path, key):
    save_checkpoint(tmp_path / "m.pt", tiny())
    payload = read_checkpoint(tmp_path / "m.pt")
    del payload[key]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=f"lacks {key}"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.update(model="no-such-model"), "unknown model 'no-such-model'"),
        (lambda p: p.update(model=3), "wrong type"),
        (lambda p: p.update(config=[1, 2]), "wrong type"),
        (lambda p: p["state_dict"].update(extra=[1.0]), "wrong type"),
        (lambda p: p["config"].update(stroke_hidden=200000), "stroke_hidden=200000 is out of range"),
        (lambda p: p["config"].update(attention="bogus"), "attention='bogus'"),
        (lambda p: p["config"].update(no_such_field=1), "unknown key"),
    ],
)
def test_bad_contents_are_refused_before_a_model_is_built(tmp_path, monkeypatch, change, match):
    save_checkpoint(tmp_path / "m.pt", tiny())
    payload = read_checkpoint(tmp_path / "m.pt")
    change(payload)
    torch.save(payload, tmp_path / "bad.pt")  # the checksum is not fixed: contents come first

    def no_build(*a, **k):
        raise AssertionError("a model was built from an unchecked checkpoint")

    monkeypatch.setattr(ck, "build_model", no_build)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(tmp_path / "bad.pt")
    assert str(tmp_path / "bad.pt") in str(err.value)


def test_a_checkpoint_without_checksum_loads_with_a_warning(tmp_path):
    m = build_model("bpl", TINY_BPL)
    save_checkpoint(tmp_path / "m.pt", m)
    payload = read_checkpoint(tmp_path / "m.pt")
    del payload["checksum"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.warns(UnverifiedCheckpointWarning, match="no checksum"):
        back = load_checkpoint(tmp_path / "old.pt")
    for (k, a), (_, b) in zip(m.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert add_checksum(tmp_path / "old.pt") and not add_checksum(tmp_path / "old.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_checkpoint(tmp_path / "old.pt")
    assert {k: v for k, v in again.items() if k != "checksum"}.keys() == payload.keys()
    for k, t in payload["state_dict"].items():
        assert torch.equal(again["state_dict"][k], t), k


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "failure, match",
    [
        (RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1024 vs 980"), "disk is full"),
        (RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"), "disk is full"),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    ],
)
def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, failure, match):
    m = tiny()
    save_checkpoint(tmp_path / "m.pt", m)
    before = (tmp_path / "m.pt").read_bytes()

    def full_disk(obj, f):
        f.write(b"partial")
        raise failure

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(PyrocharError, match=match) as err:
        save_checkpoint(tmp_path / "m.pt", m)
    assert "\n" not in str(err.value) and f"cannot write {tmp_path / 'm.pt'}" in str(err.value)
    assert (tmp_path / "m.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
