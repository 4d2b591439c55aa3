"""The paper's likelihood evaluation (Table 1), on any data.

For a task (``alphabet``, ``character`` or ``holdout``) and a list of models,
``evaluate`` trains one model per split and hyperparameter setting (or reuses
finished runs from the output folder), picks each model's setting by its average
validation NLL across splits (as the paper does), scores the test drawings with
the chosen setting, and writes Table 1 as markdown, CSV and JSON: mean NLL per test
drawing for every model and split, the best per column marked, and a paired t-test
(``scipy.stats.ttest_rel`` over the test drawings, all splits pooled) between the
best and the next best model, like the paper's "t(5531) = 3.094; p < 0.002".

Runs live in ``OUT/runs/<model>/<setting>/<task>-<split>/``; a run whose
``done.json`` exists is never retrained, and an interrupted run resumes from its
``last.pt``. Interrupted evaluations therefore continue where they stopped.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from .atomic import atomic_write_text
from .checkpoint import load_checkpoint
from .data.loader import BatchSource
from .data.prepare import PreparedDataset
from .data.splits import Split
from .errors import PyrocharError
from .models import build_model
from .scoring import score
from .train import TrainConfig, seed_everything, train
from .trivial_model import trivial_model_nll

# Small default grids (runnable on a 2-core CPU) and the full ones (the paper tunes
# layers, units and dropout of the alternatives). Each entry is a config override.
SMALL_GRIDS: dict[str, list[dict]] = {
    "full-ns": [{}],  # one setting: the reference architecture (training it dominates the cost)
    "hlstm": [{}, {"char_layers": 1, "char_hidden": 128}],
    "baseline": [{}, {"layers": 1, "hidden": 512}],
    "bpl": [{}],
}
FULL_GRIDS: dict[str, list[dict]] = {
    "full-ns": [{}, {"stroke_dropout": 0.5}, {"stroke_hidden": 128}],
    "hlstm": [
        {"char_layers": layers, "char_hidden": units, "char_dropout": p}
        for layers in (1, 2) for units in (128, 256) for p in (0.0, 0.3)
    ],
    "baseline": [
        {"layers": layers, "hidden": units, "dropout": p}
        for layers in (1, 2, 3) for units in (256, 512) for p in (0.0, 0.3)
    ],
    "bpl": [{}],
}


@dataclass
class EvalConfig:
    task: str = "alphabet"  # alphabet | character | holdout
    models: Sequence[str] = ("full-ns", "hlstm", "baseline")
    splits: Sequence[int] = (0, 1, 2)
    grid: str | dict[str, list[dict]] = "small"  # "small", "full", or {model: [overrides, ...]}
    holdout_alphabets: Sequence[str] | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    overrides: dict[str, dict] = field(default_factory=dict)  # per model, applied to every setting
    allow_changed: frozenset[str] = frozenset()  # training settings a resumed run may change


def setting_name(overrides: dict) -> str:
    if not overrides:
        return "default"
    return ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def _split_specs(cfg: EvalConfig) -> list[str]:
    if cfg.task == "holdout":
        return ["holdout"]
    if cfg.task not in ("alphabet", "character"):
        raise PyrocharError(f"unknown task {cfg.task!r}: use alphabet, character or holdout")
    return [f"{cfg.task}:{k}" for k in cfg.splits]


def run_one(
    ds: PreparedDataset,
    split: Split,
    model_name: str,
    overrides: dict,
    run_dir: Path,
    tcfg: TrainConfig,
    log: Callable[[str], None],
    allow_changed: frozenset[str] = frozenset(),
) -> dict:
    """Train (or resume, or reuse) one model on one split; score its test drawings.

    An unfinished run resumes; ``allow_changed`` names the training settings it may
    continue with although they differ from its own (see :func:`pyrochar.train.train`).
    """
    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    seed_everything(tcfg.seed)
    model = build_model(model_name, overrides)
    parts = {p: ds.select_characters(getattr(split, p)) for p in ("train", "validation", "test")}
    if not (run_dir / "last.pt").exists():
        model.initialize_from_data(parts["train"])  # closed-form start where a model has one (bpl)
    sources = {
        p: BatchSource(d, with_canvases=model.uses_canvases, device=tcfg.device) if len(d) else None
        for p, d in parts.items()
    }
    history = train(model, sources["train"], sources["validation"], tcfg, run_dir, resume=True,
                    progress=False, log=log, allow_changed=allow_changed)
    best = load_checkpoint(run_dir / "best.pt").to(tcfg.device)
    test = score(best, sources["test"], tcfg.batch_size)
    result = {
        "model": model_name,
        "setting": setting_name(overrides),
        "split": split.name,
        "val_nll": float(min(history.val_nll)) if history.val_nll else math.nan,
        "epochs": len(history.epoch),
        "test_keys": [parts["test"].key(d) for d in range(len(parts["test"]))],
        "test_nll": [float(x) for x in test.nll],
        "test_breakdown": {k: float(v.mean()) for k, v in test.breakdown.items()},
    }
    atomic_write_text(done, json.dumps(result))
    return result


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """scipy.stats.ttest_rel over paired per-drawing NLLs: t, df, p (two-sided)."""
    res = stats.ttest_rel(np.asarray(a), np.asarray(b))
    return {"t": float(res.statistic), "df": int(len(a) - 1), "p": float(res.pvalue)}


def evaluate(
    ds: PreparedDataset, cfg: EvalConfig, out: str | Path, log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Run the whole evaluation; write table.md/.csv/.json and grid.json into ``out``."""
    out = Path(out)
    specs = _split_specs(cfg)
    splits = {spec: ds.split(spec, cfg.holdout_alphabets) for spec in specs}
    if isinstance(cfg.grid, dict):
        grids = {**SMALL_GRIDS, **cfg.grid}
    elif cfg.grid in ("small", "full"):
        grids = FULL_GRIDS if cfg.grid == "full" else SMALL_GRIDS
    else:
        raise PyrocharError(f"unknown grid {cfg.grid!r}: use small or full")
    jobs = []
    for m in cfg.models:
        if m not in grids:
            raise PyrocharError(f"unknown model {m!r} for the evaluation; use {', '.join(grids)}")
        for setting in grids[m]:
            overrides = {**cfg.overrides.get(m, {}), **setting}  # the grid point wins
            for spec in specs:
                jobs.append((m, overrides, spec))
    results: dict[tuple, dict] = {}
    bar = tqdm(jobs, desc=f"evaluation ({cfg.task})", unit="run", disable=not progress)
    for m, overrides, spec in bar:
        bar.set_postfix_str(f"{m} {setting_name(overrides)} {spec}")
        run_dir = out / "runs" / m / setting_name(overrides) / spec.replace(":", "-")
        results[(m, setting_name(overrides), spec)] = run_one(
            ds, splits[spec], m, overrides, run_dir, cfg.train, log=lambda _msg: None,
            allow_changed=cfg.allow_changed,
        )
        r = results[(m, setting_name(overrides), spec)]
        log(f"{m} [{r['setting']}] {spec}: test NLL {np.mean(r['test_nll']):.3f} "
            f"(validation {r['val_nll']:.3f}, {r['epochs']} epochs)")

    # hyperparameters: lowest validation NLL averaged across splits
    chosen, grid_report = {}, {}
    for m in cfg.models:
        scores = {}
        for setting in grids[m]:
            name = setting_name({**cfg.overrides.get(m, {}), **setting})
            scores[name] = float(np.mean([results[(m, name, s)]["val_nll"] for s in specs]))
        chosen[m] = min(scores, key=scores.get)
        grid_report[m] = {"validation_nll": scores, "chosen": chosen[m]}
    atomic_write_text(out / "grid.json", json.dumps(grid_report, indent=1))

    table = {m: {s: results[(m, chosen[m], s)] for s in specs} for m in cfg.models}
    means = {m: {s: float(np.mean(table[m][s]["test_nll"])) for s in specs} for m in cfg.models}
    for s in specs:  # paired comparisons need the same test drawings in the same order
        keys = {tuple(table[m][s]["test_keys"]) for m in cfg.models}
        if len(keys) != 1:
            raise PyrocharError(f"the models were scored on different test drawings for {s}; "
                                "delete the out folder's runs and evaluate again")
    pooled = {m: np.concatenate([table[m][s]["test_nll"] for s in specs]) for m in cfg.models}
    overall = {m: float(pooled[m].mean()) for m in cfg.models}
    ranking = sorted(cfg.models, key=overall.get)
    test = None
    if len(ranking) >= 2:
        test = {"best": ranking[0], "next": ranking[1], **paired_t_test(pooled[ranking[0]], pooled[ranking[1]])}
    trivial = {}
    for s in specs:
        sp = splits[s]
        trivial[s] = trivial_model_nll(
            ds.select_characters(sp.train + sp.validation), ds.select_characters(sp.test)
        )["mean_nll"]
    report = {
        "task": cfg.task,
        "splits": specs,
        "units": "mean NLL per test drawing, nats, normalized units (px / 20)",
        "mean_nll": means,
        "overall": overall,
        "n_test": {s: len(table[cfg.models[0]][s]["test_nll"]) for s in specs},
        "chosen_settings": chosen,
        "t_test": test,
        "trivial_model": trivial,
        "train_config": asdict(cfg.train),
    }
    atomic_write_text(out / "table.json", json.dumps(report, indent=1))
    atomic_write_text(out / "table.csv", _csv(report, cfg.models, specs))
    atomic_write_text(out / "table.md", _markdown(report, cfg.models, specs))
    return report


