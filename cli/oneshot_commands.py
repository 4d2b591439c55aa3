"""``pyrochar data oneshot-runs`` and ``pyrochar classify``: one-shot classification."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pyrochar.checks import check_output_folder
from pyrochar.image import MAX_K
from pyrochar.oneshot.classify import MAX_STEPS, METHODS
from pyrochar.oneshot.refit import IMAGE_WEIGHT, REFIT_STEPS, K

from .model_commands import _load_model, device_option, model_option
from .options import checked, parse_alphabets, progress_bars, seed_option


@click.command("oneshot-runs")
@click.option("--source", type=click.Path(path_type=Path), required=True,
              help="The folder holding images_background/ (Omniglot's images, e.g. ../shared/omniglot), "
                   "or images_background/ itself.")
@click.option("--alphabets", required=True, help="Comma-separated alphabets; run i takes the i-th in turn.")
@click.option("--runs", "n_runs", type=int, default=20, show_default=True,
              help="How many runs to build (1-99).")
@seed_option(default=0)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create (missing or empty): runNN/ folders and runs.json.")
def oneshot_runs(source, alphabets, n_runs, seed, out):
    """Build one-shot runs in the official layout from Omniglot images.

    Each run takes one alphabet, 20 of its characters (all if fewer), the training
    images from one drawer and the test images (shuffled) from another.
    """
    from pyrochar.oneshot.runs import build_runs

    plans = build_runs(source, parse_alphabets(alphabets) or [], n_runs, seed, out)
    for p in plans:
        click.echo(f"{p.name}  {p.alphabet:<24} {len(p.characters):>2} classes  "
                   f"drawers {p.training_drawer:02d} (training) / {p.test_drawer:02d} (test)")
    click.echo(f"wrote {len(plans)} run(s) to {out}")


@click.command()
@click.argument("runs_dir", type=click.Path(path_type=Path))
@click.option("--runs", "run_spec", default=None, help="Run numbers, e.g. 1-20 or 1,3,5-7 (default: all).")
@click.option("--method", type=click.Choice(["model", "mhd"]), default="model", show_default=True,
              help="model: parse each image, refit the parses to the other images, pick by the two-way "
                   "score; mhd: the modified Hausdorff distance between the ink pixels (the official baseline).")
@model_option()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A trained type model (default: the shipped weights); judge on alphabets it was not "
                   "trained on.")
@click.option("-k", "k", type=click.IntRange(min=1, max=MAX_K), default=K, show_default=True,
              help="Parses kept per image (model).")
@click.option("--steps", type=click.IntRange(min=0, max=MAX_STEPS), default=REFIT_STEPS, show_default=True,
              help="Optimizer steps of each refit of a parse to another image (model).")
@click.option("--parse-steps", type=click.IntRange(min=0, max=MAX_STEPS), default=None,
              help="Refinement steps while parsing (model; default: the parser's).")
@seed_option(default=0, help="Seed of the parser (model).")
@click.option("--image-weight", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=IMAGE_WEIGHT,
              show_default=True,
              help="Weight of the image term in the choice of parses, refits and scores (model): "
                   "below 1 a tempered likelihood that keeps the token model's say (docs/oneshot.md).")
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              callback=checked(check_output_folder),
              help="Folder for every score (runNN.json), a picture per run (runNN.png) and "
                   "summary.json; a rerun with the same --out resumes.")
def classify(runs_dir, run_spec, method, model_name, checkpoint, k, steps, parse_steps, seed, image_weight,
             device, as_json, out):
    """One-shot classification of the runs in RUNS_DIR (the official layout:
    runNN/training, runNN/test, runNN/class_labels.txt): per-run and mean error."""
    from pyrochar import distributed
    from pyrochar.oneshot.classify import classify as classify_runs
    from pyrochar.oneshot.runs import parse_run_spec, read_runs

    if method == "mhd":
        _refuse_model_options(click.get_current_context())
    read_runs(runs_dir, parse_run_spec(run_spec) if run_spec else None)  # bad runs fail before loading
    device = distributed.init_from_env(device)  # under torchrun: each process classifies its share
    if method == "model" and checkpoint is None and distributed.is_root():
        _warn_seen_alphabets(runs_dir)
    model = _load_model(model_name, checkpoint, device) if method == "model" else None
    result = classify_runs(model, runs_dir, runs=run_spec, method=method, out=out, progress=progress_bars(),
                           k=k, steps=steps, parse_steps=parse_steps, seed=seed, image_weight=image_weight)
    if not distributed.is_root():
        return  # rank 0 prints the merged result
    if as_json:
        click.echo(json.dumps(result.summary(), indent=1))
        return
    for r in result.runs:
        others = "".join(f", {name.replace('_', '-')} {e:.1f}%" for name, e in r.errors.items()
                         if name != METHODS[method])
        resumed = "  (resumed from --out)" if r.resumed else ""
        click.echo(f"{r.run}  error {r.error:5.1f}%  ({r.n_wrong} of {len(r.test)} wrong{others})  "
                   f"{r.seconds:.1f} s{resumed}")
    summary = result.summary()
    others = "".join(f", {name.replace('_', '-')} {e:.1f}%" for name, e in summary["mean_errors"].items()
                     if name != METHODS[method])
    click.echo(f"mean error {result.mean_error:.1f}% over {len(result.runs)} run(s) "
               f"({method}{', by the ' + METHODS[method].replace('_', '-') + ' score' if method == 'model' else ''}"
               f"{others}), {result.seconds:.1f} s")
    if out is not None:
        click.echo(f"wrote every score and a picture per run to {out}")


#: The options only ``--method model`` uses (their parameter names).
MODEL_OPTIONS = ("model_name", "checkpoint", "k", "steps", "parse_steps", "seed", "image_weight", "device")


def _refuse_model_options(ctx: click.Context) -> None:
    """``--method mhd`` with an option only the model method uses: a usage error, not an
    option silently ignored."""
    from click.core import ParameterSource

    for param in ctx.command.params:
        if param.name in MODEL_OPTIONS and ctx.get_parameter_source(param.name) not in (
                ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None):
            flag = max(param.opts, key=len)
            raise click.UsageError(f"{flag} applies to --method model only; leave it out with --method mhd",
                                   ctx)


def _warn_seen_alphabets(runs_dir: Path) -> None:
    """Warn when runs built by ``pyrochar data oneshot-runs`` (their ``runs.json``) take
    alphabets the shipped weights were trained on: their error is no one-shot test."""
    import warnings

    from pyrochar.oneshot.runs import PROVENANCE_FILE
    from pyrochar.weights import TRAINED_ON_ALPHABETS

    try:
        alphabets = json.loads((runs_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))["alphabets"]
        seen = sorted(set(alphabets) & set(TRAINED_ON_ALPHABETS))
    except (OSError, ValueError, KeyError, TypeError):
        return  # not runs this project built (the official runs have no runs.json)
    if seen:
        warnings.warn(f"the shipped weights were trained on every drawing of {', '.join(seen)} (the runs' "
                      "alphabets): this error says little about new alphabets; pass --checkpoint with a "
                      "model trained on a split that holds them out (docs/oneshot.md)", stacklevel=2)
