"""Fuzz suite: hostile drawing files fed to the reader, ``score``, ``complete`` and ``data show``.

Every input must get an answer (its drawings, or one :class:`DataFormatError` line
naming the file) without a traceback, within bounded memory, and the other files of a
run must still be processed. The strategies here are also run by
``benchmarks/fuzz_inputs.py``, which prints the figures of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrochar import splines
from pyrochar.data.drawing import MAX_JSON_FILE_BYTES, MAX_STROKE_FILE_BYTES
from pyrochar.data.jsonio import read_drawing_file
from pyrochar.errors import DataFormatError

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ strategies

#: Numbers chosen to hurt: far off the canvas, overflowing, tiny, at the limit.
HOSTILE_NUMBERS = [1e300, -1e300, 1e12, -1e12, 1e16, 1e-300, 5e-324, -0.0, 1000.0, -1000.0001]

_number = st.one_of(
    st.floats(-20, 125),  # on or near the canvas
    st.sampled_from(HOSTILE_NUMBERS),
    st.floats(),  # anything, NaN and infinities included
)
_wild = st.lists(st.lists(st.tuples(_number, _number), min_size=1, max_size=12), min_size=1, max_size=6)


def _uniform_strokes(seed: int, sizes: list[int]) -> list[list[list[float]]]:
    """Strokes of the given point counts, points uniform on the 105 px canvas."""
    rng = np.random.default_rng(seed)
    return [np.column_stack([rng.uniform(0, 105, k), -rng.uniform(0, 105, k)]).tolist() for k in sizes]


@st.composite
def _scribbles(draw) -> list:
    """1-3 strokes zig-zagging across the canvas, 500-3,000 points in all."""
    total, parts = draw(st.integers(500, 3000)), draw(st.integers(1, 3))
    return _uniform_strokes(draw(st.integers(0, 2**32 - 1)), [total // parts] * parts)


@st.composite
def _many_strokes(draw) -> list:
    """90-120 short strokes (the limit is 100)."""
    n = draw(st.integers(90, 120))
    return _uniform_strokes(draw(st.integers(0, 2**32 - 1)), [draw(st.integers(1, 4))] * n)


@st.composite
def _many_points(draw) -> list:
    """One stroke at the 10,000-point limit, or three that pass 20,000 points together."""
    sizes = draw(st.sampled_from([[9_999], [10_000], [10_001], [7_000] * 3]))
    return _uniform_strokes(draw(st.integers(0, 2**32 - 1)), sizes)


#: Hostile drawings (lists of strokes of [x, y] points), by kind.
HOSTILE_DRAWINGS = {
    "wild numbers": _wild,
    "long scribbles": _scribbles(),
    "many strokes": _many_strokes(),
    "many points": _many_points(),
}


def drawing_text(strokes: list, fmt: str) -> str:
    """A drawing as a bare JSON list of strokes (``fmt="json"``) or an Omniglot .txt file."""
    if fmt == "json":
        return json.dumps(strokes)  # NaN and infinities become NaN / Infinity tokens
    body = "".join("".join(f"{x!r},{y!r},0\n" for x, y in s) + "BREAK\n" for s in strokes)
    return "START\n" + body


@st.composite
def _deep_json(draw) -> str:
    depth = draw(st.integers(1_000, 200_000))
    inner = "[" * depth + "]" * depth
    if draw(st.booleans()):
        return '{"format": "pyrochar-drawing", "version": 1, "strokes": ' + inner + "}"
    return inner


_big_ints = st.integers(300, 20_000).map(lambda k: "[[[1" + "0" * k + ", 2], [3, 4]]]")
_odd_tokens = st.sampled_from(["1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity"]).map(
    lambda tok: f"[[[{tok}, -10], [20, -30]]]"
)


@st.composite
def _cut_json(draw) -> str:
    text = json.dumps({"format": "pyrochar-drawing", "version": 1, "strokes": draw(_wild)})
    return text[: draw(st.integers(0, len(text)))]


#: Hostile file contents (text or bytes), by kind; written as .json or .txt.
HOSTILE_CONTENTS = {
    "deep nesting": _deep_json(),
    "huge integers": _big_ints,
    "overflowing tokens": _odd_tokens,
    "cut JSON": _cut_json(),
    "random bytes": st.binary(max_size=400),
}

#: Files that are not regular drawing files of an acceptable size.
NON_REGULAR = ["fifo", "link to /dev/zero", "folder", "dangling link", "oversized"]


def make_non_regular(folder: Path, kind: str, suffix: str = ".json") -> Path:
    """Create a file of ``kind`` (one of :data:`NON_REGULAR`) in ``folder``."""
    path = folder / f"{kind.replace(' ', '_').replace('/', '')}{suffix}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "dangling link":
        path.symlink_to(folder / "nowhere")
    else:
        with path.open("wb") as f:  # sparse: no disk used
            f.truncate(max(MAX_JSON_FILE_BYTES, MAX_STROKE_FILE_BYTES) + 1)
    return path


def write_input(folder: Path, content: str | bytes, suffix: str) -> Path:
    """Write ``content`` to a new file of ``folder`` with the given suffix."""
    fd, name = tempfile.mkstemp(dir=folder, suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return Path(name)


def answer(path: Path) -> str | None:
    """Read ``path`` and fit its drawings as every command does: None when accepted,
    else the one-line error (which must name the file). Any other exception escapes."""
    try:
        drawings = read_drawing_file(path)
    except DataFormatError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message, message
        return message
    for d in drawings:
        for cp in splines.preprocess_drawing(d.strokes):
            assert 1 <= len(cp) <= splines.MAX_CONTROL_POINTS and np.isfinite(cp).all()
    return None


def peak_rss_of_cli(args: list[str], timeout: float = 600) -> tuple[int, int, str]:
    """Run ``pyrochar ARGS`` in a child process: (exit status, peak RSS in KiB, output).

    A wrapper process runs the command and reads ``RUSAGE_CHILDREN``, so the figure
    is that command's alone.
    """
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout + r.stderr)\n"
        "print(f'@@ {r.returncode} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "pyrochar_cli.main", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )
    text, _, tail = out.stdout.rpartition("@@ ")
    code, rss = tail.split()
    return int(code), int(rss), text


def scribble_commands(path: Path, png: Path) -> list[list[str]]:
    """``data show``, ``score`` and ``complete`` of the drawing file ``path`` (full-ns)."""
    return [
        ["data", "show", "--file", str(path), "-o", str(png)],
        ["score", "--model", "full-ns", str(path)],
        ["complete", str(path), "--model", "full-ns", "-n", "2", "-o", str(png)],
    ]


# ----------------------------------------------------------------------- tests

_FUZZ = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@settings(_FUZZ, max_examples=80)
@given(strokes=st.one_of(*HOSTILE_DRAWINGS.values()), fmt=st.sampled_from(["json", "txt"]))
def test_the_reader_answers_every_hostile_drawing(tmp_path, strokes, fmt) -> None:
    answer(write_input(tmp_path, drawing_text(strokes, fmt), "." + fmt))


@settings(_FUZZ, max_examples=60)
@given(content=st.one_of(*HOSTILE_CONTENTS.values()), suffix=st.sampled_from([".json", ".txt"]))
def test_the_reader_answers_every_hostile_file(tmp_path, content, suffix) -> None:
    answer(write_input(tmp_path, content, suffix))


def _invoke(args: list, cache: Path):
    """Run the CLI in this process; return (exit code, output); a traceback fails."""
    from pyrochar_cli.main import main

    result = CliRunner().invoke(
        main, [str(a) for a in args], catch_exceptions=False,
        env={"PYROCHAR_CACHE": str(cache), "PYROCHAR_DATA": str(cache / "no-data")},
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _check_commands(folder: Path, bad: Path, good: Path) -> None:
    """``data show``, ``complete`` and ``score`` (with a good file beside) on ``bad``."""
    problem = answer(bad)
    out_png = folder / "out.png"
    for args in (["data", "show", "--file", bad, "-o", out_png],
                 ["complete", bad, "--model", "bpl", "-n", "1", "-o", out_png]):
        code, output = _invoke(args, folder / "cache")
        if problem is not None:  # refused by the reader: one line naming the file
            assert code == 1 and f"Error: {problem}" in output, output
        else:
            assert code in (0, 1) and (code == 0 or f"Error: {bad}" in output), output
    code, output = _invoke(["score", "--model", "bpl", "--per-drawing", good, bad], folder / "cache")
    assert code == 0, output
    assert str(good) in output  # the good file was scored whatever the other one holds
    if problem is not None:
        assert "skipped 1 bad file(s):" in output and problem in output


@pytest.fixture(scope="module")
def good_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.json"
    path.write_text(json.dumps([[[20, -20], [40, -40], [60, -30]], [[30, -70], [80, -70]]]))
    return path


@settings(_FUZZ, max_examples=12)
@given(strokes=st.one_of(*HOSTILE_DRAWINGS.values()), fmt=st.sampled_from(["json", "txt"]))
def test_commands_answer_hostile_drawings(tmp_path, good_file, strokes, fmt) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    _check_commands(folder, write_input(folder, drawing_text(strokes, fmt), "." + fmt), good_file)


@settings(_FUZZ, max_examples=8)
@given(content=st.one_of(*HOSTILE_CONTENTS.values()))
def test_commands_answer_hostile_files(tmp_path, good_file, content) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    _check_commands(folder, write_input(folder, content, ".json"), good_file)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symbolic links")
@pytest.mark.parametrize("kind", NON_REGULAR)
def test_commands_answer_non_regular_files(tmp_path, good_file, kind) -> None:
    """In a child process with a timeout, so that a blocking read fails the test."""
    bad = make_non_regular(tmp_path, kind)
    out = subprocess.run(
        [sys.executable, "-m", "pyrochar_cli.main", "score", "--model", "bpl", str(good_file),
         str(bad)], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYROCHAR_CACHE": str(tmp_path / "cache")},
    )
    if kind == "folder":  # click refuses a folder before reading: a usage error
        assert out.returncode == 2 and "is a directory" in out.stderr
        return
    if kind == "dangling link":
        assert out.returncode == 2 and "does not exist" in out.stderr
        return
    assert out.returncode == 0, out.stderr[-2000:]
    assert "skipped 1 bad file(s):" in out.stderr and f"  {bad}: " in out.stderr
    assert "Traceback" not in out.stderr
    assert answer(bad) is not None


def test_a_bad_file_in_a_folder_is_named_and_the_others_are_read(run, tmp_path) -> None:
    char = tmp_path / "strokes_background" / "Test" / "character01"
    char.mkdir(parents=True)
    strokes = _uniform_strokes(0, [30, 40])
    for i in range(1, 4):
        (char / f"0001_{i:02d}.txt").write_text(drawing_text(strokes, "txt"))
    (char / "0001_04.txt").write_text(drawing_text([[[10.0, -10.0], [1e300, -10.0]]], "txt"))
    (char / "0001_05.txt").write_text(drawing_text(_uniform_strokes(1, [100] * 101), "txt"))
    os.mkfifo(char / "0001_06.txt")
    result = run("data", "stats", "--source", tmp_path)
    assert "drawings read             3" in result.output
    assert "skipped 3 bad file(s):" in result.output
    for i in (4, 5, 6):
        assert f"  {char / f'0001_{i:02d}.txt'}: " in result.output


def test_a_3000_point_scribble_is_answered_in_bounded_memory(tmp_path) -> None:
    """Peak RSS of whole commands on one 3,000-point stroke zig-zagging across the
    canvas (over 150,000 px of path): well under 1 GiB (the issue saw over 9 GB)."""
    path = tmp_path / "scribble.json"
    path.write_text(drawing_text(_uniform_strokes(7, [3000]), "json"))
    png = tmp_path / "out.png"
    for args in scribble_commands(path, png):
        code, rss_kib, output = peak_rss_of_cli(args)
        assert code == 0, output[-2000:]
        assert rss_kib < 1024 * 1024, (args[0], rss_kib)
