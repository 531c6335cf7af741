"""Request and response models of the HTTP API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)

from mlops.clock import to_utc_naive

Source = Literal["model", "heuristic"]

# Ids are looked up in and logged to the databases: no control characters (PostgreSQL refuses
# a NUL in text; the others are never part of an id and garble logs).
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
ID_MAX = 128
# Free text (a flag's reason): tabs and line breaks allowed, other control characters not.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
ShortId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]


def utc_text(value: datetime) -> str:
    """RFC 3339 UTC text ("...Z") of a naive-UTC or aware time."""
    return to_utc_naive(value).isoformat() + "Z"


# Times are naive UTC inside mlops; on the wire they carry their offset (RFC 3339, as the
# schema's date-time format requires), so no client reads them as its local time.
UtcTime = Annotated[
    datetime,
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# A request's time as RFC 3339 text with its offset, written in the years 1970 to 9998: the
# pattern is the whole rule, so the schema says exactly what is taken. (Lax pydantic took
# numbers as Unix seconds, "0" included, naive text as UTC and bare dates; the last year is
# 9998 so that the shift to UTC and the minutes added to it stay inside datetime's range.)
YEARS = r"(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
TIME_PATTERN = (
    "^" + YEARS + r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_TIME = re.compile(TIME_PATTERN)


def _time_text(value: object) -> object:
    # Python callers pass datetimes; on the wire only the pattern's text is a time.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(
            "expected RFC 3339 text with an offset, years 1970 to 9998, e.g. 2026-06-01T12:00:00Z"
        )
    return value


def in_calendar(value: datetime | None) -> datetime | None:
    """``value`` if its year (as written) is 1970 to 9998, else a ValueError: times are shifted
    to UTC and added to, and must stay inside datetime's range."""
    if value is not None and not 1970 <= value.year <= 9998:
        raise ValueError("the time must be in the years 1970 to 9998")
    return value


RequestTime = Annotated[
    datetime,
    BeforeValidator(_time_text),
    AfterValidator(in_calendar),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIME_PATTERN}),
]


def a_number(value: object) -> object:
    """``value`` unless it is a boolean or text (a ValueError)."""
    # JSON's true/false and numbers written as text are not numbers (lax pydantic took them).
    if isinstance(value, bool | str | bytes):
        raise ValueError("expected a JSON number")
    return value


# Numbers as JSON Schema means them: an integer is any number with no fraction (3 and 3.0),
# a number any finite one; never a boolean or text.
Integer = Annotated[int, BeforeValidator(a_number)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Bool = StrictBool


class Provenance(BaseModel):
    """Where an ML-backed answer came from."""

    source: Source = Field(description="'model' or 'heuristic' (the rule-based fallback).")
    reason: str | None = Field(
        None,
        description="Why the heuristic answered: flag_off, drift, guardrail, ab_control (the "
        "A/B experiment's control arm), no_champion, "
        "circuit_open, features_missing, features_stale, features_unavailable, slo_exceeded, "
        "model_error. Null when the model answered.",
    )
    model_version: int | None = Field(None, description="Registry version that answered.")
    computed_at: UtcTime | None = Field(None, description="When the features were computed.")
    staleness_seconds: float | None = Field(None, description="Age of the features (seconds).")


class PredictRequest(BaseModel):
    """The generic route's body; each job's route takes its own subclass (``predict.
    request_model``), whose ``inputs`` are that job's, typed and bounded as declared."""

    entity_id: Id = Field(description="The job's entity (its key in the feature view).")
    inputs: dict[str, float | int | str] = Field(
        default_factory=dict,
        max_length=100,
        description="The job's request-time inputs by name (see `mlops jobs describe JOB`); "
        "derived ones (entity, hour, weekday) are not passed.",
    )
    at: RequestTime | None = Field(
        None, description="The event's time (RFC 3339 with offset, 1970 to 9998); default now."
    )
    subject_id: Id | None = Field(
        None,
        description="What the prediction is about beyond the entity, logged with it for "
        "accuracy monitoring (and the unit its A/B arm is drawn from).",
    )

    model_config = ConfigDict(extra="forbid")


class Prediction(Provenance):
    job: str
    entity_id: str
    at: UtcTime = Field(description="The time the inputs were taken at.")
    value: float = Field(description="A probability (binary jobs) or the predicted quantity.")


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """What /readyz answers (its fields are ``health.readiness``'s; more may come)."""

    ready: bool
    database: str = Field(description="'ok', or 'unreachable: <error class>'.")
    mode: Literal["models", "heuristics only", "mixed"]
    champions: dict[str, int | None] = Field(description="Version served per job.")
    problems: dict[str, str]
    redis: str
    degraded: list[str] = Field(description="What is not as it should be, in words.")


class Flag(BaseModel):
    name: str
    enabled: bool
    reason: str
    updated_by: str | None
    updated_at: UtcTime | None


class Trip(BaseModel):
    trip_id: int
    job: str
    kind: str
    detail: str
    tripped_at: UtcTime


class Controls(BaseModel):
    flags: dict[str, Flag]
    trips: dict[str, list[Trip]] = Field(description="The active trips per job.")


class CacheCleared(BaseModel):
    redis_keys_deleted: int


class Reloaded(BaseModel):
    changes: list[str] = Field(description="One line per champion that moved.")
    champions: dict[str, int | None]


class FlagUpdate(BaseModel):
    enabled: Bool
    reason: str = Field(
        min_length=1, max_length=500, pattern=TEXT_PATTERN, description="Why (an incident id...)."
    )

    model_config = ConfigDict(extra="forbid")
