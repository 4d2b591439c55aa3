"""What a model predicts after the strokes drawn so far: the live reading of a drawing.

After K strokes of a character, :func:`next_stroke_prediction` reads from the model

- the **next start**: the density of stroke K+1's start (the ``loc_{K}`` site) on a
  grid of points over the frame, per square motor pixel;
- the **termination probability**: the probability that the character ends after
  stroke K (the ``char_end_{K-1}`` site), None before the first stroke;
- the **log-probability of each stroke** by variable, the character taken as
  complete after stroke K (its last ``char_end`` decision is "it ends").

While stroke K+1 is being drawn, :func:`next_point_prediction` reads the stroke
model's density of its next control point the same way.

It works the Pyro way, for every model: the per-step program
(:meth:`~pyrochar.models.base.CharacterModel.model`) is traced conditioned on the K
strokes (:func:`pyrochar.complete.prefix_condition_dict`) and on "the character
goes on" after them, and stopped with ``poutine.escape`` at the ``loc_{K}`` site, so
no further stroke is drawn (and with an offset cap just above the longest stroke,
so that finished strokes are not padded to the model's cap; no distribution
changes). The distribution objects recorded at the sites are then
evaluated with ``fn.log_prob``. At the model's stroke cap the character must
end: the termination probability is 1 and there is no next start (``density`` None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.poutine.runtime import NonlocalExit
from pyro.poutine.util import site_is_subsample

from .checks import ArgumentValueError, check_control_points, check_int, check_model
from .complete import prefix_condition_dict
from .geometry import FIRST_WEIGHTS
from .models.base import CapsExceeded, CharacterModel, evaluating
from .models.batch import CharacterBatch
from .models.sites import VARIABLES, char_end_site, loc_site, offset_site, site_variable
from .splines import CENTER, SCALE

#: grid points per ``log_prob`` call (bounds the memory of a fine grid)
CHUNK = 4096
#: the largest grid accepted (points per side)
MAX_GRID = 512


@dataclass(frozen=True)
class Grid:
    """A ``size`` x ``size`` grid of points over a rectangle, in motor pixels.

    Pixel (row r, column c) is the centre of a cell: ``x = x0 + (c + 0.5) (x1 - x0) / size``,
    ``y = y0 + (r + 0.5) (y1 - y0) / size``; rows run top to bottom with the default
    frame (``y0 = 0`` at the top, ``y1 = -105`` at the bottom: y = -row in Omniglot).
    """

    size: int = 64
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 105.0
    y1: float = -105.0

    def __post_init__(self):
        check_int(self.size, "grid size", 1, MAX_GRID)
        corners = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(v) for v in corners) or self.x0 == self.x1 or self.y0 == self.y1:
            raise ArgumentValueError(f"grid corners must be finite and span an area, got {corners}")

    @property
    def cell_area(self) -> float:
        """Area of one cell in square motor pixels."""
        return abs((self.x1 - self.x0) * (self.y1 - self.y0)) / self.size**2

    def motor_points(self) -> np.ndarray:
        """The cell centres (size * size, 2), row by row, in motor pixels."""
        u = (np.arange(self.size) + 0.5) / self.size  # (size,) in (0, 1)
        xs = self.x0 + u * (self.x1 - self.x0)
        ys = self.y0 + u * (self.y1 - self.y0)
        y, x = np.meshgrid(ys, xs, indexing="ij")  # (size, size) each: row r, column c
        return np.stack([x, y], -1).reshape(-1, 2)


FRAME = Grid()


@dataclass
class NextStroke:
    """What a model predicts after the strokes drawn so far (see the module docstring)."""

    grid: Grid
    density: np.ndarray | None  # (size, size) per square motor px, rows as Grid; None at the cap
    p_end: float | None  # P(the character ends now); None before the first stroke
    stroke_log_probs: list[dict[str, float]]  # per stroke {variable: log-prob, nats}

    @property
    def log_prob(self) -> float:
        """Log-probability of the drawing as a complete character (the sum over strokes)."""
        return float(sum(sum(s.values()) for s in self.stroke_log_probs))


def _steps_needed(model: CharacterModel, batch: CharacterBatch | None) -> int:
    """The offset cap a run conditioned on ``batch`` needs: one more than its longest
    stroke's offsets (at most the model's own cap).

    A cap only makes the decision at it certain; below it the model's distributions
    are its own. With this cap every observed site and the site read after them keep
    the full model's distribution, and a finished stroke is not padded up to the
    model's cap of 50 offsets (most of a reading's Pyro overhead otherwise).
    """
    longest = int(batch.n_offsets.max()) if batch is not None and batch.n_offsets.numel() else 0
    return min(model.config.max_steps, longest + 1)


def _run_until(model: CharacterModel, data: dict, site: str, batch: CharacterBatch | None):
    """Trace the per-step program conditioned on ``data`` (the values of ``batch``)
    until it reaches ``site`` -> (the trace of the sites before it, ``site``'s
    distribution or None if the run ended without reaching it)."""
    program = poutine.escape(poutine.condition(model.model, data=data),
                             escape_fn=lambda msg: msg["name"] == site)
    tracer = poutine.trace(program)
    fn = None
    with evaluating(model):
        try:
            tracer(batch_size=1, max_steps=_steps_needed(model, batch))
        except NonlocalExit as stop:
            stop.reset_stack()
            fn = stop.site["fn"]
    return tracer.msngr.trace, fn


def _conditioned_run(model: CharacterModel, controls: list[np.ndarray]):
    """Trace the per-step program given the strokes ``controls`` and "the character goes
    on", up to the next ``loc`` site -> (trace, the next ``loc`` site's distribution
    or None at the cap)."""
    k = len(controls)
    cap = model.config.max_strokes
    if k > cap:
        raise CapsExceeded(f"{k} strokes; the {model.name} model draws at most {cap} "
                           "(its max_strokes cap)")
    data, batch = {}, None
    if k:
        batch = CharacterBatch.from_control_points([controls]).to(model.device)
        model.check_caps(batch)
        data = prefix_condition_dict(batch, k)
        if k < cap:  # else the decision after stroke k is certain: "it ends"
            data[char_end_site(k - 1)] = torch.zeros(1, device=model.device)
    return _run_until(model, data, loc_site(k), batch)


def _stroke_log_probs(trace, n_strokes: int) -> tuple[list[dict[str, float]], float | None]:
    """Per stroke {variable: log-prob} of the observed sites, the last ``char_end``
    evaluated at 1 (the character ends) -> (that list, P(ends) after the last stroke)."""
    out = [dict.fromkeys(VARIABLES, 0.0) for _ in range(n_strokes)]
    p_end = None
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        i = site["infer"]["stroke"]
        if i >= n_strokes:
            continue
        value = site["value"]
        if name == char_end_site(n_strokes - 1):
            value = torch.ones_like(value)
        lp = float(site["fn"].log_prob(value).sum())
        if name == char_end_site(n_strokes - 1):
            p_end = math.exp(lp)
        out[i][site_variable(name)] += lp
    return out, p_end


def _density(fn, grid: Grid, device, anchor=(0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    """The density of ``anchor + scale * v`` on the grid, per square motor px, for v
    distributed as ``fn`` (2-D, batch (1,), normalized units) -> (size, size).

    exp(fn.log_prob((p - anchor) / scale)) / scale^2 at each grid point p: a shift and
    a scaling of ``fn``, with its Jacobian.
    """
    pts = (grid.motor_points() - CENTER) / SCALE  # (P, 2) normalized units
    values = torch.as_tensor((pts - np.asarray(anchor)) / scale, dtype=torch.float32, device=device)
    out = [fn.log_prob(values[lo:lo + CHUNK, None, :]).reshape(-1)  # (chunk,)
           for lo in range(0, len(values), CHUNK)]
    dens = torch.cat(out).exp() / (scale * SCALE) ** 2  # per square normalized unit -> px
    return dens.cpu().double().numpy().reshape(grid.size, grid.size)


@torch.no_grad()
def next_stroke_prediction(model: CharacterModel, controls, grid: Grid | int = FRAME) -> NextStroke:
    """The model's reading of a drawing's first K strokes (see the module docstring).

    ``controls``: the strokes drawn so far as control points (n_i, 2) in normalized
    units (e.g. :func:`pyrochar.api.prefix_controls`), possibly none. ``grid``: a
    :class:`Grid` or a number of points per side over the 105 x 105 frame.
    Raises :class:`~pyrochar.models.base.CapsExceeded` for more strokes than the model draws.
    """
    check_model(model)
    controls = [] if controls is None or len(controls) == 0 else check_control_points([controls])[0]
    grid = Grid(size=grid) if isinstance(grid, int) and not isinstance(grid, bool) else grid
    if not isinstance(grid, Grid):
        raise ArgumentValueError(f"grid must be a pyrochar.predict.Grid or an int, got {grid!r}")
    trace, loc_fn = _conditioned_run(model, list(controls))
    per_stroke, p_end = _stroke_log_probs(trace, len(controls))
    density = None if loc_fn is None else _density(loc_fn, grid, model.device)
    return NextStroke(grid, density, p_end, per_stroke)


@dataclass
class NextPoint:
    """While a stroke is drawn: the stroke model's density of its next control point."""

    grid: Grid
    density: np.ndarray | None  # (size, size) per square motor px; None: the stroke must end
    anchor: np.ndarray  # (2,) motor px: the point the next offset is added to


