"""The short public API: the CLI's verbs as Python functions.

::

    import pyrochar

    model = pyrochar.load_pretrained("full-ns")
    drawings = pyrochar.load_drawings("tests/data/omniglot")
    scores = pyrochar.score(model, drawings)          # scores.nll[i]: drawing i, in nats
    new = pyrochar.sample(model, 4, temperature=0.5, seed=0)
    filled = pyrochar.complete(model, drawings[0], keep_strokes=1, n=3, seed=0)

Drawings are :class:`~pyrochar.data.drawing.Drawing` records: raw trajectories
in Omniglot motor coordinates (x right in [0, 105] px, y negative downward).
:func:`score` and :func:`complete` fit the minimal splines themselves;
:func:`sample` and :func:`complete` return drawings again (the splines evaluated
as polylines), so their results can be scored or written with
:func:`pyrochar.data.jsonio.write_drawings_json`.

Wrong arguments raise ``TypeError``/``ValueError`` (see :mod:`pyrochar.checks`)
with one line naming the argument; bad files raise
:class:`~pyrochar.errors.PyrocharError` naming the file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checks import (
    MAX_COMPLETIONS,
    MAX_SAMPLES,
    ArgumentTypeError,
    ArgumentValueError,
    check_drawing,
    check_drawings,
    check_model,
    check_nonnegative_int,
    check_path,
    check_positive_int,
    check_seed,
    check_temperature,
)
from .data.drawing import Drawing
from .data.omniglot import LoadResult

DRAWING_SUFFIXES = (".json", ".txt")


# ------------------------------------------------------------------- models


def load_pretrained(name: str = "full-ns"):
    """The model shipped with the package: ``"full-ns"``, ``"hlstm"``, ``"baseline"``
    or ``"bpl"`` (trained on the six shared Omniglot alphabets), in eval mode."""
    from .checkpoint import load_pretrained as load_shipped
    from .models import MODELS

    if not isinstance(name, str):
        raise ArgumentTypeError(f"name must be a model name (str), one of {', '.join(sorted(MODELS))}; "
                                f"got {type(name).__name__}")
    if name not in MODELS:
        raise ArgumentValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return load_shipped(name)


# ----------------------------------------------------------------- drawings


def _as_paths(paths) -> list[Path]:
    """A path or a list/tuple of paths -> a non-empty list of Paths."""
    if isinstance(paths, (str, os.PathLike)):
        return [check_path(paths, "paths")]
    if not isinstance(paths, (list, tuple)):
        raise ArgumentTypeError(
            f"paths must be a path (str or pathlib.Path) or a list of paths, got {type(paths).__name__}"
        )
    if not paths:
        raise ArgumentValueError("paths is empty; pass at least one file or folder")
    return [check_path(p, f"paths[{i}]") for i, p in enumerate(paths)]


def _drawing_files(folder: Path) -> list[Path]:
    """The drawing files (.json, .txt) directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in DRAWING_SUFFIXES and not p.name.startswith("."))


def read_drawings(paths, strict: bool = True) -> LoadResult:
    """Read drawings from files and folders; bad files raise (``strict``) or are skipped.

    Each path is a drawing file (``.json`` in the pyrochar format, ``.txt`` Omniglot
    stroke file), a folder holding such files, an Omniglot folder or zip
    (``strokes_background``, its parent, or one alphabet; see
    :func:`pyrochar.data.omniglot.load_omniglot`). Returns the drawings in the order
    of ``paths`` (a folder's files sorted) and, with ``strict=False``, the skipped
    files with their reasons.
    """
    from .data.jsonio import read_drawing_file
    from .data.omniglot import SkippedFile, load_omniglot
    from .errors import DataFormatError

    result = LoadResult()
    for path in _as_paths(paths):
        if not path.exists():
            raise ArgumentValueError(f"{path} does not exist")
        if path.is_dir() and not _drawing_files(path):
            loaded = load_omniglot(path, strict=strict)
            result.drawings += loaded.drawings
            result.skipped += loaded.skipped
            continue
        if path.suffix.lower() == ".zip":
            loaded = load_omniglot(path, strict=strict)
            result.drawings += loaded.drawings
            result.skipped += loaded.skipped
            continue
        for file in _drawing_files(path) if path.is_dir() else [path]:
            try:
                result.drawings += read_drawing_file(file)
            except DataFormatError as e:
                if strict:
                    raise
                result.skipped.append(SkippedFile(str(file), str(e)))
    return result


def load_drawings(paths) -> list[Drawing]:
    """All drawings of ``paths`` as one list of :class:`Drawing` (raw trajectories).

    ``paths``: a path or a list of paths, each a ``.json``/``.txt`` drawing file, a
    folder of such files, or an Omniglot folder or zip. A file that does not
    follow its format raises :class:`~pyrochar.errors.DataFormatError` naming it.
    """
    return read_drawings(paths, strict=True).drawings


def _named(drawings: Sequence[Drawing]) -> list[Drawing]:
    """Give drawings without a source the name ``drawings[i]`` (for messages)."""
    return [d if d.source else dataclasses.replace(d, source=f"drawings[{i}]")
            for i, d in enumerate(drawings)]


# ------------------------------------------------------------------ scoring


