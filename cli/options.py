"""Options and helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path

import click

from pyrochar.data.download import default_data_dir
from pyrochar.errors import PyrocharError


def source_option(required: bool = False):
    return click.option(
        "--source",
        type=click.Path(path_type=Path),
        default=None,
        required=required,
        help="Omniglot strokes: a folder (strokes_background/..., or its parent) or an "
        "official zip. Default: the downloaded data ($PYROCHAR_DATA or the user cache).",
    )


def resolve_source(source: Path | None) -> Path:
    if source is not None:
        if not source.exists():
            raise PyrocharError(f"--source {source} does not exist")
        return source
    default = default_data_dir()
    if not default.exists():
        raise PyrocharError(
            f"no --source given and no downloaded data in {default}; pass --source PATH "
            "or run `pyrochar data download` first"
        )
    return default


def parse_alphabets(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [a.strip() for a in text.split(",") if a.strip()]
    return names or None


def report_skipped(skipped) -> None:
    """Say how many files were skipped and why (never silently)."""
    if not skipped:
        return
    click.echo(f"skipped {len(skipped)} bad file(s):", err=True)
    for s in skipped[:10]:
        click.echo(f"  {s.reason}", err=True)
    if len(skipped) > 10:
        click.echo(f"  ... and {len(skipped) - 10} more", err=True)
