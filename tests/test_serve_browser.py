"""The drawing pad of `pyrochar serve` in a real browser: Chromium driven by Playwright.

The tests start `pyrochar serve` (a subprocess on a free loopback port), draw with
mouse events on the page and check what it shows against the API and the library:
the NLL after two strokes equals the API's and ``pyrochar.score``'s for the points the
page sent, completions and samples are drawn, a sample loads onto the pad, the model
switch and the comparison re-read the drawing, both downloads load with the project's
readers, and collect mode writes a submitted drawing to disk.

Skips with one line when Playwright, the web extra or Chromium is missing (CI installs
Chromium from apt: see .ci/run). Screenshots go to the test's tmp folder; with
``PYROCHAR_SERVE_SCREENSHOT=docs/img/serve.png`` the README's one is rewritten.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright (pip install '.[dev]')"
)
pytest.importorskip("uvicorn", reason="the browser test needs the web extra (pip install '.[web]')")

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "omniglot"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SERVER_START_S = 90  # loading torch and four models on a busy 2-core machine
TIMEOUT_MS = 30_000  # the longest wait for one thing on the page
NEXT_FRAME = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def chromium_path() -> str | None:
    """Chromium's executable: $PYROCHAR_CHROMIUM, else chromium on the PATH."""
    env = os.environ.get("PYROCHAR_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None  # the skip reason names the variable
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found: apt-get install chromium, or set PYROCHAR_CHROMIUM",
)


# ----------------------------------------------------------------- server


