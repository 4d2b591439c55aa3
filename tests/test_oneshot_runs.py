"""Building one-shot runs (``pyrochar data oneshot-runs``) and reading them."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pyrochar.errors import PyrocharError
from pyrochar.oneshot.runs import (
    LABELS_FILE,
    build_runs,
    parse_run_spec,
    read_run,
    read_runs,
)


def character_image(j: int, drawer: int) -> Image.Image:
    """A 105x105 1-bit image (ink = 0) of made-up character ``j`` by ``drawer``: one of
    four shapes (j % 4), sized by j // 4; each drawer shifts and stretches it a little."""
    img = Image.new("1", (105, 105), 1)
    draw = ImageDraw.Draw(img)
    size = 14 + 8 * (j // 4) + drawer % 3  # half-extent in pixels
    cx, cy = 52 + drawer % 5 - 2, 52 - drawer % 4 + 1
    box = [cx - size, cy - size, cx + size, cy + size]
    kind = j % 4
    if kind == 0:
        draw.line([cx - size, cy, cx + size, cy], fill=0, width=3)
    elif kind == 1:
        draw.line([cx, cy - size, cx, cy + size], fill=0, width=3)
    elif kind == 2:
        draw.ellipse(box, outline=0, width=3)
    else:
        draw.line(box, fill=0, width=3)
    return img


def make_source(root: Path, alphabets: dict[str, tuple[int, int]]) -> Path:
    """``root/images_background/<alphabet>/characterNN/IIII_DD.png`` for each
    alphabet -> (characters, drawers); returns ``root``."""
    gid = 0
    for alphabet, (n_chars, n_drawers) in alphabets.items():
        for c in range(1, n_chars + 1):
            gid += 1
            folder = root / "images_background" / alphabet / f"character{c:02d}"
            folder.mkdir(parents=True)
            for d in range(1, n_drawers + 1):
                character_image(c - 1, d).save(folder / f"{gid:04d}_{d:02d}.png")
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Made-up images: Big (22 characters x 3 drawers), Small (3 x 2), One (1 x 2)."""
    return make_source(tmp_path_factory.mktemp("source"),
                       {"Big": (22, 3), "Small": (3, 2), "One": (1, 2)})


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path -> its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------- building


def test_built_runs_follow_the_official_construction(source, tmp_path):
    plans = build_runs(source, ["Big", "Small"], 3, 0, tmp_path / "runs")
    assert [(p.name, p.alphabet) for p in plans] == [("run01", "Big"), ("run02", "Small"), ("run03", "Big")]
    provenance = json.loads((tmp_path / "runs" / "runs.json").read_text())
    assert [r["alphabet"] for r in provenance["runs"]] == ["Big", "Small", "Big"]
    for plan, n_classes in zip(plans, (20, 3, 20), strict=True):
        run = tmp_path / "runs" / plan.name
        assert len(set(plan.characters)) == n_classes  # 20 of 22, all 3 of Small
        assert plan.training_drawer != plan.test_drawer
        assert sorted(p.name for p in (run / "training").iterdir()) == [
            f"class{c:02d}.png" for c in range(1, n_classes + 1)]
        lines = (run / LABELS_FILE).read_text().splitlines()
        assert len(lines) == n_classes
        alphabet_dir = source / "images_background" / plan.alphabet
        for k, line in enumerate(lines, start=1):
            test_rel, train_rel = line.split()
            assert test_rel == f"{plan.name}/test/item{k:02d}.png"
            c = int(train_rel[-6:-4])  # classJJ.png
            char_dir = alphabet_dir / plan.characters[c - 1]
            # the test item is the test drawer's image of the character its class shows
            (test_src,) = char_dir.glob(f"*_{plan.test_drawer:02d}.png")
            (train_src,) = char_dir.glob(f"*_{plan.training_drawer:02d}.png")
            assert (tmp_path / "runs" / test_rel).read_bytes() == test_src.read_bytes()
            assert (tmp_path / "runs" / train_rel).read_bytes() == train_src.read_bytes()
        assert sorted(int(line.split()[1][-6:-4]) for line in lines) == list(range(1, n_classes + 1))


def test_runs_are_deterministic_for_a_seed(source, tmp_path):
    build_runs(source, ["Big", "Small"], 2, 5, tmp_path / "a")
    build_runs(source, ["Big", "Small"], 2, 5, tmp_path / "b")
    build_runs(source, ["Big", "Small"], 3, 5, tmp_path / "c")
    build_runs(source, ["Big", "Small"], 2, 6, tmp_path / "d")
    a = tree(tmp_path / "a")
    assert a == tree(tmp_path / "b")
    c = tree(tmp_path / "c")  # run i does not depend on how many runs are built
    assert {k: v for k, v in c.items() if k.startswith(("run01/", "run02/"))} == {
        k: v for k, v in a.items() if k != "runs.json"}
    assert {k: v for k, v in tree(tmp_path / "d").items() if k.startswith("run01/")} != {
        k: v for k, v in a.items() if k.startswith("run01/")}


def test_test_items_are_shuffled(source, tmp_path):
    plans = build_runs(source, ["Big"], 1, 0, tmp_path / "runs")
    assert list(plans[0].test_classes) != sorted(plans[0].test_classes)


@pytest.mark.parametrize("alphabets, n_runs, message", [
    (["One"], 1, "at least 2"),
    (["Nope"], 1, "no alphabet 'Nope'"),
    (["Big", "Big"], 2, "twice"),
    ([], 1, "no alphabet"),
    (["Big"], 0, "--runs"),
    (["Big"], 100, "--runs"),
    (["Big", "Big/"], 1, "'Big/' is not an alphabet's name"),
    (["../images_background/Big"], 1, "not an alphabet's name"),
    ([".."], 1, "not an alphabet's name"),
])
def test_bad_requests_are_refused_and_write_nothing(source, tmp_path, alphabets, n_runs, message):
    with pytest.raises(PyrocharError, match=message):
        build_runs(source, alphabets, n_runs, 0, tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(source, tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PyrocharError, match="not an empty folder"):
        build_runs(source, ["Small"], 1, 0, out)
    assert tree(out) == {"keep.txt": b"mine"}
    empty = tmp_path / "empty"
    empty.mkdir()
    build_runs(source, ["Small"], 1, 0, empty)  # an empty folder is filled
    assert (empty / "run01" / LABELS_FILE).is_file()


def test_an_unknown_alphabet_is_named_when_source_is_images_background(source, tmp_path):
    with pytest.raises(PyrocharError, match="no alphabet 'big' in .*images_background .*it holds: Big, One, Small"):
        build_runs(source / "images_background", ["big"], 1, 0, tmp_path / "runs")
    build_runs(source / "images_background", ["Big"], 1, 0, tmp_path / "runs")  # the folder itself is fine


def test_a_file_as_out_is_named(source, tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(PyrocharError, match="--out .*afile is a file; give a folder"):
        build_runs(source, ["Small"], 1, 0, tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "mine"


def test_built_runs_get_the_usual_permissions(source, tmp_path):
    old = os.umask(0o022)
    try:
        build_runs(source, ["Small"], 1, 0, tmp_path / "runs")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o755  # not a temporary folder's 0700


def test_an_interrupted_build_leaves_nothing(source, tmp_path, monkeypatch):
    import pyrochar.oneshot.runs as runs_module

    calls = []

    def failing_copy(src, dst):
        calls.append(dst)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return shutil.copyfile(src, dst)

    monkeypatch.setattr(runs_module.shutil, "copyfile", failing_copy)
    with pytest.raises(PyrocharError, match="No space left"):
        build_runs(source, ["Big"], 1, 0, tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


def test_a_dead_builds_partial_folder_is_removed(source, tmp_path):
    stale = tmp_path / ".runs.999999999.abcdefgh.partial"
    (stale / "run01").mkdir(parents=True)
    build_runs(source, ["Small"], 1, 0, tmp_path / "runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_the_command(run, source, tmp_path):
    result = run("data", "oneshot-runs", "--source", source, "--alphabets", "Small,Big", "--runs", 2,
                 "--seed", 1, "--out", tmp_path / "runs")
    assert "run02  Big" in result.output and "wrote 2 run(s)" in result.output
    assert [r.name for r in read_runs(tmp_path / "runs")] == ["run01", "run02"]
    bad = run("data", "oneshot-runs", "--source", source, "--alphabets", "One", "--runs", 1,
              "--out", tmp_path / "other", ok=False)
    assert bad.output.count("\n") == 1 and "at least 2" in bad.output
    no_images = run("data", "oneshot-runs", "--source", tmp_path / "runs", "--alphabets", "Big",
                    "--out", tmp_path / "other", ok=False)
    assert "images_background" in no_images.output


# ------------------------------------------------------------------ reading


@pytest.fixture
def built(source, tmp_path) -> Path:
    """Two runs of Small (3 classes each), built with seed 0."""
    build_runs(source, ["Small"], 2, 0, tmp_path / "runs")
    return tmp_path / "runs"


def test_the_reader_reads_a_built_run(built):
    runs = read_runs(built)
    assert [r.name for r in runs] == ["run01", "run02"]
    r = runs[0]
    assert r.training == ("run01/training/class01.png", "run01/training/class02.png",
                          "run01/training/class03.png")
    lines = (built / "run01" / LABELS_FILE).read_text().split()
    assert list(r.test) == lines[0::2]
    assert [r.training[a] for a in r.answers] == lines[1::2]
    train, test = r.images()
    assert train.shape == (3, 105, 105) and test.shape == (3, 105, 105) and train.dtype == bool
    # ink is the dark pixels of the file
    src = np.asarray(Image.open(built / r.test[0])) == 0
    assert np.array_equal(test[0], src)
    assert [x.name for x in read_runs(built, [2])] == ["run02"]


def test_run_numbers_are_parsed():
    assert parse_run_spec("1-20") == list(range(1, 21))
    assert parse_run_spec("3") == [3]
    assert parse_run_spec("1,3, 5-7,3") == [1, 3, 5, 6, 7]
    for bad in ("", "a", "5-3", "0", "1-100", "1;2"):
        with pytest.raises(PyrocharError, match="--runs"):
            parse_run_spec(bad)


def _labels(built: Path) -> Path:
    return built / "run01" / LABELS_FILE


def test_missing_runs_are_named(built, tmp_path):
    with pytest.raises(PyrocharError, match="no run 3"):
        read_runs(built, [1, 3])
    with pytest.raises(PyrocharError, match="no runNN/ folders"):
        read_runs(tmp_path / "runs" / "run01")
    with pytest.raises(PyrocharError, match="not a folder of runs"):
        read_runs(tmp_path / "nowhere")


def test_a_missing_test_image_is_named_with_its_line(built):
    lines = _labels(built).read_text().splitlines()
    (built / lines[1].split()[0]).unlink()
    with pytest.raises(PyrocharError, match=rf"line 2: {lines[1].split()[0]} does not exist"):
        read_run(built, "run01")


def test_a_label_line_naming_a_missing_training_file(built):
    text = _labels(built).read_text()
    _labels(built).write_text(text + "run01/test/item01.png run01/training/class09.png\n")
    with pytest.raises(PyrocharError, match="line 4: run01/training/class09.png does not exist"):
        read_run(built, "run01")


def test_fewer_than_two_classes(built):
    for name in ("class02.png", "class03.png"):
        (built / "run01" / "training" / name).unlink()
    with pytest.raises(PyrocharError, match="at least 2 classes"):
        read_run(built, "run01")


@pytest.mark.parametrize("line, message", [
    ("run01/test/item01.png", "two paths"),
    ("run01/test/item01.png run01/training/class01.png extra", "two paths"),
    ("../run01/test/item01.png run01/training/class01.png", "is not a path run01/test/NAME.png"),
    ("run02/test/item01.png run01/training/class01.png", "is not a path run01/test/NAME.png"),
    ("run01/test/item01.png run01/test/item02.png", "is not a path run01/training/NAME.png"),
])
def test_malformed_lines_are_named(built, line, message):
    text = _labels(built).read_text().splitlines()
    text[0] = line
    _labels(built).write_text("\n".join(text) + "\n")
    with pytest.raises(PyrocharError, match=f"line 1: .*{message}"):
        read_run(built, "run01")


def test_other_label_problems(built):
    labels = _labels(built)
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[0], lines[0], lines[2]]) + "\n")
    with pytest.raises(PyrocharError, match="line 2: .*already on line 1"):
        read_run(built, "run01")
    labels.write_text("\n\n")
    with pytest.raises(PyrocharError, match="no test items"):
        read_run(built, "run01")
    labels.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(PyrocharError, match=r"has no line in .*class_labels.txt"):
        read_run(built, "run01")
    labels.unlink()
    with pytest.raises(PyrocharError, match="class_labels.txt does not exist"):
        read_run(built, "run01")


def test_bad_images_are_named(built):
    r = read_run(built, "run01")
    Image.new("1", (105, 105), 1).save(built / r.training[0])
    with pytest.raises(PyrocharError, match="class01.png: the picture has no ink"):
        r.images()
    (built / r.training[0]).write_bytes(b"not a png")
    with pytest.raises(PyrocharError, match="class01.png is not a picture"):
        r.images()
    shutil.copyfile(built / r.training[1], built / r.training[0])
    (built / r.test[0]).unlink()
    with pytest.raises(PyrocharError, match=r"item\d\d.png: no such file"):
        r.images()
