"""``pyrochar train | score | sample``: the model commands."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from pyrochar.checks import MAX_COMPLETIONS, MAX_SAMPLES
from pyrochar.errors import PyrocharError
from pyrochar.models import MODELS

from .options import (
    folder_out_option,
    image_out_option,
    json_out_option,
    parse_alphabets,
    progress_bars,
    report_skipped,
    resolve_source,
    seed_option,
    source_option,
    temperature_option,
)

MODEL_CHOICES = sorted(MODELS)


def model_option():
    return click.option("--model", "model_name", type=click.Choice(MODEL_CHOICES), default="full-ns",
                        show_default=True, help="Which model.")


def device_option():
    return click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                        help="Where the networks and the renderer run.")


def precision_option(training: bool):
    what = ("while training (validation too; test NLLs are always computed in fp32)" if training
            else "while scoring")
    return click.option("--precision", type=click.Choice(["fp32", "bf16-mixed"]), default="fp32",
                        show_default=True,
                        help=f"Precision of the canvas CNNs {what}; bf16-mixed is faster on CPUs with "
                             "native bfloat16 (docs/performance.md).")


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise PyrocharError("--device cuda: no CUDA device is available here; use --device cpu")


def _parse_overrides(items) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PyrocharError(f"--set {item!r}: expected KEY=VALUE, e.g. --set stroke_hidden=128")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _load_model(model_name: str, checkpoint: Path | None, device: str):
    from pyrochar.checkpoint import load_checkpoint, load_pretrained

    _check_device(device)
    model = load_checkpoint(checkpoint, expected_model=model_name) if checkpoint else load_pretrained(model_name)
    return model.to(device).eval()


@click.command()
@model_option()
@source_option()
@click.option("--split", "spec", default="alphabet:0", show_default=True,
              help="character:K, alphabet:K, holdout or all (docs/data.md, Splits).")
@click.option("--split-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A split written by `pyrochar data split` (overrides --split).")
@click.option("--holdout-alphabets", default=None, help="Alphabets held out by --split holdout.")
@click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=8, show_default=True,
              help="Early stopping: epochs without validation improvement.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option()
@precision_option(training=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a model config field, e.g. --set attention=sat (repeatable).")
@click.option("--max-batches", type=click.IntRange(min=1), default=None,
              help="Stop each epoch after this many batches (quick trials).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out where it stopped; refused if the settings differ from "
                   "the run's (see --allow-changed).")
@click.option("--allow-changed", default=None, metavar="SETTINGS",
              help="With --resume: training settings that may differ from the run's, comma-separated, "
                   "e.g. epochs,lr,patience. The model, its config and the split never change.")
def train(model_name, source, spec, split_file, holdout_alphabets, epochs, batch_size, lr, patience,
          seed, device, precision, overrides, max_batches, out, resume, allow_changed):
    """Train a model by maximum likelihood; checkpoints go to --out.

    Under torchrun, one model over several processes (docs/distributed.md)."""
    import torch

    from pyrochar import distributed
    from pyrochar.atomic import atomic_write_text
    from pyrochar.checkpoint import model_from_checkpoint, read_checkpoint
    from pyrochar.data.loader import BatchSource
    from pyrochar.data.prepare import prepare_dataset
    from pyrochar.data.splits import Split
    from pyrochar.models import build_model
    from pyrochar.train import TrainConfig, parse_allowed, prepare_run_dir, seed_everything
    from pyrochar.train import train as run_training

    # every option is checked before the data are prepared or anything is written
    _check_device(device)
    device = distributed.init_from_env(device)  # cuda:LOCAL_RANK under torchrun
    echo = distributed.root_only(click.echo)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                         device=device, precision=precision, max_batches_per_epoch=max_batches)
    if allow_changed and not resume:
        raise PyrocharError("--allow-changed applies to --resume only")
    allowed = parse_allowed(allow_changed)
    seed_everything(seed)
    model = build_model(model_name, _parse_overrides(overrides))
    prepare_run_dir(out)
    with distributed.root_first("waiting for rank 0 to prepare the data"):  # the others read its cache
        ds = prepare_dataset(resolve_source(source), progress=distributed.is_root() and progress_bars())
    if distributed.is_root():
        report_skipped(ds.skipped)
    if split_file:
        sp = Split.from_json(split_file)
    else:
        sp = ds.split(spec, parse_alphabets(holdout_alphabets))
    parts = {p: ds.select_characters(getattr(sp, p)) for p in ("train", "validation", "test")}
    if len(parts["train"]) == 0:
        raise PyrocharError(f"split {sp.name!r} leaves no training drawings")
    echo(f"{model_name}: {sum(p.numel() for p in model.parameters()):,} parameters; "
         f"split {sp.name}: {len(parts['train'])} train, {len(parts['validation'])} validation, "
         f"{len(parts['test'])} test drawings")
    if not (resume and (out / "last.pt").exists()):
        model.initialize_from_data(parts["train"])  # closed-form start where a model has one (bpl)
    sources = {p: BatchSource(d, with_canvases=model.uses_canvases, device=device) if len(d) else None
               for p, d in parts.items()}
    run_training(model, sources["train"], sources["validation"], config, out, resume=resume,
                 log=click.echo, progress=progress_bars(), split=sp, allow_changed=allowed)
    result = {"model": model_name, "split": sp.name, "config": model.config_dict()}
    best_path = out / "best.pt"  # read by rank 0, sent to the others
    best = distributed.from_root(lambda: read_checkpoint(best_path) if best_path.exists() else None)
    if sources["test"] is not None and best is not None:
        best = model_from_checkpoint(best, str(best_path)).to(device)
        with torch.no_grad():
            scores = distributed.score_sharded(best, sources["test"], batch_size, progress=progress_bars())
        result["test"] = scores.summary()
        echo(f"test NLL {scores.mean:.3f} nats per character over {len(scores.nll)} drawings "
             f"(split {sp.name})")
    if distributed.is_root():
        atomic_write_text(out / "results.json", json.dumps(result, indent=1))


@click.command()
@model_option()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A trained checkpoint (default: the shipped weights).")
@source_option()
@click.option("--alphabets", default=None, help="Comma-separated alphabets of --source to score.")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--per-drawing", is_flag=True, help="Also list each drawing's NLL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--partial", type=click.IntRange(min=1), default=None, metavar="K",
              help="Score only the first K strokes of each drawing: the exact marginal "
              "log-likelihood of that prefix (drawings with fewer strokes are left out).")
@click.option("--prefix-points", type=click.IntRange(min=0), default=None,
              help="With --partial: also the first P control points of stroke K+1 [default: 0]; "
              "see --partial-stroke for what is scored of that stroke.")
@click.option("--partial-stroke", type=click.Choice(["goes-on", "any"]), default=None,
              help="With --prefix-points: 'goes-on' scores the P control points and that the stroke "
              "goes on after them (the event `complete` continues from); 'any' scores the P control "
              "points whatever follows (their marginal) [default: goes-on].")
@click.option("--batch-size", type=click.IntRange(min=1), default=200, show_default=True)
@device_option()
@precision_option(training=False)
def score(model_name, checkpoint, source, alphabets, files, per_drawing, as_json, partial, prefix_points,
          partial_stroke, batch_size, device, precision):
    """Negative log-likelihood per character (nats, normalized units)."""
    from pyrochar.api import read_drawings
    from pyrochar.data.loader import BatchSource
    from pyrochar.data.prepare import build_prepared, prepare_dataset
    from pyrochar.scoring import score as score_source

    if files and source:
        raise click.UsageError("give either --source or drawing FILES, not both")
    if files and alphabets:
        raise click.UsageError("--alphabets selects alphabets of --source; it does not apply to drawing "
                               "FILES (pass only the files to score)")
    if prefix_points is not None and partial is None:
        raise click.UsageError("--prefix-points only applies with --partial K (the control points of "
                               "stroke K+1); add --partial or drop --prefix-points")
    if partial_stroke is not None and not prefix_points:
        raise click.UsageError("--partial-stroke only applies with --prefix-points P >= 1; add "
                               "--prefix-points or drop --partial-stroke")
    if files:
        ds = build_prepared(read_drawings(list(files), strict=False))
    else:
        ds = prepare_dataset(resolve_source(source), alphabets=parse_alphabets(alphabets),
                             progress=not as_json and progress_bars())
    report_skipped(ds.skipped)
    for e in ds.empty_after_filter:
        click.echo(f"not scored (every stroke shorter than 20 px): {e}", err=True)
    if len(ds) == 0:
        raise PyrocharError("no drawing left to score")
    model = _load_model(model_name, checkpoint, device).set_precision(precision)
    if partial is None:
        ds = _within_caps(model, ds)
    if partial is not None:
        goes_on = partial_stroke != "any"
        _score_partial(model, ds, partial, prefix_points or 0, goes_on, batch_size, device, per_drawing,
                       as_json)
        return
    src = BatchSource(ds, with_canvases=model.uses_canvases, device=device)
    scores = score_source(model, src, batch_size, progress=not as_json and progress_bars())
    summary = scores.summary()
    summary["model"] = model_name
    summary["units"] = "nats per character, normalized units (px / 20)"
    if per_drawing:
        summary["per_drawing"] = [{"drawing": ds.key(d), "nll": float(scores.nll[d])} for d in range(len(ds))]
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    click.echo(f"mean NLL {summary['mean_nll']:.3f} nats per character (n = {summary['n']}, {model_name})")
    for k, v in summary["breakdown"].items():
        click.echo(f"  {k:<12} {v:8.3f}")
    if per_drawing:
        for row in summary["per_drawing"]:
            click.echo(f"{row['nll']:9.3f}  {row['drawing']}")


def _within_caps(model, ds):
    """The drawings the model can draw; the others (beyond its caps) named and left out."""
    from pyrochar.scoring import beyond_caps

    beyond = beyond_caps(model, ds)
    for d, problem in beyond.items():
        click.echo(f"not scored ({problem}): {ds.key(d)}", err=True)
    if not beyond:
        return ds
    if len(beyond) == len(ds):
        raise PyrocharError(f"no drawing left to score: {next(iter(beyond.values()))}")
    return ds.select([d for d in range(len(ds)) if d not in beyond])


def _score_partial(model, ds, keep, prefix_points, goes_on, batch_size, device, per_drawing, as_json):
    from tqdm.auto import tqdm

    from pyrochar.complete import log_likelihood_partial
    from pyrochar.data.loader import BatchSource

    src = BatchSource(ds, device=device)
    need = keep + (1 if prefix_points else 0)
    long_enough = [d for d in range(len(ds)) if src.n_strokes[d] >= need]
    if not long_enough:
        raise PyrocharError(f"no drawing has the {need} stroke(s) this prefix needs "
                            f"(the most is {int(src.n_strokes.max())}); lower --partial")
    # stroke K+1 must hold the P observed control points: P - 1 offsets
    ok = [d for d in long_enough if not prefix_points or len(src.strokes[d][keep][1]) >= prefix_points - 1]
    if not ok:
        most = max(len(src.strokes[d][keep][1]) + 1 for d in long_enough)
        raise PyrocharError(f"no drawing has {prefix_points} control points in stroke {keep + 1} "
                            f"(the most is {most}); lower --prefix-points")
    nll = {}
    chunks = [ok[i : i + batch_size] for i in range(0, len(ok), batch_size)]
    for idx in tqdm(chunks, desc="scoring prefixes", unit="batch", disable=as_json):
        ll = log_likelihood_partial(model, src.batch(idx), keep, prefix_points, stroke_goes_on=goes_on)
        nll.update(zip(idx, (-ll).tolist(), strict=True))
    values = np.array([nll[d] for d in ok])
    summary = {"mean_nll": float(values.mean()), "n": len(ok), "left_out": len(ds) - len(ok),
               "partial": {"strokes": keep, "prefix_points": prefix_points,
                           "partial_stroke": ("goes-on" if goes_on else "any") if prefix_points else None},
               "model": model.name,
               "units": "nats per prefix, normalized units (px / 20)"}
    if per_drawing:
        summary["per_drawing"] = [{"drawing": ds.key(d), "nll": nll[d]} for d in ok]
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    click.echo(f"mean NLL of the first {keep} stroke(s)"
               + (f" + {prefix_points} control point(s)" if prefix_points else "")
               + (" of a stroke that goes on" if prefix_points and goes_on else "")
               + f": {summary['mean_nll']:.3f} nats (n = {len(ok)}, {len(ds) - len(ok)} too short)")
    for row in summary.get("per_drawing", []):
        click.echo(f"{row['nll']:9.3f}  {row['drawing']}")


@click.command()
@model_option()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A trained checkpoint (default: the shipped weights).")
@click.option("-n", "n", type=click.IntRange(min=1, max=MAX_SAMPLES), default=36, show_default=True)
@temperature_option()
@seed_option(help="Random seed (repeatable samples).")
@image_out_option("samples.png")
@json_out_option("Also write the strokes as JSON (the project's drawing format, .json).")
@click.option("--black", is_flag=True, help="Draw every stroke in black.")
@device_option()
def sample(model_name, checkpoint, n, temperature, seed, out, json_out, black, device):
    """Draw new characters: a grid PNG, each stroke in its own colour."""
    from pyrochar.sampling import sample_characters
    from pyrochar.viz import character_grid, save_image

    model = _load_model(model_name, checkpoint, device)
    chars = sample_characters(model, n, temperature=temperature, seed=seed)
    save_image(character_grid(chars, colour_strokes=not black), out, "--out")
    click.echo(f"wrote {out}: {n} characters from {model_name} at temperature {temperature:g}")
    if json_out:
        _write_json(json_out, chars, "sample")


@click.command()
@source_option()
@click.option("--task", type=click.Choice(["alphabet", "character", "holdout"]), default="alphabet",
              show_default=True, help="Generalize to new alphabets, new characters, or held-out alphabets.")
@click.option("--models", default="full-ns,hlstm,baseline", show_default=True,
              help="Comma-separated models to compare.")
@click.option("--splits", default="0,1,2", show_default=True, help="Split indices (alphabet/character tasks).")
@click.option("--holdout-alphabets", default=None, help="Alphabets held out by --task holdout.")
@click.option("--grid", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="Hyperparameter grid per model (chosen by mean validation NLL across splits).")
@click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=8, show_default=True)
@seed_option(default=0, help="Seed of the training runs.")
@click.option("--set", "overrides", multiple=True, metavar="MODEL:KEY=VALUE",
              help="Override a config field of one model in every run, e.g. full-ns:attention=sat.")
@click.option("--max-batches", type=click.IntRange(min=1), default=None,
              help="Stop each epoch after this many batches (quick trials).")
@device_option()
@precision_option(training=True)
@folder_out_option("Folder for the runs and the tables (reused: finished runs are not retrained).")
@click.option("--allow-changed", default=None, metavar="SETTINGS",
              help="Training settings an unfinished run in --out may continue with although they differ "
                   "from its own, comma-separated, e.g. epochs,patience (as train --resume).")
def evaluate(source, task, models, splits, holdout_alphabets, grid, epochs, batch_size, lr, patience,
             seed, overrides, max_batches, device, precision, out, allow_changed):
    """The paper's Table 1: train per split, score held-out characters, compare models."""
    from pyrochar.data.prepare import prepare_dataset
    from pyrochar.evaluate import EvalConfig
    from pyrochar.evaluate import evaluate as run_evaluation
    from pyrochar.train import TrainConfig, parse_allowed

    _check_device(device)
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODEL_CHOICES]
    if unknown:
        raise PyrocharError(f"unknown model(s) {', '.join(unknown)}; available: {', '.join(MODEL_CHOICES)}")
    try:
        split_ids = [int(k) for k in splits.split(",") if k.strip()]
    except ValueError:
        raise PyrocharError(f"--splits {splits!r}: expected comma-separated integers such as 0,1,2") from None
    per_model: dict[str, dict] = {}
    for item in overrides:
        model, sep, rest = item.partition(":")
        if not sep or model not in names:
            raise PyrocharError(f"--set {item!r}: expected MODEL:KEY=VALUE with MODEL one of {', '.join(names)}")
        per_model.setdefault(model, {}).update(_parse_overrides([rest]))
    ds = prepare_dataset(resolve_source(source), progress=progress_bars())
    report_skipped(ds.skipped)
    cfg = EvalConfig(
        task=task, models=names, splits=split_ids, grid=grid,
        holdout_alphabets=parse_alphabets(holdout_alphabets), overrides=per_model,
        train=TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                          device=device, precision=precision, max_batches_per_epoch=max_batches),
        allow_changed=frozenset(parse_allowed(allow_changed)),
    )
    run_evaluation(ds, cfg, out, log=click.echo, progress=progress_bars())
    click.echo((out / "table.md").read_text())
    click.echo(f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'table.json'}, {out / 'grid.json'}")


