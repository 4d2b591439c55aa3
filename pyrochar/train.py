"""Maximum-likelihood training of any character model.

The loss is minus the log-probability of the model's trace with the drawings
observed (the teacher-forced Pyro program), per character, averaged over the
batch. Adam, length-grouped batches, gradient clipping, a validation set with
early stopping, and a learning rate halved when validation stalls.

Every epoch writes ``last.pt`` (model, optimizer, RNG states, history) and, when
validation improves, ``best.pt``, both atomically. ``resume=True`` reloads
``last.pt``: because each epoch's batch order depends only on (seed, epoch) and
the RNG states are restored, a killed and resumed run ends exactly as an
uninterrupted one. A non-finite loss stops the run with a clear error and leaves
the last good checkpoints untouched.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from .atomic import atomic_write_text
from .batching import BatchSource
from .checkpoint import read_checkpoint, save_checkpoint
from .errors import PyrocharError
from .infer import log_likelihood, score
from .models.base import CharacterModel


class TrainingDiverged(PyrocharError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 200  # the paper's
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 10.0  # max gradient norm
    patience: int = 8  # epochs without validation improvement before stopping
    lr_patience: int = 3  # epochs without improvement before halving the learning rate
    min_lr: float = 1e-5
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # or "bf16-mixed": the canvas CNNs in bfloat16 autocast
    max_batches_per_epoch: int | None = None  # for quick runs and tests


@dataclass
class History:
    epoch: list[int] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2] if random.getstate()[2] is not None else float("nan"),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    gauss = state["python_gauss"]
    random.setstate(
        (state["python_version"], tuple(state["python"]), None if math.isnan(gauss) else gauss)
    )


def train(
    model: CharacterModel,
    train_source: BatchSource,
    val_source: BatchSource | None,
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    extra: dict | None = None,
) -> History:
    """Train ``model`` in place; checkpoints go to ``out_dir``. Returns the history."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with pyro.validation_enabled(False):  # validation costs up to 30% per site; tests turn it on
        return _train(model, train_source, val_source, config, out_dir, resume, progress, log, extra)


def _train(model, train_source, val_source, config, out_dir, resume, progress, log, extra) -> History:
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model.to(device)
    model.set_precision(config.precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = History()
    start_epoch, best_val, stale, lr_stale = 0, math.inf, 0, 0

    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if resume and last_path.exists():
        state = read_checkpoint(last_path)
        if state["model"] != model.name or state["config"] != model.config_dict():
            raise PyrocharError(
                f"{last_path} was trained with another model or config; use a new --out "
                "directory or drop --resume"
            )
        model.load_state_dict(state["state_dict"])
        model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        start_epoch = int(state["epoch"]) + 1
        best_val, stale, lr_stale = float(state["best_val"]), int(state["stale"]), int(state["lr_stale"])
        _set_rng_state(state["rng"])
        log(f"resuming from {last_path} after epoch {start_epoch}")
    elif resume:
        log(f"nothing to resume in {out_dir}; starting a new run")

    meta = {"train_config": asdict(config), **(extra or {})}
    for epoch in range(start_epoch, config.epochs):
        if stale >= config.patience:
            log(f"early stop: no validation improvement for {stale} epochs")
            break
        t0 = time.perf_counter()
        model.train()
        batches = train_source.index_batches(config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)
        if config.max_batches_per_epoch:
            batches = batches[: config.max_batches_per_epoch]
        total, count = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress)
        for idx in bar:
            batch = model.prepare_batch(train_source.batch(idx))
            ll, _ = log_likelihood(model, batch)
            loss = -ll.mean()
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at epoch {epoch + 1}; the last good "
                    f"checkpoint is kept in {last_path}. Lower --lr or check the data."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
            bar.set_postfix(nll=f"{total / count:.2f}")
        train_nll = total / max(count, 1)
        val_nll = score(model, val_source, config.batch_size).mean if val_source else train_nll
        if not math.isfinite(val_nll):
            raise TrainingDiverged(
                f"the validation NLL became {val_nll} at epoch {epoch + 1}; the last good "
                f"checkpoint is kept in {last_path}. Lower --lr."
            )
        lr = optimizer.param_groups[0]["lr"]
        history.epoch.append(epoch + 1)
        history.train_nll.append(train_nll)
        history.val_nll.append(val_nll)
        history.lr.append(lr)
        history.seconds.append(time.perf_counter() - t0)
        improved = val_nll < best_val - 1e-4
        if improved:
            best_val, stale, lr_stale = val_nll, 0, 0
            save_checkpoint(best_path, model, epoch=epoch, val_nll=val_nll, **meta)
        else:
            stale += 1
            lr_stale += 1
            if lr_stale >= config.lr_patience and lr > config.min_lr:
                for group in optimizer.param_groups:
                    group["lr"] = max(lr / 2, config.min_lr)
                lr_stale = 0
        save_checkpoint(
            last_path, model, epoch=epoch, optimizer=optimizer.state_dict(), history=asdict(history),
            best_val=best_val, stale=stale, lr_stale=lr_stale, rng=_rng_state(), **meta,
        )  # fmt: skip
        atomic_write_text(out_dir / "history.json", json.dumps(asdict(history), indent=1))
        log(
            f"epoch {epoch + 1}: train NLL {train_nll:.3f}  validation NLL {val_nll:.3f}"
            f"  lr {lr:.2g}  {history.seconds[-1]:.1f}s" + ("  (best)" if improved else "")
        )
    return history


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
