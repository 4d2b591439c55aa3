"""Shared fixtures.

Most tests run on Omniglot drawings committed under tests/data (MIT licence, see the
LICENSE files there): ``tests/data/omniglot`` (24 drawings, 6 alphabets x 2 characters
x 2 drawers) and ``tests/data/omniglot_subset`` (288 drawings of Greek, Latin and
Korean, listed in its README). The few tests that need the 6 whole alphabets ask for
``omniglot_root``, which finds them (see :func:`find_six_alphabets`) or skips.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
#: 24 drawings: 6 alphabets x 2 characters x 2 drawers.
FIXTURE_OMNIGLOT = DATA / "omniglot"
#: 288 drawings of Greek, Latin and Korean (what the fixtures below select from).
SUBSET_OMNIGLOT = DATA / "omniglot_subset"

#: The 6 background alphabets of the full-data tests (4,060 drawings).
SIX_ALPHABETS = frozenset(
    {"Balinese", "Greek", "Japanese_(katakana)", "Korean", "Latin", "Sanskrit"}
)
NO_SIX_ALPHABETS = (
    "needs the 6 Omniglot alphabets (Balinese, Greek, Japanese_(katakana), Korean, Latin, "
    "Sanskrit): set PYROCHAR_TEST_OMNIGLOT to a folder whose strokes_background/ holds "
    "exactly them, put them in ../shared/omniglot, or run `pyrochar data download`"
)


def _holds_six_alphabets(root: Path) -> bool:
    """Whether ``root/strokes_background`` holds exactly the 6 alphabets' folders."""
    folder = root / "strokes_background"
    if not folder.is_dir():
        return False
    return {p.name for p in folder.iterdir() if p.is_dir()} == SIX_ALPHABETS


def _extract_six_alphabets(archive: Path, dest: Path) -> Path | None:
    """Unpack the 6 alphabets' stroke files from an official ``strokes_background.zip``
    into ``dest/strokes_background``; None if the archive does not hold them all."""
    pattern = re.compile(r"^strokes_background/([^/]+)/character\d+/\d+_\d+\.txt$")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(m, pattern.match(m)) for m in zf.namelist()]
            wanted = [m for m, match in members if match and match.group(1) in SIX_ALPHABETS]
            for name in wanted:  # names matched the pattern: no "..", no absolute path
                out = dest / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(name))
    except (zipfile.BadZipFile, OSError):
        return None
    return dest if _holds_six_alphabets(dest) else None


def find_six_alphabets(scratch: Path) -> Path | None:
    """The folder holding ``strokes_background/`` with the 6 alphabets, looked for in
    ``$PYROCHAR_TEST_OMNIGLOT``, then ``../shared/omniglot`` beside the checkout, then
    the archive ``pyrochar data download`` fetched (``$PYROCHAR_DATA`` or the user
    cache), whose 6 alphabets are unpacked into ``scratch``. None if none has them."""
    env = os.environ.get("PYROCHAR_TEST_OMNIGLOT")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "omniglot"]:
        if _holds_six_alphabets(candidate):
            return candidate
    from pyrochar.data.download import default_data_dir

    archive = default_data_dir() / "strokes_background.zip"  # only ever written whole
    return _extract_six_alphabets(archive, scratch) if archive.is_file() else None


@pytest.fixture(scope="session")
def omniglot_root(tmp_path_factory) -> Path:
    """The folder holding ``strokes_background`` with the 6 whole alphabets (skips
    the test, saying what to set, when none is found)."""
    root = find_six_alphabets(tmp_path_factory.mktemp("six-alphabets"))
    if root is None:
        pytest.skip(NO_SIX_ALPHABETS)
    return root


@pytest.fixture(scope="session")
def fixture_root() -> Path:
    """The committed 288-drawing subset (Greek, Latin, Korean) in the official layout."""
    return SUBSET_OMNIGLOT


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

    from pyrochar.scoring import log_likelihood

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
def fixture_prepared(fixture_root, tmp_path_factory):
    """The committed 288-drawing subset as minimal splines (cached for the session)."""
    from pyrochar.data.prepare import prepare_dataset

    return prepare_dataset(fixture_root, cache_dir=tmp_path_factory.mktemp("prepared-subset"))


@pytest.fixture(scope="session")
def greek_source(fixture_prepared):
    """40 Greek drawings (2 per character of 20) with their canvases rendered."""
    import numpy as np

    from pyrochar.data.loader import BatchSource

    greek = np.flatnonzero(fixture_prepared.meta["alphabet"] == "Greek")
    picked = [d for d in greek if fixture_prepared.meta["drawer"][d] in (1, 2)][:40]
    return BatchSource(fixture_prepared.select(picked), with_canvases=True)


@pytest.fixture(scope="session")
def small_omniglot(fixture_root, tmp_path_factory):
    """A small copy in the official layout: 3 alphabets x 3 characters x 4 drawers."""
    import shutil

    root = tmp_path_factory.mktemp("small") / "strokes_background"
    for alphabet in ("Greek", "Latin", "Korean"):
        for c in range(1, 4):
            src = fixture_root / "strokes_background" / alphabet / f"character{c:02d}"
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