@click.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@model_option()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A trained checkpoint (default: the shipped weights).")
@click.option("--strokes", "keep", type=click.IntRange(min=0), default=1, show_default=True,
              help="Keep the first K strokes of the drawing.")
@click.option("--prefix-points", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also keep the first P control points of the next stroke.")
@click.option("-n", "n", type=click.IntRange(min=1, max=MAX_COMPLETIONS), default=9, show_default=True)
@temperature_option()
@seed_option(help="Random seed (repeatable completions).")
@image_out_option("completions.png")
@json_out_option("Also write the completions as JSON drawings (.json).")
@device_option()
def complete(input_file, model_name, checkpoint, keep, prefix_points, n, temperature, seed, out, json_out,
             device):
    """Complete a partial drawing: keep its first strokes, sample the rest."""
    from pyrochar.api import complete_controls, prefix_controls
    from pyrochar.data.jsonio import read_drawing_file
    from pyrochar.viz import completion_grid, save_image

    drawings = read_drawing_file(input_file)
    if len(drawings) > 1:
        click.echo(f"{input_file} holds {len(drawings)} drawings: completing the first", err=True)
    drawing = drawings[0]
    controls = prefix_controls(drawing, keep, prefix_points, names=("--strokes", "--prefix-points"))
    model = _load_model(model_name, checkpoint, device)
    chars = complete_controls(model, controls, keep, prefix_points, n, temperature, seed)
    partial = controls[keep][:prefix_points] if prefix_points else None
    save_image(completion_grid(chars, keep, partial), out, "--out")
    click.echo(f"wrote {out}: {n} completions of {input_file} after {keep} stroke(s)"
               + (f" and {prefix_points} control point(s)" if prefix_points else ""))
    if json_out:
        _write_json(json_out, chars, "completion")


def _write_json(path, chars, label):
    from pyrochar.api import controls_to_drawings
    from pyrochar.data.jsonio import write_drawings_json

    drawings = controls_to_drawings(chars, label)
    write_drawings_json(path, drawings, labels=[d.source for d in drawings])
    click.echo(f"wrote {path}")


COMMANDS = [train, score, sample, evaluate, complete]

from .figure_command import figures  # noqa: E402  (its own file; registered here)

COMMANDS.append(figures)
