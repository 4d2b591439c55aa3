"""MAP refinement of candidate parses (pyrochar.image.refine)."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyrochar.checkpoint import load_pretrained
from pyrochar.errors import PyrocharError
from pyrochar.image.model import SITES, GenerateImage, TokenValues, token_controls, type_batch
from pyrochar.image.refine import parse_tensors, refine
from pyrochar.image.render import render_probs
from pyrochar.models.base import evaluating
from pyrochar.models.sites import site_variable
from pyrochar.splines import evaluate_spline

# A two-stroke character (normalized units): a bowl and a stem.
TRUE = [
    np.array([[-0.61, 0.52], [-0.93, -0.13], [-0.52, -0.81], [0.13, -0.58], [0.27, 0.08], [-0.17, 0.61]]),
    np.array([[0.42, 0.93], [0.44, 0.12], [0.47, -0.71], [0.53, -0.98]]),
]
AFFINE = torch.tensor([1.12, 0.91, 1.8, -1.2])  # scales, shifts in px
BLUR, EPS = 1.8, 0.02


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small batches: one thread is faster than two on a busy machine."""


@pytest.fixture(scope="module")
def model():
    return load_pretrained("full-ns")


@pytest.fixture(scope="module")
def image():
    """A sample of the image model: TRUE warped by AFFINE, blurred, with pixel noise."""
    cps, n_cp = parse_tensors([TRUE])
    values = TokenValues(torch.zeros_like(cps), torch.zeros(1, 2, 2), AFFINE.view(1, 4),
                         torch.tensor([BLUR]), torch.tensor([EPS]))  # fmt: skip
    probs = render_probs(token_controls(cps, n_cp, values), n_cp, values.blur, values.eps)
    g = torch.Generator().manual_seed(0)
    return (torch.rand(probs.shape, generator=g) < probs).float()[0]  # (105, 105)


def _true_token() -> list[np.ndarray]:
    """TRUE warped by AFFINE (the strokes the image was drawn with)."""
    cps, n_cp = parse_tensors([TRUE])
    values = TokenValues(torch.zeros_like(cps), torch.zeros(1, 2, 2), AFFINE.view(1, 4),
                         torch.ones(1), torch.ones(1))  # fmt: skip
    token = token_controls(cps, n_cp, values)[0].numpy()
    return [token[i, : len(t)] for i, t in enumerate(TRUE)]


def _noisy(seed: int, sd: float = 0.15) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cp + rng.normal(0, sd, cp.shape) for cp in TRUE]


def _curve_error_px(strokes: list[np.ndarray]) -> float:
    """Mean distance (px) between the strokes' curves and the true token's, 40 points each."""
    pairs = zip(strokes, _true_token(), strict=True)
    return 20 * float(np.mean([np.linalg.norm(evaluate_spline(a, 40) - evaluate_spline(b, 40), axis=1).mean()
                               for a, b in pairs]))  # fmt: skip


def test_refining_noisy_parses_raises_the_joint_and_finds_the_drawing(model, image):
    parses = [_noisy(s) for s in range(4)]  # ~2.5-4 px off the drawing's curves
    before = refine(model, image, parses, steps=0)
    after = refine(model, image, parses, steps=60)
    assert bool((after.scores.total > before.scores.total + 200).all())
    for b in range(4):
        err_before = _curve_error_px(parses[b])  # identity affine, no noise
        err_after = _curve_error_px(after.token_strokes[b])
        assert err_after < min(2.0, 0.7 * err_before)
    assert bool(((after.blur > 0.5 * BLUR) & (after.blur < 2 * BLUR)).all())
    assert bool((after.eps < 0.1).all())


