"""One-shot classification runs in the official layout: building and reading them.

The layout (Lake, Salakhutdinov & Tenenbaum 2015's 20 official runs use it)::

    <runs dir>/runNN/training/classJJ.png   one image per class (character)
    <runs dir>/runNN/test/itemKK.png        one image per test item
    <runs dir>/runNN/class_labels.txt       one line per test item:
                                            runNN/test/itemKK.png runNN/training/classJJ.png

Paths in ``class_labels.txt`` are relative to the folder holding the runs.

* :func:`build_runs` makes development runs from Omniglot's ``images_background``
  with the official construction (the rule is in :func:`plan_runs` and docs/oneshot.md).
* :func:`read_runs` reads runs (official or built), checking every line and file;
  :meth:`Run.images` reads a run's images.
* :func:`parse_run_spec` turns ``"1-20"`` or ``"1,3,5-7"`` into run numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pyrochar.atomic import STALE_AFTER_S, _process_alive
from pyrochar.data.drawing import MAX_STROKE_FILE_BYTES, read_regular_file
from pyrochar.errors import DataFormatError, PyrocharError
from pyrochar.image.io import MAX_FILE_BYTES, read_image

__all__ = [
    "LABELS_FILE",
    "MAX_CLASSES",
    "MAX_RUNS",
    "Run",
    "RunPlan",
    "build_runs",
    "plan_runs",
    "parse_run_spec",
    "read_runs",
]

#: The file naming each test item's training image, in every run folder.
LABELS_FILE = "class_labels.txt"
#: Characters (classes) per run in the official construction.
MAX_CLASSES = 20
#: Runs one folder can hold (run01 ... run99).
MAX_RUNS = 99
#: The provenance file written beside built runs (which characters and drawers).
PROVENANCE_FILE = "runs.json"

_RUN_NAME = re.compile(r"run(\d+)")
_CHARACTER_DIR = re.compile(r"character(\d+)")
_IMAGE_NAME = re.compile(r"(\d+)_(\d+)\.png")  # IIII_DD.png: global character id, drawer


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Run:
    """One run: its candidate training images and its test items with their answers.

    Paths are relative to ``root`` (the folder holding the runs), as in
    ``class_labels.txt``.
    """

    root: Path
    name: str  # "run01"
    training: tuple[str, ...]  # (C,) "run01/training/class01.png", ..., sorted
    test: tuple[str, ...]  # (T,) "run01/test/item01.png", ..., in class_labels.txt's order
    answers: tuple[int, ...]  # (T,) index into ``training`` of each test item's class

    @property
    def number(self) -> int:
        """The run's number (``run07`` -> 7)."""
        return int(self.name[3:])

    def path(self, relative: str) -> Path:
        """The file a path of ``class_labels.txt`` names."""
        return self.root.joinpath(*PurePosixPath(relative).parts)

    def fingerprint(self) -> str:
        """SHA-256 of the run's labels file and of every image it names (with their
        paths): a stored result is reused only for the very same run."""
        digest = hashlib.sha256(read_regular_file(self.path(f"{self.name}/{LABELS_FILE}"),
                                                  MAX_STROKE_FILE_BYTES))
        for rel in sorted(set(self.training) | set(self.test)):
            digest.update(rel.encode() + b"\0")
            digest.update(read_regular_file(self.path(rel), MAX_FILE_BYTES))
        return digest.hexdigest()

    def images(self) -> tuple[np.ndarray, np.ndarray]:
        """The training images (C, 105, 105) and test images (T, 105, 105), bool, True = ink
        (read by :func:`pyrochar.image.io.read_image`: Omniglot's PNGs exactly as they are)."""
        train = np.stack([read_image(self.path(p)) for p in self.training])
        test = np.stack([read_image(self.path(p)) for p in self.test])
        return train, test


def _labels_problem(labels: Path, line: int, reason: str) -> DataFormatError:
    return DataFormatError(labels, reason, line)


def _check_label_path(text: str, run: str, folder: str, labels: Path, line: int) -> str:
    """``text`` as ``run/folder/NAME.png`` (else a DataFormatError for this line)."""
    parts = PurePosixPath(text).parts
    if len(parts) != 3 or parts[0] != run or parts[1] != folder or not parts[2].lower().endswith(".png"):
        raise _labels_problem(labels, line, f"{text!r} is not a path {run}/{folder}/NAME.png "
                              f"(paths are relative to the folder holding the runs)")
    return "/".join(parts)


