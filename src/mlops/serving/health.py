"""What a serving process says about its own state: /readyz's readiness (the database, the
champions, and in plain words whatever is degraded) and /metrics' feature ages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select, text

from mlops.clock import Clock
from mlops.db.schema import feature_snapshots as snap

if TYPE_CHECKING:
    from mlops.serving.service import Service

log = logging.getLogger("mlops.serving")


def feature_ages(store: Engine, clock: Clock) -> dict[str, float]:
    """Seconds since each job's newest snapshot (for /metrics)."""
    now = clock.now()
    try:
        with store.connect() as conn:
            # Snapshots that stored entities, as ops' freshness counts them: an empty
            # refresh leaves serving on the older values.
            rows = conn.execute(
                select(snap.c.job, func.max(snap.c.as_of))
                .where(snap.c.entity_count > 0)
                .group_by(snap.c.job)
            ).all()
    except Exception as exc:  # a scrape must not fail because the store is down
        log.warning("feature ages unreadable", extra={"error": str(exc)})
        return {}
    return {job: (now - newest).total_seconds() for job, newest in rows if newest}


def readiness(svc: Service) -> dict[str, Any]:
    """Database reachable, and which jobs have a champion (the rest answer by heuristic).
    ``degraded`` says in words what is not as it should be (empty when all is well);
    errors are quoted by class and first line, never with credentials.

    A prediction log the store refuses is degraded, not unready: the answers are right and
    the rows wait in memory; taking the replica out would not help (every replica writes to
    the same store) and would turn a monitoring gap into an outage."""
    try:
        with svc.rt.store.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        database = f"unreachable: {exc.__class__.__name__}"
    versions = svc.champions.versions()
    mode = (
        "models"
        if all(versions.values())
        else "heuristics only"
        if not any(versions.values())
        else "mixed"
    )
    degraded = []
    if database != "ok":
        degraded.append(f"database {database}: features unreadable, answers by rule")
    for what, problem in svc.controls.problems.items():
        degraded.append(f"{what} unreadable, its last values in force: {problem}")
    if svc.cache.redis_state == "down":
        degraded.append(f"redis down ({svc.cache.redis_error}): reading the store directly")
    logging_problem = svc.log.problem
    if logging_problem:
        degraded.append(logging_problem)
    for job, problem in svc.champions.problems.items():
        degraded.append(f"{job}: {problem}")
    for job, breaker in svc.breakers.items():
        until = breaker.open_until
        if until is not None:
            degraded.append(f"{job}: circuit open until {until.isoformat()}, answers by rule")
        if svc.stuck.jammed(job):
            degraded.append(
                f"{job}: circuit open while {svc.stuck[job]} model path(s) stay stuck past "
                "the budget, answers by rule"
            )
        elif svc.stuck[job]:
            degraded.append(f"{job}: {svc.stuck[job]} model path(s) stuck past the budget")
    return {
        "ready": database == "ok",
        "database": database,
        "mode": mode,
        "champions": versions,
        "problems": {**svc.champions.problems, **svc.controls.problems},
        "redis": svc.cache.redis_state,
        "prediction_log": {
            "state": "failing" if logging_problem else "ok",
            "pending": svc.log.pending,
            "dropped": svc.log.dropped,
        },
        "degraded": degraded,
    }
