"""``classify(method="model")``: parse, refit and the one-way and two-way scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pyrochar
import pyrochar.oneshot.refit as refit_module
from pyrochar.errors import PyrocharError
from pyrochar.oneshot.refit import ImageParses, two_way
from pyrochar.oneshot.runs import LABELS_FILE

#: Three characters as known strokes (normalized units): a bar, an L, a V.
CHARACTERS = [
    [np.array([[-1.5, 0.0], [-0.5, 0.0], [0.5, 0.0], [1.5, 0.0]])],
    [np.array([[-1.0, 1.5], [-1.0, 0.0], [-1.0, -1.5]]), np.array([[-1.0, -1.5], [0.0, -1.5], [1.0, -1.5]])],
    [np.array([[-1.2, 1.2], [-0.6, 0.0], [0.0, -1.2]]), np.array([[0.0, -1.2], [0.6, 0.0], [1.2, 1.2]])],
]


def drawn_by_another(strokes: list[np.ndarray]) -> list[np.ndarray]:
    """The same character by another drawer: 10 percent larger, moved 0.3 right and 0.2 down."""
    return [cp * 1.1 + np.array([0.3, -0.2]) for cp in strokes]


def render(strokes: list[np.ndarray]) -> np.ndarray:
    """Strokes -> a (105, 105) bool image: the image model's ink probability above 1/2."""
    import torch

    from pyrochar.image.refine import parse_tensors
    from pyrochar.image.render import render_probs

    cps, n_cp = parse_tensors([strokes])
    probs = render_probs(cps, n_cp, torch.tensor([1.0]), torch.tensor([1e-3]))
    return probs[0].numpy() > 0.5


def save(ink: np.ndarray, path: Path) -> None:
    """A 1-bit PNG, ink = 0 (Omniglot's format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert("1").save(path)


@pytest.fixture(scope="module")
def known_run(tmp_path_factory):
    """A run of the three characters (test items in the order V, bar, L) and, for each
    image's bytes, its strokes."""
    root = tmp_path_factory.mktemp("model-run") / "runs"
    strokes_of = {}
    order = [2, 0, 1]  # item01 shows class03, ...
    lines = []
    for c, strokes in enumerate(CHARACTERS):
        image = render(strokes)
        save(image, root / "run01" / "training" / f"class{c + 1:02d}.png")
        strokes_of[image.tobytes()] = strokes
    for t, c in enumerate(order):
        other = drawn_by_another(CHARACTERS[c])
        image = render(other)
        save(image, root / "run01" / "test" / f"item{t + 1:02d}.png")
        strokes_of[image.tobytes()] = other
        lines.append(f"run01/test/item{t + 1:02d}.png run01/training/class{c + 1:02d}.png\n")
    (root / "run01" / LABELS_FILE).write_text("".join(lines))
    return root, strokes_of, order


FAKE_PRIOR, FAKE_IMAGE = np.array([-20.0, -21.0]), np.array([-300.0, -340.0])


@pytest.fixture
def known_parses(known_run, monkeypatch):
    """The parser replaced by one that returns each image's known strokes: two
    parses (the strokes, and the strokes slightly bent), one for the training image
    of the V (parse counts may differ between images); their log-probs are
    :data:`FAKE_PRIOR` (type + token) and :data:`FAKE_IMAGE`. Returns the list of
    (strokes, image weight) of each call."""
    _, strokes_of, _ = known_run
    seen = []

    def fake_parse(model, image, k, steps, seed, image_weight):
        strokes = strokes_of[np.asarray(image).tobytes()]
        seen.append((len(strokes), image_weight))
        bent = [cp + np.array([0.0, 0.15]) * np.sin(np.linspace(0, np.pi, len(cp)))[:, None] for cp in strokes]
        parses = [strokes, bent][: (1 if len(strokes) == 2 and strokes[0][0, 0] < -1.1 else k)]
        return ImageParses(parses, FAKE_PRIOR[: len(parses)], FAKE_IMAGE[: len(parses)])

    monkeypatch.setattr(refit_module, "parse_image", fake_parse)
    return seen


@pytest.fixture(scope="module")
def full_ns():
    return pyrochar.load_pretrained("full-ns")


