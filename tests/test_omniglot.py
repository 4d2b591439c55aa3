"""Reading Omniglot stroke files, folders and zips."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrochar.data.omniglot import (
    LoadResult,
    load_omniglot,
    parse_strokes,
    read_stroke_file,
)
from pyrochar.errors import DataFormatError, PyrocharError

GOOD = "START\n1.5,-2.5,0\n3,-4,10\nBREAK\n5,-6,20\nBREAK\n"
GREEK_FILE = Path("strokes_background/Greek/character03/0396_07.txt")


def _same(a: LoadResult, b: LoadResult) -> None:
    """Both results hold the same drawings (labels and strokes; sources differ)."""
    assert len(a.drawings) == len(b.drawings)
    for da, db in zip(a.drawings, b.drawings, strict=True):
        assert (da.subset, da.alphabet, da.character, da.character_id, da.drawer) == (
            db.subset,
            db.alphabet,
            db.character,
            db.character_id,
            db.drawer,
        )
        assert len(da.strokes) == len(db.strokes)
        for sa, sb in zip(da.strokes, db.strokes, strict=True):
            np.testing.assert_array_equal(sa, sb)


def _copy_chars(root: Path, dest: Path, chars: list[str]) -> Path:
    """Copy a few real character folders (``Alphabet/characterNN``) into dest/strokes_background."""
    out = dest / "strokes_background"
    for c in chars:
        shutil.copytree(root / "strokes_background" / c, out / c)
    return out


def _zip_folder(folder: Path, zpath: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return zpath


# --------------------------------------------------------------------------- parsing


def test_parse_good_file() -> None:
    strokes = parse_strokes(GOOD, "x.txt")
    assert len(strokes) == 2
    assert strokes[0].dtype == np.float64
    np.testing.assert_array_equal(strokes[0], [[1.5, -2.5, 0], [3, -4, 10]])
    np.testing.assert_array_equal(strokes[1], [[5, -6, 20]])


def test_parse_tolerates_blank_lines_whitespace_and_crlf() -> None:
    text = "\n  START \r\n1.5,-2.5,0   \r\n\r\n3,-4,10\nBREAK\t\n\n5,-6,20\nBREAK\n\n  \n"
    strokes = parse_strokes(text, "x.txt")
    np.testing.assert_array_equal(strokes[0], [[1.5, -2.5, 0], [3, -4, 10]])
    np.testing.assert_array_equal(strokes[1], [[5, -6, 20]])


BAD_TEXTS = [
    # (id, text, expected line, words expected in the reason)
    ("missing-start", "1,2,3\nBREAK\n", 1, "START"),
    ("break-before-start", "BREAK\n1,2,3\nBREAK\n", 1, "START"),
    ("no-final-break", "START\n1,2,3\nBREAK\n4,5,6\n7,8,9\n", 5, "BREAK"),
    ("non-numeric", "START\n1,2,3\nabc,2,3\nBREAK\n", 3, "3 numbers"),
    ("word-line", "START\nabc\nBREAK\n", 2, "'x,y,t'"),
    ("two-fields", "START\n1,2\nBREAK\n", 2, "3 numbers"),
    ("four-fields", "START\n1,2,3\n1,2,3,4\nBREAK\n", 3, "3 numbers"),
    ("nan", "START\n1,2,3\nnan,2,3\nBREAK\n", 3, "non-finite"),
    ("inf", "START\n1,-inf,3\nBREAK\n", 2, "non-finite"),
    ("empty-stroke-after-start", "START\nBREAK\n1,2,3\nBREAK\n", 2, "empty stroke"),
    ("empty-stroke-after-break", "START\n1,2,3\nBREAK\n\nBREAK\n", 5, "empty stroke"),
    ("start-only", "START\n", 1, "no strokes"),
    ("second-start", "START\n1,2,3\nBREAK\nSTART\n", 4, "START"),
]


@pytest.mark.parametrize(
    ("text", "line", "words"), [b[1:] for b in BAD_TEXTS], ids=[b[0] for b in BAD_TEXTS]
)
def test_parse_bad_inputs(text: str, line: int, words: str) -> None:
    with pytest.raises(DataFormatError) as info:
        parse_strokes(text, "some/file.txt")
    err = info.value
    assert err.path == "some/file.txt"
    assert err.line == line
    assert words in err.reason
    assert str(err).startswith(f"some/file.txt, line {line}: ")


def test_parse_reason_quotes_bad_line() -> None:
    with pytest.raises(DataFormatError, match=r"expected 'x,y,t' with 3 numbers, got 'abc'"):
        parse_strokes("START\nabc\nBREAK\n", "f.txt")


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_parse_empty_file(text: str) -> None:
    with pytest.raises(DataFormatError, match="empty file") as info:
        parse_strokes(text, "f.txt")
    assert info.value.path == "f.txt"


@pytest.mark.parametrize(
    "data", [b"START\n1,2,3\x00\nBREAK\n", b"\xff\xfe\x00S\x00T", b"START\n\xc3\x28,1,2\nBREAK\n"]
)
def test_read_binary_file_is_not_text(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "bin.txt"
    f.write_bytes(data)
    with pytest.raises(DataFormatError, match="not a text file") as info:
        read_stroke_file(f)
    assert info.value.path == str(f)


def test_read_file_error_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("START\n1,2,3\n1,2\nBREAK\n")
    with pytest.raises(DataFormatError) as info:
        read_stroke_file(f)
    assert info.value.path == str(f)
    assert info.value.line == 3
    assert str(f) in str(info.value)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PyrocharError, match="no such file"):
        read_stroke_file(tmp_path / "nope.txt")


# --------------------------------------------------------------------------- labels


def test_labels_of_real_file(fixture_root: Path) -> None:
    d = read_stroke_file(fixture_root / GREEK_FILE)
    assert d.subset == "background"
    assert d.alphabet == "Greek"
    assert d.character == 3
    assert d.character_id == 396
    assert d.drawer == 7
    assert d.key == "Greek/character03/0396_07"
    assert d.source == str(fixture_root / GREEK_FILE)
    assert d.n_strokes >= 1
    assert all(s.ndim == 2 and s.shape[1] == 3 and s.dtype == np.float64 for s in d.strokes)


def test_labels_none_outside_layout(tmp_path: Path, fixture_root: Path) -> None:
    f = tmp_path / "drawing.txt"
    shutil.copy(fixture_root / GREEK_FILE, f)
    d = read_stroke_file(f)
    labels = (d.subset, d.alphabet, d.character, d.character_id, d.drawer)
    assert labels == (None,) * 5
    assert d.key == str(f)


def test_labels_without_subset_folder(tmp_path: Path, fixture_root: Path) -> None:
    f = tmp_path / "Greek" / "character03" / "0396_07.txt"
    f.parent.mkdir(parents=True)
    shutil.copy(fixture_root / GREEK_FILE, f)
    d = read_stroke_file(f)
    assert (d.subset, d.alphabet, d.character, d.character_id, d.drawer) == (
        None,
        "Greek",
        3,
        396,
        7,
    )


# --------------------------------------------------------------------------- loading


def test_load_whole_shared_set(omniglot_root: Path) -> None:
    res = load_omniglot(omniglot_root)
    assert res.skipped == []
    assert len(res.drawings) == 4060
    assert {d.alphabet for d in res.drawings} == {
        "Balinese",
        "Greek",
        "Japanese_(katakana)",
        "Korean",
        "Latin",
        "Sanskrit",
    }
    assert len({(d.alphabet, d.character) for d in res.drawings}) == 203
    assert len({d.character_id for d in res.drawings}) == 203
    assert {d.subset for d in res.drawings} == {"background"}
    assert {d.drawer for d in res.drawings} == set(range(1, 21))
    keys = [(d.subset, d.alphabet, d.character, d.drawer) for d in res.drawings]
    assert keys == sorted(keys)
    # Same drawings when pointing at the set folder itself.
    again = load_omniglot(omniglot_root / "strokes_background")
    assert [d.source for d in again.drawings] == [d.source for d in res.drawings]


def test_load_alphabet_filter(omniglot_root: Path) -> None:
    res = load_omniglot(omniglot_root, alphabets=["Latin", "Greek"])
    assert len(res.drawings) == 520 + 480
    assert {d.alphabet for d in res.drawings} == {"Latin", "Greek"}
    assert [d.alphabet for d in res.drawings[:1]] == ["Greek"]  # sorted, not in filter order


def test_load_unknown_alphabet_lists_available(omniglot_root: Path) -> None:
    with pytest.raises(PyrocharError, match="Klingon") as info:
        load_omniglot(omniglot_root, alphabets=["Klingon"])
    assert "Balinese" in str(info.value) and "Sanskrit" in str(info.value)


def test_load_single_alphabet_folder(omniglot_root: Path) -> None:
    res = load_omniglot(omniglot_root / "strokes_background" / "Latin")
    assert len(res.drawings) == 520
    assert {d.subset for d in res.drawings} == {None}
    assert {d.alphabet for d in res.drawings} == {"Latin"}
    assert res.drawings[0].character == 1 and res.drawings[-1].character == 26


def test_folder_and_zip_give_same_drawings(tmp_path: Path, fixture_root: Path) -> None:
    folder = _copy_chars(
        fixture_root,
        tmp_path / "f",
        ["Greek/character01", "Greek/character02", "Latin/character05"],
    )
    (tmp_path / "z").mkdir()
    zpath = _zip_folder(folder, tmp_path / "z" / "strokes_background.zip")

    from_folder = load_omniglot(folder)
    from_zip = load_omniglot(zpath)
    from_zip_parent = load_omniglot(zpath.parent)
    assert len(from_folder.drawings) == 60
    assert from_zip.skipped == [] and from_folder.skipped == []
    _same(from_folder, from_zip)
    _same(from_folder, from_zip_parent)
    assert (
        from_zip.drawings[0].source == f"{zpath}::strokes_background/Greek/character01/0394_01.txt"
    )
    assert from_zip.drawings[0].subset == "background"
    # Same as the shared originals too.
    originals = load_omniglot(fixture_root, alphabets=["Greek", "Latin"])
    wanted = [
        d
        for d in originals.drawings
        if (d.alphabet, d.character) in {("Greek", 1), ("Greek", 2), ("Latin", 5)}
    ]
    _same(LoadResult(wanted, []), from_zip)


def test_parent_prefers_folder_over_zip(tmp_path: Path, fixture_root: Path) -> None:
    folder = _copy_chars(fixture_root, tmp_path, ["Greek/character01"])
    _zip_folder(folder, tmp_path / "strokes_background.zip")
    shutil.rmtree(folder / "Greek" / "character01")
    (folder / "Greek" / "character02").mkdir()
    shutil.copy(
        fixture_root / GREEK_FILE.parent.parent / "character02" / "0395_01.txt",
        folder / "Greek" / "character02",
    )
    res = load_omniglot(tmp_path)
    assert [d.key for d in res.drawings] == ["Greek/character02/0395_01"]


def test_zip_with_escaping_entries(tmp_path: Path, fixture_root: Path) -> None:
    folder = _copy_chars(fixture_root, tmp_path / "f", ["Greek/character01"])
    good = (folder / "Greek" / "character01" / "0394_01.txt").read_bytes()
    zpath = _zip_folder(
        folder,
        tmp_path / "strokes_background.zip",
        extra={
            "strokes_background/../evil/character01/0001_01.txt": good,
            "/abs/Greek/character01/0394_01.txt": good,
            "other_top/Greek/character01/0394_01.txt": good,
            "__MACOSX/strokes_background/Greek/character01/._0394_01.txt": b"\x00\x05junk",
            "strokes_background/Greek/character01/.DS_Store": b"\x00\x00",
            "strokes_background/README.md": b"hello",
        },
    )
    res = load_omniglot(zpath)
    assert len(res.drawings) == 20
    assert len(res.skipped) == 3
    assert all("zip entry escapes its folder" in s.reason for s in res.skipped)
    assert {s.source.split("::")[1] for s in res.skipped} == {
        "strokes_background/../evil/character01/0001_01.txt",
        "/abs/Greek/character01/0394_01.txt",
        "other_top/Greek/character01/0394_01.txt",
    }
    with pytest.raises(DataFormatError, match="zip entry escapes its folder"):
        load_omniglot(zpath, strict=True)
    _same(res, load_omniglot(folder))


def test_default_skips_bad_file_strict_raises(tmp_path: Path, fixture_root: Path) -> None:
    folder = _copy_chars(fixture_root, tmp_path, ["Greek/character01", "Greek/character02"])
    bad = folder / "Greek" / "character02" / "0395_04.txt"
    bad.write_text("START\n1,2,3\noops\nBREAK\n")
    (folder / "Greek" / "character01" / "notes.pdf").write_bytes(b"%PDF")
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / "Greek" / ".DS_Store").write_bytes(b"\x00")
    (folder / "Greek" / "character01" / ".DS_Store").write_bytes(b"\x00")
    (folder / "Greek" / "index.csv").write_text("ignored, not in a character folder")

    res = load_omniglot(tmp_path)
    assert len(res.drawings) == 39
    assert sorted(s.source for s in res.skipped) == sorted(
        [str(bad), str(folder / "Greek" / "character01" / "notes.pdf")]
    )
    by_source = {s.source: s.reason for s in res.skipped}
    assert f"{bad}, line 3:" in by_source[str(bad)]
    assert "not a stroke file" in by_source[str(folder / "Greek" / "character01" / "notes.pdf")]

    with pytest.raises(DataFormatError) as info:
        load_omniglot(tmp_path, strict=True)
    assert info.value.path in by_source


def test_load_progress_bar(tmp_path: Path, fixture_root: Path, capsys) -> None:
    folder = _copy_chars(fixture_root, tmp_path, ["Greek/character01"])
    res = load_omniglot(folder, progress=True)
    assert len(res.drawings) == 20
    assert "20/20" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "empty", "unrelated", "txt-file"])
def test_load_nothing_suggests_download(tmp_path: Path, kind: str) -> None:
    if kind == "missing":
        src = tmp_path / "nowhere"
    elif kind == "empty":
        src = tmp_path
    elif kind == "unrelated":
        (tmp_path / "photos").mkdir()
        (tmp_path / "photos" / "a.txt").write_text("hi")
        src = tmp_path
    else:
        src = tmp_path / "a.txt"
        src.write_text(GOOD)
    with pytest.raises(PyrocharError, match="pyrochar data download") as info:
        load_omniglot(src)
    assert "strokes_background" in str(info.value)


def test_load_all_files_bad(tmp_path: Path) -> None:
    char = tmp_path / "strokes_background" / "Greek" / "character01"
    char.mkdir(parents=True)
    (char / "0394_01.txt").write_text("garbage")
    with pytest.raises(PyrocharError, match="could be read"):
        load_omniglot(tmp_path)


def test_load_corrupt_zip(tmp_path: Path) -> None:
    z = tmp_path / "strokes_background.zip"
    z.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PyrocharError, match="not a readable zip"):
        load_omniglot(z)


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_stroke_lists = st.lists(
    st.lists(st.tuples(_finite, _finite, _finite), min_size=1, max_size=6), min_size=1, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(_stroke_lists)
def test_parse_round_trips_any_finite_strokes(
    strokes: list[list[tuple[float, float, float]]],
) -> None:
    text = "START\n" + "".join(
        "".join(f"{x!r},{y!r},{t!r}\n" for x, y, t in s) + "BREAK\n" for s in strokes
    )
    parsed = parse_strokes(text, "p.txt")
    assert len(parsed) == len(strokes)
    for arr, s in zip(parsed, strokes, strict=True):
        np.testing.assert_array_equal(arr, np.array(s, dtype=np.float64).reshape(-1, 3))


# ----------------------------------------------------------- hostile files (issue 11)


def _corrupt_member(zpath: Path, name: str) -> None:
    """Overwrite the start of ``name``'s compressed data with bytes no deflate stream has."""
    with zipfile.ZipFile(zpath) as zf:
        info = zf.getinfo(name)
    data = bytearray(zpath.read_bytes())
    n_name = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    n_extra = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + n_name + n_extra
    data[start : start + 8] = b"\xff" * 8
    zpath.write_bytes(bytes(data))


