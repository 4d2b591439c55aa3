"""The :class:`Drawing` record, and the limits every drawing read from a file obeys.

The limits are far above anything in Omniglot (in brackets: the largest value in the
6 shared alphabets) and bound the memory and time spent on one file, whatever it
holds; docs/reliability.md lists them. A file outside them is refused with a
:class:`~pyrochar.errors.DataFormatError` naming it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from pyrochar.errors import DataFormatError

#: |x| and |y| at most this many px (Omniglot: 118; the canvas is 105 px wide).
COORD_LIMIT = 1_000.0
#: Points in one stroke (Omniglot: 535).
MAX_POINTS_PER_STROKE = 10_000
#: Points in one drawing, all strokes together (Omniglot: 535).
MAX_POINTS_PER_DRAWING = 20_000
#: Strokes in one drawing (Omniglot: 29).
MAX_STROKES_PER_DRAWING = 100
#: Bytes of one Omniglot stroke file (.txt or zip member) (Omniglot: 14,011).
MAX_STROKE_FILE_BYTES = 1 << 20
#: Bytes of one JSON drawing file (it may hold many drawings).
MAX_JSON_FILE_BYTES = 16 << 20
#: Drawings in one JSON drawing file (``pyrochar sample`` writes at most 1,000).
MAX_DRAWINGS_PER_FILE = 1_000

_LIMITS_DOC = "see docs/reliability.md for the input limits"


@dataclass(frozen=True, eq=False)
class Drawing:
    """A drawing as a list of strokes in Omniglot motor coordinates.

    ``strokes[i]`` is a float64 array of shape (n_i, 3) holding (x, y, t): x to
    the right in [0, 105] px, y negative and decreasing downward (image row = -y),
    t in milliseconds (unreliable in the raw data; 0 when unknown).

    The labels are None for drawings that do not come from Omniglot (for example a
    user's JSON file).
    """

    strokes: list[np.ndarray]
    subset: str | None = None  # "background" or "evaluation"
    alphabet: str | None = None
    character: int | None = None  # 1-based index of the character within its alphabet
    character_id: int | None = None  # global Omniglot character id (1-1623)
    drawer: int | None = None  # 1-20
    source: str = field(default="")  # file path, or "archive.zip::member"

    @property
    def key(self) -> str:
        """A stable, human-readable identifier, e.g. ``Greek/character03/0396_07``."""
        if self.alphabet is not None and self.character is not None:
            cid = f"{self.character_id:04d}" if self.character_id is not None else "????"
            drw = f"{self.drawer:02d}" if self.drawer is not None else "??"
            return f"{self.alphabet}/character{self.character:02d}/{cid}_{drw}"
        return self.source

    @property
    def n_strokes(self) -> int:
        return len(self.strokes)


# ------------------------------------------------------------------------- limits


def count_problem(n: int, limit: int, what: str) -> str | None:
    """The refusal of ``n`` items when more than ``limit`` are accepted, else None.

    ``what`` names the items, e.g. ``"points in a stroke"``.
    """
    if n <= limit:
        return None
    return f"{n:,} {what}; at most {limit:,} are accepted ({_LIMITS_DOC})"


def limits_problem(strokes: Sequence[np.ndarray]) -> str | None:
    """Why strokes (each (k, 2|3), motor px) break the input limits, or None if they don't.

    Checks the number of strokes, of points per stroke and per drawing, and that
    every coordinate lies within ``±COORD_LIMIT`` px. (Long paths need no limit:
    fitting resamples a stroke to at most 2,048 points.)
    """
    problem = count_problem(len(strokes), MAX_STROKES_PER_DRAWING, "strokes in the drawing")
    total_points = 0
    for i, s in enumerate(strokes):
        problem = problem or count_problem(len(s), MAX_POINTS_PER_STROKE, "points in a stroke")
        if problem:
            return problem
        total_points += len(s)
        xy = np.asarray(s, dtype=np.float64)[:, :2]  # (k, 2)
        worst = float(np.abs(xy).max()) if len(xy) else 0.0
        if not worst <= COORD_LIMIT:  # also catches NaN
            j, c = np.unravel_index(int(np.argmax(np.abs(xy))), xy.shape)
            return (
                f"stroke {i + 1}, point {j + 1}: {'xy'[c]} = {xy[j, c]:g} px is far off the "
                f"105 px canvas; coordinates must lie within ±{COORD_LIMIT:,.0f} px ({_LIMITS_DOC})"
            )
    return problem or count_problem(total_points, MAX_POINTS_PER_DRAWING, "points in the drawing")


# ------------------------------------------------------------------------ reading


def read_capped(stream: IO[bytes], limit: int, source: str) -> bytes:
    """At most ``limit`` bytes of ``stream``; DataFormatError if it holds more."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise DataFormatError(
            source, f"the file is larger than {limit:,} bytes, the limit for a drawing file "
            f"({_LIMITS_DOC})"
        )
    return data


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    A FIFO, device, socket (also behind a symbolic link) or folder is refused
    without blocking: it is opened non-blocking and checked before any read.
    Raises :class:`DataFormatError` naming the file for every problem.
    """
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise DataFormatError(source, "no such file") from None
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise DataFormatError(source, "is a folder, expected a drawing file") from None
        raise DataFormatError(source, f"cannot read the file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise DataFormatError(source, "is a folder, expected a drawing file")
        if not stat.S_ISREG(mode):
            raise DataFormatError(
                source, "not a regular file (a pipe, device or socket); only regular files "
                "are read as drawings"
            )
        try:
            return read_capped(f, limit, source)
        except OSError as exc:
            raise DataFormatError(
                source, f"cannot read the file ({exc.strerror or exc})"
            ) from None
