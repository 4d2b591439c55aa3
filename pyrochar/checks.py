"""Argument checks for the public functions and the command line.

Each checker takes the value and the name the caller knows it by (``"n"`` in
Python, ``"-n"`` on the command line), returns the value in its canonical form
(an ``int``, a ``float``, a ``Path``) and raises, with one line saying what was
wrong and what to pass instead:

* :class:`ArgumentTypeError` (a ``TypeError``) for a value of the wrong kind;
* :class:`ArgumentValueError` (a ``ValueError``) for a value out of range.

Both are also :class:`~pyrochar.errors.PyrocharError`, so the CLI reports them as
its usual one-line ``Error: ...`` without a traceback.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import PyrocharError

SEED_MAX = 2**32 - 1  # NumPy's legacy seeding (used by pyro.set_rng_seed) takes [0, 2**32 - 1]
MAX_SAMPLES = 10000  # characters per call of sampling (the CLI's `sample -n` limit)
MAX_COMPLETIONS = 1000  # completions per call (the CLI's `complete -n` limit)
TEMPERATURE_MIN = 1e-3  # below, tempered mixture weights and variances leave float32's range
TEMPERATURE_MAX = 100.0  # far above any useful temperature: at 100 samples are noise off the canvas
# What pillow writes, by extension (the figures and grids are RGB images).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")


class ArgumentTypeError(PyrocharError, TypeError):
    """An argument of the wrong type (a list where a batch is expected, a float seed...)."""


class ArgumentValueError(PyrocharError, ValueError):
    """An argument of the right type but outside its allowed values."""


def _kind(value) -> str:
    """A short description of a value's type for messages: ``"a float (2.5)"``."""
    if value is None:
        return "None"
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