def test_a_corrupted_zip_member_is_skipped_and_named(tmp_path: Path, omniglot_root: Path) -> None:
    folder = _copy_chars(omniglot_root, tmp_path / "src", ["Greek/character01"])
    zpath = _zip_folder(folder, tmp_path / "strokes_background.zip")
    member = "strokes_background/Greek/character01/0394_05.txt"
    _corrupt_member(zpath, member)
    res = load_omniglot(zpath)
    assert len(res.drawings) == 19
    assert [s.source for s in res.skipped] == [f"{zpath}::{member}"]
    assert "corrupted zip entry" in res.skipped[0].reason
    with pytest.raises(DataFormatError, match="corrupted zip entry"):
        load_omniglot(zpath, strict=True)


def test_a_zip_bomb_member_is_read_no_further_than_the_size_limit(
    tmp_path: Path, omniglot_root: Path
) -> None:
    from pyrochar.data.drawing import MAX_STROKE_FILE_BYTES

    folder = _copy_chars(omniglot_root, tmp_path / "src", ["Greek/character01"])
    zpath = _zip_folder(folder, tmp_path / "strokes_background.zip")
    member = "strokes_background/Greek/character01/0394_99.txt"
    with zipfile.ZipFile(zpath, "a", zipfile.ZIP_DEFLATED) as zf, zf.open(member, "w") as out:
        out.write(b"START\n")
        for _ in range(40):  # 40 x 600 KB of valid points: 24 MB, about 60 KB compressed
            out.write(b"10,-10,0\n11,-11,0\n" * 33_000)
        out.write(b"BREAK\n")
    assert zpath.stat().st_size < 2 * MAX_STROKE_FILE_BYTES
    res = load_omniglot(zpath)
    assert len(res.drawings) == 20
    assert [s.source for s in res.skipped] == [f"{zpath}::{member}"]
    assert f"larger than {MAX_STROKE_FILE_BYTES:,} bytes" in res.skipped[0].reason


