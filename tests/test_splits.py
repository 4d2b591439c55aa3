import pytest

from pyrochar.data.splits import Split, character_key, make_split
from pyrochar.errors import PyrocharError

CHARS = [character_key(a, c) for a, n in [("A", 24), ("B", 40), ("C", 26), ("D", 47), ("E", 42), ("F", 24)] for c in range(1, n + 1)]
EVAL = [character_key(a, c) for a in ("Tengwar", "Atlantean", "X") for c in range(1, 11)]


def _check_partition(sp, universe):
    parts = [set(sp.train), set(sp.validation), set(sp.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(universe)


@pytest.mark.parametrize("spec", ["character:0", "character:1", "character:2"])
def test_character_splits_are_80_20_within_each_alphabet(spec):
    sp = make_split(spec, CHARS)
    _check_partition(sp, CHARS)
    for alphabet, n in [("A", 24), ("D", 47)]:
        test = [k for k in sp.test if k.startswith(alphabet + "/")]
        assert len(test) == round(0.2 * n)


@pytest.mark.parametrize("spec", ["alphabet:0", "alphabet:1", "alphabet:2"])
def test_alphabet_splits_never_share_an_alphabet(spec):
    sp = make_split(spec, CHARS)
    _check_partition(sp, CHARS)
    test_alphabets = {k.split("/")[0] for k in sp.test}
    train_alphabets = {k.split("/")[0] for k in sp.train + sp.validation}
    assert not test_alphabets & train_alphabets
    assert len(test_alphabets) == 1  # round(0.2 * 6)


def test_splits_are_deterministic_and_differ_by_index():
    assert make_split("alphabet:0", CHARS) == make_split("alphabet:0", list(reversed(CHARS)))
    assert make_split("character:0", CHARS).test != make_split("character:1", CHARS).test
    # pinned: the same on every machine and Python version (numpy PCG64 + CRC32)
    assert make_split("alphabet:0", CHARS).params == {"kind": "alphabet", "index": 0}
    assert {k.split("/")[0] for k in make_split("alphabet:0", CHARS).test} == {"C"}


def test_holdout_with_and_without_evaluation_set():
    sp = make_split("holdout", CHARS, evaluation_characters=EVAL, holdout_alphabets=["Tengwar", "Atlantean"])
    assert {k.split("/")[0] for k in sp.test} == {"Atlantean", "Tengwar"}
    assert set(sp.train + sp.validation) == set(CHARS)
    sp2 = make_split("holdout", CHARS, holdout_alphabets=["A", "C"])
    assert {k.split("/")[0] for k in sp2.test} == {"A", "C"}
    with pytest.raises(PyrocharError, match="name the background alphabets"):
        make_split("holdout", CHARS)
    with pytest.raises(PyrocharError, match="not found"):
        make_split("holdout", CHARS, holdout_alphabets=["Nope"])


def test_all_and_bad_specs():
    sp = make_split("all", CHARS)
    assert sp.test == [] and set(sp.train + sp.validation) == set(CHARS)
    for bad in ["alphabet", "alphabet:x", "character:-1", "random:0"]:
        with pytest.raises(PyrocharError):
            make_split(bad, CHARS)


def test_json_round_trip(tmp_path):
    sp = make_split("character:2", CHARS)
    sp.to_json(tmp_path / "s.json")
    assert Split.from_json(tmp_path / "s.json") == sp
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(PyrocharError, match="cannot read split"):
        Split.from_json(tmp_path / "bad.json")
