"""Drawings -> minimal splines in normalized units, with an on-disk cache.

``prepare_dataset(source)`` reads the drawings (see :mod:`pyrochar.data.omniglot`),
fits minimal splines to every stroke (docs/data.md, "Preprocessing to minimal splines"; see
:mod:`pyrochar.splines`) and returns a :class:`PreparedDataset`: per stroke its
control points in normalized units ``(p - (50, -50)) / 20``. The models consume
each stroke as its start location (the first point of the evaluated spline) and
the offsets between consecutive control points (:meth:`PreparedDataset.starts_offsets`).

The prepared dataset is cached as one ``.npz`` file named by a SHA-256 hash of
the parsed source drawings and the preprocessing parameters, so preparing the
same data twice reuses it, and changing either recomputes it. The file also
records that key and a SHA-256 digest of its own content: a cache file that is
unreadable, inconsistent, written for another key or changed since it was written
is recomputed (with a warning), never trusted. Writes are atomic; a cache folder
that cannot be written gives a warning and the data is used without caching.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import splines
from ..atomic import atomic_open
from ..errors import PyrocharError
from .drawing import Drawing
from .omniglot import LoadResult, SkippedFile, load_omniglot
from .splits import Split, character_key, make_split

CACHE_VERSION = 1


def preprocessing_params() -> dict:
    """The constants that define the preprocessing (part of the cache key)."""
    return {
        "cache_version": CACHE_VERSION,
        "center": [float(c) for c in splines.CENTER],
        "scale": float(splines.SCALE),
        "min_stroke_length": float(splines.MIN_STROKE_LENGTH),
        "residual_threshold": float(splines.RESIDUAL_THRESHOLD),
        "max_control_points": int(splines.MAX_CONTROL_POINTS),
        "resample_spacing": float(splines.RESAMPLE_SPACING),
    }


def default_cache_dir() -> Path:
    """``$PYROCHAR_CACHE`` if set, else the user cache directory's ``prepared/``."""
    env = os.environ.get("PYROCHAR_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("pyrochar")) / "prepared"


_META_FIELDS = ("subset", "alphabet", "character", "character_id", "drawer", "source")


@dataclass
class PreparedDataset:
    """Drawings as minimal splines, flat arrays for speed and compact caching.

    Drawing ``d`` owns strokes ``stroke_offsets[d] : stroke_offsets[d+1]``; stroke
    ``s`` owns rows ``cp_offsets[s] : cp_offsets[s+1]`` of ``control_points``.
    Drawings left with no stroke by the length filter are not included (they are
    counted in ``empty_after_filter``).
    """

    control_points: np.ndarray  # (total control points, 2) float64, normalized units
    stroke_sizes: np.ndarray  # (total strokes,) int64: control points per stroke
    drawing_sizes: np.ndarray  # (drawings,) int64: strokes per drawing
    meta: dict[str, np.ndarray]  # per drawing: subset, alphabet, character, ...
    n_read: int = 0  # drawings read from the source (kept + empty)
    empty_after_filter: list[str] = field(default_factory=list)  # sources of empty drawings
    skipped: list[SkippedFile] = field(default_factory=list)  # files that failed to parse
    cache_key: str = ""
    cache_file: str = ""  # the cache file read or written by prepare_dataset, "" if none

    def __post_init__(self) -> None:
        self.cp_offsets = np.concatenate([[0], np.cumsum(self.stroke_sizes)]).astype(np.int64)
        self.stroke_offsets = np.concatenate([[0], np.cumsum(self.drawing_sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.drawing_sizes)

    # ----------------------------------------------------------------- access
    def strokes(self, d: int) -> list[np.ndarray]:
        """Control points of drawing ``d``'s strokes, each (n_i, 2), normalized units."""
        lo, hi = self.stroke_offsets[d], self.stroke_offsets[d + 1]
        return [
            self.control_points[self.cp_offsets[s] : self.cp_offsets[s + 1]] for s in range(lo, hi)
        ]

    def starts_offsets(self, d: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Drawing ``d`` as the models see it: per stroke (start (2,), offsets (n-1, 2))."""
        return [splines.stroke_to_start_offsets(cp) for cp in self.strokes(d)]

    def key(self, d: int) -> str:
        m = self.meta
        if m["alphabet"][d]:
            return (
                f"{m['alphabet'][d]}/character{int(m['character'][d]):02d}/"
                f"{int(m['character_id'][d]):04d}_{int(m['drawer'][d]):02d}"
            )
        return str(m["source"][d])

    def character_keys(self) -> np.ndarray:
        """Per drawing its character key ``"Alphabet/characterNN"`` (split unit)."""
        m = self.meta
        return np.array(
            [character_key(a, c) for a, c in zip(m["alphabet"], m["character"], strict=True)]
        )

    def split(self, spec: str, holdout_alphabets: Sequence[str] | None = None) -> Split:
        """The split ``spec`` (``character:K``, ``alphabet:K``, ``holdout``, ``all``) of
        this dataset's characters, background and evaluation sets kept apart."""
        keys = self.character_keys()
        evaluation = self.meta["subset"] == "evaluation"
        return make_split(
            spec, keys[~evaluation], evaluation_characters=keys[evaluation],
            holdout_alphabets=holdout_alphabets,
        )

    def alphabets(self) -> list[str]:
        return sorted(set(self.meta["alphabet"].tolist()))

    def select(self, indices: Sequence[int] | np.ndarray) -> PreparedDataset:
        """A new dataset holding the given drawings, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        stroke_idx = (
            np.concatenate(
                [np.arange(self.stroke_offsets[d], self.stroke_offsets[d + 1]) for d in indices]
            )
            if len(indices)
            else np.zeros(0, np.int64)
        )
        cp_idx = (
            np.concatenate(
                [np.arange(self.cp_offsets[s], self.cp_offsets[s + 1]) for s in stroke_idx]
            )
            if len(stroke_idx)
            else np.zeros(0, np.int64)
        )
        return PreparedDataset(
            control_points=self.control_points[cp_idx],
            stroke_sizes=self.stroke_sizes[stroke_idx],
            drawing_sizes=self.drawing_sizes[indices],
            meta={k: v[indices] for k, v in self.meta.items()},
            n_read=len(indices),
            cache_key=self.cache_key,
        )

    def select_characters(self, keys: Sequence[str]) -> PreparedDataset:
        """The drawings of the given characters (``"Alphabet/characterNN"`` keys)."""
        wanted = set(keys)
        return self.select(np.flatnonzero([k in wanted for k in self.character_keys()]))

    # ------------------------------------------------------------------- stats
    def stats(self) -> dict:
        """The statistics printed by ``pyrochar data stats`` (keys are stable)."""
        sizes = self.stroke_sizes
        kept = len(self)
        return {
            "alphabets": len(self.alphabets()) if kept else 0,
            "characters": len(set(self.character_keys().tolist())) if kept else 0,
            "drawings": int(self.n_read),
            "skipped": len(self.skipped),
            "empty_after_filter": len(self.empty_after_filter),
            "strokes": int(len(sizes)),
            "strokes_per_drawing": float(len(sizes) / kept) if kept else 0.0,
            "control_points_per_stroke_mean": float(sizes.mean()) if len(sizes) else 0.0,
            "control_points_per_stroke_median": float(np.median(sizes)) if len(sizes) else 0.0,
            "control_points_per_stroke_max": int(sizes.max()) if len(sizes) else 0,
        }

    # ------------------------------------------------------------- save/load
    def content_digest(self) -> str:
        """SHA-256 (hex) of the arrays, metadata and counts a saved file holds."""
        h = hashlib.sha256()
        for a in (self.control_points, self.stroke_sizes, self.drawing_sizes):
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        for k in sorted(self.meta):
            h.update(json.dumps([k, self.meta[k].tolist()]).encode())
        h.update(json.dumps([int(self.n_read), self.empty_after_filter, self.cache_key]).encode())
        return h.hexdigest()

    def _check_consistent(self) -> None:
        """Raise ValueError when the sizes do not add up (a damaged or foreign file)."""
        n = len(self.drawing_sizes)
        if (
            self.control_points.ndim != 2
            or self.control_points.shape[1] != 2
            or int(self.stroke_sizes.sum()) != len(self.control_points)
            or int(self.drawing_sizes.sum()) != len(self.stroke_sizes)
            or (self.stroke_sizes < 1).any()
            or (self.drawing_sizes < 1).any()
            or set(self.meta) != set(_META_FIELDS)
            or any(len(v) != n for v in self.meta.values())
            or not np.isfinite(self.control_points).all()
        ):
            raise ValueError("its arrays are inconsistent")

    def save(self, path: str | os.PathLike) -> None:
        """Write the dataset as one ``.npz`` file, atomically, with its content digest."""
        arrays = {
            "control_points": self.control_points,
            "stroke_sizes": self.stroke_sizes,
            "drawing_sizes": self.drawing_sizes,
            "info": np.array(
                json.dumps(
                    {
                        "n_read": self.n_read,
                        "empty_after_filter": self.empty_after_filter,
                        "skipped": [[s.source, s.reason] for s in self.skipped],
                        "cache_key": self.cache_key,
                        "content_sha256": self.content_digest(),
                    }
                )
            ),
        }
        for k, v in self.meta.items():
            arrays["meta_" + k] = v
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, expected_key: str | None = None) -> PreparedDataset:
        """Read a dataset written by :meth:`save` (no pickles are loaded).

        The content must match the digest recorded when it was written, and, when
        ``expected_key`` is given, the cache key it was written for; else
        :class:`PyrocharError`.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                meta = {k[5:]: z[k] for k in z.files if k.startswith("meta_")}
                ds = cls(
                    control_points=z["control_points"],
                    stroke_sizes=z["stroke_sizes"].astype(np.int64),
                    drawing_sizes=z["drawing_sizes"].astype(np.int64),
                    meta=meta,
                    n_read=int(info["n_read"]),
                    empty_after_filter=list(info["empty_after_filter"]),
                    skipped=[SkippedFile(s, r) for s, r in info["skipped"]],
                    cache_key=str(info["cache_key"]),
                )
                ds._check_consistent()
                recorded = str(info["content_sha256"])
        except FileNotFoundError:
            raise PyrocharError(f"prepared dataset {path} does not exist") from None
        except KeyError as e:  # written by an older pyrochar, or not by pyrochar
            raise PyrocharError(
                f"{path} is not a prepared dataset of this pyrochar version (it has no {e} entry)"
            ) from None
        except Exception as e:  # corrupted or foreign file
            raise PyrocharError(
                f"{path} is not a readable prepared dataset ({e}); delete it and run "
                "`pyrochar data prepare` again"
            ) from None
        if ds.content_digest() != recorded:
            raise PyrocharError(
                f"{path} was changed after it was written (its content does not match its "
                "checksum); delete it and run `pyrochar data prepare` again"
            )
        if expected_key is not None and ds.cache_key != expected_key:
            raise PyrocharError(
                f"{path} holds the prepared data of other drawings (key {ds.cache_key}, "
                f"expected {expected_key}); delete it"
            )
        return ds


def _hash_drawings(drawings: Sequence[Drawing], params: dict) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for d in drawings:
        h.update(d.key.encode("utf-8") + b"\0")
        for s in d.strokes:
            h.update(np.ascontiguousarray(s[:, :2], dtype=np.float64).tobytes())
            h.update(b"|")
    return h.hexdigest()[:24]


def _fit_all(drawings: Sequence[Drawing], progress: bool) -> list[list[np.ndarray]]:
    from tqdm.auto import tqdm

    return [
        splines.preprocess_drawing(d.strokes)
        for d in tqdm(drawings, desc="fitting splines", unit="drawing", disable=not progress)
    ]


def build_prepared(
    loaded: LoadResult, progress: bool = False, cache_key: str = ""
) -> PreparedDataset:
    """Fit minimal splines to every drawing of ``loaded`` (no caching)."""
    fitted = _fit_all(loaded.drawings, progress)
    cps, stroke_sizes, drawing_sizes, empty = [], [], [], []
    meta: dict[str, list] = {k: [] for k in _META_FIELDS}
    for drawing, strokes in zip(loaded.drawings, fitted, strict=True):
        if not strokes:
            empty.append(drawing.source or drawing.key)
            continue
        for cp in strokes:
            cps.append(splines.to_normalized(cp))
            stroke_sizes.append(len(cp))
        drawing_sizes.append(len(strokes))
        for k in _META_FIELDS:
            v = getattr(drawing, k)
            meta[k].append(("" if k in ("subset", "alphabet", "source") else 0) if v is None else v)
    return PreparedDataset(
        control_points=np.concatenate(cps) if cps else np.zeros((0, 2)),
        stroke_sizes=np.asarray(stroke_sizes, dtype=np.int64),
        drawing_sizes=np.asarray(drawing_sizes, dtype=np.int64),
        meta={
            k: np.asarray(
                v, dtype=np.int64 if k in ("character", "character_id", "drawer") else str
            )
            for k, v in meta.items()
        },
        n_read=len(loaded.drawings),
        empty_after_filter=empty,
        skipped=list(loaded.skipped),
        cache_key=cache_key,
    )


def prepare_dataset(
    source: str | os.PathLike,
    *,
    strict: bool = False,
    alphabets: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> PreparedDataset:
    """Read ``source`` and return its drawings as minimal splines (cached on disk).

    With ``use_cache`` the result is read from, or else written to,
    ``cache_dir/prepared-<key>.npz`` (``cache_file`` of the result names it). A cache
    file that fails its checks is recomputed with a warning; a cache folder that
    cannot be written gives a warning and the result is returned uncached.
    """
    loaded = load_omniglot(source, strict=strict, alphabets=alphabets, progress=progress)
    key = _hash_drawings(loaded.drawings, preprocessing_params())
    cache_path = Path(cache_dir or default_cache_dir()) / f"prepared-{key}.npz"
    if use_cache and cache_path.is_file():
        try:
            ds = PreparedDataset.load(cache_path, expected_key=key)
            if ds.n_read == len(loaded.drawings):
                ds.skipped = list(loaded.skipped)
                ds.cache_file = str(cache_path)
                return ds
            warnings.warn(
                f"ignoring a cache file for another number of drawings, recomputing: {cache_path}",
                stacklevel=2,
            )
        except PyrocharError as e:
            warnings.warn(f"ignoring a broken cache file, recomputing: {e}", stacklevel=2)
    ds = build_prepared(loaded, progress=progress, cache_key=key)
    if use_cache:
        try:
            ds.save(cache_path)
            ds.cache_file = str(cache_path)
        except (PyrocharError, OSError) as e:
            warnings.warn(
                f"could not write the cache ({e}); going on without it. Set PYROCHAR_CACHE "
                "to a writable folder to cache prepared data.",
                stacklevel=2,
            )
    return ds
