"""The JSON bodies the server accepts, validated with pydantic (types, ranges, sizes).

Coordinates are Omniglot motor units: x in [0, 105] to the right, y in [-105, 0]
(y = -row), t in ms; a stroke is a list of [x, y] or [x, y, t] points. Every number
must be finite. The list sizes here bound the parsing work; the project's drawing
limits (:func:`pyrochar.data.drawing.limits_problem`: points per drawing, the
coordinate range) are checked after parsing, and the request body's size is
bounded before (:mod:`pyrochar.serve.limits`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..checks import SEED_MAX, TEMPERATURE_MAX, TEMPERATURE_MIN
from ..data.drawing import MAX_POINTS_PER_STROKE, MAX_STROKES_PER_DRAWING

#: completions per request (``POST /api/complete``)
MAX_COMPLETIONS = 16
#: samples per request (``POST /api/sample``)
MAX_SAMPLES = 36
#: characters of a participant's name (collect mode)
MAX_PARTICIPANT = 64
#: characters of a prompt id (collect mode)
MAX_PROMPT_ID = 64

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Point = Annotated[list[Number], Field(min_length=2, max_length=3)]
Stroke = Annotated[list[Point], Field(min_length=1, max_length=MAX_POINTS_PER_STROKE)]
Strokes = Annotated[list[Stroke], Field(max_length=MAX_STROKES_PER_DRAWING)]
ModelName = Annotated[str, Field(strict=True, min_length=1, max_length=40)]
Temperature = Annotated[float, Field(strict=True, ge=TEMPERATURE_MIN, le=TEMPERATURE_MAX,
                                     allow_inf_nan=False)]
Seed = Annotated[int | None, Field(strict=True, ge=0, le=SEED_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadRequest(_Body):
    """``POST /api/read``: the strokes drawn so far."""

    model: ModelName
    strokes: Strokes = []


class NextPointRequest(_Body):
    """``POST /api/next_point``: the finished strokes and the one being drawn."""

    model: ModelName
    strokes: Strokes = []
    stroke: Stroke


class CompleteRequest(_Body):
    """``POST /api/complete``: n completions of the strokes drawn so far."""

    model: ModelName
    strokes: Strokes
    n: Annotated[int, Field(strict=True, ge=1, le=MAX_COMPLETIONS)] = 9
    temperature: Temperature = 1.0
    seed: Seed = None


class SampleRequest(_Body):
    """``POST /api/sample``: n new characters."""

    model: ModelName
    n: Annotated[int, Field(strict=True, ge=1, le=MAX_SAMPLES)] = 9
    temperature: Temperature = 1.0
    seed: Seed = None


class CollectRequest(_Body):
    """``POST /api/collect``: a participant's finished drawing for one prompt."""

    prompt_id: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_PROMPT_ID)]
    strokes: Annotated[Strokes, Field(min_length=1)]
    participant: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_PARTICIPANT,
                                      pattern=r"^[^\x00-\x1f\x7f]+$")]
