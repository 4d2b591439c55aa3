"""Options and helpers shared by the commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pyrochar.data.download import default_data_dir
from pyrochar.errors import PyrocharError


def progress_bars() -> bool:
    """Whether commands draw progress bars: only on a terminal. Redirected to a file or a
    pipe, a bar's redraws would be left behind as lines of carriage returns and escape
    codes (and before an error's one line); logs get the commands' own lines instead."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


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


def checked(check, **kwargs):
    """A click callback running ``check(value, "--option", **kwargs)`` from
    :mod:`pyrochar.checks`; its TypeError/ValueError becomes click's one-line
    "Invalid value" error. None (an option not given) passes through."""

    def callback(ctx, param, value):
        if value is None:
            return None
        name = max(param.opts, key=len)
        try:
            return check(value, name, **kwargs)
        except (TypeError, ValueError) as e:
            message = str(e)  # "--out x: ..." -> "x: ...": click names the option already
            raise click.BadParameter(message[len(name) + 1:] if message.startswith(f"{name} ") else message) from None

    return callback


def seed_option(default: int | None = None, help: str = "Random seed (repeatable results)."):
    from pyrochar.checks import SEED_MAX, check_seed

    return click.option("--seed", type=int, default=default, show_default=default is not None,
                        callback=checked(check_seed), help=f"{help} An integer in [0, {SEED_MAX}].")


def temperature_option():
    from pyrochar.checks import TEMPERATURE_MAX, check_temperature

    return click.option("--temperature", type=float, default=1.0, show_default=True,
                        callback=checked(check_temperature),
                        help=f"Sampling temperature in (0, {TEMPERATURE_MAX:g}]: 1 samples the model, "
                        "lower draws more typical characters.")


def image_out_option(default: str, help: str = "Image to write (.png, .jpg, .gif, .bmp, .tif, .webp)."):
    from pyrochar.checks import check_image_path

    return click.option("-o", "--out", type=click.Path(path_type=Path), default=Path(default),
                        show_default=True, callback=checked(check_image_path), help=help)


def json_out_option(help: str):
    from pyrochar.checks import check_output_file

    return click.option("--json-out", type=click.Path(path_type=Path), default=None,
                        callback=checked(check_output_file, suffixes=(".json",)), help=help)


def folder_out_option(help: str, names: tuple[str, ...] = ("--out",)):
    """A required output folder option: not a file, writable (made if missing)."""
    from pyrochar.checks import check_output_folder

    return click.option(*names, "out", type=click.Path(path_type=Path), required=True,
                        callback=checked(check_output_folder), help=help)
