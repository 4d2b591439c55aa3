"""The contract every character model fulfils, and the two Pyro programs written once.

A model is an ``nn.Module`` holding its networks and a config dataclass. It defines
*distributions* through a few hooks; the two Pyro programs over those
distributions are written here, once, for every model (docs/model.md):

- :meth:`CharacterModel.model` (``batch_size``): the generative process, one sample
  site per variable (``loc_{i}``, ``offset_{i}_{t}``, ``stroke_end_{i}_{t}``,
  ``char_end_{i}``, see :mod:`pyrochar.models.sites`) inside
  ``pyro.plate("characters", batch_size)``. Sampling, conditioning
  (``poutine.condition``), completion and ``Predictive`` use it. Returns the drawn
  characters as a :class:`CharacterBatch`.
- :meth:`CharacterModel.teacher_forced_model` (``batch``): the same distribution over
  an observed batch, vectorized over strokes and steps, with one site per variable
  kind (``loc``, ``offset``, ``stroke_end``, ``char_end``). Scoring and training use
  it; tests check it gives the per-step program's log-likelihood for every drawing.

The hooks of the per-step program (each receives ``rows``, the indices of the
characters still being drawn, and computes for those rows only):

=====================  ===========================================================
``begin_character``    the state before the first stroke (a blank canvas, an LSTM state)
``p_loc``              distribution of stroke i's start
``begin_stroke``       the stroke's state, given its start
``stroke_step``        distributions of the next offset and of "the stroke ends"
``end_stroke``         what the character's state becomes once the stroke is drawn
``p_char_end``         distribution of "the character ends" after stroke i
``after_char_end``     (optional) read the "character ends" decision
=====================  ===========================================================

and of the teacher-forced program, ``teacher_forced_sites(batch)``.

**Caps.** A character has at most ``max_strokes`` strokes and a stroke at most
``max_steps`` offsets (the config's caps, 10 and 50 by default). They are part of the
model: the decision after the last allowed stroke (offset) is certain, "it ends"
(a ``Delta`` site scoring 0; the teacher-forced program masks it), so a sample that
reaches a cap is exactly the drawing it returns. A drawing longer than the caps has
probability 0: conditioning on one, or scoring one, raises :class:`CapsExceeded`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.params import param_with_module_name
from pyro.poutine.runtime import _PYRO_STACK
from torch import nn

from ..checks import check_positive_int
from ..distributions import RowSubset
from ..errors import PyrocharError
from ..nets.blocks import PRECISIONS, CanvasCNN
from .batch import CharacterBatch
from .sites import TeacherForcedSite, site_name


class CapsExceeded(PyrocharError):
    """A drawing has more strokes, or a stroke more offsets, than the model's caps."""


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Run a block with ``model`` in eval mode (dropout off), restoring its mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class CharacterModel(nn.Module):
    """Base class: holds ``config`` (a dataclass), the hooks' defaults and the two programs."""

    name: ClassVar[str] = "?"
    config_class: ClassVar[type]
    #: whether batches must carry the canvases before/after each stroke (Full NS)
    uses_canvases: ClassVar[bool] = False
    #: the plate of the teacher-forced program ("strokes" or "characters")
    teacher_forced_plate: ClassVar[str] = "characters"

    def __init__(self, config=None):
        super().__init__()
        self.config = self.config_class() if config is None else config  # the defaults

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def set_precision(self, precision: str) -> CharacterModel:
        """Compute precision of the model's canvas CNNs: ``"fp32"`` or ``"bf16-mixed"``.

        ``"bf16-mixed"`` runs the CNNs reading canvases (Full NS's location, stroke
        and termination networks) under bfloat16 autocast; weights, gradients and
        everything else stay float32. The stroke CNN trains in float32 all the same
        (in bfloat16 it learnt worse features, docs/results.md). Speed-ups are in
        docs/performance.md. Models without such CNNs ignore it. A runtime setting,
        not saved with the weights. Returns ``self``.
        """
        if precision not in PRECISIONS:
            raise PyrocharError(
                f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        for module in self.modules():
            if isinstance(module, CanvasCNN):
                module.compute_dtype = PRECISIONS[precision]
        return self

    def register_with_pyro(self) -> None:
        """``pyro.module(self.name, self)``: the networks' parameters in Pyro's param store.

        Both programs call it, so ``pyro.infer.SVI`` trains the networks. The store
        holds the model's own parameter tensors: a model built later (another seed, a
        checkpoint loaded afterwards) takes the name over from an earlier one.
        """
        store = pyro.get_param_store()
        for pname, p in self.named_parameters():
            full = param_with_module_name(self.name, pname)
            if store._params.get(full) is not p:
                _store_parameter_itself(store, full, p)
        pyro.module(self.name, self)

    # ------------------------------------------------------------ the hooks
    def begin_character(self, batch_size: int):
        """The state of ``batch_size`` characters before their first stroke."""
        raise NotImplementedError

    def p_loc(self, state, i: int, rows: torch.Tensor):
        """Distribution of stroke i's start, batch (n,) for the characters ``rows`` (n,)."""
        raise NotImplementedError

    def begin_stroke(self, state, i: int, rows: torch.Tensor, start: torch.Tensor):
        """The state in which stroke i of ``rows`` begins, given its start (n, 2)."""
        raise NotImplementedError

    def stroke_step(self, stroke, t: int, prev_offset: torch.Tensor, going: torch.Tensor):
        """-> (distribution of offset t, of "the stroke ends after it", the stroke's new state).

        ``prev_offset`` (n, 2) is offset t - 1 (zeros at t = 0); ``going`` (n,) is True
        for the rows whose stroke goes on (the others' values are masked).
        """
        raise NotImplementedError

    def end_stroke(self, state, i, rows, start, offsets, n_offsets, stroke) -> None:
        """Stroke i of ``rows`` is drawn (start (n, 2), offsets (n, T, 2), counts (n,)):
        update ``state`` (render it on the canvas, let an LSTM read it...)."""

    def p_char_end(self, state, i: int, rows: torch.Tensor, stroke):
        """Distribution of "the character ends after stroke i", batch (n,)."""
        raise NotImplementedError

    def after_char_end(self, state, i: int, rows: torch.Tensor, ends: torch.Tensor) -> None:
        """The "character ends" decision (n,) after stroke i of ``rows`` was taken."""

    def drawn(self, state, starts, strokes) -> CharacterBatch:
        """What the per-step program returns (see :meth:`CharacterBatch.from_samples`)."""
        return CharacterBatch.from_samples(starts, strokes)

    def teacher_forced_sites(self, batch: CharacterBatch):
        """-> (drawing index of each plate entry (P,), [TeacherForcedSite, ...])."""
        raise NotImplementedError

    # ------------------------------------------------------ the generative model
    def model(self, batch_size: int = 1, max_strokes: int | None = None, max_steps: int | None = None):
        """The model as a Pyro program, one site per variable (paper, Fig. 1).

        ``max_strokes`` and ``max_steps`` default to the config's caps; smaller values
        give the model with those caps (see the module docstring). Every run has the
        same sites, up to the caps: the variables of a character (a stroke) that has
        ended are masked (they score 0), and once every character of the batch has
        ended the remaining sites are recorded as observed zeros, fully masked, so
        ``pyro.infer.Predictive`` can stack the runs.
        """
        b = check_positive_int(batch_size, "batch_size")
        max_strokes = self.config.max_strokes if max_strokes is None else check_positive_int(max_strokes, "max_strokes")
        max_steps = self.config.max_steps if max_steps is None else check_positive_int(max_steps, "max_steps")
        _refuse_vectorizing_plates(type(self).__name__)
        self.register_with_pyro()
        sites = _PerStepSites(b, self.device)
        state = self.begin_character(b)
        # `alive` is True while a character has not ended; a finished character's
        # later sites are masked out, so one batch holds characters of any length.
        alive = torch.ones(b, dtype=torch.bool, device=self.device)
        starts, strokes = [], []
        with pyro.plate("characters", b):
            for i in range(max_strokes):
                if not alive.any():
                    sites.pad_strokes(i, max_strokes, max_steps)
                    break
                rows = alive.nonzero().squeeze(-1)  # (n,) the characters still being drawn
                start = sites.sample("loc", self.p_loc(state, i, rows), rows, alive, i)
                offsets, n_offsets, stroke = self._draw_stroke(sites, state, i, rows, start, alive, max_steps)
                self.end_stroke(state, i, rows, start[rows], offsets[rows], n_offsets[rows], stroke)
                ends = sites.decide(
                    "char_end", self.p_char_end(state, i, rows, stroke), rows, alive, i,
                    certain=i == max_strokes - 1,
                )  # fmt: skip
                self.after_char_end(state, i, rows, ends[rows])
                starts.append(start)
                strokes.append((offsets, n_offsets))
                alive = alive & (ends == 0)
        return self.drawn(state, starts, strokes)

    def _draw_stroke(self, sites, state, i, rows, start, alive, max_steps):
        """Stroke i, one offset at a time -> offsets (B, T, 2), counts (B,), the stroke's state."""
        stroke = self.begin_stroke(state, i, rows, start[rows])
        drawing = alive.clone()  # True while stroke i goes on
        prev = torch.zeros_like(start)  # (B, 2): no offset before the first
        n_offsets = torch.zeros(len(alive), dtype=torch.long, device=alive.device)
        offsets = []
        for t in range(max_steps):
            if not drawing.any():
                sites.pad_steps(i, t, max_steps)
                break
            offset_fn, end_fn, stroke = self.stroke_step(stroke, t, prev[rows], drawing[rows])
            prev = sites.sample("offset", offset_fn, rows, drawing, i, t)
            ends = sites.decide("stroke_end", end_fn, rows, drawing, i, t, certain=t == max_steps - 1)
            offsets.append(prev)
            n_offsets = n_offsets + drawing.long()
            drawing = drawing & (ends == 0)
        return torch.stack(offsets, 1), n_offsets, stroke

    # ------------------------------------------------ the teacher-forced program
    def caps_problem(self, n_strokes: int, max_offsets: int) -> str | None:
        """Why a drawing of ``n_strokes`` strokes, the longest with ``max_offsets``
        offsets, is beyond the model's caps (it has probability 0), or None."""
        c = self.config
        if n_strokes > c.max_strokes:
            return (f"{n_strokes} strokes; the {self.name} model draws at most {c.max_strokes} "
                    "(its max_strokes cap)")  # fmt: skip
        if max_offsets > c.max_steps:
            return (f"a stroke of {max_offsets + 1} control points; the {self.name} model draws "
                    f"at most {c.max_steps + 1} per stroke (its max_steps cap)")  # fmt: skip
        return None

    def check_caps(self, batch: CharacterBatch) -> None:
        """Raise :class:`CapsExceeded` if a drawing of ``batch`` is longer than the caps."""
        if batch.batch_size == 0:
            return
        n_offsets = int(batch.n_offsets.max()) if batch.n_offsets.numel() else 0
        problem = self.caps_problem(int(batch.n_strokes.max()), n_offsets)
        if problem:
            raise CapsExceeded(f"a drawing has {problem}: it cannot score or condition on it")

    def teacher_forced_model(self, batch: CharacterBatch) -> torch.Tensor:
        """The teacher-forced Pyro program: every variable of ``batch`` observed.

        One site per variable kind, inside one plate (strokes or characters); a
        site's event dimensions run over steps (or strokes). Padding is masked
        (``.mask(m).to_event(k)``: a padded element scores 0 and its value, a finite
        filler, is never read), and so are the certain decisions at the caps.
        Returns the drawing index of each plate entry, to sum log-probs per drawing.
        """
        self.check_caps(batch)
        self.register_with_pyro()
        index, sites = self.teacher_forced_sites(batch)
        c = self.config
        with pyro.plate(self.teacher_forced_plate, len(index)):
            for s in sites:
                mask = s.mask
                if s.variable == "char_end":  # after the last allowed stroke: certain
                    mask = mask & (s.stroke < c.max_strokes - 1)
                elif s.variable == "stroke_end":  # after the last allowed offset: certain
                    mask = mask & (s.step < c.max_steps - 1)
                fn = s.fn.mask(mask)
                if fn.batch_shape and len(fn.batch_shape) > 1:
                    fn = fn.to_event(len(fn.batch_shape) - 1)  # the steps (strokes) of one entry
                pyro.sample(s.variable, fn, obs=s.value,
                            infer={"variable": s.variable, "stroke": s.stroke, "step": s.step})  # fmt: skip
        return index

    # ----------------------------------------------------------------- optional
    def initialize_from_data(self, dataset) -> CharacterModel:
        """Optional hook: set parameters from training-data statistics before training.

        ``dataset`` is the training split (a ``PreparedDataset``). The default does
        nothing; parametric models (the BPL-style prior) fit themselves here in closed
        form. Returns ``self``.
        """
        return self

    def prepare_batch(self, batch: CharacterBatch) -> CharacterBatch:
        """Add whatever the teacher-forced program needs beyond the strokes (e.g. canvases)."""
        return batch


def _store_parameter_itself(store, name: str, p: torch.Tensor) -> None:
    """Put the tensor ``p`` itself in Pyro's param store under ``name``.

    ``ParamStoreDict.__setitem__`` stores ``value.contiguous()``: a *copy* for the
    canvas CNNs' channels-last weights, which SVI would then train instead of the
    network's own weights. So the copy is replaced by ``p`` in the store's two maps
    (a real-valued parameter: its unconstrained value is itself).
    """
    if name in store:
        del store[name]
    store[name] = p
    stored = store._params[name]
    if stored is not p:
        store._param_to_name.pop(stored, None)
        store._params[name] = p
        store._param_to_name[p] = name


def _refuse_vectorizing_plates(model_name: str) -> None:
    """The per-step program's loops end when its characters end, so it cannot be
    vectorized by an outer plate (e.g. ``Predictive(..., parallel=True)``)."""
    for frame in _PYRO_STACK:
        if isinstance(frame, pyro.poutine.plate_messenger.PlateMessenger) and frame.dim is not None:
            raise PyrocharError(
                f"{model_name}.model cannot run inside the vectorized plate {frame.name!r} "
                "(e.g. Predictive(..., parallel=True)): how many strokes and offsets it draws "
                "depends on the values drawn, so its sites cannot get an extra batch dimension. "
                "Use Predictive(..., parallel=False), or draw many characters in one run with "
                "model.model(batch_size=n)."
            )


class _PerStepSites:
    """How the per-step program writes its sites (speed and bookkeeping, not the model).

    - A distribution computed for the rows still being drawn stands for the whole
      batch (:class:`RowSubset`); finished rows are masked.
    - A decision at a cap is certain (``Delta(1)``); an observed 0 there means the
      conditioned drawing is longer than the caps: :class:`CapsExceeded`.
    - Sites after every character (stroke) has ended are observed zeros, fully masked.
    """

    def __init__(self, batch_size: int, device):
        self.b = batch_size
        self.zeros2 = torch.zeros(batch_size, 2, device=device)
        self.zeros1 = torch.zeros(batch_size, device=device)
        self.pad2 = dist.Delta(self.zeros2, event_dim=1).mask(False)
        self.pad1 = dist.Delta(self.zeros1).mask(False)

    def _whole(self, fn, rows):
        return fn if len(rows) == self.b else RowSubset(fn, rows, self.b)

    def sample(self, variable, fn, rows, active, i, t=None):
        infer = {"variable": variable, "stroke": i, "step": t}
        fn = self._whole(fn, rows).mask(active)
        return self._per_row(pyro.sample(site_name(variable, i, t), fn, infer=infer), fn, variable, i, t)

    def decide(self, variable, fn, rows, active, i, t=None, certain=False):
        infer = {"variable": variable, "stroke": i, "step": t, "certain": certain}
        if certain:
            fn = dist.Delta(torch.ones(len(rows), device=self.zeros1.device))
        fn = self._whole(fn, rows).mask(active)
        value = self._per_row(pyro.sample(site_name(variable, i, t), fn, infer=infer), fn, variable, i, t)
        if certain and bool(((value == 0) & active).any()):
            what = "strokes" if variable == "char_end" else f"offsets in stroke {i}"
            raise CapsExceeded(
                f"the observed drawing goes on after {i + 1 if t is None else t + 1} {what}, "
                "the model's cap: it has probability 0 (pass larger max_strokes/max_steps, "
                "or score fewer strokes)"
            )
        return value

    def _per_row(self, value, fn, variable, i, t):
        """A value with one row per character: an observed value for one drawing (1, ...)
        or without the batch dimension is broadcast; any other shape is a clear error."""
        shape = fn.batch_shape + fn.event_shape
        if value.shape == shape:
            return value
        try:
            return value.expand(shape)
        except RuntimeError:
            raise PyrocharError(
                f"the observed value of {site_name(variable, i, t)} has shape {tuple(value.shape)}; "
                f"the model draws {tuple(shape)} (batch_size rows, or one row for all)"
            ) from None

    def pad_steps(self, i, t0, max_steps):
        for t in range(t0, max_steps):
            pyro.sample(site_name("offset", i, t), self.pad2, obs=self.zeros2,
                        infer={"variable": "offset", "stroke": i, "step": t, "padding": True})  # fmt: skip
            pyro.sample(site_name("stroke_end", i, t), self.pad1, obs=self.zeros1,
                        infer={"variable": "stroke_end", "stroke": i, "step": t, "padding": True})  # fmt: skip

    def pad_strokes(self, i0, max_strokes, max_steps):
        for i in range(i0, max_strokes):
            pyro.sample(site_name("loc", i), self.pad2, obs=self.zeros2,
                        infer={"variable": "loc", "stroke": i, "padding": True})  # fmt: skip
            self.pad_steps(i, 0, max_steps)
            pyro.sample(site_name("char_end", i), self.pad1, obs=self.zeros1,
                        infer={"variable": "char_end", "stroke": i, "padding": True})  # fmt: skip


__all__ = ["CapsExceeded", "CharacterModel", "TeacherForcedSite", "evaluating"]