def test_files_outside_the_limits_are_skipped_and_named_the_rest_is_read(
    tmp_path: Path, omniglot_root: Path
) -> None:
    folder = _copy_chars(omniglot_root, tmp_path, ["Greek/character01"])
    char = folder / "Greek" / "character01"
    far = char / "0394_21.txt"
    far.write_text("START\n10,-10,0\n1e12,-10,5\nBREAK\n")
    long = char / "0394_22.txt"
    long.write_text("START\n" + "".join(f"{i % 90},-{i % 7},0\n" for i in range(12_000)) + "BREAK\n")
    huge = char / "0394_23.txt"
    huge.write_text("START\n1e300,-1e300,0\n1,-1,0\nBREAK\n")
    res = load_omniglot(tmp_path)
    assert len(res.drawings) == 20
    reasons = {s.source: s.reason for s in res.skipped}
    assert set(reasons) == {str(far), str(long), str(huge)}
    assert f"{far}: stroke 1, point 2: x = 1e+12 px is far off" in reasons[str(far)]
    assert "12,000 points in a stroke; at most 10,000" in reasons[str(long)]
    assert "x = 1e+300 px is far off" in reasons[str(huge)]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_link_to_a_device_in_a_folder_is_skipped_without_blocking(
    tmp_path: Path, omniglot_root: Path
) -> None:
    """Run in a subprocess with a timeout: reading the FIFO would block forever."""
    import subprocess
    import sys

    folder = _copy_chars(omniglot_root, tmp_path, ["Greek/character01"])
    char = folder / "Greek" / "character01"
    os.mkfifo(char / "0394_21.txt")
    (char / "0394_22.txt").symlink_to("/dev/zero")
    code = (
        "import sys\n"
        "from pyrochar.data.omniglot import load_omniglot\n"
        "res = load_omniglot(sys.argv[1])\n"
        "print(len(res.drawings))\n"
        "for s in res.skipped:\n"
        "    print(s.reason)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
        timeout=120, cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "20"
    assert sorted(lines[1:]) == [
        f"{char / name}: not a regular file (a pipe, device or socket); only regular files "
        "are read as drawings"
        for name in ("0394_21.txt", "0394_22.txt")
    ]
