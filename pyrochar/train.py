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

Under ``torchrun`` (docs/distributed.md) every process runs this same loop on its
part of each global batch (:func:`pyrochar.distributed.batch_part`) inside
DistributedDataParallel; each part's summed NLL is weighted so that the averaged
gradient is the one-process gradient of the whole batch. Validation is scored
shared out over the processes; rank 0 alone writes the run folder and logs.

A run's settings (training options, model config, split) are stored in its
checkpoints; a resume with other settings is refused, naming each difference,
unless the changed training options are listed in ``allow_changed``. The model,
its config and the split of a run never change.
"""

from __future__ import annotations

import hashlib
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

from . import distributed
from .atomic import atomic_write_text
from .checkpoint import read_checkpoint, save_checkpoint
from .data.loader import BatchSource
from .data.splits import Split
from .errors import CheckpointError, PyrocharError
from .models.base import CharacterModel
from .models.config_check import Rule, validate_fields
from .scoring import log_likelihood


class TrainingDiverged(PyrocharError):
    """The loss became NaN or infinite."""


class ResumeMismatch(PyrocharError):
    """A resume whose settings differ from the run's."""


# What last.pt holds beyond the model: the state a resume needs.
RESUME_KEYS = ("epoch", "optimizer", "history", "best_val", "stale", "lr_stale", "rng")
# Command-line names of TrainConfig fields, where they differ from the field name.
OPTION_NAMES = {"max_batches_per_epoch": "max-batches"}
# Ranges of the TrainConfig fields (types come from the annotations).
TRAIN_RULES: dict[str, Rule] = {
    "epochs": Rule(1, 1_000_000),
    "batch_size": Rule(1, 1_000_000),
    "lr": Rule(0, 10, low_open=True),
    "weight_decay": Rule(0, 10),
    "grad_clip": Rule(0, None, low_open=True),
    "patience": Rule(1, 1_000_000),
    "lr_patience": Rule(1, 1_000_000),
    "min_lr": Rule(0, 10),
    "seed": Rule(0, 2**32 - 1, why="what numpy accepts"),
    "precision": Rule(choices=("fp32", "bf16-mixed")),
    "max_batches_per_epoch": Rule(1, None),
}


@dataclass
class TrainConfig:
    """The settings of a training run (checked on creation against TRAIN_RULES)."""

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

    def __post_init__(self):
        """Refuse out-of-range settings (``lr=nan``, ``epochs=0``...) with one clear line."""
        clean = validate_fields("training setting", TrainConfig, asdict(self), TRAIN_RULES.get)
        for key, value in clean.items():
            setattr(self, key, value)


def option_name(field_name: str) -> str:
    """The command-line option of a TrainConfig field: ``batch_size`` -> ``--batch-size``."""
    return "--" + OPTION_NAMES.get(field_name, field_name.replace("_", "-"))


def parse_allowed(text: str | None) -> set[str]:
    """``"lr,max-batches"`` -> {"lr", "max_batches_per_epoch"}: the training settings a
    resume may change. Option names and field names are both accepted."""
    by_option = {option_name(f)[2:]: f for f in _changeable_fields()}
    names = {t.strip().lstrip("-") for t in (text or "").split(",") if t.strip()}
    unknown = sorted(n for n in names if n not in by_option and n not in by_option.values())
    if unknown:
        raise PyrocharError(
            f"--allow-changed {', '.join(unknown)}: not a training setting that may change; "
            f"use some of {', '.join(sorted(by_option))} (the model, its config and the split never change)"
        )
    return {by_option.get(n, n) for n in names}


def _changeable_fields() -> list[str]:
    """TrainConfig fields a resume may change when asked; ``device`` always may."""
    return [f for f in TrainConfig.__dataclass_fields__ if f != "device"]


