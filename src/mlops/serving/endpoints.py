"""What an endpoint is to the service: a computation over its inputs that returns the answer,
each job's outcome (the model's value or the reason the heuristic answers) and the
prediction log rows to write. The generic ``predict`` endpoint is in ``predict``; a
repository's own endpoints (see ``extension``) are built from the same pieces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops.errors import MlopsError
from mlops.serving.policy import Reason
from mlops.store.online import EntityFeatures


class NotFound(MlopsError):
    """The entity the request names does not exist (answered with 404)."""


class Unavailable(MlopsError):
    """A dependency the answer cannot do without is unreachable (answered with 503)."""


@dataclass
class Computed:
    """An endpoint's answer, its jobs' outcomes and the prediction log rows to write."""

    answer: Any
    outcomes: dict[str, Outcome]
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """An endpoint the service answers within its budget. ``compute(**inputs, cut=,
    memory_only=)`` returns a ``Computed``; ``jobs`` and ``unit`` say, from the same inputs,
    which jobs it runs and the id their A/B arms are drawn from."""

    name: str
    compute: Callable[..., Computed]
    jobs: Callable[[dict[str, Any]], Sequence[str]]
    unit: Callable[[dict[str, Any]], str]
    slo_ms: float = 50.0  # MLOPS_SLO_MS overrides it


@dataclass
class Outcome:
    """One job's model path: a value, or the reason the heuristic answers instead."""

    value: Any = None
    reason: Reason | None = None
    version: int | None = None
    features: EntityFeatures | None = None
    arm: str | None = None  # the A/B arm (see ``arms``)

    @property
    def source(self) -> str:
        return "heuristic" if self.reason else "model"

    @property
    def reason_name(self) -> str | None:
        return self.reason.value if self.reason else None

    @property
    def model_version(self) -> int | None:
        """The version that answered (None when the heuristic did)."""
        return None if self.reason else self.version

    @property
    def computed_at(self) -> datetime | None:
        return self.features.computed_at if self.features else None

    def provenance(self) -> dict[str, Any]:
        """The API's provenance fields of this answer."""
        return {
            "source": self.source,
            "reason": self.reason_name,
            "model_version": self.model_version,
            "computed_at": self.computed_at,
            "staleness_seconds": self.features.age_seconds if self.features else None,
        }


def record(
    endpoint: str,
    job: str,
    entity_id: str,
    subject_id: str | None,
    prediction: float,
    outcome: Outcome,
) -> dict[str, Any]:
    """A prediction log row (the service adds the time, request id and latency)."""
    return {
        "endpoint": endpoint,
        "job": job,
        "entity_id": entity_id,
        "subject_id": subject_id,
        "prediction": float(prediction),
        "source": outcome.source,
        "reason": outcome.reason_name,
        "model_version": outcome.model_version,
        "features_computed_at": outcome.computed_at,
        "arm": outcome.arm,
    }
