"""``pyrochar data ...``: download, prepare, inspect and split the drawings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import numpy as np

from pyrochar.errors import PyrocharError

from .options import (
    image_out_option,
    parse_alphabets,
    progress_bars,
    report_skipped,
    resolve_source,
    source_option,
)


@click.group()
def data():
    """Get, prepare and look at Omniglot drawings."""


@data.command()
@click.option("--dest", type=click.Path(path_type=Path), default=None,
              help="Folder for the archives (default: $PYROCHAR_DATA or the user cache).")
@click.option("--url", default=None,
              help="Base URL (http(s)://, file:// or a folder) holding the two archives; "
              "default: the brendenlake/omniglot GitHub repository.")
@click.option("--background-only", is_flag=True, help="Fetch strokes_background.zip only.")
def download(dest, url, background_only):
    """Download the official stroke archives (size and md5 checked)."""
    from pyrochar.data.download import download_omniglot

    archives = ("strokes_background.zip",) if background_only else (
        "strokes_background.zip", "strokes_evaluation.zip")
    paths = download_omniglot(dest=dest, base_url=url, archives=archives, progress=progress_bars())
    for p in paths:
        click.echo(f"ok  {p}")


@data.command()
@source_option()
@click.option("--alphabets", default=None, help="Comma-separated alphabets to keep.")
@click.option("--strict", is_flag=True, help="Stop at the first bad file (exit 1).")
@click.option("--no-cache", is_flag=True, help="Recompute even if a cached copy exists.")
def prepare(source, alphabets, strict, no_cache):
    """Fit minimal splines to every stroke and cache the result."""
    from pyrochar.data.prepare import prepare_dataset

    ds = prepare_dataset(resolve_source(source), strict=strict, alphabets=parse_alphabets(alphabets),
                         use_cache=not no_cache, progress=progress_bars())
    report_skipped(ds.skipped)
    s = ds.stats()
    where = f"-> {ds.cache_file}" if ds.cache_file else "(not cached)"
    click.echo(f"prepared {len(ds)} drawings ({s['strokes']} strokes) {where}")


@data.command()
@source_option()
@click.option("--alphabets", default=None, help="Comma-separated alphabets to keep.")
@click.option("--strict", is_flag=True, help="Stop at the first bad file (exit 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def stats(source, alphabets, strict, as_json):
    """Counts of alphabets, characters, drawings, strokes and control points."""
    from pyrochar.data.prepare import prepare_dataset

    ds = prepare_dataset(resolve_source(source), strict=strict, alphabets=parse_alphabets(alphabets),
                         progress=not as_json and progress_bars())
    s = ds.stats()
    keys = ["alphabets", "characters", "drawings", "skipped", "strokes_per_drawing",
            "control_points_per_stroke_mean", "control_points_per_stroke_median",
            "control_points_per_stroke_max", "empty_after_filter"]
    if as_json:
        click.echo(json.dumps({k: s[k] for k in keys}, indent=1))
        return
    report_skipped(ds.skipped)
    click.echo(f"alphabets                 {s['alphabets']}")
    click.echo(f"characters                {s['characters']}")
    click.echo(f"drawings read             {s['drawings']}")
    click.echo(f"skipped files             {s['skipped']}")
    click.echo(f"left empty (< 20 px)      {s['empty_after_filter']}")
    click.echo(f"strokes kept              {s['strokes']}")
    click.echo(f"strokes per drawing       {s['strokes_per_drawing']:.2f}")
    click.echo(f"control points per stroke mean {s['control_points_per_stroke_mean']:.2f}, "
               f"median {s['control_points_per_stroke_median']:g}, "
               f"max {s['control_points_per_stroke_max']}")


@data.command()
@source_option()
@click.option("--alphabet", default=None, help="Alphabet name, e.g. Greek.")
@click.option("--character", type=int, default=None, help="Character number within the alphabet (1-based).")
@click.option("--drawer", type=int, default=1, show_default=True, help="Drawer 1-20.")
@click.option("--file", "file_", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="A drawing file instead (.txt stroke file or .json).")
@image_out_option("drawing.png", help="Image to write (.png, .jpg, .gif, .bmp, .tif, .webp).")
def show(source, alphabet, character, drawer, file_, out):
    """Raw trajectory | fitted minimal splines | rendered 28x28 canvas (Fig. 2)."""
    from pyrochar import splines
    from pyrochar.data.jsonio import read_drawing_file
    from pyrochar.data.omniglot import load_omniglot
    from pyrochar.models.batch import CharacterBatch
    from pyrochar.models.full_ns import stroke_canvases
    from pyrochar.viz import data_figure, save_image

    if file_ is not None and (source is not None or alphabet is not None or character is not None):
        raise click.UsageError("--file shows a drawing file; --source, --alphabet and --character "
                               "pick an Omniglot drawing instead: give one or the other")
    if file_ is not None:
        drawings = read_drawing_file(file_)
        drawing = drawings[0]
        if len(drawings) > 1:
            click.echo(f"{file_} holds {len(drawings)} drawings: showing the first", err=True)
    else:
        if alphabet is None or character is None:
            raise click.UsageError("give --alphabet and --character (and --drawer), or --file")
        loaded = load_omniglot(resolve_source(source), alphabets=[alphabet])
        found = [d for d in loaded.drawings if d.character == character and d.drawer == drawer]
        if not found:
            raise PyrocharError(_missing_drawing(loaded.skipped, alphabet, character, drawer))
        drawing = found[0]
    controls = [splines.to_normalized(cp) for cp in splines.preprocess_drawing(drawing.strokes)]
    if controls:
        batch = CharacterBatch.from_control_points([controls])
        canvas = stroke_canvases(batch)[0, -1].numpy()
    else:
        canvas = np.zeros((28, 28))
        click.echo("note: every stroke is shorter than 20 px; nothing is kept", err=True)
    save_image(data_figure([s[:, :2] for s in drawing.strokes], controls, canvas), out, "--out")
    click.echo(f"wrote {out} ({len(drawing.strokes)} raw strokes, {len(controls)} splines)")


def _missing_drawing(skipped, alphabet: str, character: int, drawer: int) -> str:
    """The message for a drawing not in the source: the file's own problem when it
    was there but skipped as bad, else that no such drawing exists."""
    wanted = re.compile(rf"character{character:02d}[/\\][0-9]{{4}}_{drawer:02d}\.txt")
    for s in skipped:
        if wanted.search(s.source):
            return (f"{alphabet} character {character} drawer {drawer} could not be read "
                    f"({s.reason}); fix or replace {s.source}")
    return f"no drawing {alphabet} character {character} drawer {drawer} in the source"


@data.command()
@source_option()
@click.option("--split", "spec", required=True, help="character:K, alphabet:K, holdout or all.")
@click.option("--holdout-alphabets", default=None,
              help="Alphabets held out by 'holdout' (default: Lake et al. 2015's 10 evaluation alphabets).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="JSON file to write.")
def split(source, spec, holdout_alphabets, out):
    """Write a train/validation/test split of the characters as JSON."""
    from pyrochar.data.omniglot import load_omniglot
    from pyrochar.data.splits import character_key, make_split

    loaded = load_omniglot(resolve_source(source))
    report_skipped(loaded.skipped)
    bg = [character_key(d.alphabet, d.character) for d in loaded.drawings if d.subset != "evaluation"]
    ev = [character_key(d.alphabet, d.character) for d in loaded.drawings if d.subset == "evaluation"]
    sp = make_split(spec, bg, evaluation_characters=ev, holdout_alphabets=parse_alphabets(holdout_alphabets))
    sp.to_json(out)
    click.echo(f"wrote {out}: {len(sp.train)} train, {len(sp.validation)} validation, "
               f"{len(sp.test)} test characters")


from .oneshot_commands import oneshot_runs  # noqa: E402  (defined with the other one-shot commands)

data.add_command(oneshot_runs)
