"""The drawing pad's JSON API (pyrochar.serve), in-process with FastAPI's TestClient,
and the server as a subprocess (collect mode under kill -9, concurrent clients)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="the drawing pad needs the web extra: pip install '.[web]'")
pytest.importorskip("httpx", reason="the API tests need httpx (the dev extra)")

import warnings  # noqa: E402

from conftest import FIXTURE_OMNIGLOT, REPO  # noqa: E402

with warnings.catch_warnings():  # starlette's notice about httpx's successor, not about this code
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import pyrochar  # noqa: E402
from pyrochar.data.drawing import MAX_POINTS_PER_DRAWING, MAX_POINTS_PER_STROKE  # noqa: E402
from pyrochar.data.omniglot import load_omniglot  # noqa: E402
from pyrochar.serve import create_app  # noqa: E402
from pyrochar.serve.app import load_shipped_models  # noqa: E402
from pyrochar.serve.collect import MANIFEST  # noqa: E402
from pyrochar.serve.prompts import INVENT_TEXT, Prompt  # noqa: E402

MODELS = ["full-ns", "hlstm", "baseline", "bpl"]
DRAWING = "Korean/character02/0644_01"  # three strokes
LINE = [[10.0, -10.0, 0.0], [50.0, -50.0, 40.0], [90.0, -20.0, 80.0]]


@pytest.fixture(scope="module")
def models():
    return load_shipped_models()


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models)) as c:
        yield c


@pytest.fixture(scope="module")
def drawing():
    return next(d for d in pyrochar.load_drawings(FIXTURE_OMNIGLOT) if d.key == DRAWING)


def wire(d) -> list:
    """A Drawing's strokes as the page sends them: [[x, y, t], ...] per stroke."""
    return [s.tolist() for s in d.strokes]