def score(model, drawings, batch_size: int = 200):
    """Negative log-likelihood of each drawing and its breakdown, in nats.

    ``drawings``: a list of :class:`Drawing` (e.g. from :func:`load_drawings`); their
    strokes are fitted with minimal splines here (strokes shorter than 20 px are
    dropped, as in training). Returns a :class:`pyrochar.scoring.Scores`: ``nll``
    (D,) in the order of ``drawings``, ``breakdown`` {site type: (D,)} summing to
    it, ``summary()`` the means. A drawing whose every stroke is shorter than 20 px
    has nothing to score: a ``ValueError`` names it.
    """
    import torch

    from .data.loader import BatchSource
    from .data.prepare import build_prepared
    from .scoring import beyond_caps
    from .scoring import score as score_source

    check_model(model)
    drawings = check_drawings(drawings)
    batch_size = check_positive_int(batch_size, "batch_size")
    ds = build_prepared(LoadResult(_named(drawings), []))
    if ds.empty_after_filter:
        raise ArgumentValueError(
            f"{len(ds.empty_after_filter)} drawing(s) have every stroke shorter than 20 px, "
            f"nothing to score: {', '.join(ds.empty_after_filter[:5])}; leave them out"
        )
    for d, problem in beyond_caps(model, ds).items():
        raise ArgumentValueError(f"{ds.key(d)} has {problem}: it cannot be scored; leave it out")
    src = BatchSource(ds, with_canvases=model.uses_canvases, device=model.device)
    with torch.no_grad():
        return score_source(model, src, batch_size)


# ----------------------------------------------------------------- sampling


def controls_to_drawings(characters, label: str = "sample") -> list[Drawing]:
    """Characters as control points per stroke (normalized units) -> Drawings
    whose strokes are the evaluated splines in motor coordinates, t = 0."""
    from .viz import splines_to_motor_polylines

    return [
        Drawing([np.column_stack([c, np.zeros(len(c))]) for c in splines_to_motor_polylines(ch)],
                source=f"{label} {i}")
        for i, ch in enumerate(characters)
    ]


def sample(model, n: int, temperature: float = 1.0, seed: int | None = None) -> list[Drawing]:
    """``n`` new characters drawn from ``model`` at ``temperature`` (0 < T <= 100;
    1 is the model itself, lower is more typical). ``seed`` (an int in
    [0, 2**32 - 1]) makes them repeatable. Returns ``n`` Drawings."""
    from .sampling import sample_characters

    check_model(model)
    n = check_positive_int(n, "n", MAX_SAMPLES)
    temperature = check_temperature(temperature)
    seed = check_seed(seed)
    return controls_to_drawings(sample_characters(model, n, temperature=temperature, seed=seed))


# --------------------------------------------------------------- completing


def prefix_controls(drawing: Drawing, keep_strokes: int, prefix_points: int = 0,
                    names: tuple[str, str] = ("keep_strokes", "prefix_points")) -> list[np.ndarray]:
    """The drawing's minimal splines (normalized units), checked to hold the prefix:
    ``keep_strokes`` whole strokes (>= 20 px) and ``prefix_points`` control points
    of the next. ``names`` are the argument names used in messages."""
    from . import splines

    keep_name, points_name = names
    controls = [splines.to_normalized(cp) for cp in splines.preprocess_drawing(drawing.strokes)]
    need = keep_strokes + (1 if prefix_points else 0)
    if need == 0:
        raise ArgumentValueError(f"keep at least one stroke ({keep_name}) or one control point "
                                 f"({points_name})")
    if len(controls) < need:
        raise ArgumentValueError(
            f"{drawing.source or 'the drawing'} has {len(controls)} stroke(s) of at least 20 px; "
            f"{keep_name} {keep_strokes}" + (f" {points_name} {prefix_points}" if prefix_points else "")
            + f" needs {need}")
    if prefix_points and len(controls[keep_strokes]) < prefix_points:
        raise ArgumentValueError(
            f"stroke {keep_strokes + 1} has only {len(controls[keep_strokes])} control point(s); "
            f"lower {points_name} to at most {len(controls[keep_strokes])}")
    return controls


def complete_controls(model, controls: list[np.ndarray], keep_strokes: int, prefix_points: int,
                      n: int, temperature: float, seed: int | None) -> list[list[np.ndarray]]:
    """``n`` completions (control points per stroke) of a prefix checked by
    :func:`prefix_controls`."""
    from .complete import complete as run_complete
    from .models.batch import CharacterBatch
    from .sampling import batch_to_controls

    batch = CharacterBatch.from_control_points([controls]).to(model.device)
    out = run_complete(model, batch, keep_strokes, prefix_points, n=n, temperature=temperature, seed=seed)
    return batch_to_controls(out)


def complete(model, drawing: Drawing, keep_strokes: int = 1, n: int = 9, prefix_points: int = 0,
             temperature: float = 1.0, seed: int | None = None) -> list[Drawing]:
    """``n`` completions of ``drawing``: its first ``keep_strokes`` strokes (and the
    first ``prefix_points`` control points of the next) are kept, the rest is drawn
    from the model's conditional distribution at ``temperature``. Returns ``n``
    Drawings that begin with the kept strokes (as fitted splines)."""
    check_model(model)
    check_drawing(drawing)
    keep_strokes = check_nonnegative_int(keep_strokes, "keep_strokes")
    prefix_points = check_nonnegative_int(prefix_points, "prefix_points")
    n = check_positive_int(n, "n", MAX_COMPLETIONS)
    temperature = check_temperature(temperature)
    seed = check_seed(seed)
    controls = prefix_controls(drawing, keep_strokes, prefix_points)
    chars = complete_controls(model, controls, keep_strokes, prefix_points, n, temperature, seed)
    return controls_to_drawings(chars, "completion")
