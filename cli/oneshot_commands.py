"""``pyrochar data oneshot-runs`` and ``pyrochar classify``: one-shot classification."""

from __future__ import annotations

from pathlib import Path

import click

from .options import parse_alphabets, seed_option


@click.command("oneshot-runs")
@click.option("--source", type=click.Path(path_type=Path), required=True,
              help="The folder holding images_background/ (Omniglot's images, e.g. ../shared/omniglot).")
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
