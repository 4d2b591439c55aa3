"""Where the tests find the 6 Omniglot alphabets (tests/conftest.py)."""

from __future__ import annotations

import shutil
import zipfile

from conftest import FIXTURE_OMNIGLOT, SIX_ALPHABETS, _extract_six_alphabets, find_six_alphabets


def _zip_of_the_fixture(path, extra: dict[str, bytes]):
    """An archive laid out like the official strokes_background.zip: the committed
    fixture's 24 drawings (the 6 alphabets) plus ``extra`` entries."""
    files = sorted((FIXTURE_OMNIGLOT / "strokes_background").rglob("*.txt"))
    with zipfile.ZipFile(path, "w") as zf:
        for f in files:
            zf.write(f, f.relative_to(FIXTURE_OMNIGLOT).as_posix())
        for name, data in extra.items():
            zf.writestr(name, data)
    return len(files)


def test_the_downloaded_archive_gives_exactly_the_six_alphabets(tmp_path):
    one = (FIXTURE_OMNIGLOT / "strokes_background/Greek/character01/0394_01.txt").read_bytes()
    n = _zip_of_the_fixture(tmp_path / "strokes_background.zip", {
        "strokes_background/Tifinagh/character01/0900_01.txt": one,  # another alphabet
        "strokes_background/../evil/character01/0001_01.txt": one,
        "strokes_background/Greek/character01/notes.md": b"not a drawing",
    })
    root = _extract_six_alphabets(tmp_path / "strokes_background.zip", tmp_path / "out")
    assert root == tmp_path / "out"
    folder = root / "strokes_background"
    assert {p.name for p in folder.iterdir()} == SIX_ALPHABETS
    got = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    want = sorted(p.relative_to(FIXTURE_OMNIGLOT / "strokes_background")
                  for p in (FIXTURE_OMNIGLOT / "strokes_background").rglob("*.txt"))
    assert got == want and len(got) == n
    assert not (root / "evil").exists()  # the escaping entry


def test_an_archive_without_the_six_alphabets_is_not_used(tmp_path):
    with zipfile.ZipFile(tmp_path / "strokes_background.zip", "w") as zf:
        zf.writestr("strokes_background/Greek/character01/0394_01.txt", "START\nBREAK\n")
    assert _extract_six_alphabets(tmp_path / "strokes_background.zip", tmp_path / "out") is None
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    assert _extract_six_alphabets(tmp_path / "broken.zip", tmp_path / "out2") is None


def test_the_environment_variable_comes_first(tmp_path, monkeypatch):
    six = tmp_path / "six"
    shutil.copytree(FIXTURE_OMNIGLOT / "strokes_background", six / "strokes_background")
    monkeypatch.setenv("PYROCHAR_TEST_OMNIGLOT", str(six))
    assert find_six_alphabets(tmp_path / "scratch") == six
    # a folder with other alphabets beside the 6 is not the 6-alphabet copy
    (six / "strokes_background" / "Tifinagh").mkdir()
    monkeypatch.setenv("PYROCHAR_DATA", str(tmp_path / "no-data-here"))
    assert find_six_alphabets(tmp_path / "scratch") != six
