"""The BPL-style prior behind the common contract: slots, fast path, sampling, fit, CLI.

What all four models must do alike is tested in test_model_contract.py.
"""

import json
import math

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_BPL, adam_losses

from pyrochar.checkpoint import load_checkpoint, save_checkpoint
from pyrochar.data.loader import BatchSource
from pyrochar.data.splits import make_split
from pyrochar.errors import PyrocharError
from pyrochar.handlers import temperature
from pyrochar.models import MODELS, BPLConfig, BPLPrior, build_model
from pyrochar.models.batch import CharacterBatch
from pyrochar.sampling import sample_batch, sample_characters
from pyrochar.scoring import log_likelihood, log_likelihood_per_step, score
from pyrochar.trivial_model import trivial_model_nll

# few slots, so that indices beyond them (sharing the last slot) occur in the data
SMALL = TINY_BPL


pytestmark = pytest.mark.usefixtures("one_thread")

def random_model(**kw) -> BPLPrior:
    """An untrained prior whose slots all differ (random raw GMMs and hazard logits)."""
    torch.manual_seed(0)
    m = BPLPrior(BPLConfig(**{**SMALL, **kw}))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


def strokes_only(batch: CharacterBatch) -> CharacterBatch:
    return CharacterBatch(batch.starts, batch.offsets, batch.n_offsets, batch.n_strokes)


@pytest.fixture(scope="module")
def alphabet_split(shared_prepared):
    """alphabet:0 of the 6 shared alphabets: (train, test) datasets."""
    sp = make_split("alphabet:0", shared_prepared.character_keys())
    return shared_prepared.select_characters(sp.train), shared_prepared.select_characters(sp.test)


@pytest.fixture(scope="module")
def fitted(alphabet_split):
    """The default-size prior fitted in closed form on the training split."""
    pyro.enable_validation(False)
    return BPLPrior.fit(alphabet_split[0])


# ------------------------------------------------------------------ contract


def test_registered_with_its_documented_sizes():
    assert MODELS["bpl"] is BPLPrior
    m = build_model("bpl")
    c = m.config
    assert (c.max_strokes, c.max_steps) == (10, 50)
    assert not m.uses_canvases and m.teacher_forced_plate == "strokes"
    k = c.n_components
    n = sum(p.numel() for p in m.parameters())
    assert n == 6 * k * (c.location_slots + c.offset_slots) + c.stroke_end_slots + c.char_end_slots
    assert n == 750  # K = 10: 2 start GMMs, 10 offset GMMs, 20 + 10 hazard logits
    assert all(isinstance(p, torch.nn.Parameter) for p in m.parameters())
    with pytest.raises(PyrocharError):
        build_model("bpl", {"n_components": 0})


def test_fast_path_equals_per_step_model(greek_source):
    m = random_model()
    longest = np.argsort(-greek_source.n_strokes, kind="stable")[:8]
    batch = strokes_only(greek_source.batch(np.concatenate([longest, np.arange(8)])))
    # the batch reaches beyond every slot count, so the shared last slots are exercised
    assert int(batch.n_strokes.max()) > m.config.char_end_slots
    assert int(batch.n_offsets.max()) > m.config.stroke_end_slots
    with torch.no_grad():
        fast, fast_parts = log_likelihood(m, batch)
        slow, slow_parts = log_likelihood_per_step(m, batch)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)
    for k in fast_parts:
        assert torch.allclose(fast_parts[k], slow_parts[k], atol=1e-4, rtol=0), k
    assert torch.allclose(sum(fast_parts.values()), fast, atol=1e-4)


def test_fast_path_equals_per_step_model_with_the_default_sizes(greek_source, fitted):
    batch = greek_source.batch(range(10))  # carries canvases: the model ignores them
    with torch.no_grad():
        fast, _ = log_likelihood(fitted, batch)
        slow, _ = log_likelihood_per_step(fitted, batch)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)