def _csv(report: dict, models: Sequence[str], specs: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", *specs, "mean"])
    for m in models:
        w.writerow([m, *(f"{report['mean_nll'][m][s]:.4f}" for s in specs), f"{report['overall'][m]:.4f}"])
    return buf.getvalue()


def _markdown(report: dict, models: Sequence[str], specs: Sequence[str]) -> str:
    cols = [*specs, "mean"]
    best = {s: min(models, key=lambda m, s=s: report["mean_nll"][m][s]) for s in specs}
    best["mean"] = min(models, key=report["overall"].get)
    lines = [
        f"Mean NLL per test drawing (nats, normalized units), task `{report['task']}`; "
        "lower is better, best per column in bold.",
        "",
        "| model | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for m in models:
        cells = []
        for c in cols:
            v = report["overall"][m] if c == "mean" else report["mean_nll"][m][c]
            cells.append(f"**{v:.2f}**" if best[c] == m else f"{v:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    triv = report["trivial_model"]
    lines.append("| trivial (reference) | " + " | ".join(f"{triv[s]:.2f}" for s in specs)
                 + f" | {np.mean(list(triv.values())):.2f} |")
    lines.append("")
    lines.append("Test drawings per split: " + ", ".join(f"{s}: {n}" for s, n in report["n_test"].items()))
    if report["t_test"]:
        t = report["t_test"]
        lines.append(
            f"\nPaired t-test, {t['best']} vs {t['next']} (per test drawing, splits pooled): "
            f"t({t['df']}) = {t['t']:.3f}; p = {t['p']:.3g}"
        )
    return "\n".join(lines) + "\n"