def get_json(url: str, body: dict | None = None) -> dict:
    """GET (or POST ``body`` as JSON to) ``url``; the decoded answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


class Server:
    """`pyrochar serve` in a subprocess on a free loopback port (``--port 0``; the port
    is read from the address the command prints)."""

    def __init__(self, log_dir: Path, name: str, *extra: str):
        self.url: str | None = None
        self.log = log_dir / f"serve-{name}.log"
        cmd = [sys.executable, "-m", "pyrochar_cli.main", "serve", "--host", "127.0.0.1",
               "--port", "0", *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Wait until the API answers (fails with the server's output if it exits)."""
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"pyrochar serve exited ({self.process.returncode}):\n"
                            + self.output()[-3000:])
            if self.url is None:
                found = re.search(r"http://127\.0\.0\.1:(\d+)/", self.output())
                self.url = f"http://127.0.0.1:{found.group(1)}" if found else None
            try:
                if self.url is not None:
                    get_json(self.url + "/api/models")
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        pytest.fail(f"pyrochar serve did not answer within {SERVER_START_S} s:\n"
                    + self.output()[-3000:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


def prompt_images(folder: Path) -> Path:
    """Two fixture drawings as images to copy (quicker to start with than the default
    prompts, which the server samples from Full NS)."""
    from pyrochar.data.omniglot import load_omniglot
    from pyrochar.serve.prompts import character_image

    for i, drawing in enumerate(load_omniglot(FIXTURE).drawings[:2]):
        character_image([s[:, :2] for s in drawing.strokes]).save(folder / f"character{i}.png")
    return folder


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """A plain server and one in collect mode (started together), and the collect DIR."""
    logs = tmp_path_factory.mktemp("serve-logs")
    collect_dir = tmp_path_factory.mktemp("collected")
    prompts = prompt_images(tmp_path_factory.mktemp("prompts"))
    plain = Server(logs, "plain")
    collect = Server(logs, "collect", "--collect", str(collect_dir), "--prompts", str(prompts))
    try:
        plain.wait_ready()
        collect.wait_ready()
        yield plain, collect, collect_dir
    finally:
        plain.stop()
        collect.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 960}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


# ----------------------------------------------------------------- drawing


def fixture_strokes(n: int = 2) -> list[np.ndarray]:
    """The first ``n`` strokes (x, y motor units) of the first fixture drawing whose
    first ``n`` strokes are each at least 30 px long, so that the model scores them all."""
    from pyrochar.data.omniglot import load_omniglot

    for drawing in load_omniglot(FIXTURE).drawings:
        strokes = [s[:, :2] for s in drawing.strokes[:n]]
        lengths = [np.linalg.norm(np.diff(s, axis=0), axis=1).sum() for s in strokes]
        if len(strokes) == n and min(lengths) >= 30 and np.all(np.abs(np.vstack(strokes)) <= 104):
            return strokes
    raise AssertionError("no fixture drawing has the strokes this test draws")


def pad_box(page) -> dict:
    """The pad canvas's content box (inside its border) in page pixels."""
    return page.eval_on_selector("#pad", """c => { const r = c.getBoundingClientRect();
        return {x: r.left + c.clientLeft, y: r.top + c.clientTop, w: c.clientWidth, h: c.clientHeight}; }""")


def draw_stroke(page, points: np.ndarray) -> None:
    """Drag the mouse along motor points (x, y) on the pad, one stroke."""
    box = pad_box(page)
    xy = [(box["x"] + x / 105 * box["w"], box["y"] - y / 105 * box["h"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for px, py in xy[1:]:
        page.mouse.move(px, py, steps=2)
    page.mouse.up()


def wait_for_reading(page, n_strokes: int) -> float | None:
    """Wait until the page shows the reading of ``n_strokes`` strokes; its NLL."""
    page.wait_for_selector(f'#nll[data-strokes="{n_strokes}"]', state="attached")
    page.wait_for_function("() => !document.body.dataset.busy")
    value = page.get_attribute("#nll", "data-nll")
    return None if value is None else float(value)


def heat_pixels(page) -> int:
    """How many pad pixels the heat map colours (pure red channel, blended with white)."""
    return page.eval_on_selector("#pad", """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i + 2] < 230) n++;
        return n; }""")


def inked_thumbnails(page, selector: str) -> list[int]:
    """How many non-white pixels each result thumbnail (canvas) under ``selector`` has."""
    return page.eval_on_selector_all(selector + " canvas", """cs => cs.map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) n++;
        return n; })""")


def check_thumbnails_drawn(page, selector: str, results: list[dict]) -> None:
    """Each thumbnail shows its result's ink: a sample is random (the page sends no seed)
    and may be one short mark, so the ink expected is measured from the strokes returned.

    A line 2.2 canvas pixels wide covers about 2 pixels per pixel of path; the check asks
    for a quarter of the path length (a stroke may retrace another) and some ink always.
    """
    inked = inked_thumbnails(page, selector)
    widths = page.eval_on_selector_all(selector + " canvas", "cs => cs.map(c => c.width)")
    assert len(inked) == len(widths) == len(results)
    for ink, width, result in zip(inked, widths, results, strict=True):
        length = sum(float(np.linalg.norm(np.diff(np.asarray(s, dtype=float)[:, :2], axis=0),
                                          axis=1).sum()) for s in result["strokes"])
        path_px = length * width / 105.0  # the thumbnail's frame is 105 motor units wide
        assert ink >= max(5.0, 0.25 * path_px), (ink, path_px)


def check_strokes_sent(sent: list, drawn: list[np.ndarray]) -> None:
    """The strokes the page sent follow the mouse path, in motor units with real times."""
    assert len(sent) == len(drawn)
    t_end = -1.0
    for stroke, path in zip(sent, drawn, strict=True):
        s = np.asarray(stroke, dtype=float)  # (k, 3): x, y, t
        assert s.shape[1] == 3 and len(s) >= 5
        assert np.all((s[:, 0] >= 0) & (s[:, 0] <= 105) & (s[:, 1] <= 0) & (s[:, 1] >= -105))
        # one canvas pixel is 0.25 motor units: the ends land within a pixel or two
        assert np.abs(s[0, :2] - path[0]).max() < 1.0
        assert np.abs(s[-1, :2] - path[-1]).max() < 1.0
        assert np.all(np.diff(s[:, 2]) >= 0) and s[0, 2] >= t_end
        t_end = s[-1, 2]
    assert t_end > 0


def library_nll(model_name: str, strokes: list) -> float:
    """``pyrochar.score``'s NLL of the strokes as one drawing."""
    import pyrochar
    from pyrochar.data.drawing import Drawing

    drawing = Drawing(strokes=[np.asarray(s, dtype=np.float64) for s in strokes])
    return float(pyrochar.score(pyrochar.load_pretrained(model_name), [drawing]).nll[0])


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """A screenshot of the page's content (not the empty rest of the window)."""
    size = page.evaluate("""() => {
        const boxes = [...document.querySelectorAll('header, main > *')].map(e => e.getBoundingClientRect());
        return {width: Math.ceil(Math.max(...boxes.map(b => b.right))) + 16,
                height: Math.ceil(Math.max(...boxes.map(b => b.bottom))) + 8}; }""")
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, **size})
    return path


# ----------------------------------------------------------------- tests


def test_draw_read_finish_sample_switch_compare_save(page, servers, tmp_path):
    plain, _, _ = servers
    reads: list[dict] = []
    page.on("request", lambda r: reads.append(r.post_data_json)
            if r.url.endswith("/api/read") and r.method == "POST" else None)
    page.goto(plain.url)
    page.wait_for_selector('body[data-ready="true"]', state="attached")
    models = get_json(plain.url + "/api/models")
    names = [m["name"] for m in models["models"]]
    assert page.input_value("#model") == models["default"]
    assert not page.is_visible("#error")

    # two strokes -> the reading; its NLL is the API's and the library's for what was sent
    drawn = fixture_strokes(2)
    draw_stroke(page, drawn[0])
    wait_for_reading(page, 1)
    draw_stroke(page, drawn[1])
    shown = wait_for_reading(page, 2)
    body = [b for b in reads if len(b["strokes"]) == 2][-1]
    assert body["model"] == models["default"]
    check_strokes_sent(body["strokes"], drawn)
    assert page.evaluate("window.pyrocharPad.strokes()") == body["strokes"]
    answer = get_json(plain.url + "/api/read", body)
    assert shown is not None and math.isfinite(shown)
    assert abs(shown - answer["nll"]) <= 1e-4
    assert abs(shown - library_nll(body["model"], body["strokes"])) <= 1e-4
    assert page.locator("#per-stroke tr").count() == 1 + 2  # header + a row per stroke
    assert page.locator("#breakdown tr").count() == 1 + len(answer["breakdown"])
    assert abs(float(page.get_attribute("#p-end", "data-p-end")) - answer["p_end"]) <= 1e-6
    assert heat_pixels(page) > 100
    page.uncheck("#show-heat")
    page.evaluate(NEXT_FRAME)
    assert heat_pixels(page) == 0
    page.check("#show-heat")

    # finish it: 3 completions of the two strokes, each drawn with its NLL
    page.fill("#n-complete", "3")
    with page.expect_request("**/api/complete") as req:
        page.click("#complete")
    assert req.value.post_data_json["strokes"] == body["strokes"]
    page.wait_for_function("() => document.querySelectorAll('figure.completion[data-drawn=\"true\"]').length === 3")
    for nll in page.eval_on_selector_all("figure.completion", "fs => fs.map(f => f.dataset.nll)"):
        assert math.isfinite(float(nll))
    assert min(inked_thumbnails(page, "figure.completion")) > 100
    readme_shot = screenshot(page, tmp_path, "completions")

    # sample 4, load one onto the pad, draw one more stroke on it
    page.fill("#n-sample", "4")
    with page.expect_response("**/api/sample") as res:
        page.click("#sample")
    samples = res.value.json()["samples"]
    assert len(samples) == 4
    page.wait_for_function("() => document.querySelectorAll('figure.sample[data-drawn=\"true\"]').length === 4")
    check_thumbnails_drawn(page, "figure.sample", samples)
    page.click("figure.sample >> nth=0")
    n_sample = len(samples[0]["strokes"])
    wait_for_reading(page, n_sample)
    loaded = page.evaluate("window.pyrocharPad.strokes()")
    assert [[p[2] for p in s] for s in loaded] == [[0] * len(s) for s in samples[0]["strokes"]]
    assert np.allclose(np.vstack(loaded)[:, :2], np.vstack(samples[0]["strokes"]), atol=0.006)
    draw_stroke(page, np.array([[20.0, -90.0], [50.0, -92.0], [85.0, -90.0]]))
    wait_for_reading(page, n_sample + 1)
    screenshot(page, tmp_path, "sample-and-stroke")

    # switch model: the page re-reads the same drawing with it
    other = next(n for n in names if n != models["default"])
    with page.expect_response(lambda r: r.url.endswith("/api/read")
                              and r.request.post_data_json["model"] == other) as res:
        page.select_option("#model", other)
    expected = res.value.json()["nll"]
    page.wait_for_function("() => !document.body.dataset.busy")
    shown = page.get_attribute("#nll", "data-nll")
    assert (shown is None) if expected is None else abs(float(shown) - expected) <= 1e-9
    assert not page.is_visible("#error")

    # compare: every model's NLL of this drawing, side by side
    page.click("#compare")
    page.wait_for_function(f"() => document.querySelectorAll('#compare-table tr[data-model]').length === {len(names)}")
    cells = page.eval_on_selector_all(
        "#compare-table tr[data-model]", "rs => rs.map(r => [r.dataset.model, r.cells[1].dataset.nll])")
    assert [m for m, _ in cells] == names
    row = dict(cells)
    if expected is not None:
        assert abs(float(row[other]) - expected) <= 1e-4
    screenshot(page, tmp_path, "compare")

    # save: both downloads load with the project's readers and hold the pad's strokes
    import pyrochar
    from pyrochar.data.omniglot import read_stroke_file

    strokes = page.evaluate("window.pyrocharPad.strokes()")
    for button, name in (("#save-json", "drawing.json"), ("#save-txt", "drawing.txt")):
        with page.expect_download() as download:
            page.click(button)
        path = tmp_path / name
        download.value.save_as(path)
        (drawing,) = [read_stroke_file(path)] if name.endswith(".txt") else pyrochar.load_drawings(path)
        assert len(drawing.strokes) == len(strokes)
        for got, want in zip(drawing.strokes, strokes, strict=True):
            assert np.allclose(got, np.asarray(want, dtype=float))

    target = os.environ.get("PYROCHAR_SERVE_SCREENSHOT")
    if target:
        shutil.copy(readme_shot, target)


def test_short_strokes_and_api_errors_show_in_one_line(page, servers):
    plain, _, _ = servers
    page.goto(plain.url)
    page.wait_for_selector('body[data-ready="true"]', state="attached")
    draw_stroke(page, np.array([[50.0, -50.0], [55.0, -52.0]]))  # under 20 px: not scored
    assert wait_for_reading(page, 1) is None
    assert page.inner_text("#dropped").startswith("stroke 1 is shorter than 20 px")
    assert not page.is_visible("#error")
    page.route("**/api/read", lambda route: route.fulfill(
        status=422, content_type="application/json",
        body=json.dumps({"error": "strokes[0]: a stroke needs at least one point"})))
    draw_stroke(page, np.array([[30.0, -30.0], [70.0, -70.0]]))
    page.wait_for_selector("#error", state="visible")
    assert page.inner_text("#error") == "strokes[0]: a stroke needs at least one point"
    assert page.get_attribute("#nll", "data-nll") is None
    page.fill("#n-complete", "99")  # refused on the page, before any request
    page.click("#complete")
    page.wait_for_function("() => document.querySelector('#error').textContent.includes('1 to 16')")


def test_a_finger_draws_on_a_phone_sized_page(browser, servers):
    plain, _, _ = servers
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True,
                                  is_mobile=True, device_scale_factor=3)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(plain.url)
        page.wait_for_selector('body[data-ready="true"]', state="attached")
        box = pad_box(page)
        assert box["x"] + box["w"] <= 390  # the pad fits the screen
        path = np.array([[20.0 + 3 * i, -30.0 - 1.5 * i] for i in range(21)])  # motor units
        touch = [{"x": box["x"] + x / 105 * box["w"], "y": box["y"] - y / 105 * box["h"]}
                 for x, y in path]
        cdp = context.new_cdp_session(page)  # touch events as a touchscreen sends them
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [touch[0]]})
        for point in touch[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        nll = wait_for_reading(page, 1)
        (stroke,) = page.evaluate("window.pyrocharPad.strokes()")
        assert np.abs(np.asarray(stroke)[[0, -1], :2] - path[[0, -1]]).max() < 1.0
        assert nll is not None and math.isfinite(nll)
        assert page.evaluate("window.scrollY") == 0  # drawing did not scroll the page
    finally:
        context.close()


def test_collect_mode_writes_the_submitted_drawing(page, servers, tmp_path):
    from pyrochar.data.omniglot import load_omniglot, read_stroke_file

    _, collect, collect_dir = servers
    prompts = get_json(collect.url + "/api/prompts")["prompts"]
    assert prompts
    page.goto(collect.url)
    page.wait_for_selector('body[data-ready="true"]', state="attached")
    assert page.is_visible("#collect") and not page.is_visible("#nll")
    assert f"1 of {len(prompts)}" in page.inner_text("#prompt-progress")
    assert prompts[0]["kind"] == "copy" and page.is_visible("#prompt-image")
    assert page.get_attribute("#prompt-image", "src") == prompts[0]["image"]
    assert page.evaluate("document.querySelector('#prompt-image').naturalWidth") > 0
    page.fill("#participant", "browser-test")
    drawn = fixture_strokes(2)
    for stroke in drawn:
        draw_stroke(page, stroke)
    strokes = page.evaluate("window.pyrocharPad.strokes()")
    check_strokes_sent(strokes, drawn)
    with page.expect_response("**/api/collect") as res:
        page.click("#submit")
    assert res.value.ok, res.value.text()
    page.wait_for_selector("#thanks", state="visible")
    screenshot(page, tmp_path, "collect")

    saved = res.value.json()["saved"]
    files = [p for p in collect_dir.rglob("*.txt")]
    assert len(files) == 1 and files[0].as_posix().endswith(saved)
    on_disk = read_stroke_file(files[0])
    assert len(on_disk.strokes) == 2
    for got, want in zip(on_disk.strokes, strokes, strict=True):
        assert np.allclose(got, np.asarray(want, dtype=float))  # real times kept
    assert len(load_omniglot(collect_dir).drawings) == 1  # the layout `data stats` reads
    if len(prompts) > 1:
        page.click("#next")
        page.wait_for_function(f"() => document.querySelector('#prompt-progress').textContent.startsWith('2 of {len(prompts)}')")
        assert page.evaluate("window.pyrocharPad.strokes()") == []
