"""One-shot classification of runs: every score, per-run errors, resumable output.

:func:`classify` scores each test item of a run against each of its training
images, picks one per item and reports the run's error (percent of test items
whose pick is not the class ``class_labels.txt`` names), as in the official demo.

With ``out``, each finished run is written there at once (atomically):
``runNN.json`` (every score, the picks, the error, the time; see
:meth:`RunResult.to_json`) and ``runNN.png`` (each test item beside the training
image it was given: green frame right, red wrong), plus ``summary.json``. A later
call with the same ``out`` reuses every run whose ``runNN.json`` matches the run's
files and method, so a killed classification resumes at the next unfinished run.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyrochar.atomic import atomic_write_text
from pyrochar.errors import PyrocharError

from .mhd import ink_points, mhd_row
from .runs import Run, parse_run_spec, read_runs

__all__ = ["METHODS", "ClassifyResult", "RunResult", "classify"]

#: The methods :func:`classify` offers, with how each picks a training image.
METHODS = {"mhd": "smallest"}
#: Version of the runNN.json format (a file of another version is recomputed).
RESULT_FORMAT = 1


@dataclass
class RunResult:
    """The classification of one run.

    ``scores[name]`` is a (T, C) matrix: test item x training image (for ``mhd``
    the modified Hausdorff distance, the smallest picked); ``choices`` (T,) the
    picked training index per test item, ``answers`` (T,) the right one.
    """

    run: str
    method: str
    training: list[str]  # (C,) paths relative to the runs folder
    test: list[str]  # (T,)
    answers: list[int]  # (T,)
    choices: list[int]  # (T,)
    scores: dict[str, list[list[float]]]  # name -> (T, C)
    seconds: float
    fingerprint: str
    resumed: bool = field(default=False, compare=False)

    @property
    def n_wrong(self) -> int:
        """Test items given the wrong training image."""
        return sum(c != a for c, a in zip(self.choices, self.answers, strict=True))

    @property
    def error(self) -> float:
        """Percent of test items given the wrong training image."""
        return 100.0 * self.n_wrong / len(self.test)

    def summary(self) -> dict:
        """The run's line of the summary (no scores)."""
        return {"run": self.run, "error": self.error, "n_test": len(self.test), "n_wrong": self.n_wrong,
                "seconds": self.seconds, "resumed": self.resumed}

    def to_json(self) -> dict:
        """Everything, JSON-ready: ``format``, ``run``, ``method``, ``pick``
        ("smallest" or "largest" score), ``training``, ``test``, ``answers``,
        ``choices``, ``correct`` (T,) bools, ``scores``, ``error``, ``n_wrong``,
        ``seconds``, ``fingerprint``."""
        return {"format": RESULT_FORMAT, "run": self.run, "method": self.method,
                "pick": METHODS[self.method], "training": self.training, "test": self.test,
                "answers": self.answers, "choices": self.choices,
                "correct": [c == a for c, a in zip(self.choices, self.answers, strict=True)],
                "scores": self.scores, "error": self.error, "n_wrong": self.n_wrong,
                "seconds": self.seconds, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: dict) -> RunResult:
        """A stored result (resumed=True); KeyError/TypeError if fields are missing."""
        return cls(run=data["run"], method=data["method"], training=list(data["training"]),
                   test=list(data["test"]), answers=[int(a) for a in data["answers"]],
                   choices=[int(c) for c in data["choices"]], scores=dict(data["scores"]),
                   seconds=float(data["seconds"]), fingerprint=data["fingerprint"], resumed=True)


@dataclass
class ClassifyResult:
    """The classification of several runs."""

    method: str
    runs: list[RunResult]
    seconds: float  # wall time of this call (resumed runs took none of it)

    @property
    def mean_error(self) -> float:
        """Mean of the runs' errors (percent): the benchmark's figure."""
        return float(np.mean([r.error for r in self.runs]))

    def summary(self) -> dict:
        """``method``, ``mean_error``, ``n_runs``, ``seconds`` and per run ``runs``
        (``run``, ``error``, ``n_test``, ``n_wrong``, ``seconds``, ``resumed``)."""
        return {"method": self.method, "mean_error": self.mean_error, "n_runs": len(self.runs),
                "seconds": self.seconds, "runs": [r.summary() for r in self.runs]}


def _mhd_scores(run: Run, bar) -> dict[str, np.ndarray]:
    """The run's (T, C) modified Hausdorff distances; ``bar`` advances per test item."""
    train, test = run.images()  # (C, 105, 105), (T, 105, 105)
    train_points = [ink_points(t) for t in train]
    rows = []
    for image in test:
        rows.append(mhd_row(ink_points(image), train_points))
        bar.update(1)
    return {"mhd": np.stack(rows)}


_SCORERS = {"mhd": _mhd_scores}


def _choose(scores: np.ndarray, pick: str) -> list[int]:
    """The picked column per row of a (T, C) score matrix (the first on a tie)."""
    index = np.argmin(scores, axis=1) if pick == "smallest" else np.argmax(scores, axis=1)
    return [int(i) for i in index]