def test_known_strokes_are_classified_correctly(known_run, known_parses, full_ns, tmp_path):
    root, _, order = known_run
    result = pyrochar.classify(full_ns, root, k=2, steps=10, out=tmp_path / "out")
    (r,) = result.runs
    assert r.method == "model" and r.answers == order
    assert r.choices == order and r.error == 0.0
    assert r.errors == {"one_way": 0.0, "two_way": 0.0}
    assert len(known_parses) == 6  # 3 training and 3 test images parsed
    one_way, both = np.array(r.scores["one_way"]), np.array(r.scores["two_way"])
    assert one_way.shape == both.shape == (3, 3) and np.isfinite(both).all()
    # the right class explains each test item by a wide margin (nats)
    for t, c in enumerate(order):
        assert one_way[t, c] > np.delete(one_way[t], c).max() + 10
    data = json.loads((tmp_path / "out" / "run01.json").read_text())
    assert data["score"] == "two_way" and data["pick"] == {"one_way": "largest", "two_way": "largest"}
    assert data["settings"]["k"] == 2 and data["settings"]["steps"] == 10
    assert data["settings"]["model"] == "full-ns" and len(data["settings"]["weights_sha256"]) == 64
    with Image.open(tmp_path / "out" / "run01.png") as img:
        assert img.width > 3 * 105  # test item, chosen image, its parse refitted


def test_other_settings_are_refused_not_replaced(known_run, known_parses, full_ns, tmp_path):
    root, _, _ = known_run
    pyrochar.classify(full_ns, root, k=2, steps=1, out=tmp_path / "out")
    again = pyrochar.classify(full_ns, root, k=2, steps=1, out=tmp_path / "out")
    assert again.runs[0].resumed
    stored = (tmp_path / "out" / "run01.json").read_bytes()
    n_parsed = len(known_parses)
    with pytest.raises(PyrocharError, match=r"holds run01.json of other settings \(k 2 there, 1 now\)"):
        pyrochar.classify(full_ns, root, k=1, steps=1, out=tmp_path / "out")
    with pytest.raises(PyrocharError, match=r"\(method model there, mhd now\)"):
        pyrochar.classify(None, root, method="mhd", out=tmp_path / "out")
    assert (tmp_path / "out" / "run01.json").read_bytes() == stored  # nothing replaced
    assert len(known_parses) == n_parsed  # refused before any work
    assert {w for _, w in known_parses} == {refit_module.IMAGE_WEIGHT}
    weighted = pyrochar.classify(full_ns, root, k=1, steps=1, image_weight=1.0, out=tmp_path / "out-1")
    assert not weighted.runs[0].resumed
    assert {w for _, w in known_parses[-6:]} == {1.0}  # the parses chosen in the model of the weight
    data = json.loads((tmp_path / "out-1" / "run01.json").read_text())
    assert data["settings"]["image_weight"] == 1.0


def test_an_older_result_format_is_classified_again(known_run, full_ns, tmp_path):
    root, _, _ = known_run
    pyrochar.classify(full_ns, root, k=1, steps=1, out=tmp_path / "out")
    path = tmp_path / "out" / "run01.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format": data["format"] - 1}))
    with pytest.warns(UserWarning, match="older format: the run is classified again"):
        again = pyrochar.classify(full_ns, root, k=1, steps=1, out=tmp_path / "out")
    assert not again.runs[0].resumed
    assert json.loads(path.read_text())["format"] == data["format"]


@pytest.mark.parametrize("weight", [0, -0.5, 1.5, float("nan"), "1", True])
def test_a_bad_image_weight_is_refused(known_run, full_ns, weight):
    root, _, _ = known_run
    with pytest.raises(PyrocharError, match="image_weight must be a number in \\(0, 1\\]"):
        pyrochar.classify(full_ns, root, image_weight=weight)


def test_the_command(run, known_run, known_parses):
    root, _, _ = known_run
    res = run("classify", root, "-k", 2, "--steps", 3)
    assert "run01  error   0.0%  (0 of 3 wrong, one-way 0.0%)" in res.stdout
    assert "(model, by the two-way score, one-way 0.0%)" in res.stdout
    res = run("classify", root, "-k", 2, "--steps", 3, "--image-weight", 1)
    assert "run01  error   0.0%" in res.stdout
    bad = run("classify", root, "--image-weight", 0, ok=False)
    assert "--image-weight" in bad.output and "0<x<=1" in bad.output