def refused(response, status: int) -> str:
    """The one-line error of a refused request (checked to be exactly that)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# ------------------------------------------------------------------ the endpoints


def test_models_lists_the_four_with_the_default(client):
    body = client.get("/api/models").json()
    assert [m["name"] for m in body["models"]] == MODELS
    assert [m["label"] for m in body["models"]] == ["Full NS", "H-LSTM", "Baseline", "BPL-style prior"]
    assert body["default"] == "full-ns" and body["collect"] is False


@pytest.mark.parametrize("name", MODELS)
def test_read_scores_equal_pyrochar_score(client, drawing, run, tmp_path, name):
    """The NLL and breakdown of /api/read are `pyrochar score`'s on the same drawing
    (as an Omniglot file through the CLI) to 1e-4; the per-stroke NLLs sum to it."""
    body = client.post("/api/read", json={"model": name, "strokes": wire(drawing)}).json()
    cli = json.loads(run("score", "--model", name, "--json", drawing.source).output)
    assert body["nll"] == pytest.approx(cli["mean_nll"], abs=1e-4)
    for k, v in cli["breakdown"].items():
        assert body["breakdown"][k] == pytest.approx(v, abs=1e-4)
    assert sum(s["nll"] for s in body["per_stroke"]) == pytest.approx(body["nll"], abs=1e-3)
    for s in body["per_stroke"]:
        assert s["nll"] == pytest.approx(s["loc"] + s["offset"] + s["stroke_end"] + s["char_end"])
    assert len(body["per_stroke"]) == len(body["splines"]) == 3 and body["kept"] == [0, 1, 2]
    assert 0.0 < body["p_end"] < 1.0


def test_read_next_start_heat_map(client, drawing):
    body = client.post("/api/read", json={"model": "full-ns", "strokes": wire(drawing)}).json()
    ns = body["next_start"]
    assert (ns["x0"], ns["y0"], ns["x1"], ns["y1"]) == (0, 0, 105, -105)
    density = np.asarray(ns["density"])
    assert density.shape == (ns["size"], ns["size"]) and (density >= 0).all()
    assert density.max() == pytest.approx(ns["max"], rel=1e-3)
    cell = (105 / ns["size"]) ** 2
    assert 0.0 < density.sum() * cell <= 1.0 + 1e-3  # the part of the mass inside the frame
    for spline in body["splines"]:
        pts = np.asarray(spline)
        assert pts.ndim == 2 and pts.shape[1] == 2 and np.isfinite(pts).all()


def test_read_before_any_stroke_and_with_short_strokes(client):
    empty = client.post("/api/read", json={"model": "bpl", "strokes": []}).json()
    assert empty["nll"] is None and empty["p_end"] is None and empty["per_stroke"] == []
    assert set(empty["breakdown"]) == {"loc", "offset", "stroke_end", "char_end"}
    assert empty["next_start"]["max"] > 0
    dot = [[40.0, -40.0, 0.0], [41.0, -40.0, 5.0]]  # 1 px: dropped, as `pyrochar score` drops it
    body = client.post("/api/read", json={"model": "bpl", "strokes": [dot, LINE, dot]}).json()
    alone = client.post("/api/read", json={"model": "bpl", "strokes": [LINE]}).json()
    assert body["kept"] == [1] and body["nll"] == pytest.approx(alone["nll"], abs=1e-6)
    only_dots = client.post("/api/read", json={"model": "bpl", "strokes": [dot]}).json()
    assert only_dots["nll"] is None and only_dots["kept"] == [] and only_dots["p_end"] is None


def test_points_without_times_are_accepted(client):
    xy = [p[:2] for p in LINE]
    a = client.post("/api/read", json={"model": "hlstm", "strokes": [xy]}).json()
    b = client.post("/api/read", json={"model": "hlstm", "strokes": [LINE]}).json()
    assert a["nll"] == pytest.approx(b["nll"], abs=1e-6)


def test_next_point_while_a_stroke_is_drawn(client, models, drawing):
    """The fitted control points of the stroke being drawn and the density of the next
    one: pyrochar.predict.next_point_prediction's, on the API's 64 x 64 frame grid."""
    from pyrochar import splines
    from pyrochar.predict import next_point_prediction

    finished, current = wire(drawing)[:1], wire(drawing)[1]
    body = client.post("/api/next_point", json={"model": "hlstm", "strokes": finished,
                                                "stroke": current}).json()
    cps = splines.preprocess_drawing([np.asarray(current)])[0]
    np.testing.assert_allclose(body["control_points"], cps, atol=0.01)
    controls = [splines.to_normalized(c) for c in splines.preprocess_drawing([np.asarray(finished[0])])]
    expected = next_point_prediction(models["hlstm"], controls, splines.to_normalized(cps), 64).density
    heat = body["next_point"]
    assert heat["size"] == 64 and heat["max"] == pytest.approx(expected.max(), rel=1e-5)
    np.testing.assert_allclose(heat["density"], expected, atol=expected.max() * 1e-3)
    short = client.post("/api/next_point", json={"model": "hlstm", "stroke": [[5, -5], [6, -5]]}).json()
    assert short == {"control_points": [], "next_point": None}  # under 20 px: not a stroke yet
    assert "stroke: Field required" in refused(client.post("/api/next_point", json={"model": "bpl"}), 422)
    assert "stroke" in refused(client.post("/api/next_point", json={"model": "bpl", "stroke": []}), 422)


def test_complete_keeps_the_drawn_strokes_and_repeats_with_a_seed(client, drawing):
    req = {"model": "full-ns", "strokes": wire(drawing)[:2], "n": 3, "temperature": 0.5, "seed": 7}
    first = client.post("/api/complete", json=req).json()["completions"]
    again = client.post("/api/complete", json=req).json()["completions"]
    assert first == again and len(first) == 3
    drawn = client.post("/api/read", json={"model": "full-ns", "strokes": req["strokes"]}).json()
    for c in first:
        assert c["n_given"] == 2 and len(c["strokes"]) >= 2 and math.isfinite(c["nll"])
        assert c["strokes"][:2] == drawn["splines"]  # the kept strokes, as fitted splines


def test_sample_returns_n_characters_with_their_nll(client):
    req = {"model": "baseline", "n": 4, "temperature": 0.7, "seed": 3}
    body = client.post("/api/sample", json=req).json()
    assert len(body["samples"]) == 4 and body == client.post("/api/sample", json=req).json()
    for s in body["samples"]:
        assert s["strokes"] and math.isfinite(s["nll"])
        assert all(np.asarray(p).shape[1] == 2 for p in s["strokes"])


def test_the_page_and_api_docs_are_served_or_refused_in_one_line(client):
    page = client.get("/")
    if page.status_code == 200:
        assert "html" in page.headers["content-type"]
    else:
        assert "static" in refused(page, 404)
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/read", "/api/complete"}
    assert "default-src 'self'" in client.get("/api/models").headers["content-security-policy"]


# ------------------------------------------------------------------- bad requests


BAD_READS = {
    "unknown model": ({"model": "gpt", "strokes": []}, 422, "unknown model 'gpt'"),
    "model not a string": ({"model": 3, "strokes": []}, 422, "model"),
    "missing model": ({"strokes": []}, 422, "model: Field required"),
    "extra field": ({"model": "bpl", "strokes": [], "path": "/etc/passwd"}, 422, "path"),
    "strokes not a list": ({"model": "bpl", "strokes": "abc"}, 422, "strokes"),
    "empty stroke": ({"model": "bpl", "strokes": [[]]}, 422, "strokes[0]"),
    "point of one number": ({"model": "bpl", "strokes": [[[1.0]]]}, 422, "strokes[0][0]"),
    "point of four numbers": ({"model": "bpl", "strokes": [[[1, 2, 3, 4]]]}, 422, "strokes[0][0]"),
    "string number": ({"model": "bpl", "strokes": [[["1", 2]]]}, 422, "strokes[0][0][0]"),
    "boolean number": ({"model": "bpl", "strokes": [[[True, 2]]]}, 422, "strokes[0][0][0]"),
    "far off the canvas": ({"model": "bpl", "strokes": [[[5000, 2]]]}, 422, "far off the 105 px canvas"),
    "too many strokes": ({"model": "bpl", "strokes": [[[1, 1]]] * 101}, 422, "strokes"),
    "too many points in a stroke": ({"model": "bpl", "strokes": [[[1, 1]] * (MAX_POINTS_PER_STROKE + 1)]},
                                    422, "strokes[0]"),
    "too many points in the drawing": (
        {"model": "bpl", "strokes": [[[1, 1]] * 7000] * (MAX_POINTS_PER_DRAWING // 7000 + 1)}, 422,
        "points in the drawing"),
    "beyond the model's caps": ({"model": "bpl", "strokes": [[[5, -5 - 2 * i], [60, -5 - 2 * i]]
                                                             for i in range(11)]}, 422, "at most 10"),
}


@pytest.mark.parametrize("case", BAD_READS)
def test_bad_read_requests_are_refused_in_one_line(client, case):
    body, status, expected = BAD_READS[case]
    assert expected in refused(client.post("/api/read", json=body), status)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, text):
    raw = '{"model": "bpl", "strokes": [[[1, 2], [X, 3]]]}'.replace("X", text)
    error = refused(client.post("/api/read", content=raw, headers={"content-type": "application/json"}),
                    422)
    assert "strokes[0][1][0]" in error and "finite" in error


def test_bad_json_and_bodies_that_are_not_objects(client):
    headers = {"content-type": "application/json"}
    assert "not valid JSON" in refused(client.post("/api/read", content=b"{bad", headers=headers), 400)
    assert "JSON object" in refused(client.post("/api/read", content=b"[1, 2]", headers=headers), 422)
    assert "JSON object" in refused(client.post("/api/read", content=b'{"model": "bpl"}'), 422)
    assert "JSON body" in refused(client.post("/api/read"), 422)
    assert "not valid JSON" in refused(client.post("/api/read", content=b"\xff\xfe", headers=headers), 400)


def test_huge_bodies_are_refused_before_reading(client):
    big = b'{"model": "bpl", "strokes": [' + b" " * (3 << 20) + b"]}"
    assert "larger than" in refused(client.post("/api/read", content=big,
                                                headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: the limit applies to the bytes received
        yield b'{"model": "bpl", "strokes": ['
        for _ in range(40):
            yield b" " * (100 << 10)
        yield b"]}"

    assert "larger than" in refused(client.post("/api/read", content=chunks(),
                                                headers={"content-type": "application/json"}), 413)
    error = refused(client.post("/api/read", content=b"{}", headers={"content-length": "x"}), 400)
    assert "Content-Length" in error


BAD_OPTIONS = {
    "n = 0": ("/api/complete", {"n": 0}, "n: Input should be greater than or equal to 1"),
    "n = 17": ("/api/complete", {"n": 17}, "n: Input should be less than or equal to 16"),
    "n float": ("/api/complete", {"n": 2.5}, "n: "),
    "samples n = 37": ("/api/sample", {"n": 37}, "n: Input should be less than or equal to 36"),
    "temperature 0": ("/api/sample", {"temperature": 0}, "temperature: Input should be greater"),
    "temperature 101": ("/api/complete", {"temperature": 101}, "temperature: Input should be less"),
    "temperature string": ("/api/sample", {"temperature": "1"}, "temperature"),
    "seed negative": ("/api/sample", {"seed": -1}, "seed"),
    "seed too large": ("/api/sample", {"seed": 2**32}, "seed"),
    "unknown model": ("/api/sample", {"model": "nope"}, "unknown model 'nope'"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_options_are_refused_in_one_line(client, case):
    path, change, expected = BAD_OPTIONS[case]
    body = {"model": "bpl", "n": 2, **({"strokes": [LINE]} if path == "/api/complete" else {}), **change}
    assert expected in refused(client.post(path, json=body), 422)


def test_completing_nothing_is_refused(client):
    error = refused(client.post("/api/complete", json={"model": "bpl", "strokes": [], "n": 2}), 422)
    assert "at least one stroke" in error


def test_unknown_paths_wrong_methods_and_collect_without_collect_mode(client):
    assert "/api/nope" in refused(client.get("/api/nope"), 404)
    assert refused(client.get("/api/../../etc/passwd"), 404)
    assert "GET is not allowed" in refused(client.get("/api/read"), 405)
    assert "--collect" in refused(client.get("/api/prompts"), 404)
    body = {"prompt_id": "copy-01", "strokes": [LINE], "participant": "p1"}
    assert "--collect" in refused(client.post("/api/collect", json=body), 404)


def test_a_foreign_host_header_is_refused(models):
    with TestClient(create_app(models, allowed_hosts=["127.0.0.1", "localhost"])) as c:
        assert "not served here" in refused(c.get("/api/models"), 400)  # Host: testserver
        assert c.get("/api/models", headers={"host": "localhost:8000"}).status_code == 200


def test_a_bug_is_a_one_line_500_and_the_server_goes_on(models, monkeypatch):
    from pyrochar.serve import reading

    def broken(*args):
        raise RuntimeError("boom")

    with TestClient(create_app(models), raise_server_exceptions=False) as c:
        monkeypatch.setattr(reading, "read", broken)
        assert "RuntimeError: boom" in refused(c.post("/api/read", json={"model": "bpl"}), 500)
        monkeypatch.undo()
        assert c.post("/api/read", json={"model": "bpl", "strokes": [LINE]}).status_code == 200


def test_concurrent_clients_get_what_one_client_gets(client, drawing):
    """Model calls are serialized: 4 threads reading and sampling at once get the
    answers they get one at a time."""
    reqs = [("/api/read", {"model": m, "strokes": wire(drawing)}) for m in MODELS]
    reqs += [("/api/sample", {"model": m, "n": 2, "seed": 5}) for m in MODELS]
    alone = [client.post(p, json=b).json() for p, b in reqs]
    together: list = [None] * len(reqs)

    def work(i):
        together[i] = client.post(reqs[i][0], json=reqs[i][1]).json()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b, (path, _) in zip(alone, together, reqs, strict=True):
        if path == "/api/read":
            assert b["nll"] == pytest.approx(a["nll"], abs=1e-5)
            assert b["p_end"] == pytest.approx(a["p_end"], abs=1e-6)
        else:
            assert b["samples"] == a["samples"]


# hostile bodies: whatever JSON arrives, the answer is 200 or a one-line 4xx, never a 500
_numbers = st.one_of(st.floats(-20, 125), st.sampled_from([1e300, -1e300, 1e-300, -0.0, 1000.0, 1e16]),
                     st.integers(-(2**70), 2**70), st.booleans(), st.text(max_size=3), st.none())
_points = st.lists(_numbers, min_size=0, max_size=4)
_json_values = st.recursive(st.one_of(_numbers, st.text(max_size=5)),
                            lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)
_valid_points = st.lists(st.tuples(st.floats(0, 105), st.floats(-105, 0), st.floats(0, 1e4)).map(list),
                         min_size=1, max_size=30)
FIELDS = {"/api/read": ("model", "strokes"), "/api/next_point": ("model", "strokes", "stroke"), "/api/complete": ("model", "strokes", "n", "temperature", "seed"),
          "/api/sample": ("model", "n", "temperature", "seed")}


@st.composite
def _requests(draw) -> tuple[str, dict]:
    """A valid request, then 0-2 of its fields made hostile (or an unknown field added)."""
    path = draw(st.sampled_from(sorted(FIELDS)))
    valid = {"model": st.sampled_from(MODELS), "strokes": st.lists(_valid_points, min_size=1, max_size=4),
             "stroke": _valid_points,
             "n": st.integers(1, 3), "temperature": st.floats(0.5, 2), "seed": st.integers(0, 9)}
    body = {k: draw(valid[k]) for k in FIELDS[path]}
    for _ in range(draw(st.integers(0, 2))):
        body[draw(st.sampled_from([*FIELDS[path], "extra"]))] = draw(
            _json_values | st.lists(st.lists(_points, max_size=8), max_size=5))
    return path, body


@settings(max_examples=40, deadline=None)
@given(request=_requests())
def test_hostile_bodies_get_an_answer_or_one_line_4xx(client, request):
    path, body = request
    r = client.post(path, content=json.dumps(body, allow_nan=True),
                    headers={"content-type": "application/json"})
    if r.status_code != 200:
        assert 400 <= r.status_code < 500, r.text
        refused(r, r.status_code)


# -------------------------------------------------------------------- collect mode


PROMPTS = [Prompt("copy-a", "copy", "data:image/png;base64,AAAA", "copy it"),
           Prompt("invent-01", "invent", None, INVENT_TEXT)]


def test_collect_mode_writes_omniglot_files_readable_by_data_stats(models, tmp_path, run):
    folder = tmp_path / "study"
    with TestClient(create_app(models, collect_dir=folder, prompts=PROMPTS)) as c:
        assert c.get("/api/models").json()["collect"] is True
        prompts = c.get("/api/prompts").json()["prompts"]
        assert [p["id"] for p in prompts] == ["copy-a", "invent-01"]
        assert [p["kind"] for p in prompts] == ["copy", "invent"] and prompts[1]["image"] is None
        second = [[20.5, -60.25, 1700000000123.0], [70.0, -60.0, 1700000000456.0]]
        saved = [c.post("/api/collect", json={"prompt_id": pid, "strokes": strokes, "participant": who})
                 .json() for pid, strokes, who in [("copy-a", [LINE, second], "ann"),
                                                   ("invent-01", [LINE], "ann"),
                                                   ("copy-a", [second], "bob"),
                                                   ("copy-a", [LINE], "ann")]]
    assert [s["saved"] for s in saved] == ["character01/0001_01.txt", "character02/0002_01.txt",
                                          "character01/0001_02.txt", "character01/0001_03.txt"]
    assert [s["count"] for s in saved] == [1, 2, 3, 4]
    loaded = load_omniglot(folder, strict=True).drawings
    assert len(loaded) == 4 and {d.alphabet for d in loaded} == {"study"}
    first = next(d for d in loaded if d.source.endswith("0001_01.txt"))
    np.testing.assert_array_equal(first.strokes[1], np.asarray(second))  # times kept exactly
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["participants"] == {"ann": 1, "bob": 2}
    assert [d["participant"] for d in manifest["drawings"]] == ["ann", "ann", "bob", "ann"]
    stats = json.loads(run("data", "stats", "--source", folder, "--json").output)
    assert stats["drawings"] == 4 and stats["characters"] == 2 and stats["skipped"] == 0
    # a new server on the same folder numbers on from what is there
    with TestClient(create_app(models, collect_dir=folder, prompts=PROMPTS)) as c:
        again = c.post("/api/collect", json={"prompt_id": "invent-01", "strokes": [LINE],
                                             "participant": "cy"}).json()
    assert again == {"saved": "character02/0002_04.txt", "count": 5}  # drawer 3 is taken


def test_collect_refuses_bad_submissions(models, tmp_path):
    with TestClient(create_app(models, collect_dir=tmp_path / "c", prompts=PROMPTS)) as c:
        def post(**change):
            return c.post("/api/collect", json={"prompt_id": "copy-a", "strokes": [LINE],
                                                "participant": "ann", **change})

        assert "unknown prompt_id" in refused(post(prompt_id="../../x"), 422)
        assert "strokes" in refused(post(strokes=[]), 422)
        assert "participant" in refused(post(participant=""), 422)
        assert "participant" in refused(post(participant="a\nb"), 422)
        assert "participant" in refused(post(participant="x" * 65), 422)
        assert "finite" in refused(c.post("/api/collect", content=(
            '{"prompt_id": "copy-a", "strokes": [[[1, NaN]]], "participant": "a"}'),
            headers={"content-type": "application/json"}), 422)
    assert not list((tmp_path / "c").glob("character*/*.txt"))


def test_collect_folder_problems_are_one_line_errors(models, tmp_path):
    from pyrochar.errors import PyrocharError

    with pytest.raises(PyrocharError, match="cannot be or hold strokes_background"):
        create_app(models, collect_dir=tmp_path / "strokes_background", prompts=PROMPTS)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MANIFEST).write_text("{not json")
    with pytest.raises(PyrocharError, match="not a collect manifest"):
        create_app(models, collect_dir=tmp_path / "bad", prompts=PROMPTS)
    (tmp_path / "file").write_text("x")
    with pytest.raises(PyrocharError, match="is a file"):
        create_app(models, collect_dir=tmp_path / "file", prompts=PROMPTS)


def test_default_prompts_are_model_samples_interleaved_with_invent(models):
    from pyrochar.serve.prompts import default_prompts

    prompts = default_prompts(models["full-ns"])
    assert [p.kind for p in prompts] == ["copy", "copy", "invent"] * 2
    assert all(p.image.startswith("data:image/png;base64,") for p in prompts if p.kind == "copy")
    assert [p.image for p in prompts] == [p.image for p in default_prompts(models["full-ns"])]


def test_prompts_from_a_folder_of_images(tmp_path):
    from PIL import Image

    from pyrochar.errors import PyrocharError
    from pyrochar.serve.prompts import prompts_from_folder

    for name in ("b.png", "a b.jpg"):
        Image.new("RGB", (600, 300), "white").save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    prompts = prompts_from_folder(tmp_path)
    assert [p.id for p in prompts] == ["copy-a-b", "copy-b", "invent-01"]
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(PyrocharError, match="cannot read the image"):
        prompts_from_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PyrocharError, match="no image"):
        prompts_from_folder(tmp_path / "empty")
    with pytest.raises(PyrocharError, match="not a folder"):
        prompts_from_folder(tmp_path / "notes.txt")


# ------------------------------------------------------------ the server, for real


def test_serve_command_refusals_are_one_line(run, tmp_path):
    import socket

    from pyrochar_cli.serve_command import is_loopback

    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))  # the port is then taken on every address
        busy.listen(1)
        port = busy.getsockname()[1]
        out = run("serve", "--port", port, ok=False).output
        assert "cannot listen on 127.0.0.1:" in out and "choose another --port" in out
        out = run("serve", "--host", "0.0.0.0", "--port", port, "--collect", tmp_path, ok=False).output
        assert "Warning: listening on 0.0.0.0" in out and f"write drawings into {tmp_path}" in out
    assert "--prompts applies to collect mode" in run("serve", "--prompts", tmp_path, ok=False).output
    assert "cannot resolve" in run("serve", "--host", "no such host.invalid", ok=False).output



def test_kill_9_mid_session_loses_no_submitted_drawing(tmp_path):
    """`pyrochar serve --collect DIR` as a subprocess: three drawings submitted (one
    while three clients read at once), kill -9, and DIR holds all three, readable."""
    import httpx

    folder = tmp_path / "collected"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pyrochar_cli.main", "serve", "--port", "0",
                             "--collect", str(folder)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("pyrochar drawing pad: http://127.0.0.1:"), line
        base = line.split()[3].rstrip("/")
        with httpx.Client(base_url=base, timeout=120) as c:
            prompts = c.get("/api/prompts").json()["prompts"]
            strokes = [[LINE], [LINE, [[30, -80, 0], [80, -85, 30]]], [[[5, -5, 1], [5, -70, 2]]]]
            readers = [threading.Thread(target=c.post, args=("/api/read",),
                                        kwargs={"json": {"model": "full-ns", "strokes": s}})
                       for s in strokes]
            for t in readers:
                t.start()
            saved = [c.post("/api/collect", json={"prompt_id": p["id"], "strokes": s,
                                                  "participant": "p-1"}).json()["saved"]
                     for p, s in zip(prompts, strokes, strict=False)]
            for t in readers:
                t.join()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    loaded = load_omniglot(folder, strict=True).drawings
    assert sorted(d.source for d in loaded) == sorted(str(folder / s) for s in saved)
    for d, s in zip(sorted(loaded, key=lambda d: d.character), strokes, strict=True):
        assert [x.tolist() for x in d.strokes] == [[list(map(float, p)) for p in st] for st in s]
