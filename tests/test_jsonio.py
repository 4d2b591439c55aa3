"""The pyrochar JSON drawing format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrochar.data.drawing import Drawing
from pyrochar.data.jsonio import (
    read_drawing_file,
    read_drawings_json,
    read_drawings_json_with_labels,
    write_drawings_json,
)
from pyrochar.errors import DataFormatError, PyrocharError


def _drawing(seed: int, with_t: bool = True) -> Drawing:
    rng = np.random.default_rng(seed)
    strokes = []
    for n in (1, 5, 17):
        s = np.column_stack(
            [
                rng.uniform(0, 105, n),
                -rng.uniform(0, 105, n),
                np.arange(n) * 13.0 if with_t else np.zeros(n),
            ]
        )
        strokes.append(s)
    return Drawing(strokes=strokes, alphabet="Greek", character=1)


def _assert_same_strokes(a: Drawing, b: Drawing) -> None:
    assert len(a.strokes) == len(b.strokes)
    for sa, sb in zip(a.strokes, b.strokes, strict=True):
        assert sb.dtype == np.float64 and sb.shape == sa.shape
        np.testing.assert_array_equal(sa, sb)


def _write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_round_trip_many(tmp_path: Path) -> None:
    drawings = [_drawing(0), _drawing(1, with_t=False), _drawing(2)]
    f = tmp_path / "out.json"
    write_drawings_json(f, drawings, labels=["first", None, "dritte ü"])
    back, labels = read_drawings_json_with_labels(f)
    assert labels == ["first", None, "dritte ü"]
    assert len(back) == 3
    for a, b in zip(drawings, back, strict=True):
        _assert_same_strokes(a, b)
    assert back[1].source == f"{f}::drawings[1]"
    assert back[0].alphabet is None  # Omniglot labels are not part of the format
    doc = json.loads(f.read_text())
    assert doc["format"] == "pyrochar-drawings" and doc["version"] == 1
    assert len(doc["drawings"][1]["strokes"][0][0]) == 2  # all t == 0: written as [x, y]
    assert len(doc["drawings"][0]["strokes"][0][0]) == 3


def test_round_trip_single(tmp_path: Path) -> None:
    d = _drawing(3)
    f = tmp_path / "one.json"
    write_drawings_json(f, d, labels=["mine"])
    doc = json.loads(f.read_text())
    assert doc["format"] == "pyrochar-drawing" and doc["label"] == "mine"
    (back,) = read_drawings_json(f)
    _assert_same_strokes(d, back)
    assert back.source == str(f)
    assert read_drawing_file(f)[0].n_strokes == 3


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    f = tmp_path / "out.json"
    write_drawings_json(f, [_drawing(0)])
    write_drawings_json(f, [_drawing(1), _drawing(2)])
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert len(read_drawings_json(f)) == 2


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    f = tmp_path / "out.json"
    write_drawings_json(f, [_drawing(0)])
    before = f.read_bytes()
    bad = Drawing(strokes=[np.array([[1.0, np.nan, 0.0]])])
    with pytest.raises(PyrocharError, match="non-finite"):
        write_drawings_json(f, [_drawing(1), bad])
    assert f.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_label_count_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_drawings_json(tmp_path / "x.json", [_drawing(0)], labels=["a", "b"])


def test_bare_list_of_strokes(tmp_path: Path) -> None:
    f = _write(tmp_path / "bare.json", [[[1, -2], [3.5, -4]], [[5, -6, 70]]])
    (d,) = read_drawings_json(f)
    np.testing.assert_array_equal(d.strokes[0], [[1, -2, 0], [3.5, -4, 0]])
    np.testing.assert_array_equal(d.strokes[1], [[5, -6, 70]])
    assert (d.subset, d.alphabet, d.character, d.character_id, d.drawer) == (None,) * 5


def test_list_items_may_repeat_header(tmp_path: Path) -> None:
    doc = {
        "format": "pyrochar-drawings",
        "version": 1,
        "drawings": [{"format": "pyrochar-drawing", "version": 1, "strokes": [[[1, 2]]]}],
    }
    assert len(read_drawings_json(_write(tmp_path / "x.json", doc))) == 1


def _many(*strokes_lists) -> dict:
    return {
        "format": "pyrochar-drawings",
        "version": 1,
        "drawings": [{"strokes": s} for s in strokes_lists],
    }


GOOD_STROKES = [[[1, 2], [3, 4]]]

BAD_DOCS = [
    # (id, document, expected JSON path in the message, words in the message)
    (
        "point-too-long",
        _many(GOOD_STROKES, GOOD_STROKES, [[[1, 2], [1, 2, 3, 4]]]),
        "drawings[2].strokes[0][1]",
        "[x, y]",
    ),
    (
        "point-too-short",
        _many([[[1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [7]]]),
        "drawings[0].strokes[0][5]",
        "[x, y]",
    ),
    (
        "empty-stroke",
        _many(GOOD_STROKES, [[[1, 2]], []]),
        "drawings[1].strokes[1]",
        "at least one point",
    ),
    ("no-strokes", _many([]), "drawings[0].strokes", "at least one stroke"),
    ("string-coordinate", _many([[[1, "2"]]]), "drawings[0].strokes[0][0]", "numbers"),
    ("bool-coordinate", _many([[[True, 2]]]), "drawings[0].strokes[0][0]", "numbers"),
    ("stroke-not-list", _many([{"x": 1}]), "drawings[0].strokes[0]", "list of points"),
    (
        "strokes-missing",
        {"format": "pyrochar-drawings", "version": 1, "drawings": [{}]},
        "drawings[0].strokes",
        "missing",
    ),
    (
        "drawings-not-list",
        {"format": "pyrochar-drawings", "version": 1, "drawings": 3},
        "drawings",
        "list of drawings",
    ),
    ("bad-format", {"format": "svg", "strokes": GOOD_STROKES}, "format", "pyrochar-drawing"),
    (
        "bad-version",
        {"format": "pyrochar-drawing", "version": 2, "strokes": GOOD_STROKES},
        "version",
        "knows version 1, got the number 2",
    ),
    (
        "bad-label",
        {"format": "pyrochar-drawing", "version": 1, "strokes": GOOD_STROKES, "label": 5},
        "label",
        "string",
    ),
    (
        "single-point-wrong",
        {"format": "pyrochar-drawing", "version": 1, "strokes": [[[1, 2]], [[1, 2], [3]]]},
        "strokes[1][1]",
        "[x, y]",
    ),
    ("bare-empty-stroke", [[[1, 2]], []], "[1]", "at least one point"),
    ("top-level-number", 42, "$", "JSON object"),
]


@pytest.mark.parametrize(
    ("doc", "where", "words"), [b[1:] for b in BAD_DOCS], ids=[b[0] for b in BAD_DOCS]
)
def test_structure_errors_name_file_and_json_path(
    tmp_path: Path, doc, where: str, words: str
) -> None:
    f = _write(tmp_path / "bad.json", doc)
    with pytest.raises(DataFormatError) as info:
        read_drawings_json(f)
    err = info.value
    assert err.path == str(f)
    assert err.reason.startswith(f"{where}: ")
    assert words in err.reason
    assert str(f) in str(err)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers(tmp_path: Path, token: str) -> None:
    f = tmp_path / "nan.json"
    f.write_text(
        '{"format": "pyrochar-drawing", "version": 1, "strokes": [[[1, 2], [3, TOKEN]]]}'.replace(
            "TOKEN", token
        )
    )
    with pytest.raises(DataFormatError, match=r"strokes\[0\]\[1\]: .*finite"):
        read_drawings_json(f)


def test_not_json(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text('{\n  "format": "pyrochar-drawing",\n  "strokes": [[[1, 2]]\n}\n')
    with pytest.raises(DataFormatError, match="not valid JSON") as info:
        read_drawings_json(f)
    assert info.value.line == 4


def test_not_text(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(DataFormatError, match="not a text file"):
        read_drawings_json(f)


def test_empty_drawing_list(tmp_path: Path) -> None:
    f = _write(tmp_path / "x.json", {"format": "pyrochar-drawings", "version": 1, "drawings": []})
    with pytest.raises(DataFormatError, match="no drawings"):
        read_drawings_json(f)


def test_read_drawing_file_dispatch(tmp_path: Path, fixture_root: Path) -> None:
    txt = fixture_root / "strokes_background" / "Latin" / "character01" / "0683_01.txt"
    (d,) = read_drawing_file(txt)
    assert d.alphabet == "Latin" and d.drawer == 1
    j = tmp_path / "d.JSON"
    write_drawings_json(j, d)
    (back,) = read_drawing_file(j)
    _assert_same_strokes(d, back)
    png = tmp_path / "d.png"
    png.write_bytes(b"\x89PNG")
    with pytest.raises(DataFormatError, match=r"\.json.*\.txt"):
        read_drawing_file(png)
    with pytest.raises(PyrocharError, match="no such file"):
        read_drawing_file(tmp_path / "missing.json")


# x, y within the input limits (±1,000 px); t is not limited.
_coord = st.floats(allow_nan=False, allow_infinity=False, min_value=-1000, max_value=1000)
_time = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
_strokes = st.lists(
    st.lists(st.tuples(_coord, _coord, _time), min_size=1, max_size=5), min_size=1, max_size=3
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_strokes, min_size=1, max_size=3))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, drawings) -> None:
    f = tmp_path_factory.mktemp("rt") / "d.json"
    originals = [Drawing(strokes=[np.array(s, dtype=np.float64) for s in d]) for d in drawings]
    write_drawings_json(f, originals)
    back = read_drawings_json(f)
    for a, b in zip(originals, back, strict=True):
        _assert_same_strokes(a, b)


# ----------------------------------------------------------- hostile files (issue 11)


def test_a_400_digit_integer_is_a_clear_error_not_an_overflow(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_text('[[[1' + "0" * 400 + ', 2], [3, 4]]]')
    with pytest.raises(DataFormatError, match=r"big\.json: \[0\]\[0\]: .*finite.*too large"):
        read_drawing_file(f)


def test_deeply_nested_json_is_a_clear_error_not_a_recursion_error(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match=r"deep\.json: .*nested too deeply"):
        read_drawing_file(f)


def test_a_file_over_the_byte_limit_is_refused_unread(tmp_path: Path) -> None:
    from pyrochar.data.drawing import MAX_JSON_FILE_BYTES

    f = tmp_path / "huge.json"
    with f.open("wb") as out:  # sparse: no disk used, but larger than the limit
        out.truncate(MAX_JSON_FILE_BYTES + 1)
    with pytest.raises(DataFormatError, match=rf"huge\.json: .*larger than {MAX_JSON_FILE_BYTES:,} bytes"):
        read_drawing_file(f)


@pytest.mark.parametrize(
    "strokes, words",
    [
        ([[[10, -10], [1e12, -10]]], r"stroke 1, point 2: x = 1e\+12 px is far off"),
        ([[[10, -10], [20, -1e300]]], r"y = -1e\+300 px is far off"),
        ([[[10, -10], [20, -20]]] * 101, r"101 strokes in the drawing; at most 100"),
        ([[[i % 50, -(i % 7)] for i in range(10_001)]], r"10,001 points in the stroke; at most 10,000"),
        ([[[i % 50, -(i % 7)] for i in range(8_000)]] * 3, r"24,000 points in the drawing"),
    ],
)
def test_drawings_outside_the_limits_are_refused_naming_the_file(
    tmp_path: Path, strokes, words: str
) -> None:
    f = _write(tmp_path / "d.json", {"format": "pyrochar-drawings", "version": 1,
                                      "drawings": [{"strokes": [[[1, -1], [30, -30]]]},
                                                   {"strokes": strokes}]})
    with pytest.raises(DataFormatError, match=words) as info:
        read_drawing_file(f)
    assert str(info.value).startswith(f"{f}: drawings[1].strokes")
    assert "docs/reliability.md" in str(info.value)


def test_too_many_drawings_in_a_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "many.json", {"format": "pyrochar-drawings", "version": 1,
                                         "drawings": [{"strokes": [[[1, -1]]]}] * 1001})
    with pytest.raises(DataFormatError, match="1,001 drawings in the file; at most 1,000"):
        read_drawing_file(f)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path: Path) -> None:
    """Reading a FIFO would wait forever for a writer: run it in a subprocess with a
    timeout, so that the old behaviour fails instead of hanging the suite."""
    import subprocess
    import sys

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    code = (
        "import sys\n"
        "from pyrochar.data.jsonio import read_drawing_file\n"
        "from pyrochar.errors import DataFormatError\n"
        "for f in sys.argv[1:]:\n"
        "    try:\n"
        "        read_drawing_file(f)\n"
        "    except DataFormatError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(fifo), str(zero)], capture_output=True, text=True,
        timeout=120, cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines == [
        f"{fifo}: not a regular file (a pipe, device or socket); only regular files are read "
        "as drawings",
        f"{zero}: not a regular file (a pipe, device or socket); only regular files are read "
        "as drawings",
    ]


def test_a_boolean_version_or_a_missing_format_is_named(tmp_path):
    from pyrochar.data.jsonio import read_drawing_file
    from pyrochar.errors import PyrocharError

    p = tmp_path / "d.json"
    p.write_text(json.dumps({"format": "pyrochar-drawing", "version": True, "strokes": GOOD_STROKES}))
    with pytest.raises(PyrocharError, match="got a boolean"):
        read_drawing_file(p)
    p.write_text(json.dumps({"version": 1, "strokes": GOOD_STROKES}))
    with pytest.raises(PyrocharError, match='no "format" key'):
        read_drawing_file(p)
