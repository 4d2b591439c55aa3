"""The drawing pad's web app: ``create_app`` builds the FastAPI application.

Endpoints (JSON; docs/serve.md lists them with their limits; FastAPI's own page is
at ``/docs``):

- ``GET /`` the page, ``GET /static/...`` its files (pyrochar/serve/static);
- ``GET /api/models``; ``POST /api/read``, ``/api/next_point``, ``/api/complete``,
  ``/api/sample``;
- collect mode only: ``GET /api/prompts``, ``POST /api/collect`` (404 otherwise).

Every model call runs in a worker thread (off the event loop) under one lock per
app, so concurrent clients are served one model call at a time. A request never
names a file: the models, the collect folder and the prompts are fixed when the
app is created.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..data.drawing import limits_problem
from ..errors import PyrocharError
from . import reading
from .limits import MAX_BODY_BYTES, ApiError, BodyLimit, HostCheck, install_error_handlers
from .schemas import CollectRequest, CompleteRequest, NextPointRequest, ReadRequest, SampleRequest

STATIC = Path(__file__).parent / "static"
#: the shipped models, in the order the page lists them, with their labels
LABELS = {"full-ns": "Full NS", "hlstm": "H-LSTM", "baseline": "Baseline", "bpl": "BPL-style prior"}
#: what the page may load and run: its own files only (no CDN), images as data: URLs
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "style-src 'self' 'unsafe-inline'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def load_shipped_models() -> dict:
    """The four shipped models (eval mode), keyed by name, in the page's order."""
    from ..checkpoint import load_pretrained

    return {name: load_pretrained(name).eval() for name in LABELS}


class ModelRunner:
    """The app's models and the one lock their calls run under (in a worker thread)."""

    def __init__(self, models: dict):
        if not models:
            raise PyrocharError("the server needs at least one model")
        self.models = dict(models)
        self.lock = threading.Lock()

    def model(self, name: str):
        """The model called ``name``; an unknown name is a 422 naming the available ones."""
        if name not in self.models:
            raise ApiError(422, f"unknown model {name!r}; available: {', '.join(self.models)}")
        return self.models[name]

    async def run(self, fn: Callable, *args):
        """``fn(*args)`` in a worker thread under the lock; a user error becomes a 422."""

        def locked():
            with self.lock:
                return fn(*args)

        try:
            body = await run_in_threadpool(locked)
        except (PyrocharError, ValueError, TypeError) as e:
            raise ApiError(422, str(e)) from None
        return JSONResponse(body)  # plain JSON types already: no jsonable_encoder pass


def _drawing(strokes) -> list:
    """Validated request strokes -> (k, 3) arrays, within the project's drawing limits."""
    arrays = reading.as_arrays(strokes)
    problem = limits_problem(arrays)
    if problem:
        raise ApiError(422, problem)
    return arrays


def create_app(models: dict | None = None, collect_dir=None, prompts=None,
               allowed_hosts: list[str] | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The drawing pad's app.

    ``models``: {name: model} (default: the four shipped models, loaded now, about
    0.1 s together); the first is the page's default. ``collect_dir``: a folder to
    write participants' drawings to (collect mode, :mod:`pyrochar.serve.collect`),
    ``prompts``: the prompts shown in collect mode (default:
    :func:`pyrochar.serve.prompts.default_prompts`). ``allowed_hosts``: the Host
    headers accepted (None: any). ``max_body_bytes``: the request body limit.
    """
    runner = ModelRunner(load_shipped_models() if models is None else models)
    store = None
    if collect_dir is not None:
        from .collect import CollectStore
        from .prompts import default_prompts

        if prompts is None:
            prompts = default_prompts(runner.models.get("full-ns") or next(iter(runner.models.values())))
        store = CollectStore(collect_dir, prompts)

    app = FastAPI(title="pyrochar drawing pad", version=__version__,
                  description="Draw a character; the models read, score and finish it. "
                              "See docs/serve.md.")
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, hosts=allowed_hosts)

    @app.middleware("http")
    async def _headers(request, call_next):
        start, cpu = time.perf_counter(), time.process_time()
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        # the time the app spent on the request, and the CPU time the process spent
        # meanwhile, all threads (benchmarks/bench_serve.py reads them)
        response.headers["Server-Timing"] = (f"app;dur={1000 * (time.perf_counter() - start):.2f}, "
                                             f"cpu;dur={1000 * (time.process_time() - cpu):.2f}")
        return response

    _page_routes(app)

    @app.get("/api/models")
    async def models_list():
        """The models the page can use, the default one, and whether collect mode is on."""
        return {"models": [{"name": n, "label": LABELS.get(n, n)} for n in runner.models],
                "default": next(iter(runner.models)), "collect": store is not None}

    @app.post("/api/read")
    async def read(body: ReadRequest):
        """The live reading after each stroke: NLL, breakdowns, next start density, P(end)."""
        model = runner.model(body.model)
        return await runner.run(reading.read, model, _drawing(body.strokes))

    @app.post("/api/next_point")
    async def next_point(body: NextPointRequest):
        """While a stroke is drawn: its fitted control points and the density of the next one."""
        model = runner.model(body.model)
        drawing = _drawing([*body.strokes, body.stroke])
        return await runner.run(reading.next_point, model, drawing[:-1], drawing[-1])

    @app.post("/api/complete")
    async def complete(body: CompleteRequest):
        """n completions of the strokes drawn so far (the model's conditional)."""
        model = runner.model(body.model)
        return await runner.run(reading.complete, model, _drawing(body.strokes), body.n,
                                body.temperature, body.seed)

    @app.post("/api/sample")
    async def sample(body: SampleRequest):
        """n new characters at a temperature."""
        model = runner.model(body.model)
        return await runner.run(reading.sample, model, body.n, body.temperature, body.seed)

    @app.get("/api/prompts")
    async def prompts_list():
        """Collect mode: the prompts, in the order shown to a participant."""
        return {"prompts": _store(store).prompt_list()}

    @app.post("/api/collect")
    async def collect(body: CollectRequest):
        """Collect mode: write a participant's drawing for a prompt to the folder."""
        s = _store(store)
        strokes = _drawing(body.strokes)
        try:
            return await run_in_threadpool(s.save, body.prompt_id, body.participant, strokes)
        except PyrocharError as e:
            raise ApiError(422, str(e)) from None

    app.state.runner = runner
    app.state.collect = store
    return app


def _store(store):
    if store is None:
        raise ApiError(404, "collect mode is off: start the server with --collect DIR")
    return store


def _page_routes(app: FastAPI) -> None:
    """``GET /`` and ``/static/...``: the page, when its files are installed."""
    if (STATIC / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        index = STATIC / "index.html"
        if not index.is_file():
            raise ApiError(404, "the page's files are not installed (pyrochar/serve/static); "
                                "the JSON API under /api works")
        return FileResponse(index)
