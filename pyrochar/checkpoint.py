"""Saving and loading models safely.

A checkpoint is a plain dict written with ``torch.save`` (atomically) and read
with ``torch.load(..., weights_only=True)``: no pickled code is ever executed.
It holds the model's name and config, so it rebuilds the right model by itself,
and a sha256 of its tensors and config, verified on every load together with the
config's types and ranges and the finiteness of the weights. The weights shipped
in the package are verified against file checksums pinned in
:mod:`pyrochar.weights`. Every failure is one :class:`CheckpointError` line.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from importlib import resources
from pathlib import Path

import torch

from .atomic import atomic_open
from .errors import CheckpointError, PyrocharError
from .models import CharacterModel, build_model, model_class
from .models.config_check import validate_config

FORMAT = "pyrochar-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("model", "config", "state_dict")


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint written before checkpoints carried a checksum: loaded unverified."""


def tensor_checksum(model_name: str, config: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 (hex) over the model name, its config and every tensor of ``state_dict``:
    name, dtype, shape and bytes, in sorted name order."""
    h = hashlib.sha256()
    h.update(json.dumps({"model": model_name, "config": config}, sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"\n{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def non_finite_weights(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinite values."""
    return [k for k, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def save_checkpoint(path: str | os.PathLike, model: CharacterModel, half: bool = False, **extra) -> None:
    """Write the model (and any extra training state) to ``path`` atomically.

    ``half=True`` stores floating-point weights as float16 (half the size, for the
    weights shipped in the package); loading casts them back to the model's dtype.
    The file holds a sha256 of the stored tensors and config (:func:`tensor_checksum`);
    non-finite weights are refused, so a good file is never replaced by a diverged one.
    """

    def stored(v):
        v = v.detach().cpu()
        return v.half() if half and v.is_floating_point() else v

    state_dict = {k: stored(v) for k, v in model.state_dict().items()}
    bad = non_finite_weights(state_dict)
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: {len(bad)} weight tensor(s) hold NaN or infinite values "
            f"({', '.join(bad[:3])}); the training diverged: lower the learning rate"
        )
    config = model.config_dict()
    payload = {
        **extra,
        "format": FORMAT,
        "version": VERSION,
        "model": model.name,
        "config": config,
        "state_dict": state_dict,
        "checksum": tensor_checksum(model.name, config, state_dict),
    }
    try:
        with atomic_open(path, "wb") as f:
            torch.save(payload, f)
    except RuntimeError as e:  # torch's C++ writer: "enforce fail ... file write failed"
        raise CheckpointError(f"cannot write {path}: {write_failure(e)}") from None


def write_failure(error: BaseException) -> str:
    """A one-line reason for a failed write (torch reports a full disk as a C++ error)."""
    text = str(error)
    if "No space left" in text or "enforce fail" in text or "write failed" in text:
        return "the disk is full or the write failed (No space left on device?); free some space"
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__


def _load_file(path: Path) -> dict:
    """torch.load(weights_only=True) of ``path``, any failure as one CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if isinstance(e, pickle.UnpicklingError):
            # torch's own message suggests weights_only=False: never do that here
            why = "not a torch file of plain tensors and numbers"
        else:
            why = f"{type(e).__name__}: {str(e)[:200]}"
        raise CheckpointError(
            f"{path} is not a readable pyrochar checkpoint ({why}); it may be truncated or "
            "corrupted, or not a checkpoint at all: retrain or re-download it"
        ) from None


def _check_structure(payload, path: Path) -> None:
    """CheckpointError unless ``payload`` has the marker, version and well-typed keys."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyrochar checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}, this pyrochar reads {VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: the file is damaged; retrain or re-download it")
    sd = payload["state_dict"]
    if not isinstance(payload["model"], str) or not isinstance(payload["config"], dict) or not (
        isinstance(sd, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())
    ):
        raise CheckpointError(
            f"{path}: its model, config or weights have the wrong type: the file is damaged; "
            "retrain or re-download it"
        )


