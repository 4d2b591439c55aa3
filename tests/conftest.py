"""Shared fixtures. Data-dependent tests find ../shared/omniglot through one fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared_omniglot() -> Path | None:
    env = os.environ.get("PYROCHAR_TEST_OMNIGLOT")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "omniglot")
    for c in candidates:
        if (c / "strokes_background").is_dir():
            return c
    return None


SHARED_OMNIGLOT = _find_shared_omniglot()


@pytest.fixture(scope="session")
def omniglot_root() -> Path:
    """The folder holding ``strokes_background`` with the 6 shared alphabets."""
    if SHARED_OMNIGLOT is None:
        pytest.fail(
            "../shared/omniglot not found beside the checkout; set PYROCHAR_TEST_OMNIGLOT "
            "to a folder holding strokes_background/"
        )
    return SHARED_OMNIGLOT


TINY_FULL_NS = dict(
    n_components=3,
    location_channels=(4, 4, 4, 4),
    location_hidden=8,
    stroke_channels=(4, 4, 8),
    stroke_embed=8,
    stroke_hidden=16,
    attention_dim=8,
    stroke_head_hidden=16,
    termination_channels=4,
    termination_hidden=8,
)


TINY_HLSTM = dict(
    n_components=3, char_hidden=16, char_layers=2, encoder_hidden=8, location_hidden=16,
    termination_hidden=8, stroke_hidden=16, start_embed=8,
)
TINY_BASELINE = dict(n_components=3, hidden=16, layers=2)
TINY_BPL = dict(n_components=3, location_slots=2, offset_slots=3, stroke_end_slots=4, char_end_slots=2)
TINY = {"full-ns": TINY_FULL_NS, "hlstm": TINY_HLSTM, "baseline": TINY_BASELINE, "bpl": TINY_BPL}


def adam_losses(model, batch, lr: float, steps: int) -> list[float]:
    """Adam steps on the mean NLL of one batch (teacher forced); the loss before each."""
    import torch

    from pyrochar.infer import log_likelihood

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = -log_likelihood(model, batch)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="session")
def shared_prepared(omniglot_root, tmp_path_factory):
    """The 6 shared alphabets as minimal splines (cached for the session)."""
    from pyrochar.data.prepare import prepare_dataset

    return prepare_dataset(omniglot_root, cache_dir=tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="session")
def greek_source(shared_prepared):
    """40 Greek drawings (2 per character of 20) with their canvases rendered."""
    import numpy as np

    from pyrochar.batching import BatchSource

    greek = np.flatnonzero(shared_prepared.meta["alphabet"] == "Greek")
    picked = [d for d in greek if shared_prepared.meta["drawer"][d] in (1, 2)][:40]
    return BatchSource(shared_prepared.select(picked), with_canvases=True)


@pytest.fixture(scope="session")
def small_omniglot(omniglot_root, tmp_path_factory):
    """A small copy in the official layout: 3 alphabets x 3 characters x 4 drawers."""
    import shutil

    root = tmp_path_factory.mktemp("small") / "strokes_background"
    for alphabet in ("Greek", "Latin", "Korean"):
        for c in range(1, 4):
            src = omniglot_root / "strokes_background" / alphabet / f"character{c:02d}"
            dst = root / alphabet / f"character{c:02d}"
            dst.mkdir(parents=True)
            for f in sorted(src.glob("*.txt"))[:4]:
                shutil.copy(f, dst / f.name)
    return root.parent


@pytest.fixture(autouse=True)
def _pyro_validation():
    """Pyro's argument and support checks are on in every test (the CLI and training
    turn them off, so they are turned on again before each test)."""
    import pyro

    pyro.enable_validation(True)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for the test. Tiny tensors gain nothing from a thread pool
    (on a busy 2-core machine it only waits), and bit-exact comparisons need it: with
    several threads a loaded machine can split reductions differently."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """The ``pyrochar`` command through click's CliRunner: ``run(*args, ok=True)``.

    Caches go to tmp_path and no downloaded data is found. ``ok=False`` expects a
    failure reported without a traceback.
    """
    from click.testing import CliRunner
    from pyrochar_cli.main import main

    monkeypatch.setenv("PYROCHAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYROCHAR_DATA", str(tmp_path / "no-data-here"))

    def _run(*args, ok=True):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
            assert "Traceback" not in result.output
        return result

    return _run