def test_parse_weights_and_marginal_are_of_the_tempered_model():
    parses = ImageParses([[np.zeros((2, 2))]] * 3, np.array([-20.0, -25.0, -22.0]),
                         np.array([-300.0, -280.0, -330.0]))
    for w in (1.0, 0.2):
        totals = parses.prior + w * parses.image
        assert parses.log_marginal(w) == pytest.approx(np.logaddexp.reduce(totals))
        np.testing.assert_allclose(parses.log_weights(w), totals - np.logaddexp.reduce(totals))
    # at full weight the image ranks the second parse first, at 0.2 the prior the first
    assert np.argmax(parses.log_weights(1.0)) == 1 and np.argmax(parses.log_weights(0.2)) == 0
    first = parses.first(2)
    assert len(first.strokes) == 2 and first.log_marginal(0.2) == pytest.approx(np.logaddexp(-80.0, -81.0))
    # the k best in the tempered model: totals at 1 are -320, -305, -352; at 0.2 -80, -81, -88
    assert parses.best(2, 1.0).prior.tolist() == [-25.0, -20.0]
    best = parses.best(2, 0.2)
    assert best.prior.tolist() == [-20.0, -25.0] and best.image.tolist() == [-300.0, -280.0]


def test_parse_image_keeps_each_parse_prior_and_image_terms(monkeypatch):
    from pyrochar.image.parse import Parse

    found = [Parse([np.zeros((2, 2))], {"type": -10.0, "token": -5.0, "image": -300.0, "total": -315.0}),
             Parse([np.ones((2, 2))], {"type": -12.0, "token": -4.0, "image": -280.0, "total": -296.0})]
    monkeypatch.setattr("pyrochar.image.parse.parse", lambda model, image, k, n_refine, steps, seed: found)
    parses = refit_module.parse_candidates(None, np.zeros((105, 105), bool), k=2, steps=None, seed=0)
    np.testing.assert_array_equal(parses.prior, [-15.0, -16.0])  # type + token
    np.testing.assert_array_equal(parses.image, [-300.0, -280.0])
    assert parses.log_marginal(0.2) == pytest.approx(np.logaddexp(-15.0 - 60.0, -16.0 - 56.0))


@pytest.mark.parametrize(("k", "weight", "expected"), [(1, 1.0, [0]), (2, 1.0, [0, 1]), (2, 0.1, [2, 0])])
def test_parse_image_chooses_the_k_best_parses_in_the_tempered_model(monkeypatch, k, weight, expected):
    """Of the candidates the parser refines for k (10 for k <= 5), the k with the highest
    type + token + w x image: at full weight the parser's own best k, at 0.1 the third
    candidate (fewer strokes, worse ink) first."""
    from pyrochar.image.parse import Parse

    terms = [(-30.0, -300.0), (-32.0, -305.0), (-10.0, -480.0)]  # (type + token, image) of each candidate
    found = [Parse([np.full((2, 2), i)], {"type": prior, "token": 0.0, "image": image, "total": prior + image})
             for i, (prior, image) in enumerate(terms)]
    calls = []

    def fake_parse(model, image, k, n_refine, steps, seed):
        calls.append((k, n_refine))
        return found

    monkeypatch.setattr("pyrochar.image.parse.parse", fake_parse)
    parses = refit_module.parse_image(None, np.zeros((105, 105), bool), k=k, steps=None, seed=0,
                                      image_weight=weight)
    assert calls == [(10, 10)]  # every candidate parse(k) would refine
    assert [int(s[0][0, 0]) for s in parses.strokes] == expected
    totals = [terms[i][0] + weight * terms[i][1] for i in expected]
    np.testing.assert_allclose(parses.log_weights(weight), np.array(totals) - np.logaddexp.reduce(totals))


