"""The pyrochar JSON drawing format.

A JSON drawing file holds one of:

* one drawing::

      {"format": "pyrochar-drawing", "version": 1,
       "strokes": [[[x, y], [x, y], ...], ...],
       "label": "optional text"}

* a list of drawings::

      {"format": "pyrochar-drawings", "version": 1,
       "drawings": [{"strokes": [...], "label": "..."}, ...]}

  (each item may repeat ``"format": "pyrochar-drawing"`` and ``"version": 1``);

* for convenience, a bare list of strokes: ``[[[x, y], ...], ...]``.

A stroke is a non-empty list of points; a point is ``[x, y]`` or ``[x, y, t]`` of
finite numbers in Omniglot motor coordinates (x to the right in [0, 105], y negative
downward: image row = -y; t in milliseconds, 0 when missing). A drawing has at least
one stroke. ``label`` is free text kept for the user (see
:func:`read_drawings_json_with_labels`); it is not an Omniglot label.

Errors raise :class:`~pyrochar.errors.DataFormatError` naming the file and the JSON
path of the problem, e.g. ``drawings[2].strokes[0][5]``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyrochar.atomic import atomic_write_text
from pyrochar.data.drawing import (
    MAX_DRAWINGS_PER_FILE,
    MAX_JSON_FILE_BYTES,
    MAX_POINTS_PER_STROKE,
    MAX_STROKES_PER_DRAWING,
    Drawing,
    count_problem,
    limits_problem,
    read_regular_file,
)
from pyrochar.errors import DataFormatError, PyrocharError

__all__ = [
    "FORMAT_MANY",
    "FORMAT_ONE",
    "VERSION",
    "read_drawing_file",
    "read_drawings_json",
    "read_drawings_json_with_labels",
    "write_drawings_json",
]

FORMAT_ONE = "pyrochar-drawing"
FORMAT_MANY = "pyrochar-drawings"
VERSION = 1


# --------------------------------------------------------------------------- reading


class _Invalid(Exception):
    """Internal: a structural problem at a JSON path."""

    def __init__(self, where: str, reason: str):
        super().__init__(where, reason)
        self.where = where
        self.reason = reason


def _describe(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:30]!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    return "an object"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_stroke(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list):
        raise _Invalid(where, f"expected a stroke (a list of points), got {_describe(value)}")
    if not value:
        raise _Invalid(where, "a stroke needs at least one point, got an empty list")
    _check_count(len(value), MAX_POINTS_PER_STROKE, "points in the stroke", where)
    rows = []
    for j, point in enumerate(value):
        at = f"{where}[{j}]"
        if not isinstance(point, list) or len(point) not in (2, 3):
            raise _Invalid(at, f"expected a point [x, y] or [x, y, t], got {_describe(point)}")
        for v in point:
            if not _is_number(v):
                raise _Invalid(at, f"point coordinates must be numbers, got {_describe(v)}")
            if not math.isfinite(v):
                raise _Invalid(
                    at, f"point coordinates must be finite, got {v!r} (a number too large "
                    "for a 64-bit float reads as infinite)"
                )
        rows.append([point[0], point[1], point[2] if len(point) == 3 else 0.0])
    return np.array(rows, dtype=np.float64)


def _parse_strokes(value: Any, where: str) -> list[np.ndarray]:
    if not isinstance(value, list):
        raise _Invalid(where, f"expected a list of strokes, got {_describe(value)}")
    if not value:
        raise _Invalid(where, "a drawing needs at least one stroke, got an empty list")
    _check_count(len(value), MAX_STROKES_PER_DRAWING, "strokes in the drawing", where)
    strokes = [_parse_stroke(s, f"{where}[{i}]") for i, s in enumerate(value)]
    problem = limits_problem(strokes)
    if problem:
        raise _Invalid(where, problem)
    return strokes


def _check_count(n: int, limit: int, what: str, where: str) -> None:
    """Refuse more than ``limit`` items at ``where`` (checked before parsing them)."""
    problem = count_problem(n, limit, what)
    if problem:
        raise _Invalid(where or "$", problem)


def _check_header(obj: dict, expected_format: str, where: str) -> None:
    fmt = obj.get("format", expected_format if where else None)
    if fmt != expected_format:
        raise _Invalid(
            f"{where}.format" if where else "format",
            f"expected {expected_format!r}, got "
            + (_describe(fmt) if "format" in obj else "no \"format\" key"),
        )
    version = obj.get("version", VERSION if where else None)
    if isinstance(version, bool) or version != VERSION:
        at = f"{where}.version" if where else "version"
        got = _describe(version) if "version" in obj else "no \"version\" key"
        raise _Invalid(at, f"this reader knows version {VERSION}, got {got}")


def _parse_drawing(obj: Any, where: str) -> tuple[list[np.ndarray], str | None]:
    """One drawing object -> (strokes, label). ``where`` is "" for the top level."""
    if not isinstance(obj, dict):
        raise _Invalid(where or "$", f"expected a drawing object, got {_describe(obj)}")
    _check_header(obj, FORMAT_ONE, where)
    prefix = f"{where}." if where else ""
    if "strokes" not in obj:
        raise _Invalid(f"{prefix}strokes", "missing: a drawing needs a 'strokes' list")
    label = obj.get("label")
    if label is not None and not isinstance(label, str):
        raise _Invalid(f"{prefix}label", f"expected a string, got {_describe(label)}")
    return _parse_strokes(obj["strokes"], f"{prefix}strokes"), label


def _parse_document(doc: Any) -> list[tuple[list[np.ndarray], str | None]]:
    """A decoded JSON document -> a list of (strokes, label)."""
    if isinstance(doc, list):
        # A bare list of strokes; its JSON paths start at the root, e.g. "[0][5]".
        return [(_parse_strokes(doc, ""), None)]
    if not isinstance(doc, dict):
        raise _Invalid("$", f"expected a JSON object or a list of strokes, got {_describe(doc)}")
    if doc.get("format") == FORMAT_MANY:
        _check_header(doc, FORMAT_MANY, "")
        items = doc.get("drawings")
        if not isinstance(items, list):
            raise _Invalid("drawings", f"expected a list of drawings, got {_describe(items)}")
        _check_count(len(items), MAX_DRAWINGS_PER_FILE, "drawings in the file", "drawings")
        return [_parse_drawing(item, f"drawings[{i}]") for i, item in enumerate(items)]
    if doc.get("format") != FORMAT_ONE:
        raise _Invalid(
            "format",
            f"expected {FORMAT_ONE!r} or {FORMAT_MANY!r}, got "
            + (_describe(doc["format"]) if "format" in doc else 'no "format" key'),
        )
    return [_parse_drawing(doc, "")]


def _read_text(path: Path) -> str:
    """The text of a JSON drawing file: a regular UTF-8 file of bounded size."""
    data = read_regular_file(path, MAX_JSON_FILE_BYTES)
    if b"\x00" in data:
        raise DataFormatError(str(path), "not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            str(path), f"not a text file (invalid UTF-8 at byte {exc.start})"
        ) from None


def _json_int(text: str) -> int | float:
    """A JSON integer: a float when too long for one (it then reads as inf, refused later)."""
    return int(text) if len(text) <= 18 else float(text)


def _decode_json(text: str, path: Path) -> Any:
    """Decode JSON text; DataFormatError for invalid or too deeply nested JSON."""
    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            str(path), f"not valid JSON ({exc.msg}, column {exc.colno})", exc.lineno
        ) from None
    except RecursionError:
        raise DataFormatError(
            str(path), "the JSON is nested too deeply to be a drawing (a drawing file nests "
            "lists 3 deep)"
        ) from None


def read_drawings_json_with_labels(
    path: str | os.PathLike[str],
) -> tuple[list[Drawing], list[str | None]]:
    """Read a JSON drawing file; return its drawings and their labels (None if absent).

    The drawings' ``source`` is the file path, followed by ``::drawings[i]`` for a
    file holding a list of drawings.
    """
    p = Path(path)
    doc = _decode_json(_read_text(p), p)
    try:
        parsed = _parse_document(doc)
    except _Invalid as exc:
        where = f"{exc.where}: " if exc.where else ""
        raise DataFormatError(str(p), f"{where}{exc.reason}") from None
    if not parsed:
        raise DataFormatError(str(p), "drawings: the file holds no drawings")
    many = isinstance(doc, dict) and doc.get("format") == FORMAT_MANY
    drawings = [
        Drawing(strokes=strokes, source=f"{p}::drawings[{i}]" if many else str(p))
        for i, (strokes, _) in enumerate(parsed)
    ]
    return drawings, [label for _, label in parsed]


def read_drawings_json(path: str | os.PathLike[str]) -> list[Drawing]:
    """Read the drawings of a JSON drawing file (see the module docstring)."""
    return read_drawings_json_with_labels(path)[0]


def read_drawing_file(path: str | os.PathLike[str]) -> list[Drawing]:
    """Read a drawing file by extension: ``.json`` (this format) or ``.txt`` (Omniglot)."""
    from pyrochar.data.omniglot import read_stroke_file

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        return read_drawings_json(p)
    if suffix == ".txt":
        return [read_stroke_file(p)]
    raise DataFormatError(
        str(p),
        f"unknown drawing file type {suffix or '(no extension)'!r}: expected .json "
        "(pyrochar JSON drawing) or .txt (Omniglot stroke file)",
    )


# --------------------------------------------------------------------------- writing


def _number(v: float) -> str:
    """JSON text of a float, integral values without a trailing '.0'."""
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def _stroke_text(stroke: np.ndarray, with_t: bool) -> str:
    cols = 3 if with_t else 2
    return (
        "["
        + ", ".join("[" + ", ".join(_number(v) for v in row[:cols]) + "]" for row in stroke)
        + "]"
    )


def _drawing_text(index: int, drawing: Drawing, label: str | None, indent: str) -> str:
    strokes = [np.asarray(s, dtype=np.float64) for s in drawing.strokes]
    if not strokes:
        raise PyrocharError(f"cannot write drawing {index}: it has no strokes")
    for k, s in enumerate(strokes):
        if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] not in (2, 3):
            raise PyrocharError(
                f"cannot write drawing {index}: stroke {k} has shape {s.shape}, "
                "expected (n, 2) or (n, 3) with n >= 1"
            )
        if not np.isfinite(s).all():
            raise PyrocharError(f"cannot write drawing {index}: stroke {k} has non-finite values")
    with_t = any(s.shape[1] == 3 and np.any(s[:, 2] != 0) for s in strokes)
    inner = indent + "  "
    parts = []
    if label is not None:
        parts.append(f'{inner}"label": {json.dumps(label, ensure_ascii=False)},\n')
    body = (",\n" + inner + "  ").join(_stroke_text(s, with_t) for s in strokes)
    parts.append(f'{inner}"strokes": [\n{inner}  {body}\n{inner}]\n')
    return "".join(parts)


def write_drawings_json(
    path: str | os.PathLike[str],
    drawings: Drawing | Sequence[Drawing],
    labels: Sequence[str | None] | None = None,
) -> None:
    """Write drawings to ``path`` in the pyrochar JSON format, atomically.

    A single :class:`Drawing` is written as a ``pyrochar-drawing`` object; a sequence
    as a ``pyrochar-drawings`` list. ``labels`` (one per drawing, None to omit) are
    stored as each drawing's ``label``. Points are written as ``[x, y]``, or as
    ``[x, y, t]`` when some t of the drawing is non-zero, so reading the file back
    gives the same arrays.
    """
    p = Path(path)
    single = isinstance(drawings, Drawing)
    items: list[Drawing] = [drawings] if single else list(drawings)  # type: ignore[list-item]
    if labels is None:
        labs: list[str | None] = [None] * len(items)
    else:
        labs = list(labels)
        if len(labs) != len(items):
            raise ValueError(f"got {len(labs)} labels for {len(items)} drawings")
    if not items:
        raise PyrocharError(f"cannot write {p}: no drawings to write")
    if single:
        text = (
            "{\n"
            f'  "format": "{FORMAT_ONE}",\n'
            f'  "version": {VERSION},\n' + _drawing_text(0, items[0], labs[0], "") + "}\n"
        )
    else:
        blocks = [
            "    {\n" + _drawing_text(i, d, lab, "    ") + "    }"
            for i, (d, lab) in enumerate(zip(items, labs, strict=True))
        ]
        text = (
            "{\n"
            f'  "format": "{FORMAT_MANY}",\n'
            f'  "version": {VERSION},\n'
            '  "drawings": [\n' + ",\n".join(blocks) + ("\n" if blocks else "") + "  ]\n"
            "}\n"
        )
    atomic_write_text(p, text)
