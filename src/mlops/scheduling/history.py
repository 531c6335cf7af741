"""The record of scheduled runs in ``ml_scheduler_runs``: one row per attempt, written when it
starts (so a killed run stays visible) and completed when it ends. Scheduler delay is
``started_at - scheduled_for``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from mlops.db.engine import inserted_id
from mlops.db.schema import scheduler_runs as runs

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# A follower not run because the task before it failed.
SKIPPED = "skipped"
# Still running past its timeout: it cannot be killed in-process, so it keeps its lease and
# is neither retried nor overlapped until it ends.
TIMED_OUT = "timed_out"
ABANDONED = "abandoned"
ERROR_CHARS = 4000


def start(
    engine: Engine,
    *,
    task: str,
    scheduled_for: datetime,
    attempt: int,
    owner: str,
    started_at: datetime,
    status: str = RUNNING,
    error: str | None = None,
) -> int:
    """Record an attempt as begun (committed at once); returns its run_id."""
    with engine.begin() as conn:
        result = conn.execute(
            insert(runs).values(
                task=task,
                scheduled_for=scheduled_for,
                attempt=attempt,
                owner=owner,
                started_at=started_at,
                finished_at=started_at if status != RUNNING else None,
                status=status,
                error=_clip(error),
            )
        )
        return inserted_id(result)


def finish(
    engine: Engine, run_id: int, *, status: str, finished_at: datetime, error: str | None = None
) -> None:
    """Record how an attempt ended. A run already marked timed out keeps that status."""
    with engine.begin() as conn:
        done = conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.status == RUNNING)
            .values(status=status, finished_at=finished_at, error=_clip(error))
        )
        if done.rowcount == 0:
            conn.execute(
                update(runs).where(runs.c.run_id == run_id).values(finished_at=finished_at)
            )


def mark_timed_out(engine: Engine, run_id: int, error: str) -> None:
    """Flag a running attempt that outlived its timeout (it goes on until it ends)."""
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.status == RUNNING)
            .values(status=TIMED_OUT, error=_clip(error))
        )


def abandon(engine: Engine, tasks: Iterable[str], now: datetime) -> int:
    """Close the runs of these tasks left running by a scheduler that died (its lease expired)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(runs)
            .where(runs.c.task.in_(list(tasks)), runs.c.status == RUNNING)
            .values(
                status=ABANDONED,
                finished_at=now,
                error="the scheduler running it stopped before it finished (killed or crashed)",
            )
        )
        return result.rowcount


def last_slot(engine: Engine, task: str) -> tuple[datetime | None, str | None]:
    """The latest slot any scheduler started this task for, and its latest attempt's status
    (runs abandoned by a dead scheduler do not count: their slot is still to do)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(runs.c.scheduled_for, runs.c.status)
            .where(runs.c.task == task, runs.c.status != ABANDONED)
            .order_by(runs.c.scheduled_for.desc(), runs.c.run_id.desc())
            .limit(1)
        ).first()
    return (row.scheduled_for, row.status) if row else (None, None)


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:ERROR_CHARS]
