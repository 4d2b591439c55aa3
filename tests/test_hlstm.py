"""The Hierarchical LSTM behind the Full NS contract: sizes, stroke encoder, causality.

What all four models must do alike is tested in test_model_contract.py.
"""

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
