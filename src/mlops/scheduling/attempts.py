"""An attempt of a task and how it runs: its record (``Attempt``, a row of
``ml_scheduler_runs``), the worker thread that runs the task's action and records how it ended,
and what the scheduler keeps in memory of a root task's chain while it holds the chain's lease.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlops.errors import JobBusy
from mlops.runtime import Runtime
from mlops.scheduling import history
from mlops.scheduling.tasks import Task

log = logging.getLogger("mlops.scheduler")


@dataclass
class Attempt:
    """One attempt of one task for one slot, as recorded in ``ml_scheduler_runs``."""

    task: str
    scheduled_for: datetime
    attempt: int
    started_at: datetime
    run_id: int
    status: str = history.RUNNING
    finished_at: datetime | None = None
    error: str | None = None
    summary: str | None = None

    @property
    def delay(self) -> timedelta:
        """Scheduler delay: how late the attempt started after its slot."""
        return self.started_at - self.scheduled_for


@dataclass
class Worker:
    attempt: Attempt
    # time.monotonic() at start: a timeout bounds how long the thread really runs, which a
    # test's FrozenClock does not measure.
    began: float
    timed_out: bool = False
    done: bool = False


@dataclass
class ChainRun:
    """A root task's chain being worked through for one slot, while we hold its lease."""

    steps: list[Task]
    scheduled_for: datetime
    renewed: datetime
    index: int = 0
    attempt: int = 1
    not_before: datetime | None = None
    worker: Worker | None = None
    lease_lost: bool = False

    @property
    def root(self) -> Task:
        return self.steps[0]

    @property
    def step(self) -> Task:
        return self.steps[self.index]

    def ready(self, now: datetime) -> bool:
        """Whether its next step may start at ``now`` (nothing running, any retry wait over)."""
        waited = self.not_before is None or now >= self.not_before
        return self.worker is None and self.index < len(self.steps) and waited


def work(rt: Runtime, task: Task, worker: Worker, wakeup: threading.Event) -> None:
    """A worker thread: run the task's action, record how it ended."""
    attempt = worker.attempt
    try:
        attempt.summary = task.action(rt, attempt.scheduled_for)
        status, error = history.SUCCEEDED, None
    except JobBusy as exc:
        # Another run (a long backfill) has the job: this slot's run would only repeat or
        # race it. Not a failure, and not retried; the next slot runs as usual.
        status, error = history.SKIPPED, f"skipped: {exc.message}"
    except Exception as exc:
        status, error = history.FAILED, f"{type(exc).__name__}: {exc}"
    finished = rt.clock.now()
    try:
        history.finish(rt.store, attempt.run_id, status=status, finished_at=finished, error=error)
    except Exception as exc:  # the database is down: the lease lapses, the row says running
        log.error("cannot record the end of %s: %s", task.name, exc)
    if attempt.status != history.TIMED_OUT:
        attempt.status = status
    attempt.finished_at, attempt.error = finished, error or attempt.error
    level = logging.WARNING if status == history.FAILED else logging.INFO
    log.log(level, "%s %s", task.name, status, extra=log_extra(attempt))
    worker.done = True
    wakeup.set()


def log_extra(attempt: Attempt) -> dict:
    return {
        "task": attempt.task,
        "scheduled_for": attempt.scheduled_for.isoformat(),
        "attempt": attempt.attempt,
        "delay_seconds": attempt.delay.total_seconds(),
    }
