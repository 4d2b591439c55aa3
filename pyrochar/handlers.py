"""Pyro effect handlers for the models.

- :class:`temperature` (``Temper``): samples unobserved sites at a temperature
  (Ha & Eck 2018 eq. 8). Handler order matters: ``temperature(condition(model))``
  leaves observed sites alone; ``condition(temperature(model))`` would temper them
  too (their log-probs would then be scored under the tempered distribution).
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
