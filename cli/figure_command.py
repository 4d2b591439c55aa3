"""``pyrochar figures``: the paper's qualitative analysis (Figs. 3, 5, 6, 7, 8 + a table)."""

from __future__ import annotations

from pathlib import Path

import click

from pyrochar.errors import PyrocharError
from pyrochar.models import MODELS

from .options import (
    folder_out_option,
    progress_bars,
    report_skipped,
    resolve_source,
    seed_option,
    source_option,
)

DEFAULT_MODELS = ("full-ns", "hlstm", "baseline", "bpl")


def parse_checkpoints(items) -> dict[str, Path]:
    """``("full-ns=runs/a/best.pt", ...)`` -> {model: path}."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise PyrocharError(f"--checkpoint {item!r}: expected MODEL=PATH, e.g. "
                                "--checkpoint hlstm=runs/a0-hlstm/best.pt")
        if name not in MODELS:
            raise PyrocharError(f"--checkpoint {item!r}: unknown model {name!r}; available: "
                                f"{', '.join(sorted(MODELS))}")
        if name in out:
            raise PyrocharError(f"--checkpoint: two checkpoints for {name!r}")
        out[name] = Path(path)
    return out


def load_models(names, explicit: bool, checkpoints: dict[str, Path], device: str = "cpu",
                log=click.echo) -> dict:
    """The models to draw, in the order of ``names``.

    A model comes from its ``--checkpoint`` or else from the weights shipped in the
    package. Without either: an error when the user named the model in ``--models``
    (``explicit``), else it is skipped with a message.
    """
    from pyrochar.checkpoint import load_checkpoint, load_pretrained, pretrained_path

    extra = sorted(set(checkpoints) - set(names))
    if extra:
        raise PyrocharError(f"--checkpoint given for {', '.join(extra)}, which --models leaves out")
    models = {}
    for name in names:
        if name in checkpoints:
            models[name] = load_checkpoint(checkpoints[name], expected_model=name)
        elif pretrained_path(name).exists():
            models[name] = load_pretrained(name)
        elif explicit:
            raise PyrocharError(f"no weights for model {name!r}: this installation ships none; "
                                f"train one (`pyrochar train --model {name}`) and pass "
                                f"--checkpoint {name}=PATH")
        else:
            log(f"skipping {name}: no shipped weights; pass --checkpoint {name}=PATH to include it",
                err=True)
    if not models:
        raise PyrocharError("no model to draw: none of "
                            f"{', '.join(names)} has shipped weights; pass --checkpoint MODEL=PATH "
                            "(e.g. --checkpoint full-ns=runs/a0/best.pt)")
    return {k: m.to(device).eval() for k, m in models.items()}


@click.command()
@click.option("--models", "model_list", default=None,
              help="Comma-separated models, in panel order [default: full-ns,hlstm,baseline,bpl; "
              "any without weights is then skipped with a message, while a model named here "
              "without weights is an error].")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="MODEL=PATH",
              help="A trained checkpoint for one model (repeatable); default: the shipped weights.")
@source_option()
@click.option("--split", "spec", default="all", show_default=True,
              help="The split the models were trained on: its training characters are the "
              "classifier's classes and the neighbours; its test characters (or, when it has "
              "none, its validation characters) are the held-out ones.")
@click.option("--split-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="A split written by `pyrochar data split` or `pyrochar train` "
              "(overrides --split).")
@click.option("-n", "n", type=click.IntRange(min=1, max=400), default=36, show_default=True,
              help="Samples per model in Figs. 5 and 8.")
@click.option("--n-novelty", type=click.IntRange(min=2, max=10000), default=200, show_default=True,
              help="Samples per model for Fig. 6 and the novelty table.")
@click.option("--grid-side", type=click.IntRange(min=2, max=30), default=10, show_default=True,
              help="Fig. 7 shows grid-side^2 Full NS samples.")
@click.option("--classifier-epochs", type=click.IntRange(min=1), default=10, show_default=True)
@seed_option(default=0, help="Seed of the samples and the classifier.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the models and the classifier run.")
@folder_out_option("Folder for the PNGs and the novelty table.", names=("-o", "--out"))
def figures(model_list, checkpoints, source, spec, split_file, n, n_novelty, grid_side,
            classifier_epochs, seed, device, out):
    """The paper's qualitative analysis: figures 3, 5, 6, 7, 8 and a novelty table.

    Writes fig3_predictions.png, fig5_samples.png, fig6_novelty.png,
    fig7_topology.png, fig8_strokes.png, novelty.md and novelty.json into --out.
    """
    import torch

    from pyrochar.data.prepare import prepare_dataset
    from pyrochar.data.splits import Split
    from pyrochar.figures import make_figures

    if device == "cuda" and not torch.cuda.is_available():
        raise PyrocharError("--device cuda: no CUDA device is available here; use --device cpu")
    explicit = model_list is not None
    names = ([m.strip() for m in model_list.split(",") if m.strip()] if explicit
             else list(DEFAULT_MODELS))
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        raise PyrocharError(f"--models {model_list!r}: unknown model(s) {', '.join(unknown)}; "
                            f"available: {', '.join(sorted(MODELS))}")
    models = load_models(names, explicit, parse_checkpoints(checkpoints), device)

    ds = prepare_dataset(resolve_source(source), progress=progress_bars())
    report_skipped(ds.skipped)
    sp = Split.from_json(split_file) if split_file else ds.split(spec)
    train = ds.select_characters(sp.train)
    held_part = "test" if sp.test else "validation"
    heldout = ds.select_characters(getattr(sp, held_part))
    if len(train) == 0:
        raise PyrocharError(f"split {sp.name!r} leaves no training drawings in {source or 'the data'}")
    click.echo(f"split {sp.name}: {len(train)} training drawings, {len(heldout)} held-out drawings "
               f"({held_part} characters); models: {', '.join(models)}")
    result = make_figures(models, train, heldout, out, n=n, seed=seed, progress=progress_bars(),
                          n_novelty=n_novelty, grid_side=grid_side,
                          classifier_epochs=classifier_epochs, device=device,
                          log=lambda msg: click.echo(msg, err=True))
    for path in result.files.values():
        click.echo(f"wrote {path}")
    if result.novelty is not None:
        click.echo((out / "novelty.md").read_text())