def split_fingerprint(split: Split) -> str:
    """sha256 (hex) of a split's train, validation and test character lists."""
    parts = {"train": sorted(split.train), "validation": sorted(split.validation), "test": sorted(split.test)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


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


def prepare_run_dir(out_dir: str | Path) -> Path:
    """Create the run folder and check that a file can be written in it, before any
    training starts: one clear error for a file in its place, a read-only folder..."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PyrocharError(f"--out {out_dir} is a file, not a folder: pass a folder for the run")
    from pyrochar.checks import write_probe_error

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        why = write_probe_error(out_dir)
    except OSError as e:
        why = e.strerror or str(e)
    if why is not None:
        raise PyrocharError(f"--out {out_dir}: cannot write there ({why}); pass a writable folder")
    return out_dir


def claim_split(out_dir: Path, split: Split) -> None:
    """Write ``split.json`` in a run folder, or check that the one there is the same
    split: a run never changes split and split.json is never overwritten."""
    path = out_dir / "split.json"
    if not path.exists():
        split.to_json(path)
        return
    old = Split.from_json(path)
    if split_fingerprint(old) != split_fingerprint(split):
        raise ResumeMismatch(
            f"split {split.name!r} differs from the split of the run in {out_dir} ({old.name!r}, "
            "split.json): pass the run's --split/--split-file, or use a new --out"
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
    allow_changed: set[str] | frozenset[str] = frozenset(),
    split: Split | None = None,
) -> History:
    """Train ``model`` in place; checkpoints go to ``out_dir``. Returns the history.

    ``extra`` is stored in every checkpoint and must match on resume. ``split``,
    when given, is written to ``split.json`` (or checked against the one there) and
    its name and fingerprint are stored like ``extra``. ``allow_changed`` names
    TrainConfig fields that may differ from the run's on resume (:func:`parse_allowed`).
    """
    out_dir = prepare_run_dir(out_dir)
    progress, log = progress and distributed.is_root(), distributed.root_only(log)
    extra = dict(extra or {})
    if split is not None:
        extra.update(split=split.name, split_sha256=split_fingerprint(split))
    with pyro.validation_enabled(False):  # validation costs up to 30% per site; tests turn it on
        return _train(model, train_source, val_source, config, out_dir, resume, progress, log, extra,
                      set(allow_changed), split)


def _settings_differences(state: dict, model: CharacterModel, config: TrainConfig, extra: dict) -> tuple:
    """(never, changeable): the differences between a run's stored settings and the
    new ones, as phrases "--lr 0.01 differs from the run's 0.001"; changeable also
    lists the TrainConfig fields concerned."""
    never = []
    if state["model"] != model.name:
        never.append(f"--model {model.name} differs from the run's {state['model']}")
    else:
        new_cfg = model.config_dict()
        for key in sorted(set(new_cfg) | set(state["config"])):
            if new_cfg.get(key) != state["config"].get(key):
                never.append(f"--set {key}={new_cfg.get(key)} differs from the run's {state['config'].get(key)}")
    for key in sorted(set(extra) & set(state) - {"split_sha256"}):
        if extra[key] != state[key]:
            never.append(f"{key} {extra[key]} differs from the run's {state[key]}")
    both = "split_sha256" in extra and "split_sha256" in state  # runs before fingerprints: split.json decides
    if both and extra.get("split") == state.get("split") and extra["split_sha256"] != state["split_sha256"]:
        never.append(f"the characters of split {extra['split']} differ from the run's")
    changeable = []
    old = state.get("train_config", {})
    for key, value in asdict(config).items():
        if key in old and key != "device" and old[key] != value:
            changeable.append((key, f"{option_name(key)} {value} differs from the run's {old[key]}", old[key], value))
    return never, changeable


def _resume_state(out_dir: Path, model, config: TrainConfig, extra: dict, allow_changed: set,
                  log) -> tuple[dict | None, list[dict]]:
    """The checked last.pt of the run in ``out_dir`` (None: nothing to resume) and the
    allowed setting changes; ResumeMismatch for settings that differ without leave."""
    last_path = out_dir / "last.pt"
    if not last_path.exists():
        if (out_dir / "best.pt").exists():
            raise CheckpointError(
                f"cannot resume {out_dir}: it has best.pt (weights only) but no last.pt, which holds "
                f"what a resume needs ({', '.join(RESUME_KEYS)}); start again in a new --out"
            )
        log(f"nothing to resume in {out_dir}; starting a new run")
        return None, []
    state = read_checkpoint(last_path)
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise CheckpointError(
            f"{last_path} cannot be resumed: it lacks {', '.join(missing)} (a weights-only checkpoint "
            "such as best.pt?); start again in a new --out"
        )
    never, changeable = _settings_differences(state, model, config, extra)
    refused = [text for key, text, *_ in changeable if key not in allow_changed]
    if never or refused:
        advice = []
        if refused:
            keys = ",".join(option_name(k)[2:] for k, *_ in changeable if k not in allow_changed)
            advice.append(f"repeat the run's settings or pass --allow-changed {keys}")
        if never:
            advice.append("the model, its config and the split of a run never change: use a new --out")
        advice_text = "; ".join(advice)
        raise ResumeMismatch(
            f"cannot resume {out_dir}: {'; '.join(never + refused)}. {advice_text[0].upper()}{advice_text[1:]}"
        )
    changes = [{"epoch": int(state["epoch"]) + 2, "setting": key, "run": old, "now": new}
               for key, _, old, new in changeable]
    for c in changes:
        log(f"resuming with {option_name(c['setting'])} {c['now']} instead of the run's {c['run']} (allowed)")
    return state, changes


def _train(model, train_source, val_source, config, out_dir, resume, progress, log, extra,
           allow_changed, split) -> History:
    device = torch.device(config.device)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if not resume and (last_path.exists() or best_path.exists()):
        raise PyrocharError(
            f"{out_dir} already holds a run (last.pt or best.pt): pass --resume to continue it, "
            "or use a new --out"
        )
    state, changes = distributed.from_root(  # rank 0 reads the run; the others get its state
        lambda: _resume_state(out_dir, model, config, extra, allow_changed, log) if resume else (None, []))
    if split is not None and distributed.is_root():
        claim_split(out_dir, split)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model.to(device)
    model.set_precision(config.precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batch_loss = distributed.data_parallel(BatchLoss(model))  # DDP in a distributed run
    history = History()
    start_epoch, best_val, stale, lr_stale = 0, math.inf, 0, 0

    if state is not None:
        model.load_state_dict(state["state_dict"])
        model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        if any(c["setting"] == "lr" for c in changes):
            for group in optimizer.param_groups:
                group["lr"] = config.lr
        history = History(**state["history"])
        start_epoch = int(state["epoch"]) + 1
        best_val, stale, lr_stale = float(state["best_val"]), int(state["stale"]), int(state["lr_stale"])
        _set_rng_state(state["rng"])
        changes = list(state.get("resume_changes", [])) + changes
        log(f"resuming from {last_path} after epoch {start_epoch}")

    meta = {"train_config": asdict(config), "resume_changes": changes, **extra}
    for epoch in range(start_epoch, config.epochs):
        if stale >= config.patience:
            log(f"early stop: no validation improvement for {stale} epochs")
            break
        t0 = time.perf_counter()
        model.train()
        if distributed.active():
            torch.manual_seed(distributed.rank_seed(config.seed, epoch))
        batches = train_source.index_batches(config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)
        if config.max_batches_per_epoch:
            batches = batches[: config.max_batches_per_epoch]
        total, count = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress)
        for idx in bar:
            loss, batch_nll = _batch_step(model, batch_loss, train_source, idx)
            if not math.isfinite(batch_nll):
                raise TrainingDiverged(f"the loss became {batch_nll} at epoch {epoch + 1}; "
                                       f"{_kept(out_dir)}. Lower --lr or check the data.")
            optimizer.zero_grad(set_to_none=True)
            with distributed.guard("averaging the gradients"):
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += batch_nll * len(idx)
            count += len(idx)
            bar.set_postfix(nll=f"{total / count:.2f}")
        train_nll = total / max(count, 1)
        distributed.broadcast_buffers(model)  # rank 0's batch-norm statistics everywhere
        val_nll = (distributed.score_sharded(model, val_source, config.batch_size).mean if val_source
                   else train_nll)
        if not math.isfinite(val_nll):
            raise TrainingDiverged(
                f"the validation NLL became {val_nll} at epoch {epoch + 1}; {_kept(out_dir)}. Lower --lr."
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
        else:
            stale += 1
            lr_stale += 1
            if lr_stale >= config.lr_patience and lr > config.min_lr:
                for group in optimizer.param_groups:
                    group["lr"] = max(lr / 2, config.min_lr)
                lr_stale = 0
        if distributed.is_root():
            _write_epoch(out_dir, model, epoch, improved, meta, val_nll=val_nll,
                         optimizer=optimizer.state_dict(), history=asdict(history), best_val=best_val,
                         stale=stale, lr_stale=lr_stale)
        distributed.barrier("waiting for rank 0 to write the epoch's checkpoints")
        log(
            f"epoch {epoch + 1}: train NLL {train_nll:.3f}  validation NLL {val_nll:.3f}"
            f"  lr {lr:.2g}  {history.seconds[-1]:.1f}s" + ("  (best)" if improved else "")
        )
    return history


class BatchLoss(torch.nn.Module):
    """The summed NLL of some drawings of a batch, as the module DDP wraps."""

    def __init__(self, model: CharacterModel):
        super().__init__()
        self.model = model

    def forward(self, batch) -> torch.Tensor:
        """-(sum of log-likelihoods) of a CharacterBatch (0 for None: a rank given no
        drawing of a small batch), plus an exact zero that reaches every parameter, so
        that each gets a gradient on every rank as DDP expects (a batch of one-stroke
        characters leaves some networks unused)."""
        touch = sum(p.sum() for p in self.model.parameters()) * 0.0  # ()
        if batch is None:
            return touch
        ll, _ = log_likelihood(self.model, batch)  # (b,)
        return touch - ll.sum()


def _batch_step(model, batch_loss, source: BatchSource, idx: np.ndarray) -> tuple[torch.Tensor, float]:
    """(loss to backpropagate, mean NLL of the whole batch) for the global batch
    ``idx`` (B,). Each rank takes its part; its loss is its summed NLL / B * N, so
    that DDP's mean over the N ranks gives the gradient of the batch's mean NLL."""
    mine = distributed.batch_part(idx)  # (b_r,) this rank's drawings
    batch = model.prepare_batch(source.batch(mine)) if len(mine) else None
    nll_sum = batch_loss(batch)  # ()
    batch_nll = distributed.all_sum(float(nll_sum.detach())) / len(idx)
    return nll_sum / len(idx) * distributed.world_size(), batch_nll


def _kept(out_dir: Path) -> str:
    """What a failed epoch leaves behind, for error messages."""
    last = out_dir / "last.pt"
    if last.exists():
        return f"the last good checkpoint is kept in {last}"
    return f"no checkpoint was written yet in {out_dir} (it failed in the first epoch)"


def _write_epoch(out_dir: Path, model, epoch: int, improved: bool, meta: dict, val_nll: float, **state) -> None:
    """best.pt (when ``improved``), last.pt and history.json of one epoch, each
    atomically; a failed write (a full disk...) is one error saying what is kept."""
    try:
        if improved:
            save_checkpoint(out_dir / "best.pt", model, epoch=epoch, val_nll=val_nll, **meta)
        save_checkpoint(out_dir / "last.pt", model, epoch=epoch, rng=_rng_state(), **state, **meta)
        atomic_write_text(out_dir / "history.json", json.dumps(state["history"], indent=1))
    except PyrocharError as e:
        raise PyrocharError(
            f"{e}. Epoch {epoch + 1} was not saved and {_kept(out_dir)}; fix that, then rerun with --resume"
        ) from None


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