def test_token_refit_recovers_the_affine_and_blur(model, image):
    out = refine(model, image, [TRUE], steps=100, fit_type=False)
    # the shape noise (3.4 px per control point) takes some of the warp: roughly
    np.testing.assert_allclose(out.affine[0, :2].numpy(), AFFINE[:2].numpy(), atol=0.08)
    np.testing.assert_allclose(out.affine[0, 2:].numpy(), AFFINE[2:].numpy(), atol=1.5)  # px
    assert abs(float(out.blur[0]) - BLUR) < 0.6
    assert len(out.type_strokes[0]) == 2
    for got, want in zip(out.type_strokes[0], TRUE, strict=True):  # the type is held fixed
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_scores_equal_a_trace_of_the_conditioned_program(model, image):
    parses = [_noisy(1), [TRUE[1][::-1].copy()], [TRUE[1], TRUE[0]]]  # 2, 1 and 2 strokes
    out = refine(model, image, parses, steps=5)
    batch = type_batch(out.type_cps, out.n_cp)
    data = {**batch.condition_dict(), **out.values.as_dict(), "image": image}
    program = GenerateImage(model)
    with evaluating(model):
        trace = poutine.trace(pyro.condition(program.model, data=data)).get_trace(3)
    trace.compute_log_prob()
    parts = {"type": 0.0, "token": 0.0, "image": 0.0}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or name in ("characters", "tokens"):
            continue
        kind = "type" if site_variable(name) else ("image" if name == "image" else "token")
        assert kind != "token" or name in SITES
        parts[kind] = parts[kind] + site["log_prob"]
    for kind, lp in parts.items():
        torch.testing.assert_close(lp, getattr(out.scores, kind), atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(out.scores.total, sum(parts.values()), atol=2e-3, rtol=1e-5)


def test_several_images_and_bad_arguments(model, image):
    blank_ink = torch.zeros(105, 105)
    blank_ink[50:55, 20:90] = 1  # a bar, not the character
    images = torch.stack([blank_ink, image])
    out = refine(model, images, [TRUE, TRUE], image_index=[0, 1], steps=0)
    assert float(out.scores.image[1]) > float(out.scores.image[0])
    best = out.take([1])
    assert best.type_strokes == [out.type_strokes[1]] and best.image_index.tolist() == [1]
    torch.testing.assert_close(best.scores.total, out.scores.total[1:])
    torch.testing.assert_close(best.values.shape_noise, out.values.shape_noise[1:])
    with pytest.raises(PyrocharError, match="image_index"):
        refine(model, images, [TRUE], image_index=[2], steps=0)
    with pytest.raises(PyrocharError, match="images must be"):
        refine(model, torch.zeros(3, 28, 28), [TRUE], steps=0)
    with pytest.raises(PyrocharError, match="only 0 and 1"):
        refine(model, 0.5 * image, [TRUE], steps=0)
    with pytest.raises(PyrocharError, match="steps"):
        refine(model, image, [TRUE], steps=-1)
    with pytest.raises(PyrocharError, match="init_affine"):
        refine(model, image, [TRUE], steps=0, init_affine=[1.0, 1.0])
    with pytest.raises(PyrocharError, match="type_every"):
        refine(model, image, [TRUE], steps=1, type_every=0)
    for weight in (0.0, 1.5, float("nan")):
        with pytest.raises(PyrocharError, match="image_weight"):
            refine(model, image, [TRUE], steps=0, image_weight=weight)


def test_a_tempered_refit_bends_the_token_less(model, image):
    """With the image term weighted below 1, the token model keeps more say: a wrong
    shape (the bowl's stroke alone, drawn straight) bends less towards the ink, and
    the scores are the unweighted log-probs of the values found."""
    straight = [np.array([[-0.6, 0.6], [-0.6, 0.2], [-0.6, -0.2], [-0.6, -0.6]])]
    full = refine(model, image, [straight], steps=40, fit_type=False)
    tempered = refine(model, image, [straight], steps=40, fit_type=False, image_weight=0.2)
    assert float(tempered.scores.token) > float(full.scores.token) + 1.0
    assert float(full.scores.image) > float(tempered.scores.image)
    noise = lambda r: float(r.values.shape_noise.abs().sum())  # noqa: E731
    assert noise(tempered) < noise(full)
    torch.testing.assert_close(tempered.scores.total,
                               tempered.scores.type + tempered.scores.token + tempered.scores.image)


class _ScaleImageSite(poutine.messenger.Messenger):
    """Scales the log-prob of the ``image`` site alone (``poutine.scale`` on one site)."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def _process_message(self, msg):
        if msg["name"] == "image":
            msg["scale"] = msg["scale"] * self.weight


def test_the_tempered_objective_is_the_program_with_its_image_site_scaled(model, image):
    out = refine(model, image, [TRUE], steps=3, fit_type=False, image_weight=0.2)
    batch = type_batch(out.type_cps, out.n_cp)
    data = {**batch.condition_dict(), **out.values.as_dict(), "image": image}
    with evaluating(model), _ScaleImageSite(0.2):
        trace = poutine.trace(pyro.condition(GenerateImage(model).model, data=data)).get_trace(1)
    objective = out.scores.type + out.scores.token + 0.2 * out.scores.image
    torch.testing.assert_close(trace.log_prob_sum(), objective.sum(), atol=2e-3, rtol=1e-5)
