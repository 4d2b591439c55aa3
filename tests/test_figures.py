"""The qualitative analysis: Figs. 3, 5, 6, 7, 8, the classifier, the novelty table, the CLI."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_FULL_NS
from PIL import Image
from pyro.distributions import Bernoulli

from pyrochar.checkpoint import save_checkpoint
from pyrochar.distributions import BivariateGMM
from pyrochar.figures import FILES, grids, make_figures, novelty, predictions, topology
from pyrochar.models import build_model
from pyrochar.priors import GaussianLocationPrior
from pyrochar.splines import evaluate_spline, to_motor

TINY = {
    "full-ns": TINY_FULL_NS,
    "hlstm": dict(n_components=3, char_hidden=16, char_layers=2, encoder_hidden=8, location_hidden=16,
                  termination_hidden=8, stroke_hidden=16, start_embed=8, max_strokes=4, max_steps=8),
    "baseline": dict(n_components=3, hidden=16, layers=2, max_strokes=4, max_steps=8),
    "bpl": dict(n_components=3, em_iterations=10, em_restarts=1, max_strokes=4, max_steps=8),
}
# two strokes near the middle of the canvas, normalized units
DRAWING = [np.array([[-0.6, 0.4], [-0.1, 0.5], [0.4, 0.3]]),
           np.array([[0.0, -0.6], [0.1, -0.1], [0.0, 0.4], [0.2, 0.6]])]


pytestmark = pytest.mark.usefixtures("one_thread")

def tiny(name: str, data=None):
    torch.manual_seed(0)
    model = build_model(name, TINY[name])
    if name == "bpl" and data is not None:
        model.initialize_from_data(data)
    return model.eval()


@pytest.fixture(scope="module")
def small_split(fixture_prepared):
    """Training data: 8 Greek characters (20 drawings each); held out: 3 Latin characters."""
    keys = [f"Greek/character{c:02d}" for c in range(1, 9)]
    held = [f"Latin/character{c:02d}" for c in range(1, 4)]
    return fixture_prepared.select_characters(keys), fixture_prepared.select_characters(held)


def size_of(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


# ------------------------------------------------------------------ Fig. 3
class FixedOffsetPrior:
    """A stroke prior whose every offset is N((0.5, 0), 0.15^2 I): known densities."""

    mean = torch.tensor([0.5, 0.0])

    def _gmm(self, shape):
        return BivariateGMM(torch.zeros(*shape, 1), self.mean.expand(*shape, 1, 2),
                            torch.full((*shape, 1, 2), 0.15), torch.zeros(*shape, 1))

    def begin(self, canvas, start):
        return canvas.shape[0]

    def step(self, n, prev_offset):
        return self._gmm((n,)), Bernoulli(logits=torch.zeros(n)), n

    def sequence(self, canvas, start, offsets, step_mask):
        shape = tuple(offsets.shape[:2])
        return self._gmm(shape), Bernoulli(logits=torch.zeros(shape))


def test_prediction_densities_are_the_shifted_offset_densities():
    cell = 84
    model = tiny("full-ns").set_priors(location=GaussianLocationPrior((0.2, -0.3), (0.4, 0.4)),
                                       stroke=FixedOffsetPrior())
    pred = predictions.stroke_predictions(model, DRAWING, size=cell)
    pixel_area = (105.0 / cell / 20.0) ** 2  # in normalized units
    pts = predictions.pixel_points(cell).numpy()
    assert pred.n_strokes == 2 and pred.canvases.shape == (3, 28, 28)
    assert pred.termination.shape == (2,) and np.all((pred.termination > 0) & (pred.termination < 1))
    # location: the Gaussian prior, mass ~1 on the canvas, peak at its mean
    for i in range(2):
        assert pred.location[i].sum() * pixel_area == pytest.approx(1.0, abs=0.02)
        assert np.abs(pts[pred.location[i].argmax()] - [0.2, -0.3]).max() < 0.1
    np.testing.assert_allclose(pred.starts[0], 0.8 * DRAWING[0][0] + 0.2 * DRAWING[0][1], atol=1e-6)
    # strokes: one density per offset, each a density of the next control point
    assert [len(s) for s in pred.steps] == [2, 3]
    for i, cps in enumerate(DRAWING):
        start = pred.starts[i]
        for t in range(len(cps) - 1):
            dens = pred.steps[i][t]
            assert dens.sum() * pixel_area == pytest.approx(1.0, abs=0.03)  # the Jacobian at t = 0
            # cp[1] = start + 0.8 offset[0]; cp[t + 1] = cp[t] + offset[t]
            expected = start + 0.8 * FixedOffsetPrior.mean.numpy() if t == 0 else cps[t] + [0.5, 0]
            assert np.abs(pts[dens.argmax()] - expected).max() < 0.1
            np.testing.assert_allclose(pred.targets[i][t], cps[t + 1], atol=1e-5)
            np.testing.assert_allclose(pred.conditioned[i][t][0], start, atol=1e-6)
            assert len(pred.conditioned[i][t]) == t + 1


def test_prediction_figure_size():
    cell = 60
    pred = predictions.stroke_predictions(tiny("full-ns"), DRAWING, size=cell)
    img = predictions.prediction_figure(pred, cell=cell, max_steps_shown=2)
    assert predictions.step_columns(pred, 2) == 2
    assert img.size == predictions.figure_size(2, 2, cell)
    assert img.size == (6 + 5 * (cell + 6), grids.TITLE_HEIGHT + predictions.HEADER_HEIGHT + 3 * (cell + 6) + 6)
    with pytest.raises(ValueError):
        predictions.prediction_figure(pred, cell=cell + 1)


# ---------------------------------------------------------------- Figs. 5, 8
def test_grid_figures_sizes(small_split):
    data, _ = small_split
    chars = grids.real_characters(data, 5, seed=1)
    assert len(chars) == 5
    assert len(grids.real_characters(data, 50)) == 8  # one drawing per character, at most
    w, h = grids.grid_size(5, 3, 40)
    assert (w, h) == (3 * 44 + 4, 2 * 44 + 4)
    panels = {"a": chars, "b": chars[:2], "c": chars}
    img = grids.side_by_side(panels, n_cols=3, cell=40)
    assert img.size == (3 * w + 2 * grids.GAP, grids.TITLE_HEIGHT + h)
    img = grids.stroke_decomposition({"T = 1": chars, "T = 0.5": chars}, n_cols=3, cell=40)
    assert img.size == (2 * w + grids.GAP, grids.TITLE_HEIGHT + h + grids.KEY_HEIGHT)


def test_center_characters_centres_the_curves():
    far = [[np.array([[1.5, 1.5], [2.5, 2.0]]), np.array([[2.0, 1.0], [2.2, 2.4], [1.8, 2.0]])]]
    (moved,) = grids.center_characters(far)
    pts = np.concatenate([evaluate_spline(to_motor(cp)) for cp in moved])
    np.testing.assert_allclose((pts.min(0) + pts.max(0)) / 2, [52.5, -52.5], atol=1e-9)
    np.testing.assert_allclose(moved[1] - moved[0][0], far[0][1] - far[0][0][0])  # a translation


# ------------------------------------------------------------ classifier, Fig. 6
@pytest.fixture(scope="module")
def classifier(small_split):
    torch.set_num_threads(1)
    return novelty.train_classifier(small_split[0], epochs=20, holdout_per_character=3, seed=0)


def test_classifier_beats_chance_on_held_out_drawings(classifier, small_split):
    data, _ = small_split
    assert len(classifier.classes) == 8
    assert len(classifier.heldout_index) == 8 * 3
    assert not set(classifier.heldout_index) & set(classifier.train_index)
    assert len(classifier.heldout_index) + len(classifier.train_index) == len(data)
    assert classifier.accuracy >= 0.75  # chance: 1/8
    info = classifier.info()
    assert info["n_classes"] == 8 and info["heldout_accuracy"] == pytest.approx(classifier.accuracy, abs=1e-4)


def test_render_characters_matches_the_model_canvases(small_split):
    from pyrochar.data.loader import BatchSource

    data, _ = small_split
    src = BatchSource(data.select(range(6)), with_canvases=True)
    batch = src.batch(range(6))
    expected = batch.canvases[torch.arange(6), batch.n_strokes]
    got = novelty.render_characters(novelty.dataset_characters(data.select(range(6))) + [[]])
    torch.testing.assert_close(got[:6], expected)
    assert got[6].abs().sum() == 0  # no strokes: a blank canvas


def test_nearest_neighbours_by_cosine_distance():
    torch.manual_seed(0)
    ref = torch.rand(20, 8)
    d, i = novelty.nearest_neighbours(3.0 * ref[[4, 7]], ref, k=5)  # scale does not matter
    assert d.shape == (2, 5) and i.shape == (2, 5)
    assert list(i[:, 0]) == [4, 7] and np.allclose(d[:, 0], 0, atol=1e-6)
    assert np.all(np.diff(d, axis=1) >= 0)
    full = novelty.cosine_distances(ref[[4]], ref)[0].numpy()
    np.testing.assert_allclose(np.sort(full)[:5], d[0], atol=1e-6)
    assert novelty.cosine_distances(torch.zeros(1, 8), ref).min() == pytest.approx(1.0)


def test_neighbour_figure_size():
    ch = [DRAWING]
    rows = {"A": ([DRAWING, DRAWING], [ch * 5, ch * 5]), "B": ([DRAWING], [ch * 5])}
    img = novelty.novelty_figure(rows, cell=30)
    w, h = grids.grid_size(12, 6, 30)
    assert img.size == (2 * w + grids.GAP, grids.TITLE_HEIGHT + h)


def test_novelty_table_keys_and_files(tmp_path):
    rng = np.random.default_rng(0)
    table = novelty.novelty_table(
        {"full-ns": rng.uniform(0.2, 0.4, 50), "baseline": rng.uniform(0.0, 0.1, 50)},
        {"heldout_characters": rng.uniform(0.2, 0.4, 80), "heldout_drawings": np.zeros(0)},
        {"n_classes": 3},
        temperatures={"baseline": 0.5},
    )
    assert set(table) == {"metric", "classifier", "references", "models"}
    assert set(table["references"]["heldout_characters"]) == {"description", "n", "median", "mean",
                                                              "q25", "q75"}
    assert table["references"]["heldout_drawings"]["n"] == 0
    m = table["models"]["baseline"]
    assert set(m) == {"n", "median", "mean", "q25", "q75", "temperature", "tests"}
    assert m["temperature"] == 0.5 and table["models"]["full-ns"]["temperature"] == 1.0
    t = m["tests"]["heldout_characters"]
    assert set(t) == {"median_difference", "mannwhitney_u", "mannwhitney_p", "ks_statistic", "ks_p",
                      "direction"}
    assert t["direction"] == "closer" and t["mannwhitney_p"] < 1e-6 and t["ks_statistic"] == 1.0
    assert table["models"]["full-ns"]["tests"]["heldout_characters"]["mannwhitney_p"] > 0.01
    assert m["tests"]["heldout_drawings"]["mannwhitney_p"] is None  # empty reference
    md, js = novelty.write_novelty_table(table, tmp_path)
    assert json.loads(js.read_text()) == table
    text = md.read_text()
    assert "| full-ns |" in text and "| baseline |" in text and "heldout_characters" in text


# ------------------------------------------------------------------- Fig. 7
def test_grid_assignment_is_a_permutation():
    rng = np.random.default_rng(0)
    cells = topology.grid_assignment(rng.normal(size=(100, 2)), 10, 10)
    assert sorted(cells.tolist()) == list(range(100))
    few = topology.grid_assignment(rng.normal(size=(7, 2)), 3, 3)
    assert len(set(few.tolist())) == 7 and few.max() < 9
    with pytest.raises(ValueError):
        topology.grid_assignment(rng.normal(size=(10, 2)), 3, 3)


def test_grid_assignment_recovers_a_lattice():
    # points on a stretched 4 x 3 lattice, shuffled: each lands in its own cell
    r, c = np.divmod(np.arange(12), 3)
    coords = np.stack([10.0 * c, -5.0 * r], 1)  # row 0 at the top: the largest y
    order = np.random.default_rng(1).permutation(12)
    cells = topology.grid_assignment(coords[order], 4, 3)
    np.testing.assert_array_equal(cells, np.arange(12)[order])


def test_embedding_and_topology_figure():
    torch.manual_seed(0)
    feats = torch.rand(9, 16)
    coords = topology.embed_2d(feats)
    assert coords.shape == (9, 2)
    np.testing.assert_allclose(coords, topology.embed_2d(2.0 * feats), atol=1e-9)  # cosine geometry
    cells = topology.grid_assignment(coords, 3, 3)
    img = topology.topology_figure([DRAWING] * 9, [DRAWING] * 9, cells, 3, 3, cell=30)
    w, h = grids.grid_size(9, 3, 30)
    assert img.size == (2 * w + grids.GAP, grids.TITLE_HEIGHT + h)


# ------------------------------------------------------------ make_figures
def test_make_figures_writes_every_figure(small_split, tmp_path):
    data, heldout = small_split
    models = {name: tiny(name, data) for name in TINY}
    n, cell, side = 4, 32, 3
    res = make_figures(models, data, heldout, tmp_path, n=n, seed=0, progress=False, n_novelty=6,
                       novelty_rows=2, grid_side=side, classifier_epochs=1, cell=cell)
    assert res.skipped == []
    assert set(res.files) == set(FILES)
    for key, name in FILES.items():
        assert res.files[key] == tmp_path / name and res.files[key].exists()
    w, h = grids.grid_size(n, 2, cell)
    assert size_of(res.files["fig5"]) == (5 * w + 4 * grids.GAP, grids.TITLE_HEIGHT + h)
    assert size_of(res.files["fig8"]) == (2 * w + grids.GAP, grids.TITLE_HEIGHT + h + grids.KEY_HEIGHT)
    w6, h6 = grids.grid_size(2 * 6, 6, cell)
    assert size_of(res.files["fig6"]) == (4 * w6 + 3 * grids.GAP, grids.TITLE_HEIGHT + h6)
    w7, h7 = grids.grid_size(side * side, side, cell)
    assert size_of(res.files["fig7"]) == (2 * w7 + grids.GAP, grids.TITLE_HEIGHT + h7)
    strokes = heldout.strokes(predictions.pick_drawing(heldout, 0))
    n_steps = min(6, max(len(cp) - 1 for cp in strokes))  # one column per step, at most 6
    assert size_of(res.files["fig3"]) == predictions.figure_size(len(strokes), n_steps, 2 * cell)
    table = json.loads(res.files["novelty_json"].read_text())
    assert list(table["models"]) == list(TINY)
    assert set(table["references"]) == {"heldout_characters", "heldout_drawings"}
    assert table["references"]["heldout_characters"]["n"] == len(heldout)
    assert table["models"]["full-ns"]["n"] == 6


def test_make_figures_without_full_ns_skips_its_figures(small_split, tmp_path):
    data, _ = small_split
    empty = data.select([])
    res = make_figures({"baseline": tiny("baseline")}, data, empty, tmp_path, n=2, progress=False,
                       n_novelty=3, novelty_rows=1, classifier_epochs=1, cell=24)
    assert set(res.files) == {"fig5", "fig6", "novelty_md", "novelty_json"}
    assert sorted(s.split(":")[0] for s in res.skipped) == ["Fig. 3", "Fig. 7", "Fig. 8"]
    assert res.novelty["references"]["heldout_characters"]["n"] == 0


# ---------------------------------------------------------------------- CLI
@pytest.fixture
def run(run, tmp_path, monkeypatch):
    """conftest's ``run``, with no shipped weights, whatever this installation holds."""
    import pyrochar.checkpoint

    monkeypatch.setattr(pyrochar.checkpoint, "pretrained_path", lambda name: tmp_path / "none.pt")
    return run