# ------------------------------------------------------------------ numbers


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float) in [minimum, maximum] -> int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer, got {_kind(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            allowed = f"in [{minimum}, {maximum}]"
        else:
            allowed = f">= {minimum}" if minimum is not None else f"<= {maximum}"
        raise ArgumentValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


def check_positive_int(value, name: str, maximum: int | None = None) -> int:
    """An integer >= 1 (a count: characters, strokes, a batch size) -> int."""
    return check_int(value, name, 1, maximum)


def check_nonnegative_int(value, name: str, maximum: int | None = None) -> int:
    """An integer >= 0 (a number of strokes or control points to keep) -> int."""
    return check_int(value, name, 0, maximum)


def check_seed(seed, name: str = "seed") -> int | None:
    """None (no seeding) or an integer in [0, SEED_MAX] -> int | None."""
    if seed is None:
        return None
    return check_int(seed, name, 0, SEED_MAX)


def check_temperature(value, name: str = "temperature") -> float:
    """A sampling temperature in [TEMPERATURE_MIN, TEMPERATURE_MAX] -> float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, got {_kind(value)}")
    value = float(value)
    if not math.isfinite(value) or not TEMPERATURE_MIN <= value <= TEMPERATURE_MAX:
        raise ArgumentValueError(
            f"{name} must be a number in [{TEMPERATURE_MIN:g}, {TEMPERATURE_MAX:g}], got {value:g}; "
            "1 samples from the model itself, lower values draw more typical characters"
        )
    return value


def check_weight(value, name: str) -> float:
    """A likelihood weight in (0, 1] (1: the model's own likelihood) -> float."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and 0.0 < float(value) <= 1.0
    if not ok:  # NaN fails the comparison too
        raise ArgumentValueError(
            f"{name} must be a number in (0, 1], got {_kind(value)}; 1 is the model's own "
            "likelihood, lower values give the token model more say"
        )
    return float(value)


# -------------------------------------------------------------------- paths


def check_path(value, name: str) -> Path:
    """A str or os.PathLike -> Path."""
    if isinstance(value, (str, os.PathLike)):
        if str(value) == "":
            raise ArgumentValueError(f"{name} is an empty path")
        return Path(value)
    raise ArgumentTypeError(f"{name} must be a path (str or pathlib.Path), got {_kind(value)}")


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` (itself excluded) that exists."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def write_probe_error(folder: Path) -> str | None:
    """Why no file can be made in the existing ``folder`` (None: one can), found by
    making one and removing it at once: permission bits alone do not tell (root passes
    them, and a read-only or virtual file system such as /proc refuses anyway)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def _cannot_write_in(folder: Path) -> str | None:
    """Why no file can be written in the existing ``folder`` (None: one can)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "not writable"
    return write_probe_error(folder)


def check_writable_folder_for(path: Path, name: str) -> None:
    """The folder that will hold ``path`` exists (or can be made) and is writable."""
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise ArgumentValueError(f"{name} {path}: {ancestor} is a file, not a folder; choose another path")
    why = _cannot_write_in(ancestor)
    if why is not None:
        raise ArgumentValueError(f"{name} {path}: cannot write in the folder {ancestor} ({why}); "
                                 "choose another path")


def check_output_file(value, name: str, suffixes: Sequence[str] | None = None) -> Path:
    """A path to write a file to: not an existing folder, in a writable folder (made
    if missing); with ``suffixes``, ending in one of them (case-insensitive)."""
    path = check_path(value, name)
    if path.is_dir():
        raise ArgumentValueError(f"{name} {path} is a folder; give a file name, e.g. {path / 'out'}"
                                 + (suffixes[0] if suffixes else ""))
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ArgumentValueError(
            f"{name} {path}: unknown file type {path.suffix or '(no extension)'!r}; "
            f"use one of {' '.join(suffixes)}"
        )
    check_writable_folder_for(path, name)
    return path


def check_image_path(value, name: str = "path") -> Path:
    """An output image path: a known image extension, see :func:`check_output_file`."""
    return check_output_file(value, name, IMAGE_EXTENSIONS)


def check_output_folder(value, name: str) -> Path:
    """A folder to write into: not an existing file; itself or its nearest existing
    ancestor writable (missing folders are made)."""
    path = check_path(value, name)
    if path.exists() and not path.is_dir():
        raise ArgumentValueError(f"{name} {path} is a file, not a folder; choose a folder")
    if path.is_dir():
        why = _cannot_write_in(path)
        if why is not None:
            raise ArgumentValueError(f"{name} {path}: cannot write in this folder ({why}); choose another folder")
        return path
    check_writable_folder_for(path, name)
    return path


# ----------------------------------------------------------------- drawings


def _check_list(value, name: str, what: str) -> list:
    """A non-empty list or tuple -> list; ``what`` says what it should hold."""
    if not isinstance(value, (list, tuple)):
        raise ArgumentTypeError(f"{name} must be a list of {what}, got {_kind(value)}")
    if len(value) == 0:
        raise ArgumentValueError(f"{name} is empty; pass at least one of {what}")
    return list(value)


def _check_points(points, where: str, columns: tuple[int, ...]) -> None:
    """A finite numeric numpy array of shape (k >= 1, c), c in ``columns``."""
    shapes = " or ".join(f"(k >= 1, {c})" for c in columns)
    if not isinstance(points, np.ndarray):
        raise ArgumentTypeError(f"{where} must be a numpy array of shape {shapes}, got {_kind(points)}")
    if points.ndim != 2 or points.shape[1] not in columns or len(points) == 0:
        raise ArgumentValueError(f"{where} must have shape {shapes}, got {tuple(points.shape)}")
    if not np.issubdtype(points.dtype, np.number) or not np.isfinite(points).all():
        raise ArgumentValueError(f"{where} must hold finite numbers")


def check_drawing(drawing, name: str = "drawing"):
    """One :class:`~pyrochar.data.drawing.Drawing` with well-formed strokes."""
    from .data.drawing import Drawing

    if not isinstance(drawing, Drawing):
        if isinstance(drawing, (list, tuple)) and drawing and isinstance(drawing[0], Drawing):
            hint = "a list of drawings: pass one drawing, e.g. drawings[0]"
        else:
            hint = ("read drawings with pyrochar.load_drawings(path), or make one with "
                    "pyrochar.data.drawing.Drawing(strokes=[(k, 2) arrays])")
        raise ArgumentTypeError(f"{name} must be a pyrochar Drawing, got {_kind(drawing)}; {hint}")
    if not isinstance(drawing.strokes, (list, tuple)) or len(drawing.strokes) == 0:
        raise ArgumentValueError(f"{name} has no strokes")
    for i, stroke in enumerate(drawing.strokes):
        _check_points(stroke, f"{name}.strokes[{i}]", (2, 3))
    return drawing


def check_drawings(drawings, name: str = "drawings") -> list:
    """A non-empty list or tuple of Drawings -> list (a single Drawing is refused)."""
    from .data.drawing import Drawing

    if isinstance(drawings, Drawing):
        raise ArgumentTypeError(f"{name} must be a list of drawings, got one Drawing; pass [drawing]")
    drawings = _check_list(drawings, name, "pyrochar Drawings (pyrochar.load_drawings(paths))")
    for i, d in enumerate(drawings):
        check_drawing(d, f"{name}[{i}]")
    return drawings


# ------------------------------------------------------------------- models


def check_model(model, name: str = "model"):
    """A pyrochar CharacterModel (what :func:`pyrochar.load_pretrained` returns)."""
    from .models.base import CharacterModel

    if not isinstance(model, CharacterModel):
        hint = (f"; load it with pyrochar.load_pretrained({model!r})" if isinstance(model, str)
                else "; load one with pyrochar.load_pretrained(name)")
        raise ArgumentTypeError(f"{name} must be a pyrochar model, got {_kind(model)}{hint}")
    return model


def check_batch(batch, name: str = "batch"):
    """A non-empty :class:`~pyrochar.models.batch.CharacterBatch` (not a list of drawings)."""
    from .models.batch import CharacterBatch

    if not isinstance(batch, CharacterBatch):
        raise ArgumentTypeError(
            f"{name} must be a CharacterBatch, got {_kind(batch)}; build one with "
            "CharacterBatch.from_control_points(list of drawings, each a list of (n, 2) arrays)"
        )
    if batch.batch_size == 0:
        raise ArgumentValueError(f"{name} holds no drawing")
    return batch


def check_control_points(drawings, name: str = "drawings") -> list:
    """Per drawing a non-empty list of control-point arrays (n >= 1, 2), finite -> list.

    The input of :meth:`CharacterBatch.from_control_points`: at least one drawing.
    """
    drawings = _check_list(drawings, name, "drawings, each a list of (n, 2) control-point arrays")
    for k, strokes in enumerate(drawings):
        for i, cp in enumerate(_check_list(strokes, f"{name}[{k}]", "(n, 2) control-point arrays")):
            _check_points(cp, f"{name}[{k}][{i}]", (2,))
    return drawings
