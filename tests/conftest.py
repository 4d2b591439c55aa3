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