def test_strokes_are_independent_of_each_other(greek_source):
    """The defining simplification: a stroke's score does not depend on the others."""
    m = random_model()
    batch = strokes_only(greek_source.batch(range(20)))
    k = int(torch.nonzero(batch.n_strokes >= 2)[0])
    one = batch[[k]]
    changed = CharacterBatch(one.starts.clone(), one.offsets.clone(), one.n_offsets, one.n_strokes)
    changed.starts[0, 0] += 0.7
    changed.offsets[0, 0, 0] -= 0.4
    with torch.no_grad():
        _, a = log_likelihood(m, one)
        _, b = log_likelihood(m, changed)
    # only stroke 0's own terms move; the second stroke's start is scored by the same GMM
    tf_a = {s.variable: s for s in m.teacher_forced_sites(one)[1]}
    tf_b = {s.variable: s for s in m.teacher_forced_sites(changed)[1]}
    for site in ("loc", "offset"):
        sa, sb = tf_a[site], tf_b[site]
        assert torch.allclose(sa.fn.log_prob(sa.value)[1:], sb.fn.log_prob(sb.value)[1:])
    assert torch.equal(a["stroke_end"], b["stroke_end"])
    assert torch.equal(a["char_end"], b["char_end"])


# ------------------------------------------------------------------ sampling


def test_caps_bound_the_samples():
    m = random_model(max_strokes=3, max_steps=4)
    with torch.no_grad():  # never end by themselves: every sample runs into the caps
        m.stroke_end_logits.fill_(-30.0)
        m.char_end_logits.fill_(-30.0)
    samples = sample_batch(m, 8, seed=0)
    assert (samples.n_strokes == 3).all() and (samples.n_offsets == 4).all()


def test_sampled_characters_render_and_fit_the_json_format(fitted, tmp_path):
    from pyrochar.data.drawing import Drawing
    from pyrochar.data.jsonio import read_drawings_json, write_drawings_json
    from pyrochar.render import render_character
    from pyrochar.viz import splines_to_motor_polylines

    chars = sample_characters(fitted, 12, seed=0)
    assert len(chars) == 12
    for ch in chars:
        assert 1 <= len(ch) <= fitted.config.max_strokes
        for cp in ch:
            assert cp.ndim == 2 and cp.shape[1] == 2 and 2 <= len(cp) <= fitted.config.max_steps + 1
            assert np.isfinite(cp).all()
        canvas = render_character(ch)
        assert canvas.shape == (28, 28) and torch.isfinite(canvas).all()
        assert 0.0 <= float(canvas.min()) and float(canvas.max()) <= 1.0
    assert sum(float(render_character(ch).sum()) for ch in chars) > 0  # some ink lands
    drawings = [
        Drawing([np.column_stack([c, np.zeros(len(c))]) for c in splines_to_motor_polylines(ch)])
        for ch in chars
    ]
    path = tmp_path / "samples.json"
    write_drawings_json(path, drawings)
    back = read_drawings_json(path)
    assert [d.n_strokes for d in back] == [len(ch) for ch in chars]


def test_lower_temperature_lowers_the_spread(fitted):
    def spread(t, site):
        pyro.set_rng_seed(0)
        with temperature(temperature=t), torch.no_grad():
            tr = poutine.trace(fitted.model).get_trace(batch_size=400, max_strokes=1, max_steps=1)
        return tr.nodes[site]["value"].std(0).mean()

    for site in ("loc_0", "offset_0_0"):
        assert spread(0.3, site) < spread(1.0, site)


def test_completion_keeps_the_observed_strokes(greek_source):
    from pyrochar.complete import complete

    m = random_model()
    batch = strokes_only(greek_source.batch(range(20)))
    k = int(torch.nonzero(batch.n_strokes >= 2)[0])
    out = complete(m, batch[[k]], keep_strokes=1, n=5, seed=0)
    n0 = int(batch.n_offsets[k, 0])
    assert (out.n_strokes >= 1).all()
    assert torch.allclose(out.starts[:, 0], batch.starts[k, 0].expand(5, 2))
    assert torch.allclose(out.offsets[:, 0, :n0], batch.offsets[k, 0, :n0].expand(5, n0, 2))


# ------------------------------------------------------------------ fitting


def test_em_recovers_a_known_mixture():
    from pyrochar.models.bpl import _em_fit

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3000, 2, generator=gen, dtype=torch.float64) * torch.tensor([0.3, 0.1]) + 2.0
    b = torch.randn(1000, 2, generator=gen, dtype=torch.float64) * 0.2 - torch.tensor([1.0, 3.0])
    log_w, means, scales, rho = _em_fit(torch.cat([a, b]), 2, 200, 2, gen)
    order = means[:, 0].argsort(descending=True)
    f64 = dict(dtype=torch.float64)
    assert torch.allclose(log_w[order].exp(), torch.tensor([0.75, 0.25], **f64), atol=0.02)
    assert torch.allclose(means[order], torch.tensor([[2.0, 2.0], [-1.0, -3.0]], **f64), atol=0.03)
    assert torch.allclose(scales[order], torch.tensor([[0.3, 0.1], [0.2, 0.2]], **f64), atol=0.02)
    assert rho.abs().max() < 0.1