@torch.no_grad()
def next_point_prediction(model: CharacterModel, controls, partial, grid: Grid | int = FRAME) -> NextPoint:
    """The density of the next control point of the stroke being drawn (paper, Fig. 3).

    ``controls``: the K finished strokes (control points (n_i, 2), normalized units);
    ``partial``: the P >= 1 control points of stroke K+1 so far. The per-step program
    is conditioned on them and on "the stroke goes on"
    (:func:`~pyrochar.complete.prefix_condition_dict` with ``prefix_points=P``) and
    stopped at the site of offset P - 1 of stroke K+1. Control point P is control
    point P - 1 plus that offset; for P = 1 the known point is the stroke's start y,
    the first point of its curve, and control point 1 is ``y + 0.8 offset`` (as in
    :mod:`pyrochar.figures.predictions`). At the model's cap of control points per
    stroke the stroke must end: ``density`` is None.
    """
    check_model(model)
    controls = [] if controls is None or len(controls) == 0 else check_control_points([controls])[0]
    partial = check_control_points([[partial]], "partial")[0][0]
    grid = Grid(size=grid) if isinstance(grid, int) and not isinstance(grid, bool) else grid
    if not isinstance(grid, Grid):
        raise ArgumentValueError(f"grid must be a pyrochar.predict.Grid or an int, got {grid!r}")
    k, p = len(controls), len(partial)
    if k + 1 > model.config.max_strokes:
        raise CapsExceeded(f"stroke {k + 1}: the {model.name} model draws at most "
                           f"{model.config.max_strokes} strokes (its max_strokes cap)")
    first = p == 1
    anchor = partial[-1]  # normalized units: cp[P - 1], or the start for P = 1
    motor_anchor = anchor * SCALE + CENTER
    if p - 1 >= model.config.max_steps:
        return NextPoint(grid, None, motor_anchor)
    batch = CharacterBatch.from_control_points([[*controls, partial]]).to(model.device)
    data = prefix_condition_dict(batch, k, p, stroke_goes_on=True)
    _, fn = _run_until(model, data, offset_site(k, p - 1), batch)
    scale = FIRST_WEIGHTS[0] if first else 1.0
    return NextPoint(grid, _density(fn, grid, model.device, anchor, scale), motor_anchor)