def _png_names(folder: Path) -> list[str]:
    """The ``.png`` file names in ``folder``, sorted; [] if it is missing."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())


def read_run(root: str | os.PathLike, name: str) -> Run:
    """Read run ``name`` (``"run01"``) of the folder ``root``, checking its labels.

    The classes are the ``.png`` files of ``name/training`` (at least 2); every line
    of ``class_labels.txt`` is ``name/test/ITEM.png name/training/CLASS.png``
    naming existing files, each test image on exactly one line. Any problem is one
    PyrocharError naming the file and line.
    """
    root = Path(root)
    folder = root / name
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise PyrocharError(f"{labels} does not exist: a run folder holds training/, test/ and "
                            f"{LABELS_FILE}")
    training = [f"{name}/training/{f}" for f in _png_names(folder / "training")]
    if len(training) < 2:
        raise PyrocharError(f"{folder / 'training'} holds {len(training)} .png image(s); a run needs "
                            "at least 2 classes (one training image each)")
    index = {p: i for i, p in enumerate(training)}
    try:
        text = read_regular_file(labels, MAX_STROKE_FILE_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise DataFormatError(labels, "not UTF-8 text") from None
    test, answers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise _labels_problem(labels, number, f"expected two paths (test image, training image), "
                                  f"found {len(fields)} field(s)")
        item = _check_label_path(fields[0], name, "test", labels, number)
        cls = _check_label_path(fields[1], name, "training", labels, number)
        for path in (item, cls):
            if not (root / path).is_file():
                raise _labels_problem(labels, number, f"{path} does not exist")
        if item in test:
            raise _labels_problem(labels, number, f"{item} is already on line "
                                  f"{_line_of(text, item)}; each test image has one line")
        test.append(item)
        answers.append(index[cls])
    if not test:
        raise DataFormatError(labels, "no test items: expected lines 'TEST_IMAGE TRAINING_IMAGE'")
    unlabelled = sorted(set(f"{name}/test/{f}" for f in _png_names(folder / "test")) - set(test))
    if unlabelled:
        raise PyrocharError(f"{unlabelled[0]} has no line in {labels} ({len(unlabelled)} test "
                            "image(s) unlabelled): add its line or remove the image")
    return Run(root, name, tuple(training), tuple(test), tuple(answers))


def _line_of(text: str, path: str) -> int:
    """The 1-based number of the first line of ``text`` whose first field is ``path``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.split()[:1] == [path]:
            return number
    return 0


def run_names(root: str | os.PathLike) -> dict[int, str]:
    """The run folders of ``root``: number -> name (``{1: "run01", ...}``)."""
    root = Path(root)
    if not root.is_dir():
        raise PyrocharError(f"{root} is not a folder of runs (runNN/ folders); build development runs "
                            "with `pyrochar data oneshot-runs`")
    found = {}
    for p in root.iterdir():
        match = _RUN_NAME.fullmatch(p.name)
        if match and p.is_dir():
            found[int(match.group(1))] = p.name
    if not found:
        raise PyrocharError(f"{root} holds no runNN/ folders; give the folder holding the runs, or build "
                            "development runs with `pyrochar data oneshot-runs`")
    return dict(sorted(found.items()))


