"""One-shot classification of runs: every score, per-run errors, resumable output.

:func:`classify` scores each test item of a run against each of its training
images, picks one per item and reports the run's error (percent of test items
whose pick is not the class ``class_labels.txt`` names), as in the official demo.
Methods: ``"mhd"``, the modified Hausdorff distance (:mod:`.mhd`), and
``"model"``, parse and refit with a type model (:mod:`.refit`; it picks by the
two-way score and reports the one-way score's error too).

With ``out``, each finished run is written there at once (atomically):
``runNN.json`` (every score, the picks, the error, the time; see
:meth:`RunResult.to_json`) and ``runNN.png`` (each test item beside the training
image it was given, and for ``"model"`` that image's parse refitted to the test
item; green frame right, red wrong), plus ``summary.json``. A later call with the
same ``out`` reuses every run whose ``runNN.json`` matches the run's files, the
method and its settings, so a killed classification resumes at the next
unfinished run; one of another method or other settings is never replaced (the
call stops before any work, :func:`check_out_results`).

Under torchrun (docs/distributed.md) each process classifies its share of the
runs (round-robin) and writes their files; every process returns the merged
result, in run order, and rank 0 alone writes ``summary.json``.
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

from pyrochar import distributed
from pyrochar.atomic import atomic_write_text
from pyrochar.errors import PyrocharError

from .mhd import ink_points, mhd_row
from .runs import Run, parse_run_spec, read_runs

__all__ = ["METHODS", "ClassifyResult", "RunResult", "classify"]

#: The methods :func:`classify` offers, with the score each picks by.
METHODS = {"model": "two_way", "mhd": "mhd"}
#: How each score picks a training image.
PICKS = {"mhd": "smallest", "one_way": "largest", "two_way": "largest"}
#: Version of the runNN.json format (a file of another version is recomputed). 2: the
#: model method's parse weights and log P(I_c) in the tempered model of its refits;
#: 3: its parses chosen in that model too (the k best of the parser's refined candidates).
RESULT_FORMAT = 3
MAX_STEPS = 10_000  # refinement steps, at most
MAX_CHUNK = 4096  # refits per refine call, at most (memory grows with it)


@dataclass
class RunResult:
    """The classification of one run.

    ``scores[name]`` is a (T, C) matrix: test item x training image (``mhd``: the
    modified Hausdorff distance, the smallest picked; ``one_way`` and ``two_way``:
    log-probabilities, the largest picked); ``choices`` (T,) the training index
    picked by the method's score, ``answers`` (T,) the right one. ``settings`` are
    the method's options (a stored result is reused only with the same).
    """

    run: str
    method: str
    settings: dict
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
        """Percent of test items given the wrong training image (by the method's score)."""
        return 100.0 * self.n_wrong / len(self.test)

    @property
    def errors(self) -> dict[str, float]:
        """The error (percent) each score would give, by score name."""
        answers = np.array(self.answers)
        return {name: 100.0 * float(np.mean(np.array(_choose(np.array(m), PICKS[name])) != answers))
                for name, m in self.scores.items()}

    def summary(self) -> dict:
        """The run's line of the summary (no scores)."""
        return {"run": self.run, "error": self.error, "errors": self.errors, "n_test": len(self.test),
                "n_wrong": self.n_wrong, "seconds": self.seconds, "resumed": self.resumed}

    def to_json(self) -> dict:
        """Everything, JSON-ready: ``format``, ``run``, ``method``, ``settings``,
        ``score`` (the one picked by), ``pick`` (per score: "smallest" or
        "largest"), ``training``, ``test``, ``answers``, ``choices``, ``correct``
        (T,) bools, ``scores``, ``error``, ``errors`` (per score), ``n_wrong``,
        ``seconds``, ``fingerprint``."""
        return {"format": RESULT_FORMAT, "run": self.run, "method": self.method, "settings": self.settings,
                "score": METHODS[self.method], "pick": {name: PICKS[name] for name in self.scores},
                "training": self.training, "test": self.test, "answers": self.answers,
                "choices": self.choices,
                "correct": [c == a for c, a in zip(self.choices, self.answers, strict=True)],
                "scores": self.scores, "error": self.error, "errors": self.errors, "n_wrong": self.n_wrong,
                "seconds": self.seconds, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: dict) -> RunResult:
        """A stored result (resumed=True); KeyError/TypeError if fields are missing."""
        return cls(run=data["run"], method=data["method"], settings=dict(data["settings"]),
                   training=list(data["training"]),
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
        """``method``, ``mean_error``, ``mean_errors`` (per score), ``n_runs``,
        ``seconds`` and per run ``runs`` (``run``, ``error``, ``errors``, ``n_test``,
        ``n_wrong``, ``seconds``, ``resumed``)."""
        names = self.runs[0].scores if self.runs else {}
        mean_errors = {n: float(np.mean([r.errors[n] for r in self.runs])) for n in names}
        return {"method": self.method, "mean_error": self.mean_error, "mean_errors": mean_errors,
                "n_runs": len(self.runs), "seconds": self.seconds, "runs": [r.summary() for r in self.runs]}


@dataclass
class _Scored:
    """What a method's scorer returns for one run."""

    scores: dict[str, np.ndarray]  # name -> (T, C)
    overlays: list[list[list[np.ndarray]]] | None = None  # [t][c]: strokes to draw over test item t


def _mhd_scores(run: Run, train: np.ndarray, test: np.ndarray, bar, settings: dict, model) -> _Scored:
    """The run's (T, C) modified Hausdorff distances; ``bar`` advances per test item."""
    bar.reset(total=len(test))
    bar.set_description(f"{run.name} test images")
    train_points = [ink_points(t) for t in train]
    rows = []
    for image in test:
        rows.append(mhd_row(ink_points(image), train_points))
        bar.update(1)
    return _Scored({"mhd": np.stack(rows)})


def _model_scores(run: Run, train: np.ndarray, test: np.ndarray, bar, settings: dict, model) -> _Scored:
    """The run's one-way and two-way scores (T, C) (:mod:`pyrochar.oneshot.refit`);
    ``bar`` advances per image parsed, then per parse refitted."""
    from . import refit

    k, steps, seed, chunk = settings["k"], settings["steps"], settings["seed"], settings["chunk"]
    weight = settings["image_weight"]
    bar.reset(total=len(train) + len(test))
    bar.set_description(f"{run.name} parsing images")
    train_parses = refit.parse_images(model, train, k, settings["parse_steps"], seed, bar, weight)
    test_parses = refit.parse_images(model, test, k, settings["parse_steps"], seed, bar, weight)
    n_refits = (sum(len(p.strokes) for p in train_parses) * len(test)
                + sum(len(p.strokes) for p in test_parses) * len(train))
    bar.reset(total=n_refits)
    bar.set_description(f"{run.name} refitting parses")
    forward = refit.refit(model, train_parses, train, test, steps, bar, chunk, weight)  # (C, T)
    backward = refit.refit(model, test_parses, test, train, steps, bar, chunk, weight)  # (T, C)
    one_way = forward.log_lik.T  # (T, C)
    marginals = np.array([p.log_marginal(weight) for p in train_parses])  # (C,) in the same tempered model
    overlays = [[forward.best_token_strokes[c][t] for c in range(len(train))] for t in range(len(test))]
    return _Scored({"one_way": one_way, "two_way": refit.two_way(one_way, backward.log_lik, marginals)},
                   overlays)


_SCORERS = {"mhd": _mhd_scores, "model": _model_scores}


def _choose(scores: np.ndarray, pick: str) -> list[int]:
    """The picked column per row of a (T, C) score matrix (the first on a tie)."""
    index = np.argmin(scores, axis=1) if pick == "smallest" else np.argmax(scores, axis=1)
    return [int(i) for i in index]


def _classify_run(run: Run, method: str, settings: dict, model, fingerprint: str, bar):
    """Score and classify one run: its RunResult, the images and the overlays."""
    start = time.perf_counter()
    train, test = run.images()  # (C, 105, 105), (T, 105, 105)
    scored = _SCORERS[method](run, train, test, bar, settings, model)
    choices = _choose(scored.scores[METHODS[method]], PICKS[METHODS[method]])
    result = RunResult(run=run.name, method=method, settings=settings, training=list(run.training),
                       test=list(run.test), answers=list(run.answers), choices=choices,
                       scores={k: v.tolist() for k, v in scored.scores.items()},
                       seconds=time.perf_counter() - start, fingerprint=fingerprint)
    return result, train, test, scored.overlays


def _stored(path: Path, method: str, settings: dict, fingerprint: str) -> RunResult | None:
    """The result stored at ``path`` if it is for this run (same files), method and settings."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != RESULT_FORMAT:
            warnings.warn(f"{path} is of an older format: the run is classified again", stacklevel=3)
            return None
        if data.get("method") != method or data.get("settings") != settings:
            return None  # refused before any work by check_out_results
        if data.get("fingerprint") != fingerprint:
            warnings.warn(f"{path} is for other files than the run now holds: the run is classified again",
                          stacklevel=3)
            return None
        return RunResult.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        warnings.warn(f"{path} is unreadable: the run is classified again", stacklevel=3)
        return None


def _differences(data: dict, method: str, settings: dict) -> str:
    """What differs between a stored result's method and settings and these (empty: none)."""
    if data.get("method") != method:
        return f"method {data.get('method')} there, {method} now"
    stored = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    said = []
    for key in sorted(set(stored) | set(settings)):
        if stored.get(key) == settings.get(key):
            continue
        said.append("another type model (weights_sha256)" if key == "weights_sha256"
                    else f"{key} {stored.get(key)} there, {settings.get(key)} now")
    return ", ".join(said)


def check_out_results(out: Path, runs: Sequence[Run], method: str, settings: dict) -> None:
    """Refuse, before any work, an ``out`` holding a result of one of ``runs`` for another
    method or other settings: classifying would replace it (hours of work, maybe).
    Results of an older format or unreadable ones are left to :func:`_stored` (redone
    with a warning)."""
    for run in runs:
        path = out / f"{run.name}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
            continue
        diff = _differences(data, method, settings)
        if diff:
            raise PyrocharError(f"--out {out} holds {path.name} of other settings ({diff}) that this "
                                "classification would replace; choose another --out, or remove the file "
                                "to classify the run again")


def _write_summary(out: Path, result: ClassifyResult) -> None:
    """``out/summary.json``: the runs classified so far (see :meth:`ClassifyResult.summary`)."""
    atomic_write_text(out / "summary.json", json.dumps(result.summary(), indent=1) + "\n")


def _tile(image: np.ndarray, cell: int, ink: int = 0):
    """A (105, 105) bool image as an RGB tile of ``cell`` px, ink grey level ``ink``."""
    from PIL import Image

    grey = Image.fromarray(np.where(image, ink, 255).astype(np.uint8), mode="L")
    return grey.resize((cell, cell), Image.NEAREST).convert("RGB")


def run_picture(result: RunResult, train: np.ndarray, test: np.ndarray, overlays=None, cell: int = 105):
    """Each test item beside the training image it was given, four items a row, and
    with ``overlays`` ([t][c] strokes, normalized units) a third tile: the test item
    in light grey under the strokes of the given class refitted to it. A green frame
    when right, red when wrong. Returns a PIL image."""
    from PIL import Image, ImageDraw

    from pyrochar.viz import STROKE_COLOURS, draw_character, splines_to_motor_polylines

    cols, gap, caption = 4, 12, 14
    n_tiles = 2 if overlays is None else 3
    item_w = n_tiles * cell + 4 * (n_tiles - 1)
    rows = -(-len(result.test) // cols)
    img = Image.new("RGB", (cols * (item_w + gap) + gap, rows * (cell + caption + gap) + gap), "white")
    draw = ImageDraw.Draw(img)
    for t, choice in enumerate(result.choices):
        r, c = divmod(t, cols)
        x, y = gap + c * (item_w + gap), gap + r * (cell + caption + gap)
        img.paste(_tile(test[t], cell), (x, y + caption))
        img.paste(_tile(train[choice], cell), (x + cell + 4, y + caption))
        if overlays is not None:
            img.paste(_tile(test[t], cell, ink=215), (x + 2 * (cell + 4), y + caption))
            curves = splines_to_motor_polylines(overlays[t][choice])
            draw_character(draw, curves, (x + 2 * (cell + 4), y + caption), cell, STROKE_COLOURS)
        colour = (0, 150, 0) if choice == result.answers[t] else (210, 0, 0)
        draw.rectangle([x - 2, y + caption - 2, x + item_w + 1, y + caption + cell + 1], outline=colour, width=2)
        draw.text((x, y), f"{Path(result.test[t]).stem} -> {Path(result.training[choice]).stem}", fill=colour)
    return img


def method_settings(method: str, model=None, k: int | None = None, steps: int | None = None, parse_steps: int | None = None,
                    seed: int = 0, chunk: int = 256, image_weight: float | None = None) -> dict:
    """The settings a method's result depends on (stored with it; a result is reused
    only with the same). ``"model"`` also records the type model's name and a hash
    of its weights."""
    if method not in METHODS:
        raise PyrocharError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "mhd":
        return {}
    import hashlib

    from pyrochar.checks import (
        check_model,
        check_nonnegative_int,
        check_positive_int,
        check_seed,
        check_weight,
    )

    if model is None:
        raise PyrocharError("method 'model' needs a type model: pass pyrochar.load_pretrained('full-ns') "
                            "(or a trained checkpoint), or use method='mhd'")
    check_model(model)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    from pyrochar.image import MAX_K

    from .refit import IMAGE_WEIGHT, REFIT_STEPS, K

    k = K if k is None else k
    steps = REFIT_STEPS if steps is None else steps
    image_weight = check_weight(IMAGE_WEIGHT if image_weight is None else image_weight, "image_weight")
    return {"model": model.name, "weights_sha256": digest.hexdigest(), "k": check_positive_int(k, "k", MAX_K),
            "steps": check_nonnegative_int(steps, "steps", MAX_STEPS),
            "parse_steps": None if parse_steps is None else check_nonnegative_int(parse_steps, "parse_steps",
                                                                                  MAX_STEPS),
            "seed": check_seed(seed, "seed"), "chunk": check_positive_int(chunk, "chunk", MAX_CHUNK),
            "image_weight": image_weight}


def classify(model, runs_dir: str | os.PathLike, runs: str | Sequence[int] | None = None,
             method: str = "model", out: str | os.PathLike | None = None, progress: bool = False,
             on_run_done: Callable[[RunResult], None] | None = None, k: int | None = None, steps: int | None = None,
             parse_steps: int | None = None, seed: int = 0, chunk: int = 256,
             image_weight: float | None = None) -> ClassifyResult:
    """Classify the test items of the runs in ``runs_dir`` (all, or ``runs``: run
    numbers or a spec like ``"1-20"``) with ``method``.

    ``"model"``: ``model`` (a type model, e.g. ``pyrochar.load_pretrained("full-ns")``)
    parses every image into its ``k`` best parses (None: ``refit.K``, 2; ``parse_steps`` refinement
    steps, the parser's default when None; ``seed``) and refits each parse to each
    image of the other side with ``steps`` optimizer steps (None: ``REFIT_STEPS``, 60), ``chunk`` candidates at
    a time, the image term weighted by ``image_weight`` in the choice of the parses, the refits and
    the scores (None: ``refit.IMAGE_WEIGHT``, 0.1; see :mod:`pyrochar.oneshot.refit`); it picks by
    the two-way score.
    ``"mhd"``: the modified Hausdorff baseline; ``model`` is unused (pass None).

    With ``out`` (a folder), results are written per run and reused by a later call
    (see the module's doc). ``progress`` shows bars over runs and over the images
    of a run; ``on_run_done(result)`` is called after each run, computed or reused
    (in a distributed run: after each of this process's runs).
    """
    from tqdm.auto import tqdm

    from pyrochar.checks import check_output_folder
    from pyrochar.viz import save_image

    settings = method_settings(method, model, k, steps, parse_steps, seed, chunk, image_weight)
    if isinstance(runs, int) and not isinstance(runs, bool):
        runs = [runs]  # one run number
    elif runs is not None and not isinstance(runs, (str, list, tuple)):
        raise PyrocharError(f"runs must be a string such as '1-20' or '3,5', or a list of run numbers; "
                            f"got {type(runs).__name__}")
    numbers = parse_run_spec(runs) if isinstance(runs, str) else runs
    selected = read_runs(runs_dir, numbers)  # every run checked before any work
    out = check_output_folder(out, "--out") if out is not None else None
    if out is not None:
        check_out_results(out, selected, method, settings)
    start = time.perf_counter()
    results = []
    mine = distributed.shard(selected)  # this process's runs (all of them in one process)
    progress = progress and distributed.is_root()
    with tqdm(total=0, disable=not progress, position=1, leave=False) as items, \
            tqdm(mine, desc="runs", unit="run", disable=not progress, position=0) as bar:
        for run in bar:
            fingerprint = run.fingerprint()
            result = _stored(out / f"{run.name}.json", method, settings, fingerprint) if out else None
            if result is None:
                result, train, test, overlays = _classify_run(run, method, settings, model, fingerprint, items)
                if out is not None:
                    save_image(run_picture(result, train, test, overlays), out / f"{run.name}.png", "--out")
                    atomic_write_text(out / f"{run.name}.json", json.dumps(result.to_json()) + "\n")
            results.append(result)
            bar.set_postfix(error=f"{result.error:.1f}%")
            if out is not None and distributed.world_size() == 1:
                _write_summary(out, ClassifyResult(method, results, time.perf_counter() - start))
            if on_run_done is not None:
                on_run_done(result)
    results = distributed.unshard(distributed.all_gather(results))  # every rank's runs, in run order
    final = ClassifyResult(method, results, time.perf_counter() - start)
    if out is not None and distributed.is_root():
        _write_summary(out, final)
    return final
