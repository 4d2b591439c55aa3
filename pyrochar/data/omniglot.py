"""Reading Omniglot stroke data (Lake, Salakhutdinov & Tenenbaum 2015).

The data set ships as two archives, ``strokes_background.zip`` and
``strokes_evaluation.zip``, laid out as::

    strokes_background/<Alphabet>/characterNN/IIII_DD.txt

where ``NN`` is the 1-based index of the character within its alphabet, ``IIII``
the global character id and ``DD`` the drawer (01-20). Each ``.txt`` file holds one
drawing::

    START
    x,y,t
    ...
    BREAK        <- pen up, ends a stroke (the last stroke too)
    x,y,t
    ...
    BREAK

Public API:

* :func:`parse_strokes` parses the text of one stroke file.
* :func:`read_stroke_file` reads one file into a :class:`~pyrochar.data.drawing.Drawing`.
* :func:`load_omniglot` loads a whole set from a folder or an official zip, without
  unpacking the zip, and reports the files it had to skip.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyrochar.data.drawing import (
    MAX_STROKE_FILE_BYTES,
    Drawing,
    limits_problem,
    read_capped,
    read_regular_file,
)
from pyrochar.errors import DataFormatError, PyrocharError

__all__ = [
    "SUBSETS",
    "LoadResult",
    "SkippedFile",
    "load_omniglot",
    "parse_strokes",
    "read_stroke_file",
]

#: Folder (and zip stem) name of each Omniglot set -> the subset label.
SUBSETS: dict[str, str] = {
    "strokes_background": "background",
    "strokes_evaluation": "evaluation",
}

_CHARACTER_DIR = re.compile(r"^character(\d+)$")
_DRAWING_FILE = re.compile(r"^(\d+)_(\d+)\.txt$", re.IGNORECASE)
_JUNK_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
_DOWNLOAD_HINT = "Run `pyrochar data download` to fetch the Omniglot data set."


# --------------------------------------------------------------------------- parsing


def _short(text: str, limit: int = 40) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters for error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_point(line: str, path: str, lineno: int) -> list[float]:
    """Parse one ``x,y,t`` line, raising a precise :class:`DataFormatError`."""
    fields = line.split(",")
    if len(fields) != 3:
        got = f"{len(fields)} fields: " if len(fields) > 1 else ""
        raise DataFormatError(
            path, f"expected 'x,y,t' with 3 numbers, got {got}{_short(line)}", lineno
        )
    try:
        values = [float(v) for v in fields]
    except ValueError:
        raise DataFormatError(
            path, f"expected 'x,y,t' with 3 numbers, got {_short(line)}", lineno
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise DataFormatError(
            path, f"non-finite number (NaN or infinity) in {_short(line)}", lineno
        )
    return values


def _stroke_array(lines: list[str], linenos: list[int], path: str) -> np.ndarray:
    """Convert the point lines of one stroke into an (n, 3) float64 array."""
    try:
        points = [[float(a), float(b), float(c)] for a, b, c in (s.split(",") for s in lines)]
        arr = np.array(points, dtype=np.float64)
        if np.isfinite(arr).all():
            return arr
    except ValueError:  # wrong field count or a non-numeric field: locate it below
        pass
    for line, lineno in zip(lines, linenos, strict=True):
        _parse_point(line, path, lineno)
    raise AssertionError("unreachable: a bad point line was not found")  # pragma: no cover


def parse_strokes(text: str, path: str) -> list[np.ndarray]:
    """Parse the text of an Omniglot stroke file into a list of (n, 3) arrays (x, y, t).

    Blank lines and whitespace around each line are tolerated. ``path`` is used only
    in error messages. Raises :class:`DataFormatError` (with the 1-based line number
    when there is one) for an empty file, a missing ``START``, a line that is not
    three finite numbers, an empty stroke, or a last stroke without ``BREAK``.
    """
    path = str(path)
    strokes: list[np.ndarray] = []
    lines: list[str] = []  # point lines of the stroke being read
    linenos: list[int] = []
    started = False
    last = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        last = lineno
        if line == "BREAK":
            if not started:
                raise DataFormatError(
                    path, "expected 'START' on the first line, got 'BREAK'", lineno
                )
            if not lines:
                where = "START" if not strokes else "the previous BREAK"
                raise DataFormatError(path, f"empty stroke: BREAK right after {where}", lineno)
            strokes.append(_stroke_array(lines, linenos, path))
            lines, linenos = [], []
        elif line == "START":
            if started:
                raise DataFormatError(path, "unexpected second 'START'", lineno)
            started = True
        elif not started:
            raise DataFormatError(
                path, f"expected 'START' on the first line, got {_short(line)}", lineno
            )
        else:
            lines.append(line)
            linenos.append(lineno)
    if not started:
        raise DataFormatError(path, "empty file: expected 'START' followed by strokes")
    if lines:
        raise DataFormatError(path, "the last stroke does not end with 'BREAK'", last)
    if not strokes:
        raise DataFormatError(path, "no strokes after 'START'", last)
    return strokes


def _decode(data: bytes, path: str) -> str:
    """Decode the bytes of a stroke file, refusing binary files."""
    if b"\x00" in data:
        raise DataFormatError(path, "not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            path, f"not a text file (invalid UTF-8 at byte {exc.start})"
        ) from None


# --------------------------------------------------------------------------- labels


def _labels_from_parts(parts: Sequence[str]) -> dict[str, object]:
    """Labels of a drawing from the trailing components of its path.

    The layout is ``[strokes_<set>/]<Alphabet>/characterNN/IIII_DD.txt``. When the
    parent folder is not ``characterNN`` (or there is no alphabet folder above it),
    every label is None. ``character_id``/``drawer`` are None when the file name is
    not ``IIII_DD.txt``; ``subset`` is None unless the folder above the alphabet is
    ``strokes_background`` or ``strokes_evaluation``.
    """
    labels: dict[str, object] = dict(
        subset=None, alphabet=None, character=None, character_id=None, drawer=None
    )
    if len(parts) < 3:
        return labels
    m_char = _CHARACTER_DIR.match(parts[-2])
    if m_char is None or not parts[-3]:
        return labels
    labels["alphabet"] = parts[-3]
    labels["character"] = int(m_char.group(1))
    m_file = _DRAWING_FILE.match(parts[-1])
    if m_file is not None:
        labels["character_id"] = int(m_file.group(1))
        labels["drawer"] = int(m_file.group(2))
    if len(parts) >= 4:
        labels["subset"] = SUBSETS.get(parts[-4])
    return labels


def _make_drawing(data: bytes, source: str, parts: Sequence[str]) -> Drawing:
    """Parse the bytes of a stroke file and check the input limits."""
    strokes = parse_strokes(_decode(data, source), source)
    problem = limits_problem(strokes)
    if problem:
        raise DataFormatError(source, problem)
    return Drawing(strokes=strokes, source=source, **_labels_from_parts(parts))  # type: ignore[arg-type]


def read_stroke_file(path: str | os.PathLike[str]) -> Drawing:
    """Read one Omniglot stroke file into a :class:`Drawing`.

    Labels are taken from the path when it follows the official layout
    (``.../strokes_background/<Alphabet>/characterNN/IIII_DD.txt``), else they are None.
    """
    p = Path(path)
    return _make_drawing(read_regular_file(p, MAX_STROKE_FILE_BYTES), str(p), p.parts)


# --------------------------------------------------------------------------- loading


@dataclass
class SkippedFile:
    """A file that :func:`load_omniglot` could not read, and why."""

    source: str
    reason: str


@dataclass
class LoadResult:
    """The drawings read by :func:`load_omniglot` and the files it skipped."""

    drawings: list[Drawing] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass
class _Entry:
    """One candidate file: where it is, its layout parts and how to read its bytes.

    ``error`` is set for entries known to be bad before reading (e.g. an escaping
    zip member); ``alphabet`` is used by the ``alphabets`` filter.
    """

    source: str
    parts: tuple[str, ...]
    alphabet: str | None
    read: Callable[[], bytes] | None = None
    error: str | None = None


def _is_junk(parts: Sequence[str]) -> bool:
    """Hidden files and OS metadata (.DS_Store, ._x, __MACOSX/, Thumbs.db) anywhere."""
    return any((p.startswith(".") and p not in (".", "..")) or p in _JUNK_NAMES for p in parts)


def _classify(rel: Sequence[str]) -> str:
    """``"drawing"``, ``"bad"`` (a non-.txt file in a character folder) or ``"ignore"``.

    ``rel`` is the path below the alphabet's parent: ``(alphabet, characterNN, file)``.
    """
    if _is_junk(rel) or len(rel) != 3 or not _CHARACTER_DIR.match(rel[1]):
        return "ignore"
    return "drawing" if rel[2].lower().endswith(".txt") else "bad"


_NOT_STROKE_FILE = "not a stroke file: only .txt files belong in a character folder"


def _folder_entries(root: Path, prefix: tuple[str, ...]) -> list[_Entry]:
    """Candidate files of a folder whose children are alphabet folders (``root`` is
    ``strokes_<set>``, ``prefix`` its layout name) or, with ``prefix == ()`` and
    ``root`` being one alphabet folder, of that alphabet alone."""
    entries: list[_Entry] = []
    base = root.parent if not prefix else root
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _is_junk([d]))
        rel_dir = Path(dirpath).relative_to(base).parts
        for name in sorted(filenames):
            rel = (*rel_dir, name)
            kind = _classify(rel)
            if kind == "ignore":
                continue
            full = Path(dirpath, name)
            entry = _Entry(str(full), (*prefix, *rel), rel[0])
            if kind == "bad":
                entry.error = _NOT_STROKE_FILE
            else:
                entry.read = functools.partial(read_regular_file, full, MAX_STROKE_FILE_BYTES)
            entries.append(entry)
    return entries


def _zip_entries(zpath: Path, stack: contextlib.ExitStack) -> list[_Entry]:
    """Candidate members of an official Omniglot zip, read lazily from the archive
    (which ``stack`` closes)."""
    try:
        zf = stack.enter_context(zipfile.ZipFile(zpath))
    except (zipfile.BadZipFile, OSError) as exc:
        raise PyrocharError(
            f"{zpath}: not a readable zip archive ({exc}). Delete it and download it again. "
            + _DOWNLOAD_HINT
        ) from None
    top = zpath.name[: -len(".zip")] if zpath.name.lower().endswith(".zip") else zpath.name
    allowed_tops = {top} if top in SUBSETS else set(SUBSETS)
    entries: list[_Entry] = []
    for info in zf.infolist():
        name = info.filename
        source = f"{zpath}::{name}"
        parts = tuple(name.replace("\\", "/").split("/"))
        if _is_junk(parts):
            continue
        escapes = (
            name.startswith(("/", "\\"))
            or re.match(r"^[A-Za-z]:", name) is not None
            or ".." in parts
            or parts[0] not in allowed_tops
        )
        if escapes:
            entries.append(_Entry(source, parts, None, error="zip entry escapes its folder"))
            continue
        if info.is_dir():
            continue
        rel = parts[1:]
        kind = _classify(rel)
        if kind == "ignore":
            continue
        entry = _Entry(source, parts, rel[0])
        if kind == "bad":
            entry.error = _NOT_STROKE_FILE
        else:
            entry.read = _zip_reader(zf, info)
        entries.append(entry)
    return entries


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    """A function reading one member, at most ``MAX_STROKE_FILE_BYTES`` of it whatever
    its header claims; a damaged member raises DataFormatError naming it."""
    source = f"{zf.filename}::{info.filename}"

    def read() -> bytes:
        try:
            with zf.open(info) as member:
                return read_capped(member, MAX_STROKE_FILE_BYTES, source)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise DataFormatError(source, f"corrupted zip entry ({exc})") from None
        except (NotImplementedError, RuntimeError) as exc:  # unknown compression, encrypted
            raise DataFormatError(source, f"unreadable zip entry ({exc})") from None

    return read


_EXPECTED = (
    "expected a strokes_background or strokes_evaluation folder or .zip, a folder "
    "holding them, or one alphabet folder with characterNN subfolders of IIII_DD.txt "
    "stroke files. " + _DOWNLOAD_HINT
)


def _expected_text(source: Path) -> str:
    return f"No Omniglot drawings found at {source}: {_EXPECTED}"


def _discover(source: Path, stack: contextlib.ExitStack) -> list[_Entry]:
    """All candidate entries of ``source`` (any of the accepted layouts), in order."""
    if not source.exists():
        raise PyrocharError(f"{source} does not exist: {_EXPECTED}")
    if source.is_file():
        if source.suffix.lower() == ".zip" or zipfile.is_zipfile(source):
            return _zip_entries(source, stack)
        raise PyrocharError(_expected_text(source))
    if source.name in SUBSETS:
        return _folder_entries(source, (source.name,))
    entries: list[_Entry] = []
    found = False
    for name in SUBSETS:
        folder, archive = source / name, source / f"{name}.zip"
        if folder.is_dir():
            entries += _folder_entries(folder, (name,))
            found = True
        elif archive.is_file():
            entries += _zip_entries(archive, stack)
            found = True
    if found:
        return entries
    try:
        is_alphabet = any(
            child.is_dir() and _CHARACTER_DIR.match(child.name) for child in source.iterdir()
        )
    except OSError as exc:
        raise PyrocharError(f"{source}: cannot list the folder ({exc})") from None
    if is_alphabet:
        return _folder_entries(source, ())
    return []


def _sort_key(d: Drawing) -> tuple:
    return (
        d.subset or "",
        d.alphabet or "",
        d.character if d.character is not None else -1,
        d.drawer if d.drawer is not None else -1,
        d.character_id if d.character_id is not None else -1,
        d.source,
    )


def load_omniglot(
    source: str | os.PathLike[str],
    strict: bool = False,
    alphabets: Sequence[str] | None = None,
    progress: bool = False,
) -> LoadResult:
    """Load Omniglot drawings from a folder or an official zip.

    ``source`` may be a ``strokes_background``/``strokes_evaluation`` folder or zip,
    a folder holding one or both of them (a folder is preferred over a zip of the same
    set), or a single alphabet folder (``<Alphabet>/characterNN/IIII_DD.txt``; its
    drawings have ``subset=None``). Zips are read in place, never unpacked.

    Hidden files, ``__MACOSX/`` entries and files outside character folders are
    ignored. A bad file (bad format, not text, a non-.txt file in a character folder,
    a zip entry escaping its folder) is reported in :attr:`LoadResult.skipped`, or,
    with ``strict=True``, raises its :class:`DataFormatError`.

    ``alphabets`` keeps only the named alphabets (unknown names raise
    :class:`PyrocharError` listing the available ones). ``progress`` shows a bar.
    Drawings are sorted by (subset, alphabet, character, drawer).
    """
    src = Path(source)
    with contextlib.ExitStack() as stack:
        return _load(src, _discover(src, stack), strict, alphabets, progress)


def _load(
    src: Path,
    entries: list[_Entry],
    strict: bool,
    alphabets: Sequence[str] | None,
    progress: bool,
) -> LoadResult:
    """Read ``entries`` (see :func:`load_omniglot`)."""
    if not entries:
        raise PyrocharError(_expected_text(src))

    if alphabets is not None:
        available = sorted({e.alphabet for e in entries if e.alphabet is not None})
        wanted = list(dict.fromkeys(alphabets))
        unknown = [a for a in wanted if a not in available]
        if unknown:
            raise PyrocharError(
                f"unknown alphabet(s) {', '.join(map(repr, unknown))} in {src}; "
                f"available: {', '.join(available)}"
            )
        keep = set(wanted)
        entries = [e for e in entries if e.alphabet in keep]

    result = LoadResult()
    iterator = entries
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(entries, desc="reading strokes", unit="file")
    for entry in iterator:
        try:
            if entry.error is not None:
                raise DataFormatError(entry.source, entry.error)
            assert entry.read is not None
            try:
                data = entry.read()
            except OSError as exc:
                raise DataFormatError(entry.source, f"cannot read the file ({exc})") from None
            result.drawings.append(_make_drawing(data, entry.source, entry.parts))
        except DataFormatError as exc:
            if strict:
                raise
            result.skipped.append(SkippedFile(entry.source, str(exc)))

    if not result.drawings:
        first = f" First problem: {result.skipped[0].reason}" if result.skipped else ""
        raise PyrocharError(
            f"none of the {len(entries)} stroke file(s) at {src} could be read.{first} "
            + _DOWNLOAD_HINT
        )
    result.drawings.sort(key=_sort_key)
    return result
