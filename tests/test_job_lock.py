"""One run of a job at a time, on SQLite (a lease in ml_scheduler_leases, renewed by a
heartbeat) and PostgreSQL (an advisory lock): a second run, in either order of backfill and
refresh, stops with JobBusy having written nothing, or waits for the first with ``wait``; the
live run is never marked abandoned, a dead holder's run is; the scheduler records a refresh
that meets a backfill as skipped, which ``monitor ops`` does not count as a failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from mlops.clock import SystemClock
from mlops.db.schema import ingestion_runs, scheduler_leases
from mlops.errors import IngestionFailed, JobBusy
from mlops.monitoring import ops
from mlops.scheduling import leases
from mlops.scheduling.scheduler import Scheduler
from mlops.scheduling.tasks import Schedule, build
from mlops.store import ingest, job_lock, runs
from tests.cli_support import invoke
from tests.conftest import NOW
from tests.store_tables import table_rows

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def _runs(rt) -> list[dict]:
    return table_rows(rt.store, ingestion_runs)


def _backfill(rt, **kw):
    return ingest.backfill(
        rt, "eta", start=NOW - timedelta(hours=1), end=NOW, every=timedelta(minutes=30), **kw
    )


def _refresh(rt, **kw):
    return ingest.refresh(rt, "eta", **kw)


class Held:
    """``first`` on a thread of its own, stopped inside its run (after its run row is written,
    the job's lock held) until ``release``."""

    def __init__(self, rt, first: Callable) -> None:
        self.inside, self.go = threading.Event(), threading.Event()
        self.report, self.error = None, None

        def progress(done: int, total: int) -> None:
            if not self.inside.is_set():
                self.inside.set()
                assert self.go.wait(30), "the test never let the first run go on"

        def run() -> None:
            try:
                self.report = first(rt, on_progress=progress)
            except BaseException as exc:
                self.error = exc
                self.inside.set()

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.inside.wait(30) and self.error is None, self.error

    def release(self):
        self.go.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.report


ORDERS = {
    "backfill then refresh": (_backfill, _refresh, "backfill"),
    "refresh then backfill": (_refresh, _backfill, "refresh"),
    "two refreshes": (_refresh, _refresh, "refresh"),
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_a_second_run_of_a_job_stops_and_the_first_is_not_abandoned(seeded, order):
    first, second, mode = ORDERS[order]
    held = Held(seeded, first)
    try:
        with pytest.raises(JobBusy) as busy:
            second(seeded)
    finally:
        report = held.release()
    message = str(busy.value)
    running = _runs(seeded)[0]
    assert f"job eta is busy: a {mode} (run {running['run_id']}, started " in message
    assert "this run did nothing" in message and "--wait" in message
    assert busy.value.exit_code == 2
    # The live run was left alone: it ends succeeded, with no error text; nothing else ran.
    assert report.status == "succeeded"
    assert [(r["mode"], r["status"], r["error"]) for r in _runs(seeded)] == [
        (mode, "succeeded", None)
    ]
    assert second(seeded).status == "succeeded"  # once the first has ended


def test_a_second_run_waits_for_the_first_when_asked(seeded):
    held = Held(seeded, _backfill)
    threading.Timer(0.5, held.go.set).start()
    began = time.monotonic()
    report = _refresh(seeded, wait=timedelta(seconds=20))
    assert time.monotonic() - began >= 0.4
    assert held.release().status == "succeeded" and report.status == "succeeded"
    assert [(r["mode"], r["status"], r["error"]) for r in _runs(seeded)] == [
        ("backfill", "succeeded", None),
        ("refresh", "succeeded", None),
    ]


def test_a_bounded_wait_ends_with_job_busy(seeded):
    held = Held(seeded, _backfill)
    try:
        began = time.monotonic()
        with pytest.raises(JobBusy, match="busy after waiting 1s"):
            _refresh(seeded, wait=timedelta(seconds=1))
        assert 0.9 <= time.monotonic() - began < 5
    finally:
        held.release()


def test_a_dry_run_needs_no_lock(seeded):
    held = Held(seeded, _backfill)
    try:
        assert _refresh(seeded, dry_run=True).rows_written > 0
    finally:
        held.release()


def test_the_cli_says_busy_in_one_error_line_and_exits_2(seeded, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(seeded.settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", seeded.settings.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", seeded.settings.warehouse_db_url)
    # The command's lease expiry is judged by the system clock: the held run's must be too.
    seeded.clock.set(SystemClock().now())
    held = Held(seeded, _backfill)
    try:
        code, _out, err = invoke(capsys, "ingest", "eta", flat=True)
    finally:
        held.release()
    assert code == 2
    assert err.startswith("error: job eta is busy: a backfill (run 1, started ")
    assert err.count("error:") == 1 and "fix: let that run finish" in err
    assert "Traceback" not in err


def test_the_scheduled_refresh_meeting_a_backfill_is_skipped_not_failed(seeded):
    rt, clock = seeded, seeded.clock
    schedule = build(rt.settings, rt.repo)
    schedule = Schedule(tuple(schedule.chain(schedule.get("ingest:eta"))))
    slot = datetime(2026, 6, 1, 11, 55)
    clock.set(slot + timedelta(seconds=5))
    held = Held(rt, _backfill)
    try:
        did = Scheduler(rt, schedule, owner="s").tick(wait=True)
    finally:
        held.release()
    status = {a.task: (a.status, a.error) for a in did}
    refresh_status, error = status["ingest:eta"]
    assert refresh_status == "skipped"
    assert error.startswith("skipped: job eta is busy: a backfill (run 1, started ")
    # not retried; the drift check after it needs a success, the ops check runs anyway
    assert [a.task for a in did].count("ingest:eta") == 1
    assert status["monitor:drift:eta"][0] == "skipped"
    assert status["monitor:ops:eta"][0] == "succeeded"
    figures = ops.report(rt, jobs=["eta"]).job("eta")
    assert figures.ingestion.runs == {"succeeded": 1}
    assert ops.failure_message(figures) is None


@SQLITE_ONLY
def test_a_lease_of_a_live_holder_elsewhere_holds_until_it_expires(seeded, backend):
    """A holder on another machine cannot be seen to die: its run is abandoned only once its
    lease has expired."""
    rt, clock = seeded, seeded.clock
    elsewhere = "another-host:4242:abcdef"
    assert leases.acquire(rt.store, "job:eta", elsewhere, clock.now(), job_lock.LEASE)
    dead = runs.start_run(
        rt.store,
        job="eta",
        mode="backfill",
        started_at=clock.now(),
        as_of_start=NOW,
        as_of_end=NOW,
        scheduled_for=None,
    )
    with pytest.raises(JobBusy, match="held by another-host:4242:abcdef until"):
        _refresh(rt)
    assert runs.get_run(rt.store, dead)["status"] == "running"
    clock.advance(job_lock.LEASE)
    assert _refresh(rt).status == "succeeded"
    abandoned = runs.get_run(rt.store, dead)
    assert abandoned["status"] == "failed" and "abandoned" in abandoned["error"]


@SQLITE_ONLY
def test_a_lease_of_a_dead_local_process_is_taken_over_at_once(seeded, backend):
    import socket
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    owner = f"{socket.gethostname()}:{gone.stdout.strip()}:abcdef"
    assert leases.acquire(seeded.store, "job:eta", owner, seeded.clock.now(), job_lock.LEASE)
    assert _refresh(seeded).status == "succeeded"
    assert leases.holder(seeded.store, "job:eta") is None  # released at the end


@SQLITE_ONLY
def test_the_heartbeat_renews_the_lease_and_a_lost_lease_stops_the_writes(seeded, backend):
    rt, clock = seeded, seeded.clock
    ttl = timedelta(seconds=60)
    with job_lock.hold(rt.store, "eta", clock, ttl=ttl, heartbeat=0.02) as lock:
        clock.advance(timedelta(seconds=50))
        deadline = time.monotonic() + 10
        while leases.holder(rt.store, "job:eta")["expires_at"] != clock.now() + ttl:
            assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
            time.sleep(0.01)
        # Past the first expiry, the renewed lease still holds the job.
        clock.advance(timedelta(seconds=20))
        with pytest.raises(JobBusy):
            _refresh(rt)
        lock.check()
        # A stall longer than the lease: another process takes it over; the next renewal
        # finds it gone and the run stops before its next write.
        with rt.store.begin() as conn:
            conn.execute(scheduler_leases.update().values(expires_at=clock.now()))
        assert leases.acquire(rt.store, "job:eta", "another-host:1:x", clock.now(), ttl)
        deadline = time.monotonic() + 10
        while not lock.lost:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(IngestionFailed, match="lost its lock"):
            lock.check()
    # Releasing a lost lease leaves the new holder's alone.
    assert leases.holder(rt.store, "job:eta")["owner"] == "another-host:1:x"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_advisory_lock_is_freed_when_its_session_ends(seeded, backend, pg_admin):
    """A killed run's session ends and the server frees its lock: the next run goes at once
    and marks the dead run abandoned; the run whose session it was stops before writing."""
    rt = seeded
    dead = runs.start_run(
        rt.store,
        job="eta",
        mode="backfill",
        started_at=rt.clock.now(),
        as_of_start=NOW,
        as_of_end=NOW,
        scheduled_for=None,
    )
    with job_lock.hold(rt.store, "eta", rt.clock) as lock:
        with pytest.raises(JobBusy, match=r"a backfill \(run 1, started"):
            _refresh(rt)
        assert runs.get_run(rt.store, dead)["status"] == "running"
        pid = lock._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        assert _refresh(rt).status == "succeeded"
        with pytest.raises(IngestionFailed, match="lost its lock"):
            lock.check()
    abandoned = runs.get_run(rt.store, dead)
    assert abandoned["status"] == "failed" and "abandoned" in abandoned["error"]