def _classify_run(run: Run, method: str, fingerprint: str, bar) -> RunResult:
    """Score and classify one run."""
    start = time.perf_counter()
    scores = _SCORERS[method](run, bar)
    choices = _choose(scores[method], METHODS[method])
    return RunResult(run=run.name, method=method, training=list(run.training), test=list(run.test),
                     answers=list(run.answers), choices=choices,
                     scores={k: v.tolist() for k, v in scores.items()},
                     seconds=time.perf_counter() - start, fingerprint=fingerprint)


def _stored(path: Path, method: str, fingerprint: str) -> RunResult | None:
    """The result stored at ``path`` if it is for this run (same files) and method."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != RESULT_FORMAT or data.get("method") != method:
            return None
        if data.get("fingerprint") != fingerprint:
            warnings.warn(f"{path} is for other files than the run now holds: the run is classified again",
                          stacklevel=3)
            return None
        return RunResult.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        warnings.warn(f"{path} is unreadable: the run is classified again", stacklevel=3)
        return None


def _write_summary(out: Path, result: ClassifyResult) -> None:
    """``out/summary.json``: the runs classified so far (see :meth:`ClassifyResult.summary`)."""
    atomic_write_text(out / "summary.json", json.dumps(result.summary(), indent=1) + "\n")


def run_picture(run: Run, result: RunResult, cell: int = 105):
    """Each test item beside the training image it was given, four pairs a row;
    a green frame when right, red when wrong. Returns a PIL image."""
    from PIL import Image, ImageDraw

    train, test = run.images()
    cols, gap, caption = 4, 12, 14
    pair_w = 2 * cell + 4
    rows = -(-len(result.test) // cols)
    img = Image.new("RGB", (cols * (pair_w + gap) + gap, rows * (cell + caption + gap) + gap), "white")
    draw = ImageDraw.Draw(img)
    for k, choice in enumerate(result.choices):
        r, c = divmod(k, cols)
        x, y = gap + c * (pair_w + gap), gap + r * (cell + caption + gap)
        for j, tile in enumerate((test[k], train[choice])):
            grey = Image.fromarray(np.where(tile, 0, 255).astype(np.uint8), mode="L")
            img.paste(grey.resize((cell, cell), Image.NEAREST).convert("RGB"), (x + j * (cell + 4), y + caption))
        right = choice == result.answers[k]
        colour = (0, 150, 0) if right else (210, 0, 0)
        draw.rectangle([x - 2, y + caption - 2, x + pair_w + 1, y + caption + cell + 1], outline=colour, width=2)
        label = f"{Path(result.test[k]).stem} -> {Path(result.training[choice]).stem}"
        draw.text((x, y), label, fill=colour)
    return img


def classify(model, runs_dir: str | os.PathLike, runs: str | Sequence[int] | None = None,
             method: str = "mhd", out: str | os.PathLike | None = None, progress: bool = False,
             on_run_done: Callable[[RunResult], None] | None = None) -> ClassifyResult:
    """Classify the test items of the runs in ``runs_dir`` (all, or ``runs``: run
    numbers or a spec like ``"1-20"``) with ``method``.

    ``model`` is the type model of the model-based method; ``"mhd"`` (the modified
    Hausdorff baseline, the only method so far) uses none: pass None. With ``out``
    (a folder), results are written per run and reused by a later call (see the
    module's doc). ``progress`` shows bars over runs and test images;
    ``on_run_done(result)`` is called after each run, computed or reused.
    """
    from tqdm.auto import tqdm

    from pyrochar.checks import check_output_folder
    from pyrochar.viz import save_image

    if method not in METHODS:
        raise PyrocharError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    numbers = parse_run_spec(runs) if isinstance(runs, str) else runs
    selected = read_runs(runs_dir, numbers)  # every run checked before any work
    out = check_output_folder(out, "--out") if out is not None else None
    start = time.perf_counter()
    results = []
    total_items = sum(len(r.test) for r in selected)
    with tqdm(total=total_items, desc="test images", unit="image", disable=not progress,
              position=1, leave=False) as items, \
            tqdm(selected, desc="runs", unit="run", disable=not progress, position=0) as bar:
        for run in bar:
            fingerprint = run.fingerprint()
            result = _stored(out / f"{run.name}.json", method, fingerprint) if out else None
            if result is None:
                result = _classify_run(run, method, fingerprint, items)
                if out is not None:
                    save_image(run_picture(run, result), out / f"{run.name}.png", "--out")
                    atomic_write_text(out / f"{run.name}.json", json.dumps(result.to_json()) + "\n")
            else:
                items.update(len(run.test))
            results.append(result)
            bar.set_postfix(error=f"{result.error:.1f}%")
            if out is not None:
                _write_summary(out, ClassifyResult(method, results, time.perf_counter() - start))
            if on_run_done is not None:
                on_run_done(result)
    final = ClassifyResult(method, results, time.perf_counter() - start)
    if out is not None:
        _write_summary(out, final)
    return final
