"""The Baseline LSTM (Sketch-RNN decoder) behind the Full NS contract."""

import numpy as np
import pytest
import torch
from conftest import TINY_BASELINE

from pyrochar.distributions import gmm_from_raw
from pyrochar.models import MODELS, BaselineConfig, BaselineLSTM, build_model
from pyrochar.models.batch import CharacterBatch
from pyrochar.scoring import log_likelihood, log_likelihood_per_step
from pyrochar.splines import stroke_to_start_offsets

pytestmark = pytest.mark.usefixtures("one_thread")

def tiny(**kw) -> BaselineLSTM:
    torch.manual_seed(0)
    return BaselineLSTM(BaselineConfig(**{**TINY_BASELINE, **kw})).eval()


def random_drawings(seed: int, n: int = 4):
    """Drawings as control points (normalized units), 1-3 strokes of 2-6 control points."""
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(size=(rng.integers(2, 7), 2)) for _ in range(rng.integers(1, 4))]
        for _ in range(n)
    ]


def test_registered_with_its_config():
    assert MODELS["baseline"] is BaselineLSTM
    m = build_model("baseline")
    c = m.config
    assert (c.n_components, c.max_strokes, c.max_steps) == (20, 10, 50)
    assert m.lstm.input_size == 5  # move + one-hot pen state
    assert not m.uses_canvases and m.teacher_forced_plate == "characters"
    n = sum(p.numel() for p in m.parameters())
    assert 0.7e6 < n < 1.0e6


def test_fast_path_equals_per_step_model_on_multi_stroke_drawings():
    m = tiny()
    batch = CharacterBatch.from_control_points(random_drawings(0, 6))
    assert batch.n_strokes.max() == 3 and batch.n_strokes.min() < 3
    with torch.no_grad():
        fast, _ = log_likelihood(m, batch)
        slow, _ = log_likelihood_per_step(m, batch)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)


def test_equals_the_sketch_rnn_likelihood_of_the_pen_sequence():
    """The site decomposition gives exactly Sketch-RNN's log-likelihood of the sequence
    (GMM of every move + categorical pen state of every offset), built here by hand."""
    m = tiny()
    drawings = random_drawings(1, 3)
    batch = CharacterBatch.from_control_points(drawings)
    with torch.no_grad():
        ll, _ = log_likelihood(m, batch)
    for k, drawing in enumerate(drawings):
        moves, pens, scored_pen = [], [], []
        pen_at = np.zeros(2)  # the fixed origin
        for i, cps in enumerate(drawing):
            start, offsets = stroke_to_start_offsets(cps)
            moves.append(start - pen_at)  # pen-up move; pen then down (not a variable)
            pens.append(0)
            scored_pen.append(False)
            for t, off in enumerate(offsets):
                moves.append(off)
                last = t == len(offsets) - 1
                pens.append(0 if not last else (2 if i == len(drawing) - 1 else 1))
                scored_pen.append(True)
            pen_at = cps[-1]  # the last control point
        moves_t = torch.tensor(np.array(moves), dtype=torch.float32)
        pens_t = torch.tensor(pens)
        onehot = torch.nn.functional.one_hot(pens_t, 3).float()
        first = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])
        inputs = torch.cat([first, torch.cat([moves_t, onehot], -1)[:-1]])[None]  # (1, L, 5)
        with torch.no_grad():
            out = m.head(m.lstm(inputs)[0])[0]  # (L, 6K + 3)
            lp_moves = gmm_from_raw(out[:, :-3], 3).log_prob(moves_t).sum()
            lp_pen = out[:, -3:].log_softmax(-1)[torch.arange(len(pens)), pens_t]
            expected = lp_moves + lp_pen[torch.tensor(scored_pen)].sum()
        assert torch.allclose(ll[k], expected, atol=1e-4), k


def test_sequence_layout():
    drawings = [[np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 2.0], [3.0, 2.0]])]]
    batch = CharacterBatch.from_control_points(drawings)
    seq = tiny().sequences(batch)
    start0, start1 = batch.starts[0, 0], batch.starts[0, 1]
    assert torch.allclose(start0, torch.tensor([0.2, 0.0]))  # 0.8 cp0 + 0.2 cp1
    expected_moves = torch.stack([
        start0,  # from the origin
        torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]),
        start1 - torch.tensor([1.0, 1.0]),  # from stroke 0's last control point
        torch.tensor([1.0, 0.0]),
    ])  # fmt: skip
    assert torch.allclose(seq["moves"][0], expected_moves)
    assert seq["pens"][0].tolist() == [0, 0, 1, 0, 2]
    assert seq["is_offset"][0].tolist() == [False, True, True, False, True]
    assert seq["is_last"][0].tolist() == [False, False, True, False, True]
    assert seq["first"][0].tolist() == [0, 3]
