"""Pyro effect handlers for the models.

Both of a model's programs (the per-step ``model`` and the teacher-forced program
behind ``score``, ``train`` and ``evaluate``) carry the same variables, with their
stroke and step indices in each site's ``msg["infer"]`` (:mod:`pyrochar.models.sites`).
The handlers here address variables by their per-step names and act the same way on
both programs:

- :func:`temperature` (:class:`TemperatureMessenger`): samples unobserved sites at a
  temperature (Ha & Eck 2018 eq. 8). Handler order matters:
  ``temperature(condition(model))`` leaves observed sites alone;
  ``condition(temperature(model))`` would temper them too (their log-probs would then
  be scored under the tempered distribution). Observed sites, hence the whole
  teacher-forced program, are never tempered.
- :func:`swap_sites` (:class:`SwapSitesMessenger`): replaces the distribution of
  chosen variables of an existing model, without editing it.

Pyro's own handlers that do not select sites by name (``poutine.scale``,
``poutine.mask``) act identically on both programs too. Handlers that select by name
(``poutine.block(hide=...)``, ``poutine.condition``) see the per-step names in
``model`` and the variable kinds (``loc``, ``offset``, ...) in the teacher-forced
program; select by ``msg["infer"]["variable"]`` (e.g. ``block(hide_fn=...)``) to
address both.
"""

from __future__ import annotations

import warnings
from fnmatch import fnmatchcase

import torch
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.poutine.messenger import Messenger
from torch.distributions import Independent

from .checks import check_temperature
from .distributions import Where, temper
from .models.sites import VARIABLES, site_name


class TemperatureMessenger(Messenger):
    """Replace the distribution of every unobserved sample site by its tempered version."""

    def __init__(self, temperature: float = 1.0):
        t = check_temperature(temperature)
        super().__init__()
        self.temperature = t

    def _pyro_sample(self, msg):
        if msg["is_observed"] or self.temperature == 1.0:
            return
        msg["fn"] = temper(msg["fn"], self.temperature)


def temperature(fn=None, temperature: float = 1.0):
    """``temperature(model, T)`` or ``with temperature(temperature=T):``."""
    msngr = TemperatureMessenger(temperature)
    return msngr(fn) if fn is not None else msngr


def _unwrap(fn):
    """``base.mask(m).to_event(k)`` -> (base, m, k); any part may be absent."""
    k = 0
    if isinstance(fn, Independent):
        fn, k = fn.base_dist, fn.reinterpreted_batch_ndims
    mask = None
    if isinstance(fn, MaskedDistribution):
        fn, mask = fn.base_dist, fn._mask
    return fn, mask, k


def _rewrap(fn, mask, k):
    if mask is not None:
        fn = fn.mask(mask)
    return fn.to_event(k) if k else fn