def _check_contents(payload: dict, path: Path) -> None:
    """CheckpointError for an unknown model, a bad config, a checksum mismatch or
    non-finite weights; a warning for a checkpoint without checksum."""
    try:
        validate_config(payload["model"], model_class(payload["model"]).config_class, payload["config"])
    except PyrocharError as e:
        raise CheckpointError(f"{path}: {e}") from None
    sd = payload["state_dict"]
    stored = payload.get("checksum")
    if stored is not None:
        if stored != tensor_checksum(payload["model"], payload["config"], sd):
            raise CheckpointError(
                f"{path}: its weights or config do not match the checksum stored with them, so "
                "the file is damaged: use another copy or retrain"
            )
    else:
        warnings.warn(
            f"{path} has no checksum (written by an older pyrochar): loaded without "
            "verifying its weights; pyrochar.checkpoint.add_checksum(path) adds one",
            UnverifiedCheckpointWarning,
            stacklevel=3,
        )
    bad = non_finite_weights(sd)
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}): "
            "the run diverged or the file is damaged; use an earlier checkpoint or retrain"
        )


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, loaded safely and checked before anything uses it.

    Checked: the marker and version, the keys and their types, the model name and
    config (:func:`pyrochar.models.config_check.validate_config`), the stored
    checksum and that every weight is finite. A checkpoint written before checksums
    existed loads with an :class:`UnverifiedCheckpointWarning` (:func:`add_checksum`
    gives it one). Any failure is one :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; pass the .pt file inside it (e.g. best.pt)")
    payload = _load_file(path)
    _check_structure(payload, path)
    _check_contents(payload, path)
    return payload


def add_checksum(path: str | os.PathLike) -> bool:
    """Give a checkpoint written before checksums existed its checksum, in place
    (atomically); its tensors and other contents stay exactly as they were. False
    when it already had one. The file is checked like any checkpoint first."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedCheckpointWarning)
        payload = read_checkpoint(path)
    if "checksum" in payload:
        return False
    payload["checksum"] = tensor_checksum(payload["model"], payload["config"], payload["state_dict"])
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return True


def model_from_checkpoint(payload: dict, source: str = "checkpoint") -> CharacterModel:
    """The model a (checked) checkpoint dict describes, with its weights, in eval mode."""
    try:
        model = build_model(payload["model"], payload["config"])
    except PyrocharError as e:
        raise CheckpointError(f"{source}: {e}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(
            f"{source}: its weights do not fit a {payload['model']} model with its config: "
            f"{str(e)[:300]}"
        ) from None
    model.eval()
    return model


def load_checkpoint(path: str | os.PathLike, expected_model: str | None = None) -> CharacterModel:
    """Rebuild a model from a checkpoint file (in eval mode)."""
    payload = read_checkpoint(path)
    if expected_model is not None and payload["model"] != expected_model:
        raise CheckpointError(
            f"{path} holds a {payload['model']!r} model, not {expected_model!r}: pass --model "
            f"{payload['model']} or another checkpoint"
        )
    return model_from_checkpoint(payload, str(path))


def pretrained_path(name: str) -> Path:
    return Path(str(resources.files("pyrochar.weights") / f"{name}.pt"))


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_pretrained(path: Path) -> None:
    """CheckpointError unless the shipped file's sha256 matches its pin in
    :data:`pyrochar.weights.SHA256` (a damaged or altered installation)."""
    from .weights import SHA256

    expected = SHA256.get(path.name)
    actual = file_sha256(path)
    if actual != expected:
        why = "has no pinned checksum" if expected is None else f"has sha256 {actual[:12]}..., not {expected[:12]}..."
        raise CheckpointError(
            f"the shipped weights {path} are damaged ({why}): this installation is corrupted; "
            "reinstall pyrochar (pip install --force-reinstall, or git checkout pyrochar/weights "
            "in a source checkout) or pass --checkpoint PATH"
        )


def load_pretrained(name: str = "full-ns") -> CharacterModel:
    """The weights shipped inside the package (trained on the 6 shared alphabets),
    verified against their pinned sha256 first."""
    path = pretrained_path(name)
    if not path.exists():
        raise CheckpointError(
            f"no shipped weights for model {name!r} in this installation ({path}); "
            "pass --checkpoint PATH to a trained model"
        )
    verify_pretrained(path)
    return load_checkpoint(path, expected_model=name)