def test_hazards_are_the_smoothed_empirical_ones(alphabet_split, fitted):
    train = alphabet_split[0]
    a = fitted.config.hazard_smoothing
    n_strokes = train.drawing_sizes
    p1 = (np.sum(n_strokes == 1) + a) / (len(n_strokes) + 2 * a)
    assert torch.sigmoid(fitted.char_end_logits[0]).item() == pytest.approx(p1, rel=1e-5)
    n_offsets = train.stroke_sizes - 1
    q1 = (np.sum(n_offsets == 1) + a) / (len(n_offsets) + 2 * a)
    assert torch.sigmoid(fitted.stroke_end_logits[0]).item() == pytest.approx(q1, rel=1e-5)


def test_fit_is_deterministic(fixture_prepared):
    greek = np.flatnonzero(fixture_prepared.meta["alphabet"] == "Greek")[:200]
    greek = fixture_prepared.select(greek)
    config = BPLConfig(n_components=4, em_iterations=30)
    a = BPLPrior.fit(greek, config, seed=3).state_dict()
    b = BPLPrior.fit(greek, config, seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fit_generalizes_to_a_held_out_alphabet(alphabet_split, fitted):
    train, test = alphabet_split
    source = BatchSource(test)
    torch.manual_seed(0)
    untrained = score(BPLPrior(), source).mean
    got = score(fitted, source)
    trivial_parts = trivial_model_nll(train, test)
    trivial = trivial_parts["mean_nll"]  # ~36.3 nats on this split
    print(f"held-out NLL: BPL {got.mean:.3f}, trivial {trivial:.3f}, untrained {untrained:.3f}")
    assert np.isfinite(got.nll).all()
    assert got.mean < untrained - 10  # measured: 30.0 against 52.9
    assert got.mean < trivial - 3  # measured: 30.0 against 36.3
    assert got.summary()["breakdown"]["offset"] < trivial_parts["breakdown"]["offset"]


def test_fit_is_already_a_maximum_of_the_training_likelihood(alphabet_split, fitted):
    """Gradient steps from the fitted parameters barely move the training NLL."""
    pyro.enable_validation(False)
    m = BPLPrior(fitted.config)
    m.load_state_dict(fitted.state_dict())
    batch = BatchSource(alphabet_split[0]).batch(np.arange(len(alphabet_split[0])))
    losses = adam_losses(m, batch, lr=1e-3, steps=15)
    assert math.isfinite(losses[-1])
    assert losses[0] - min(losses) < 0.05


def test_checkpoint_round_trip_gives_identical_scores(fitted, greek_source, tmp_path):
    path = tmp_path / "bpl.pt"
    save_checkpoint(path, fitted)
    back = load_checkpoint(path, expected_model="bpl")
    assert isinstance(back, BPLPrior) and back.config == fitted.config
    batch = strokes_only(greek_source.batch(range(12)))
    with torch.no_grad():
        assert torch.equal(log_likelihood(fitted, batch)[0], log_likelihood(back, batch)[0])


# ------------------------------------------------------------------ command line


def test_cli_train_score_sample(small_omniglot, tmp_path, monkeypatch):
    from pyrochar_cli.main import main

    monkeypatch.setenv("PYROCHAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYROCHAR_DATA", str(tmp_path / "no-data-here"))

    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    out = tmp_path / "run"
    res = run("train", "--model", "bpl", "--source", small_omniglot, "--split", "alphabet:0",
              "--epochs", 2, "--batch-size", 8, "--out", out)  # fmt: skip
    assert "bpl: 750 parameters" in res.output and "test NLL" in res.output
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "bpl" and math.isfinite(results["test"]["mean_nll"])
    ck = out / "best.pt"
    res = run("score", "--model", "bpl", "--checkpoint", ck, "--source", small_omniglot, "--json")
    assert json.loads(res.stdout)["n"] == 36
    png, js = tmp_path / "x.png", tmp_path / "x.json"
    res = run("sample", "--model", "bpl", "--checkpoint", ck, "-n", 4, "-o", png, "--json-out", js)
    assert png.exists() and "4 characters from bpl" in res.output
    from pyrochar.data.jsonio import read_drawings_json

    assert len(read_drawings_json(js)) == 4
