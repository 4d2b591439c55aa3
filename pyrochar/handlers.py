"""Pyro effect handlers for the models.

- :class:`temperature` (``Temper``): samples unobserved sites at a temperature
  (Ha & Eck 2018 eq. 8). Handler order matters: ``temperature(condition(model))``
  leaves observed sites alone; ``condition(temperature(model))`` would temper them
  too (their log-probs would then be scored under the tempered distribution).
- :class:`SwapSitesMessenger` (``swap_sites``): replaces the distribution at
  chosen sites of an existing model, without editing it.
"""

from __future__ import annotations

from pyro.poutine.messenger import Messenger

from .distributions import temper


class TemperatureMessenger(Messenger):
    """Replace the distribution of every unobserved sample site by its tempered version."""

    def __init__(self, temperature: float = 1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__()
        self.temperature = float(temperature)

    def _pyro_sample(self, msg):
        if msg["is_observed"] or self.temperature == 1.0:
            return
        msg["fn"] = temper(msg["fn"], self.temperature)


def temperature(fn=None, temperature: float = 1.0):
    """``temperature(model, T)`` or ``with temperature(temperature=T):``."""
    msngr = TemperatureMessenger(temperature)
    return msngr(fn) if fn is not None else msngr


class SwapSitesMessenger(Messenger):
    """Replace the distribution at chosen sites of an existing model.

    ``sites`` maps shell-style patterns of site names (``"loc_*"``, ``"char_end_0"``)
    to functions ``f(name, original_distribution) -> new_distribution``. A site's
    mask (finished characters or strokes) is kept: the new distribution is masked
    the same way. Observed sites are swapped too, so scoring under the handler
    scores with the new prior. Sites that match no pattern are untouched.
    """

    def __init__(self, sites: dict):
        super().__init__()
        self.sites = dict(sites)

    def _pyro_sample(self, msg):
        from fnmatch import fnmatchcase

        from pyro.distributions.torch_distribution import MaskedDistribution

        for pattern, make in self.sites.items():
            if fnmatchcase(msg["name"], pattern):
                fn = msg["fn"]
                if isinstance(fn, MaskedDistribution):
                    msg["fn"] = make(msg["name"], fn.base_dist).mask(fn._mask)
                else:
                    msg["fn"] = make(msg["name"], fn)
                return


def swap_sites(fn=None, sites: dict | None = None):
    """``swap_sites(model.model, {"loc_*": f})`` or ``with swap_sites(sites={...}):``."""
    msngr = SwapSitesMessenger(sites or {})
    return msngr(fn) if fn is not None else msngr
