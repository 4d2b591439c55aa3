"""The four shipped models give the NLLs recorded before the core was refactored.

tests/data/reference_nlls.json was written by tests/data/record_reference_nlls.py
(on the code before the one-loop refactoring). Runs on the committed fixture, so
it needs no Omniglot copy beside the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = json.loads((DATA / "reference_nlls.json").read_text())


@pytest.fixture(scope="module")
def fixture_dataset(tmp_path_factory):
    from pyrochar.data.prepare import prepare_dataset

    return prepare_dataset(DATA / "omniglot", cache_dir=tmp_path_factory.mktemp("prep"))


@pytest.mark.parametrize("name", sorted(REFERENCE["models"]))
def test_same_nlls_as_recorded(name, fixture_dataset, one_thread):
    from pyrochar.checkpoint import load_pretrained
    from pyrochar.data.loader import BatchSource
    from pyrochar.scoring import score

    ds = fixture_dataset
    assert [ds.key(d) for d in range(len(ds))] == REFERENCE["drawings"]
    model = load_pretrained(name).eval()
    scores = score(model, BatchSource(ds, with_canvases=model.uses_canvases), batch_size=len(ds))
    expected = REFERENCE["models"][name]
    np.testing.assert_allclose(scores.nll, expected["nll"], atol=1e-4, rtol=0)
