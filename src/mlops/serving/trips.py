"""Drift and guardrail trips: a recorded trip sends its job to the heuristic until cleared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from mlops.db.engine import inserted_id
from mlops.db.schema import fallback_trips
from mlops.errors import InputError

KINDS = ("drift", "guardrail")


@dataclass(frozen=True)
class Trip:
    trip_id: int
    job: str
    kind: str
    detail: str
    tripped_at: datetime


def record(engine: Engine, job: str, kind: str, detail: str, *, at: datetime) -> Trip:
    """Record a trip for the job (monitoring calls this); serving falls back from its next poll."""
    if kind not in KINDS:
        raise InputError(f"no trip kind {kind!r}", f"kinds are: {', '.join(KINDS)}")
    with engine.begin() as conn:
        trip_id = inserted_id(
            conn.execute(
                fallback_trips.insert().values(job=job, kind=kind, detail=detail, tripped_at=at)
            )
        )
    return Trip(int(trip_id), job, kind, detail, at)


def active(engine: Engine) -> dict[str, list[Trip]]:
    """Uncleared trips per job, oldest first."""
    t = fallback_trips
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.cleared_at.is_(None)).order_by(t.c.trip_id)).all()
    found: dict[str, list[Trip]] = {}
    for r in rows:
        found.setdefault(r.job, []).append(Trip(r.trip_id, r.job, r.kind, r.detail, r.tripped_at))
    return found


def clear(engine: Engine, job: str, *, actor: str, at: datetime) -> int:
    """Clear the job's active trips; returns how many were cleared."""
    t = fallback_trips
    with engine.begin() as conn:
        return conn.execute(
            t.update()
            .where(t.c.job == job, t.c.cleared_at.is_(None))
            .values(cleared_at=at, cleared_by=actor)
        ).rowcount
