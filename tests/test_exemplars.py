"""``pyrochar.exemplars`` and ``pyrochar exemplars``: new tokens of an image's parsed type."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("skimage")

import pyrochar  # noqa: E402
from pyrochar.data.jsonio import read_drawings_json_with_labels  # noqa: E402
from pyrochar.errors import PyrocharError  # noqa: E402
from pyrochar.image.exemplars import sample_tokens  # noqa: E402
from pyrochar.image.metrics import ink_f1, render_ink  # noqa: E402
from pyrochar.image.model import PX  # noqa: E402
from pyrochar.image.parse import load_image  # noqa: E402

IMAGES = Path(__file__).resolve().parent / "data" / "images" / "omniglot"
LATIN = IMAGES / "0683_01.png"  # Omniglot's Latin character01 (an "a"), 2 strokes
GREEK = IMAGES / "0394_01.png"  # Greek character01, another shape


@pytest.fixture(scope="module")
def model():
    return pyrochar.load_pretrained("full-ns")


@pytest.fixture(scope="module")
def parses(model):
    """Three refined parses of the Latin image (few steps: the tests need a type, not the best one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return pyrochar.parse(model, LATIN, k=3, n_candidates=150, steps=10, seed=0)
    finally:
        torch.set_num_threads(before)


def _weighted(parses, weights):
    """Copies of the parses with other weights (the posterior's weights, constructed)."""
    return [dataclasses.replace(p, weight=w) for p, w in zip(parses, weights, strict=True)]


def test_shapes_and_rendered_with_the_fitted_blur_and_eps(model, parses, one_thread):
    e = pyrochar.exemplars(model, LATIN, n=5, parses=parses, seed=0)
    assert e.n == 5 and e.images.shape == (5, 105, 105) and e.images.dtype == bool
    assert e.probs.shape == (5, 105, 105) and 0 <= e.probs.min() and e.probs.max() <= 1
    assert e.parse_index.tolist() == [0] * 5  # types="best"
    assert np.array_equal(e.image, load_image(LATIN))
    best = parses[0]
    for strokes, ink in zip(e.token_strokes, e.images, strict=True):
        assert [s.shape for s in strokes] == [s.shape for s in best.strokes]  # drawing order kept
        # the 1-bit image is the token drawn at the parse's blur and eps, ink where p > 0.5
        assert np.array_equal(ink, render_ink(strokes, best.blur, best.eps))
    assert len({img.tobytes() for img in e.images}) == 5  # five different tokens


def _unwarped_type(token_cps, n_cp, values, i) -> list[np.ndarray]:
    """Exemplar i's type recovered from its token: undo the affine ``x -> (x - c) s + c + shift``
    (``c`` the centre of the noisy control points: the token's centre minus the shift),
    then the shape and location noise."""
    scale, shift = values.affine[i, :2], values.affine[i, 2:] / PX
    strokes = []
    real = [s for s in range(n_cp.shape[1]) if n_cp[i, s] > 0]
    centre = torch.cat([token_cps[i, s, : n_cp[i, s]] for s in real]).mean(0) - shift
    for s in real:
        m = int(n_cp[i, s])
        noisy = (token_cps[i, s, :m] - shift - centre) / scale + centre
        noise = (values.shape_noise[i, s, :m] + values.location_noise[i, s]) / PX
        strokes.append((noisy - noise).double().numpy())
    return strokes


def test_the_program_keeps_each_exemplars_type_and_conditions_blur_and_eps(model, parses, one_thread):
    chosen = _weighted(parses, [0.4, 0.4, 0.2])
    draw, index, trace = sample_tokens(model, chosen, 12, types="posterior", seed=1)
    assert set(trace.nodes) >= {"parse", "shape_noise", "location_noise", "affine", "blur", "eps", "image"}
    assert torch.equal(trace.nodes["parse"]["value"], index)
    for site in ("blur", "eps"):
        node = trace.nodes[site]
        assert node["is_observed"]
        fitted = torch.tensor([getattr(chosen[j], site) for j in index.tolist()], dtype=node["value"].dtype)
        assert torch.equal(node["value"], fitted)
    for site in ("shape_noise", "location_noise", "affine", "image"):
        assert not trace.nodes[site]["is_observed"]
    assert torch.isfinite(trace.log_prob_sum())
    for i, j in enumerate(index.tolist()):
        recovered = _unwarped_type(draw.token_cps, draw.n_cp, draw.values, i)
        expected = chosen[j].strokes
        assert len(recovered) == len(expected)
        for got, want in zip(recovered, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-4)


def test_same_seed_same_exemplars_other_seed_others(model, parses, one_thread):
    a, b, c = (pyrochar.exemplars(model, LATIN, n=4, parses=parses, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.probs, b.probs)
    assert all(np.array_equal(s, t) for x, y in zip(a.token_strokes, b.token_strokes, strict=True)
               for s, t in zip(x, y, strict=True))  # fmt: skip
    assert a.to_json() == b.to_json()
    assert not np.array_equal(a.images, c.images)


def test_posterior_draws_types_by_weight_best_uses_the_first(model, parses, one_thread):
    assert len(parses) >= 2
    halves = _weighted(parses[:2], [0.5, 0.5]) + _weighted(parses[2:], [0.0] * len(parses[2:]))
    post = pyrochar.exemplars(model, LATIN, n=40, types="posterior", parses=halves, seed=0)
    assert set(post.parse_index.tolist()) == {0, 1}  # never the weight-0 parses
    for strokes, j in zip(post.token_strokes, post.parse_index.tolist(), strict=True):
        assert [len(s) for s in strokes] == [len(s) for s in halves[j].strokes]
    best = pyrochar.exemplars(model, LATIN, n=40, types="best", parses=halves, seed=0)
    assert set(best.parse_index.tolist()) == {0}


def _centred(ink: np.ndarray) -> np.ndarray:
    """The ink moved (whole pixels) so that its centre of mass is the frame's centre."""
    rows, cols = np.nonzero(ink)
    return np.roll(ink, (52 - round(rows.mean()), 52 - round(cols.mean())), axis=(0, 1))


def test_exemplars_resemble_the_input_more_than_another_character(model, parses, one_thread):
    e = pyrochar.exemplars(model, LATIN, n=20, parses=parses, seed=0)
    latin, greek = _centred(load_image(LATIN)), _centred(load_image(GREEK))
    same = np.median([ink_f1(_centred(img), latin) for img in e.images])
    other = np.median([ink_f1(_centred(img), greek) for img in e.images])
    assert same > 0.35 and same > other + 0.1, (same, other)


def test_bad_arguments_one_clear_error(model, parses):
    for n in (0, 101, 2.5, "9"):
        with pytest.raises(PyrocharError, match="n"):
            pyrochar.exemplars(model, LATIN, n=n, parses=parses)
    with pytest.raises(PyrocharError, match="types must be one of best, posterior"):
        pyrochar.exemplars(model, LATIN, types="nearby", parses=parses)
    with pytest.raises(PyrocharError, match="binarize"):
        pyrochar.exemplars(model, LATIN, binarize="round", parses=parses)
    with pytest.raises(PyrocharError, match="refined"):
        pyrochar.exemplars(model, LATIN, parses=[dataclasses.replace(parses[0], blur=None)])
    with pytest.raises(PyrocharError, match="weights"):
        pyrochar.exemplars(model, LATIN, types="posterior", parses=_weighted(parses, [0.0] * len(parses)))
    with pytest.raises(PyrocharError, match="ink"):
        pyrochar.exemplars(model, np.zeros((105, 105), dtype=bool), parses=parses)


def test_sample_binarization_is_the_programs_bernoulli_draw(model, parses, one_thread):
    e = pyrochar.exemplars(model, LATIN, n=3, parses=parses, seed=2, binarize="sample")
    _, _, trace = sample_tokens(model, parses, 3, seed=2)
    assert np.array_equal(e.images, trace.nodes["image"]["value"].numpy() > 0.5)


# ------------------------------------------------------------------------- CLI


def _one_line_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_cli_writes_picture_and_json_that_scores(run, tmp_path):
    out, js = tmp_path / "ex.png", tmp_path / "ex.json"
    r = run("exemplars", LATIN, "-n", 4, "-k", 2, "--steps", 5, "--types", "posterior",
            "-o", out, "--json-out", js)  # fmt: skip
    assert f"wrote {out}: 4 exemplar(s) of {LATIN}" in r.output
    with Image.open(out) as im:
        assert im.size[0] > 3 * 210 and im.size[1] > 2 * 210  # input + a 2 x 2 grid of 210-px cells
    drawings, labels = read_drawings_json_with_labels(js)
    assert labels == [f"{LATIN} exemplar {i}" for i in range(1, 5)]
    assert all(len(d.strokes) >= 1 for d in drawings)
    doc = json.loads(js.read_text())
    assert doc["types"] == "posterior" and len(doc["parses"]) == 2
    for i, d in enumerate(doc["drawings"]):
        assert d["exemplar"]["index"] == i and d["exemplar"]["parse"] in (0, 1)
        assert len(d["exemplar"]["token_control_points"]) == len(d["strokes"])
    assert "n = 4" in run("score", js).output


def test_cli_bad_inputs_one_line_nothing_written(run, tmp_path):
    out, js = tmp_path / "ex.png", tmp_path / "ex.json"
    out.write_bytes(b"earlier picture")
    for n in (0, 101):
        assert "-n" in _one_line_error(run("exemplars", LATIN, "-n", n, "-o", out, ok=False))
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not a picture at all")
    assert "notes.png" in _one_line_error(run("exemplars", bad, "-o", out, "--json-out", js, ok=False))
    blank = tmp_path / "blank.png"
    Image.new("L", (105, 105), 255).save(blank)
    assert "ink" in _one_line_error(run("exemplars", blank, "-o", out, ok=False))
    assert "--types" in _one_line_error(run("exemplars", LATIN, "--types", "near", ok=False))
    assert ".json" in _one_line_error(run("exemplars", LATIN, "--json-out", tmp_path / "e.txt", ok=False))
    assert "does not exist" in _one_line_error(run("exemplars", tmp_path / "missing.png", ok=False))
    if Path("/proc/self").is_dir():  # a folder nothing can be written in: refused before any work,
        # so the picture is not written without its JSON
        fresh = tmp_path / "fresh.png"
        assert "cannot write in the folder /proc" in _one_line_error(
            run("exemplars", LATIN, "-o", fresh, "--json-out", "/proc/pyrochar-nope/x.json", ok=False))
        assert not fresh.exists()
    assert out.read_bytes() == b"earlier picture" and not js.exists()
