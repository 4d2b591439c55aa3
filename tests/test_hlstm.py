"""The Hierarchical LSTM behind the Full NS contract: sizes, stroke encoder, causality.

What all four models must do alike is tested in test_model_contract.py.
"""

import pyro.poutine as poutine
import pytest
import torch
from conftest import TINY_HLSTM

from pyrochar.models import MODELS, HierarchicalLSTM, HLSTMConfig, build_model
from pyrochar.models.batch import CharacterBatch

pytestmark = pytest.mark.usefixtures("one_thread")

def tiny(**kw) -> HierarchicalLSTM:
    torch.manual_seed(0)
    return HierarchicalLSTM(HLSTMConfig(**{**TINY_HLSTM, **kw})).eval()


def strokes_only(batch: CharacterBatch) -> CharacterBatch:
    return CharacterBatch(batch.starts, batch.offsets, batch.n_offsets, batch.n_strokes)


def test_registered_with_the_paper_sizes():
    assert MODELS["hlstm"] is HierarchicalLSTM
    m = build_model("hlstm")
    c = m.config
    assert (c.n_components, c.max_strokes, c.max_steps) == (20, 10, 50)
    assert (c.encoder_hidden, c.stroke_hidden) == (256, 256)  # fixed in the paper
    assert m.encoder.bidirectional and m.encoder.num_layers == 1
    assert m.stroke_lstm.num_layers == 1
    assert not m.uses_canvases and m.teacher_forced_plate == "strokes"
    n = sum(p.numel() for p in m.parameters())
    assert 2.0e6 < n < 3.0e6


def test_stroke_encoder_never_reads_padding():
    m = tiny()
    offsets = torch.randn(3, 6, 2)
    n = torch.tensor([6, 2, 4])
    garbage = torch.where(torch.arange(6)[:, None] < n[:, None, None], offsets, torch.tensor(7e2))
    with torch.no_grad():
        a, b = m.encode_strokes(offsets, n), m.encode_strokes(garbage, n)
        alone = m.encode_strokes(offsets[1:2, :2], n[1:2])
    assert torch.allclose(a, b) and torch.allclose(a[1:2], alone, atol=1e-6)


def test_later_strokes_do_not_change_earlier_sites(greek_source):
    """Causality: stroke 1 changes char_end_1 and loc_2 (memory), never sites before them."""
    m = tiny()
    ns = greek_source.n_strokes[:40]
    d = int(next(i for i in range(40) if ns[i] >= 3))
    batch = strokes_only(greek_source.batch([d]))
    moved = CharacterBatch(
        batch.starts, batch.offsets.clone(), batch.n_offsets, batch.n_strokes
    )
    moved.offsets[0, 1, 0] += 0.5

    def site_log_probs(b):
        data = b.condition_dict()
        caps = dict(max_strokes=b.starts.shape[1], max_steps=b.offsets.shape[2])
        with torch.no_grad():
            tr = poutine.trace(poutine.condition(m.model, data=data)).get_trace(1, **caps)
        tr.compute_log_prob()
        return {k: s["log_prob"] for k, s in tr.nodes.items() if k in data}

    a, b = site_log_probs(batch), site_log_probs(moved)
    for site in ["loc_0", "char_end_0", "loc_1", "stroke_end_1_0"]:
        assert torch.equal(a[site], b[site]), site
    for site in ["offset_1_0", "char_end_1", "loc_2"]:
        assert not torch.allclose(a[site], b[site]), site
