"""Automatic fallback, as the runbook asks: a drift alert or a guardrail breach sends the job to
its heuristic (a recorded trip, read by every serving replica at its next poll) until an
engineer clears it with ``mlops flags clear-trips <job>``."""

from __future__ import annotations

import logging

from mlops.runtime import Runtime
from mlops.serving import trips
from mlops.serving.trips import Trip

log = logging.getLogger("mlops.monitoring")

EVENT = "mlops.fallback.tripped"


def trip(rt: Runtime, job: str, kind: str, detail: str) -> Trip | None:
    """Record a trip when the job's ``auto_fallback`` is on (declared, or its setting) and none
    of this kind is in force; returns the new trip (None when nothing was recorded)."""
    from mlops.monitoring import job_settings

    if not job_settings.auto_fallback(rt, job):
        log.info("auto fallback off; no trip", extra={"job": job, "kind": kind})
        return None
    if any(t.kind == kind for t in trips.active(rt.store).get(job, ())):
        return None
    recorded = trips.record(rt.store, job, kind, detail, at=rt.clock.now())
    log.warning(
        f"{EVENT} job={job} kind={kind}: {detail} (undo: mlops flags clear-trips {job})",
        extra={"event": EVENT, "job": job, "kind": kind, "trip_id": recorded.trip_id},
    )
    return recorded
