"""The :class:`Drawing` record: one person's drawing of one character."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Drawing:
    """A drawing as a list of strokes in Omniglot motor coordinates.

    ``strokes[i]`` is a float64 array of shape (n_i, 3) holding (x, y, t): x to
    the right in [0, 105] px, y negative and decreasing downward (image row = -y),
    t in milliseconds (unreliable in the raw data; 0 when unknown).

    The labels are None for drawings that do not come from Omniglot (for example a
    user's JSON file).
    """

    strokes: list[np.ndarray]
    subset: str | None = None  # "background" or "evaluation"
    alphabet: str | None = None
    character: int | None = None  # 1-based index of the character within its alphabet
    character_id: int | None = None  # global Omniglot character id (1-1623)
    drawer: int | None = None  # 1-20
    source: str = field(default="")  # file path, or "archive.zip::member"

    @property
    def key(self) -> str:
        """A stable, human-readable identifier, e.g. ``Greek/character03/0396_07``."""
        if self.alphabet is not None and self.character is not None:
            cid = f"{self.character_id:04d}" if self.character_id is not None else "????"
            drw = f"{self.drawer:02d}" if self.drawer is not None else "??"
            return f"{self.alphabet}/character{self.character:02d}/{cid}_{drw}"
        return self.source

    @property
    def n_strokes(self) -> int:
        return len(self.strokes)
