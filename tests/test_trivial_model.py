"""The trivial model (docs/results.md, "Calibration") pins the units and the counting."""

import pytest

from pyrochar.trivial_model import trivial_model_nll


def test_trivial_model_reproduces_the_reference_calibration(shared_prepared):
    ref = trivial_model_nll(shared_prepared, before_first_offset=True)
    # an independent implementation: 40.3 (starts 6.0, offsets 26.8, stroke ends 5.8, character ends 1.6)
    assert ref["mean_nll"] == pytest.approx(40.3, abs=0.05)
    assert ref["breakdown"]["loc"] == pytest.approx(6.0, abs=0.05)
    assert ref["breakdown"]["offset"] == pytest.approx(26.8, abs=0.05)
    assert ref["breakdown"]["stroke_end"] == pytest.approx(5.8, abs=0.05)
    assert ref["breakdown"]["char_end"] == pytest.approx(1.6, abs=0.05)
    # our models never decide before the first offset (at least one per stroke)
    ours = trivial_model_nll(shared_prepared)
    assert ours["breakdown"]["stroke_end"] == pytest.approx(5.24, abs=0.01)
    assert ours["mean_nll"] == pytest.approx(39.69, abs=0.01)


def test_held_out_scoring_is_worse_than_in_sample(shared_prepared):
    from pyrochar.data.splits import make_split

    sp = make_split("alphabet:0", shared_prepared.character_keys())
    train = shared_prepared.select_characters(sp.train)
    test = shared_prepared.select_characters(sp.test)
    assert trivial_model_nll(train, test)["mean_nll"] > trivial_model_nll(train)["mean_nll"] - 5
    assert trivial_model_nll(train, test)["n"] == len(test)
