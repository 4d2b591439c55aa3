"""``pyrochar parse``: pictures and JSON written; every bad input one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage")

from pyrochar.data.jsonio import read_drawings_json_with_labels  # noqa: E402


def _omniglot_png(path, segs) -> None:
    """A 105 x 105 1-bit PNG (ink = 0, as Omniglot's) of thick segments (r0, c0, r1, c1)."""
    rr, cc = np.mgrid[:105, :105]
    ink = np.zeros((105, 105), dtype=bool)
    for r0, c0, r1, c1 in segs:
        for t in np.linspace(0, 1, 120):
            ink |= (rr - (r0 + t * (r1 - r0))) ** 2 + (cc - (c0 + t * (c1 - c0))) ** 2 <= 4
    Image.fromarray(~ink).convert("1").save(path)


@pytest.fixture
def pngs(tmp_path):
    t, plus = tmp_path / "t.png", tmp_path / "plus.png"
    _omniglot_png(t, [(20, 20, 20, 85), (20, 52, 88, 52)])
    _omniglot_png(plus, [(15, 52, 90, 52), (52, 15, 52, 90)])
    return t, plus


def test_parse_writes_picture_and_json(run, pngs, tmp_path):
    out, js = tmp_path / "p.png", tmp_path / "p.json"
    r = run("parse", *pngs, "-k", 2, "--candidates", 60, "--steps", 3, "-o", out, "--json-out", js)
    assert f"wrote {out}: 4 parse(s) of 2 image(s)" in r.output
    with Image.open(out) as im:
        assert im.size[0] > 3 * 210 and im.size[1] > 2 * 210  # 2 rows: image + 2 parses
    drawings, labels = read_drawings_json_with_labels(js)  # the project's drawing format
    assert labels == [f"{p} parse {k}" for p in pngs for k in (1, 2)]
    assert all(len(d.strokes) >= 1 for d in drawings)
    doc = json.loads(js.read_text())
    first = doc["drawings"][0]["parse"]
    assert first["image"] == str(pngs[0]) and first["rank"] == 1
    assert set(first["log_prob"]) == {"type", "token", "image", "total"}
    assert len(first["affine"]) == 4 and first["blur"] > 0 and first["eps"] > 0
    weights = [d["parse"]["weight"] for d in doc["drawings"][:2]]
    assert sum(weights) == pytest.approx(1.0)


def test_parse_json_scores_with_pyrochar_score(run, pngs, tmp_path):
    js = tmp_path / "p.json"
    run("parse", pngs[0], "-k", 1, "--candidates", 30, "--no-refine", "-o", tmp_path / "p.png",
        "--json-out", js)  # fmt: skip
    r = run("score", js)
    assert "mean" in r.output.lower() or "nll" in r.output.lower()


def test_same_seed_same_json(run, pngs, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for js in (a, b):
        run("parse", pngs[1], "-k", 3, "--candidates", 80, "--no-refine", "--seed", 7,
            "-o", tmp_path / "p.png", "--json-out", js)  # fmt: skip
    assert a.read_text() == b.read_text()


def _one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.mark.parametrize("content, expect", [
    (b"not a picture at all", "notes.png"),
    (None, "ink"),  # a white picture: no ink
])  # fmt: skip
def test_bad_images_one_line_and_nothing_overwritten(run, pngs, tmp_path, content, expect):
    bad = tmp_path / "notes.png"
    if content is None:
        Image.new("L", (105, 105), 255).save(bad)
    else:
        bad.write_bytes(content)
    out = tmp_path / "p.png"
    out.write_bytes(b"earlier picture")
    r = run("parse", pngs[0], bad, "--no-refine", "-o", out, ok=False)
    assert expect in _one_line_error(r)
    assert out.read_bytes() == b"earlier picture"


def test_bad_arguments_one_line(run, pngs, tmp_path):
    assert "does not exist" in _one_line_error(run("parse", tmp_path / "missing.png", ok=False))
    assert "-k" in _one_line_error(run("parse", pngs[0], "-k", 0, ok=False))
    r = run("parse", pngs[0], "--json-out", tmp_path / "p.txt", ok=False)
    assert ".json" in _one_line_error(r)
    r = run("parse", pngs[0], "--checkpoint", tmp_path / "nothing.pt", "--no-refine", ok=False)
    assert "nothing.pt" in _one_line_error(r)
    assert "IMAGE" in _one_line_error(run("parse", ok=False))