def test_the_benchmark_scores_as_classify_does(full_ns):
    """benchmarks/bench_oneshot.py reads its errors off the same score classify computes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_oneshot", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_oneshot.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    class Bar:
        def update(self, n):
            pass

    strokes = [CHARACTERS[1], [cp + 0.1 for cp in CHARACTERS[1]]]
    train = [ImageParses(strokes, np.array([-20.0, -23.0]), np.array([-300.0, -290.0])),
             ImageParses(CHARACTERS[2:], np.array([-18.0]), np.array([-320.0]))]
    test = [ImageParses(strokes, np.array([-21.0, -22.0]), np.array([-310.0, -280.0]))]
    train_images = np.stack([render(CHARACTERS[1]), render(CHARACTERS[2])])
    test_images = render(drawn_by_another(CHARACTERS[1]))[None]
    w = 0.3
    fwd = refit_module.refit(full_ns, train, train_images, test_images, 2, Bar(), image_weight=w)
    bwd = refit_module.refit(full_ns, test, test_images, train_images, 2, Bar(), image_weight=w)
    one, two = bench.scores(fwd, bwd, train, test, k=2, weight=w)
    marginals = np.array([p.log_marginal(w) for p in train])
    np.testing.assert_allclose(one, fwd.log_lik.T)  # classify's one-way
    np.testing.assert_allclose(two, two_way(fwd.log_lik.T, bwd.log_lik, marginals))
    one_k1, _ = bench.scores(fwd, bwd, train, test, k=1, weight=w)
    np.testing.assert_allclose(one_k1[0, 0], fwd.token[0, 0, 0] + w * fwd.image[0, 0, 0])  # one parse, weight 1


def test_the_two_way_score_removes_the_tempered_marginal(known_run, known_parses, full_ns, monkeypatch):
    """log P(I_c) is of the model the refits score in: type + token + w * image."""
    root, _, _ = known_run
    seen = []
    real = refit_module.two_way
    monkeypatch.setattr(refit_module, "two_way", lambda f, b, m: seen.append(m) or real(f, b, m))
    pyrochar.classify(full_ns, root, k=2, steps=1, image_weight=0.5)
    n_parses = [2, 2, 1]  # the bar, the L, the V's training image
    expected = [np.logaddexp.reduce(FAKE_PRIOR[:n] + 0.5 * FAKE_IMAGE[:n]) for n in n_parses]
    np.testing.assert_allclose(seen[0], expected)


def test_two_way_adds_the_reverse_and_removes_the_marginal():
    forward = np.array([[-10.0, -20.0], [-30.0, -12.0]])
    backward = np.array([[-11.0, -25.0], [-28.0, -13.0]])
    marginals = np.array([-50.0, -40.0])
    np.testing.assert_allclose(two_way(forward, backward, marginals),
                               [[-10 - 11 + 50, -20 - 25 + 40], [-30 - 28 + 50, -12 - 13 + 40]])



def test_a_refit_starts_at_the_ink_spread_ratio_and_the_centroid_shift():
    small = np.zeros((105, 105), bool)
    small[40:60, 40:50] = True  # 10 wide, 20 high
    large = np.zeros((105, 105), bool)
    large[20:50, 10:25] = True  # 15 wide, 30 high, up and to the left
    (start,) = refit_module.initial_affines(small[None], large[None])  # (M, 4) for the one source
    (affine,) = start
    spread = lambda n: np.arange(n).std() + 1.0  # noqa: E731
    np.testing.assert_allclose(affine[:2], [spread(15) / spread(10), spread(30) / spread(20)])
    np.testing.assert_allclose(affine[2:], [17.0 - 44.5, -(34.5 - 49.5)])  # x = col, y = -row
    dot = np.zeros((105, 105), bool)
    dot[50, 50] = True
    (start,) = refit_module.initial_affines(dot[None], large[None])
    np.testing.assert_allclose(start[0, :2], refit_module.SCALE_RANGE[1])  # clipped


def test_the_refitted_terms_make_the_score(full_ns):
    strokes = [np.array([[-1.0, 1.0], [0.0, 0.0], [1.0, -1.0]])]
    bent = [strokes[0] + np.array([[0.0, 0.0], [0.0, 0.2], [0.0, 0.0]])]
    source = ImageParses([strokes, bent], np.array([-20.0, -22.0]), np.array([-300.0, -310.0]))
    images = np.stack([render(strokes), render(drawn_by_another(strokes))])

    class Bar:
        def update(self, n):
            pass

    for weight in (1.0, refit_module.IMAGE_WEIGHT):
        fits = refit_module.refit(full_ns, [source], images[:1], images, steps=2, bar=Bar(), image_weight=weight)
        assert fits.token.shape == fits.image.shape == (1, 2, 2)
        assert np.all(fits.image < -10)  # stored unweighted: ~11,000 pixels
        terms = source.log_weights(weight)[None, None, :] + fits.token + weight * fits.image
        np.testing.assert_allclose(fits.log_lik, np.logaddexp.reduce(terms, axis=2), rtol=1e-9)
    default = refit_module.refit(full_ns, [source], images[:1], images, steps=2, bar=Bar())
    np.testing.assert_allclose(default.log_lik, fits.log_lik, rtol=1e-9)  # IMAGE_WEIGHT by default

@pytest.mark.slow
def test_the_parser_finds_the_known_characters(known_run, full_ns):
    """The same run with the real parser (slow on a CPU)."""
    root, _, order = known_run
    (r,) = pyrochar.classify(full_ns, root, k=2, steps=10).runs
    assert r.choices == order
