"""Saving and loading models safely.

A checkpoint is a plain dict written with ``torch.save`` (atomically) and read
with ``torch.load(..., weights_only=True)``: no pickled code is ever executed.
It holds the model's name and config, so it rebuilds the right model by itself.
"""

from __future__ import annotations

import os
import pickle
from importlib import resources
from pathlib import Path

import torch

from .atomic import atomic_open
from .errors import CheckpointError
from .models import CharacterModel, build_model

FORMAT = "pyrochar-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: CharacterModel, half: bool = False, **extra) -> None:
    """Write the model (and any extra training state) to ``path`` atomically.

    ``half=True`` stores floating-point weights as float16 (half the size, for the
    weights shipped in the package); loading casts them back to the model's dtype.
    """

    def stored(v):
        v = v.detach().cpu()
        return v.half() if half and v.is_floating_point() else v

    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.name,
        "config": model.config_dict(),
        "state_dict": {k: stored(v) for k, v in model.state_dict().items()},
        **extra,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, loaded safely; clear errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
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
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyrochar checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}, this pyrochar reads {VERSION}"
        )
    return payload


def model_from_checkpoint(payload: dict, source: str = "checkpoint") -> CharacterModel:
    model = build_model(payload["model"], payload["config"])
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


def load_pretrained(name: str = "full-ns") -> CharacterModel:
    """The weights shipped inside the package (trained on the 6 shared alphabets)."""
    path = pretrained_path(name)
    if not path.exists():
        raise CheckpointError(
            f"no shipped weights for model {name!r} in this installation ({path}); "
            "pass --checkpoint PATH to a trained model"
        )
    return load_checkpoint(path, expected_model=name)
