"""Bookkeeping of ingestion runs in ``ml_ingestion_runs``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update

from mlops.db.engine import inserted_id
from mlops.db.schema import ingestion_runs

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
ABANDONED = (
    "abandoned: the run ended without recording how (the process was killed or crashed, "
    "or the store refused the write: full, read-only or unreachable)"
)


def start_run(
    engine: Engine,
    *,
    job: str,
    mode: str,
    started_at: datetime,
    as_of_start: datetime | None,
    as_of_end: datetime | None,
    scheduled_for: datetime | None,
) -> int:
    """Record a run as running (committed at once, so a killed run stays visible). The caller
    holds the job's lock (``job_lock.hold``): a run of the job still 'running' is then one
    whose holder is gone, and it is marked so."""
    with engine.begin() as conn:
        conn.execute(
            update(ingestion_runs)
            .where(ingestion_runs.c.job == job, ingestion_runs.c.status == RUNNING)
            .values(status=FAILED, error=ABANDONED, finished_at=started_at)
        )
        result = conn.execute(
            insert(ingestion_runs).values(
                job=job,
                mode=mode,
                as_of_start=as_of_start,
                as_of_end=as_of_end,
                scheduled_for=scheduled_for,
                started_at=started_at,
                status=RUNNING,
                rows_read=0,
                rows_written=0,
                rows_rejected=0,
                values_written=0,
                snapshots_skipped=0,
            )
        )
        return inserted_id(result)


def update_run(conn: Connection, run_id: int, **values) -> None:
    """Update counters or status inside the caller's transaction."""
    conn.execute(update(ingestion_runs).where(ingestion_runs.c.run_id == run_id).values(**values))


def finish_run(
    engine: Engine, run_id: int, *, status: str, finished_at: datetime, seconds: float, **values
) -> None:
    """Record how a run ended (status, end time, duration, and any counters or error)."""
    with engine.begin() as conn:
        update_run(
            conn, run_id, status=status, finished_at=finished_at, duration_seconds=seconds, **values
        )


def get_run(engine: Engine, run_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(select(ingestion_runs).where(ingestion_runs.c.run_id == run_id)).one()
        return dict(row._mapping)