def test_cli_figures_writes_every_png(run, small_omniglot, fixture_prepared, tmp_path):
    fit_on = fixture_prepared.select_characters(["Greek/character01", "Latin/character01"])
    args = []
    for name in TINY:
        path = tmp_path / f"{name}.pt"
        save_checkpoint(path, tiny(name, fit_on))
        args += ["--checkpoint", f"{name}={path}"]
    out = tmp_path / "figs"
    res = run("figures", *args, "--source", small_omniglot, "--split", "alphabet:0", "-n", 4,
              "--n-novelty", 4, "--grid-side", 3, "--classifier-epochs", 1, "-o", out)
    for name in FILES.values():
        assert (out / name).exists(), name
        assert f"wrote {out / name}" in res.output
    assert "| full-ns |" in res.output and "| bpl |" in res.output


def test_cli_figures_missing_weights(run, tmp_path):
    res = run("figures", "--models", "full-ns,hlstm", "-o", tmp_path / "f", ok=False)
    assert "--checkpoint full-ns=PATH" in res.output
    res = run("figures", "-o", tmp_path / "f", ok=False)
    assert "no model to draw" in res.output and "--checkpoint" in res.output
    res = run("figures", "--checkpoint", "nonsense", "-o", tmp_path / "f", ok=False)
    assert "MODEL=PATH" in res.output
    res = run("figures", "--models", "baseline", "--checkpoint", f"hlstm={tmp_path}/x.pt", "-o",
              tmp_path / "f", ok=False)
    assert "--models leaves out" in res.output
    res = run("figures", "--models", "nope", "-o", tmp_path / "f", ok=False)
    assert "unknown model" in res.output


def test_models_without_weights_are_skipped_unless_asked_for(run, tmp_path):
    from pyrochar_cli.figure_command import DEFAULT_MODELS, load_models

    path = tmp_path / "b.pt"
    save_checkpoint(path, tiny("baseline"))
    said = []
    models = load_models(DEFAULT_MODELS, False, {"baseline": path},
                         log=lambda msg, err=False: said.append(msg))
    assert list(models) == ["baseline"]
    assert len(said) == 3 and all("--checkpoint" in s for s in said)
    assert "skipping hlstm" in said[1]
