"""One run of a job at a time. A run (refresh or backfill, from the command line or a
scheduler, on any machine) holds its job's lock from before it looks at what is ingested until
it has recorded how it ended; a second run waits for it (bounded) or stops with ``JobBusy``
having done nothing.

- PostgreSQL: a session advisory lock, keyed by the schema and the job, on a connection of its
  own. The server frees it when that session ends, so a killed run frees it at once.
- SQLite: a lease in ``ml_scheduler_leases`` (the scheduler's table, keyed ``job:<name>``),
  renewed by a heartbeat thread. A holder that died on this machine (its pid is gone) is taken
  over at once; one elsewhere, at expiry.

Holding the lock is what makes "abandoned" true: a run left ``running`` is marked so only by a
run that holds the lock, i.e. once its own holder is gone."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError

from mlops.clock import Clock
from mlops.db.schema import ingestion_runs
from mlops.durations import text
from mlops.errors import IngestionFailed, JobBusy
from mlops.scheduling import leases
from mlops.store.runs import RUNNING

log = logging.getLogger(__name__)

# As the scheduler's: a stalled or partitioned holder blocks the job for two minutes at most.
LEASE = leases.LEASE
POLL_SECONDS = 0.5
# Both keys of the advisory lock come from hashtext: the first names mlops' job locks, apart
# from any other application's advisory locks on the database.
_NAMESPACE = "mlops:job"
# Owners of the leases this process holds now: any other lease of this process's pid is left
# over by a run that ended without releasing it (its store refused the delete).
_HELD: set[str] = set()


class JobLock:
    """A job's lock, held by this process; ``check`` before each write."""

    def __init__(self, engine: Engine, job: str, clock: Clock) -> None:
        self.engine, self.job, self.clock = engine, job, clock
        self.lost = False

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def _still_ours(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def holder(self) -> str:
        """Who holds the lock, in words, from the job's running run."""
        with self.engine.connect() as conn:
            return _running_run(conn, self.job) or "another run"

    def check(self) -> None:
        """Raise when the lock was lost (its session ended, or a lease lapsed and another run
        took it): writing on would race that run."""
        if not self.lost:
            self.lost = not self._still_ours()
        if self.lost:
            raise IngestionFailed(
                f"ingestion of {self.job} lost its lock (the lease lapsed and another run "
                "took the job over); stopped before writing more",
                "the other run goes on; if this one was stalled (GC, a suspended machine), "
                "run it again once the other has ended",
            )


class _AdvisoryLock(JobLock):
    """PostgreSQL: ``pg_try_advisory_lock`` on a connection held for the run."""

    def __init__(self, engine: Engine, job: str, clock: Clock) -> None:
        super().__init__(engine, job, clock)
        self._conn: Connection | None = None

    def _key(self):
        return (
            func.hashtext(_NAMESPACE),
            func.hashtext(func.concat(func.current_schema(), ":", self.job)),
        )

    def try_acquire(self) -> bool:
        # AUTOCOMMIT: the session holds the lock, not a transaction left open for hours.
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(select(func.pg_try_advisory_lock(*self._key()))).scalar())
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _still_ours(self) -> bool:
        # The lock lives as long as its session: a session that still answers holds it.
        if self._conn is None:
            return False
        try:
            self._conn.execute(select(1))
        except DBAPIError as exc:
            log.error("the session holding job %s's lock is gone: %s", self.job, exc)
            return False
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(select(func.pg_advisory_unlock(*self._key())))
            conn.close()
        except Exception as exc:
            # Never hand a connection that may still hold the lock back to the pool: closing
            # the session for good frees it.
            log.warning("could not unlock job %s cleanly (%s); dropping the session", self.job, exc)
            conn.invalidate()


class _LeaseLock(JobLock):
    """SQLite: a lease renewed every ``heartbeat`` seconds while the run goes on."""

    def __init__(
        self, engine: Engine, job: str, clock: Clock, ttl: timedelta, heartbeat: float
    ) -> None:
        super().__init__(engine, job, clock)
        self.task, self.owner = f"job:{job}", leases.new_owner()
        self.ttl, self.heartbeat = ttl, heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_acquire(self) -> bool:
        now = self.clock.now()
        got = leases.acquire(self.engine, self.task, self.owner, now, self.ttl)
        if not got:
            held = leases.holder(self.engine, self.task)
            if held is not None and leases.owner_gone(held["owner"], _HELD):
                got = leases.take_over(
                    self.engine, self.task, held["owner"], self.owner, now, self.ttl
                )
        if got:
            _HELD.add(self.owner)
            self._thread = threading.Thread(
                target=self._beat, name=f"mlops-lease-{self.job}", daemon=True
            )
            self._thread.start()
        return got

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                renewed = leases.renew(
                    self.engine, self.task, self.owner, self.clock.now(), self.ttl
                )
            except Exception as exc:  # the store is busy or away: try again next beat
                log.warning("could not renew the lease of job %s: %s", self.job, exc)
                continue
            if not renewed:
                log.error("lease of job %s lost while running it", self.job)
                self.lost = True
                return

    def _still_ours(self) -> bool:
        # Read, not left to the heartbeat: a run that was stalled past the lease must not
        # write another chunk before its heartbeat thread notices.
        held = leases.holder(self.engine, self.task)
        return held is not None and held["owner"] == self.owner

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _HELD.discard(self.owner)
        try:
            leases.release(self.engine, self.task, self.owner)
        except Exception as exc:  # a store that refuses writes: the lease lapses by itself
            log.warning("could not release the lease of job %s: %s", self.job, exc)

    def holder(self) -> str:
        what = super().holder()
        held = leases.holder(self.engine, self.task)
        if held is None:
            return what
        return f"{what}, held by {held['owner']} until {held['expires_at']:%Y-%m-%d %H:%M:%S}"


@contextmanager
def hold(
    engine: Engine,
    job: str,
    clock: Clock,
    *,
    wait: timedelta | None = None,
    ttl: timedelta = LEASE,
    heartbeat: float | None = None,
) -> Iterator[JobLock]:
    """Hold ``job``'s lock for the block, waiting up to ``wait`` (default: not at all) for
    another run to end; ``JobBusy`` when it does not. ``ttl``/``heartbeat`` are the SQLite
    lease's (heartbeat default: a quarter of the ttl, in real seconds)."""
    lock: JobLock
    if engine.dialect.name == "postgresql":
        lock = _AdvisoryLock(engine, job, clock)
    else:
        beat = heartbeat if heartbeat is not None else ttl.total_seconds() / 4
        lock = _LeaseLock(engine, job, clock, ttl, beat)
    deadline = time.monotonic() + (wait.total_seconds() if wait else 0.0)
    while not lock.try_acquire():
        left = deadline - time.monotonic()
        if left <= 0:
            waited = f" after waiting {text(wait)}" if wait else ""
            raise JobBusy(
                f"job {job} is busy{waited}: {lock.holder()} holds it; this run did nothing",
                "let that run finish, or run this one again with --wait 10m to wait for it",
            )
        time.sleep(min(POLL_SECONDS, left))
    try:
        yield lock
    finally:
        lock.release()


def _running_run(conn: Connection, job: str) -> str | None:
    r = ingestion_runs
    row = conn.execute(
        select(r.c.run_id, r.c.mode, r.c.started_at)
        .where(r.c.job == job, r.c.status == RUNNING)
        .order_by(r.c.run_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return f"a {row.mode} (run {row.run_id}, started {_at(row.started_at)} UTC)"


def _at(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}"