class SwapSitesMessenger(Messenger):
    """Replace the distribution of chosen variables of an existing model.

    ``sites`` maps shell-style patterns of per-step site names (``"loc_*"``,
    ``"char_end_0"``, ``"offset_*_0"``; a bare variable kind such as ``"loc"`` means
    all of its sites) to functions ``f(name, original) -> distribution``. ``original``
    is the model's distribution at the site, without its mask, and ``f`` returns one
    of the same batch shape, or of batch shape ``()`` (it is then expanded). The first
    matching pattern wins.

    The same variables are swapped in both programs. A per-step site is swapped
    whole (``name`` is its name, e.g. ``"loc_2"``). A teacher-forced site holds all
    the variables of one kind (``name`` is the kind, e.g. ``"loc"``): the elements
    whose per-step names match are swapped, the others keep the model's
    distribution. Masks (finished characters, padding) are kept. Observed sites are
    swapped too, so scoring under the handler scores with the new distribution. The
    certain decisions at the model's caps and the padding sites after every character
    has ended are never swapped.
    """

    def __init__(self, sites: dict):
        super().__init__()
        from torch.distributions import Distribution

        if not isinstance(sites, dict) or not all(
            callable(f) and not isinstance(f, Distribution) for f in sites.values()
        ):
            raise TypeError(
                "swap_sites takes a dict {pattern: f(name, original) -> distribution}; to put a "
                "fixed distribution d at a site, pass lambda name, original: d"
            )
        self.sites = {(f"{p}_*" if p in VARIABLES else p): f for p, f in sites.items()}
        self._matched: set[str] = set()
        self._seen_a_site = False

    def __enter__(self):
        self._matched, self._seen_a_site = set(), False
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        unmatched = [p for p in self.sites if p not in self._matched]
        if exc_type is None and self._seen_a_site and unmatched:
            warnings.warn(
                f"swap_sites: the pattern(s) {', '.join(map(repr, unmatched))} matched no site of "
                "the program (site names: loc_{i}, offset_{i}_{t}, stroke_end_{i}_{t}, char_end_{i})",
                stacklevel=2,
            )
        return super().__exit__(exc_type, exc_value, traceback)

    def _pyro_sample(self, msg):
        info = msg.get("infer") or {}
        self._seen_a_site = True
        if info.get("certain") or info.get("padding"):
            return
        name = msg["name"]
        if name in VARIABLES and torch.is_tensor(info.get("stroke")):
            self._swap_elements(msg, info)
            return
        for pattern, make in self.sites.items():
            if fnmatchcase(name, pattern):
                self._matched.add(pattern)
                base, mask, k = _unwrap(msg["fn"])
                msg["fn"] = _rewrap(_like(make(name, base), base), mask, k)
                return

    def _swap_elements(self, msg, info):
        """A teacher-forced site: swap the elements whose per-step names match."""
        variable, stroke, step = msg["name"], info["stroke"], info.get("step")
        base, mask, k = _unwrap(msg["fn"])
        grid = base.batch_shape
        stroke = stroke.expand(grid)
        step = None if step is None else step.expand(grid)
        n_strokes = int(stroke.max()) + 1 if stroke.numel() else 1
        n_steps = int(step.max()) + 1 if step is not None and step.numel() else 1
        claimed = torch.zeros(grid, dtype=torch.bool, device=stroke.device)
        new = base
        for pattern, make in self.sites.items():
            # which (stroke, step) pairs the pattern names: a small table, then a lookup
            table = torch.tensor(
                [[fnmatchcase(site_name(variable, i, None if step is None else t), pattern)
                  for t in range(n_steps)] for i in range(n_strokes)],
                dtype=torch.bool, device=stroke.device,
            )  # fmt: skip
            if not table.any():
                continue
            self._matched.add(pattern)
            chosen = table[stroke, 0 if step is None else step] & ~claimed
            if not chosen.any():
                continue
            swapped = _like(make(variable, base), base)
            new = swapped if bool(chosen.all()) else Where(chosen, swapped, new)
            claimed = claimed | chosen
        if new is not base:
            msg["fn"] = _rewrap(new, mask, k)


def _like(new, base):
    """``new`` with ``base``'s batch shape (expanded from ``()``), or a clear error."""
    if new.batch_shape == base.batch_shape:
        return new
    if new.event_shape != base.event_shape:
        raise ValueError(
            f"swap_sites: the new distribution has event shape {tuple(new.event_shape)}, "
            f"the site's has {tuple(base.event_shape)}"
        )
    try:
        return new.expand(base.batch_shape)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"swap_sites: the new distribution has batch shape {tuple(new.batch_shape)}; "
            f"it must be () or the site's {tuple(base.batch_shape)}"
        ) from None


def swap_sites(fn=None, sites: dict | None = None):
    """``swap_sites(model.model, {"loc_*": f})`` or ``with swap_sites(sites={...}):``."""
    msngr = SwapSitesMessenger(sites or {})
    return msngr(fn) if fn is not None else msngr
