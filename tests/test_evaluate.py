"""The likelihood evaluation (Table 1): files, t-test, hyperparameter choice, resume."""

import csv
import io
import json

import numpy as np
import pytest
from conftest import TINY_FULL_NS
from scipy import stats

from pyrochar.evaluate import EvalConfig, evaluate, paired_t_test
from pyrochar.train import TrainConfig

TINY = {
    "full-ns": TINY_FULL_NS,
    "hlstm": dict(n_components=3, char_hidden=8, char_layers=1, encoder_hidden=8, location_hidden=8,
                  termination_hidden=8, stroke_hidden=8, start_embed=8),
    "baseline": dict(n_components=3, hidden=8, layers=1),
    "bpl": dict(n_components=2, em_iterations=10, em_restarts=1),
}


pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def tiny_data(fixture_prepared):
    """3 alphabets x 5 characters x 3 drawings."""
    keys = fixture_prepared.character_keys()
    wanted = {f"{a}/character{c:02d}" for a in ("Greek", "Latin", "Korean") for c in range(1, 6)}
    idx = [d for d, k in enumerate(keys) if k in wanted and fixture_prepared.meta["drawer"][d] <= 3]
    return fixture_prepared.select(idx)


def _cfg(**kw):
    return EvalConfig(
        task="alphabet", models=["full-ns", "hlstm", "baseline", "bpl"], splits=[0, 1],
        train=TrainConfig(epochs=1, batch_size=16, patience=1),
        overrides=TINY, **kw,
    )


def test_paired_t_test_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(20, 3, 500)
    b = a + rng.normal(0.3, 1, 500)
    got = paired_t_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert got["t"] == pytest.approx(ref.statistic) and got["p"] == pytest.approx(ref.pvalue)
    assert got["df"] == 499


def test_tiny_end_to_end_writes_the_table_and_resumes(tiny_data, tmp_path):
    logs = []
    report = evaluate(tiny_data, _cfg(), tmp_path, log=logs.append, progress=False)
    for name in ("table.md", "table.csv", "table.json", "grid.json"):
        assert (tmp_path / name).exists()
    table = json.loads((tmp_path / "table.json").read_text())
    assert set(table["mean_nll"]) == {"full-ns", "hlstm", "baseline", "bpl"}
    assert table["splits"] == ["alphabet:0", "alphabet:1"]
    rows = list(csv.reader(io.StringIO((tmp_path / "table.csv").read_text())))
    assert rows[0] == ["model", "alphabet:0", "alphabet:1", "mean"] and len(rows) == 5
    md = (tmp_path / "table.md").read_text()
    assert md.count("**") == 2 * 3  # one best per column (2 splits + mean)
    assert "t(" in md and report["t_test"]["df"] == sum(report["n_test"].values()) - 1
    assert all(np.isfinite(v) for m in table["mean_nll"].values() for v in m.values())
    # the default grid: 1 setting for full-ns and bpl, 2 for hlstm and baseline; 2 splits
    assert len(logs) == (1 + 2 + 2 + 1) * 2
    grid = json.loads((tmp_path / "grid.json").read_text())
    assert len(grid["hlstm"]["validation_nll"]) == 2 and len(grid["full-ns"]["validation_nll"]) == 1

    # a second call reuses every finished run: nothing is trained again
    logs2 = []
    again = evaluate(tiny_data, _cfg(), tmp_path, log=logs2.append, progress=False)
    assert again["mean_nll"] == report["mean_nll"]
    done = list(tmp_path.glob("runs/*/*/*/done.json"))
    assert len(done) == 12


def test_hyperparameters_are_chosen_by_mean_validation_loss(tiny_data, tmp_path):
    grid = {"baseline": [{"hidden": 4}, {"hidden": 12}]}
    cfg = _cfg(grid=grid)
    cfg.models = ["baseline", "bpl"]
    evaluate(tiny_data, cfg, tmp_path, log=lambda m: None, progress=False)
    report = json.loads((tmp_path / "grid.json").read_text())
    scores = report["baseline"]["validation_nll"]
    assert len(scores) == 2
    assert report["baseline"]["chosen"] == min(scores, key=scores.get)


def test_an_unfinished_run_resumes_with_other_settings_only_when_allowed(tiny_data, tmp_path):
    from pyrochar.train import ResumeMismatch

    cfg = _cfg()
    cfg.models, cfg.splits = ["bpl"], [0]
    evaluate(tiny_data, cfg, tmp_path, log=lambda m: None, progress=False)
    (done,) = tmp_path.glob("runs/bpl/*/*/done.json")
    done.unlink()  # as if the run had been interrupted after its last checkpoint
    longer = _cfg()
    longer.models, longer.splits = ["bpl"], [0]
    longer.train = TrainConfig(epochs=2, batch_size=16, patience=1)
    with pytest.raises(ResumeMismatch, match="epochs"):
        evaluate(tiny_data, longer, tmp_path, log=lambda m: None, progress=False)
    longer.allow_changed = frozenset({"epochs"})
    evaluate(tiny_data, longer, tmp_path, log=lambda m: None, progress=False)
    assert done.exists()
