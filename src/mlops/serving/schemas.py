"""Request and response models of the HTTP API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
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


def in_calendar(value: datetime | None) -> datetime | None:
    # Times are shifted to UTC and added to: they must stay inside datetime's range.
    if value is None:
        return None
    try:
        utc = to_utc_naive(value)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not 1970 <= utc.year <= 9998:
        raise ValueError("the time must be between 1970 and 9998 (UTC)")
    return value


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


InputValue = float | int | str | None


class PredictRequest(BaseModel):
    entity_id: Id = Field(description="The job's entity (its key in the feature view).")
    inputs: dict[str, InputValue] = Field(
        default_factory=dict,
        max_length=100,
        description="The job's request-time inputs by name (see `mlops jobs describe JOB`); "
        "derived ones (entity, hour, weekday) are not passed.",
    )
    at: Annotated[datetime | None, AfterValidator(in_calendar)] = Field(
        None, description="The event's time (UTC if no offset), 1970 to 9998; default now."
    )
    subject_id: Id | None = Field(
        None,
        description="What the prediction is about beyond the entity, logged with it for "
        "accuracy monitoring (and the unit its A/B arm is drawn from).",
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"entity_id": "E42", "inputs": {"distance_km": 4.2}}]}
    )


class Prediction(Provenance):
    job: str
    entity_id: str
    at: UtcTime = Field(description="The time the inputs were taken at.")
    value: float = Field(description="A probability (binary jobs) or the predicted quantity.")


class Problem(BaseModel):
    detail: str