def read_runs(root: str | os.PathLike, runs: Sequence[int] | None = None) -> list[Run]:
    """Read the runs of ``root`` (all, or those numbered in ``runs``), in order."""
    names = run_names(root)
    wanted = sorted(names) if runs is None else list(runs)
    missing = [n for n in wanted if n not in names]
    if missing:
        have = ", ".join(names[n] for n in list(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise PyrocharError(f"{root} holds no run {missing[0]} (it holds {len(names)} run(s): {have}); "
                            "choose others with --runs")
    return [read_run(root, names[n]) for n in wanted]


def parse_run_spec(text: str, name: str = "--runs") -> list[int]:
    """``"1-20"``, ``"3"`` or ``"1,3,5-7"`` -> sorted distinct run numbers (1 to MAX_RUNS)."""
    numbers: set[int] = set()
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise PyrocharError(f"{name} {text!r}: write run numbers like 1-20, 3 or 1,3,5-7")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if not 1 <= lo <= hi <= MAX_RUNS:
            raise PyrocharError(f"{name} {text!r}: run numbers go from 1 to {MAX_RUNS}, low to high")
        numbers.update(range(lo, hi + 1))
    return sorted(numbers)


# ----------------------------------------------------------------- building


@dataclass(frozen=True)
class RunPlan:
    """What one built run holds: its alphabet, characters and drawers."""

    name: str  # "run01"
    alphabet: str
    characters: tuple[str, ...]  # (C,) character folder of class01, class02, ...
    training: tuple[Path, ...]  # (C,) source image of each class (the training drawer's)
    test: tuple[Path, ...]  # (C,) source image of test item01, item02, ... (the test drawer's)
    test_classes: tuple[int, ...]  # (C,) class index (0-based) of test item01, item02, ...
    training_drawer: int
    test_drawer: int

    def labels_text(self) -> str:
        """The run's ``class_labels.txt``."""
        return "".join(f"{self.name}/test/item{k + 1:02d}.png {self.name}/training/class{c + 1:02d}.png\n"
                       for k, c in enumerate(self.test_classes))

    def provenance(self) -> dict:
        """Where each image came from (JSON-ready)."""
        return {"run": self.name, "alphabet": self.alphabet, "characters": list(self.characters),
                "training_drawer": self.training_drawer, "test_drawer": self.test_drawer,
                "test_classes": [c + 1 for c in self.test_classes]}


def images_root(source: str | os.PathLike, alphabets: Sequence[str]) -> Path:
    """The folder holding the alphabets' image folders: ``source/images_background``,
    or ``source`` itself when it holds the alphabets' folders."""
    source = Path(source)
    if not source.is_dir():
        raise PyrocharError(f"--source {source} is not a folder; give the folder holding images_background/")
    if (source / "images_background").is_dir():
        return source / "images_background"
    if alphabets and all((source / a).is_dir() for a in alphabets):
        return source
    if any(_holds_characters(d) for d in source.iterdir() if d.is_dir()):
        return source  # the alphabets' folders themselves: plan_runs names the unknown alphabet
    raise PyrocharError(f"--source {source} holds no images_background/ folder (the official "
                        "images_background.zip unpacked); give the folder holding it")


def _holds_characters(folder: Path) -> bool:
    """Whether ``folder`` looks like an alphabet's: it holds ``characterNN`` folders."""
    try:
        return any(_CHARACTER_DIR.fullmatch(d.name) and d.is_dir() for d in folder.iterdir())
    except OSError:
        return False


def character_images(alphabet_dir: Path) -> dict[str, dict[int, Path]]:
    """The images of an alphabet's folder: character folder -> drawer -> file
    (``characterNN/IIII_DD.png``, DD = drawer); characters without images are left out."""
    found: dict[str, dict[int, Path]] = {}
    for char_dir in sorted(alphabet_dir.iterdir()):
        if not (_CHARACTER_DIR.fullmatch(char_dir.name) and char_dir.is_dir()):
            continue
        drawers = {}
        for f in sorted(char_dir.iterdir()):
            match = _IMAGE_NAME.fullmatch(f.name)
            if match and f.is_file():
                drawers[int(match.group(2))] = f
        if drawers:
            found[char_dir.name] = drawers
    return found


def plan_runs(root: Path, alphabets: Sequence[str], n_runs: int, seed: int) -> list[RunPlan]:
    """The official construction, deterministic for ``seed``:

    run i (1-based) takes alphabet ``alphabets[(i - 1) % len(alphabets)]`` and draws,
    with NumPy's ``default_rng([seed, i])`` (so run i does not depend on how many
    runs are built): min(20, characters in the alphabet) of its characters without
    replacement (class01 is the first drawn), two different drawers among those who
    drew all of them (the first gives the training images, the second the test
    images), and a random order of the test items.
    """
    for alphabet in alphabets:
        if alphabet in (".", "..") or "/" in alphabet or "\\" in alphabet:
            raise PyrocharError(f"--alphabets: {alphabet!r} is not an alphabet's name; give the names of "
                                f"the alphabets' folders in {root} (e.g. Latin), not paths")
    if len(set(alphabets)) != len(alphabets):
        raise PyrocharError("--alphabets names an alphabet twice; name each once")
    index = {}
    for alphabet in alphabets:
        folder = root / alphabet
        if not folder.is_dir():
            have = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
            raise PyrocharError(f"no alphabet {alphabet!r} in {root} (it holds: {have})")
        index[alphabet] = character_images(folder)
        if len(index[alphabet]) < 2:
            raise PyrocharError(f"alphabet {alphabet} has {len(index[alphabet])} character(s) with images "
                                f"in {folder}; a run needs at least 2: leave it out of --alphabets")
    return [_plan_run(i, alphabets[(i - 1) % len(alphabets)], index[alphabets[(i - 1) % len(alphabets)]],
                      seed) for i in range(1, n_runs + 1)]


def _plan_run(i: int, alphabet: str, chars: dict[str, dict[int, Path]], seed: int) -> RunPlan:
    """Run number ``i`` drawn from one alphabet's images (see :func:`plan_runs`)."""
    rng = np.random.default_rng([seed, i])
    names = sorted(chars)
    picked = [names[j] for j in rng.choice(len(names), size=min(MAX_CLASSES, len(names)), replace=False)]
    common = sorted(set.intersection(*(set(chars[c]) for c in picked)))
    if len(common) < 2:
        raise PyrocharError(f"run{i:02d}: fewer than 2 drawers of {alphabet} drew all of its "
                            f"{len(picked)} characters; the images are incomplete")
    train_drawer, test_drawer = (int(d) for d in rng.choice(common, size=2, replace=False))
    order = tuple(int(c) for c in rng.permutation(len(picked)))
    return RunPlan(
        name=f"run{i:02d}", alphabet=alphabet, characters=tuple(picked),
        training=tuple(chars[c][train_drawer] for c in picked),
        test=tuple(chars[picked[c]][test_drawer] for c in order),
        test_classes=order, training_drawer=train_drawer, test_drawer=test_drawer,
    )


def _remove_stale_partials(parent: Path, name: str) -> None:
    """Delete the partial folders (``.<name>.<pid>.*.partial``) of builds whose process is gone."""
    pattern = re.compile(r"^\." + re.escape(name) + r"\.(\d+)\.[A-Za-z0-9_]+\.partial$")
    for entry in parent.iterdir() if parent.is_dir() else ():
        match = pattern.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            old = time.time() - entry.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if old or not _process_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _check_out_free(out: Path) -> None:
    """``out`` is missing or an empty folder (built runs never overwrite anything)."""
    if out.exists() and not out.is_dir():
        raise PyrocharError(f"--out {out} is a file; give a folder to create (missing or empty)")
    if out.exists() and any(out.iterdir()):
        raise PyrocharError(f"--out {out} already exists and is not an empty folder; remove it or "
                            "choose another folder")


def write_runs(plans: Sequence[RunPlan], out: Path, meta: dict) -> None:
    """Copy the planned images into ``out`` in the official layout, atomically: the
    runs are written in a partial folder beside ``out`` that replaces it at the end."""
    out = Path(out)
    _check_out_free(out)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(parent, out.name)
        # made with mkdir, not tempfile.mkdtemp: the runs folder gets the user's usual
        # permissions (umask), not mkdtemp's private 0700
        tmp = parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        tmp.mkdir()
    except OSError as e:
        raise PyrocharError(f"cannot write {out}: {e.strerror or e}") from None
    try:
        for plan in plans:
            run = tmp / plan.name
            (run / "training").mkdir(parents=True)
            (run / "test").mkdir()
            for c, src in enumerate(plan.training):
                shutil.copyfile(src, run / "training" / f"class{c + 1:02d}.png")
            for k, src in enumerate(plan.test):
                shutil.copyfile(src, run / "test" / f"item{k + 1:02d}.png")
            (run / LABELS_FILE).write_text(plan.labels_text(), encoding="utf-8")
        provenance = {**meta, "runs": [p.provenance() for p in plans]}
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
        _check_out_free(out)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as e:
        raise PyrocharError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_runs(source: str | os.PathLike, alphabets: Sequence[str], n_runs: int, seed: int,
               out: str | os.PathLike) -> list[RunPlan]:
    """Build ``n_runs`` development runs from Omniglot images into ``out`` (see
    :func:`plan_runs` for the rule); returns the plans. Nothing is written on error."""
    from pyrochar.checks import check_int, check_seed

    n_runs = check_int(n_runs, "--runs", 1, MAX_RUNS)
    seed = check_seed(seed, "--seed")
    alphabets = list(alphabets)
    if not alphabets:
        raise PyrocharError("--alphabets names no alphabet; give e.g. --alphabets Greek,Latin")
    _check_out_free(Path(out))
    root = images_root(source, alphabets)
    plans = plan_runs(root, alphabets, n_runs, seed)
    meta = {"source": str(root), "alphabets": alphabets, "seed": seed, "n_runs": n_runs}
    write_runs(plans, Path(out), meta)
    return plans
