"""Ingestion: run a job's view in the warehouse, validate, and commit latest values and
history together. A refresh is one transaction; a backfill one transaction per chunk of
as_of points, resumable because already-ingested points are skipped."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import select

from mlops.clock import to_utc_naive
from mlops.db import failures, migrate
from mlops.db.schema import feature_snapshots
from mlops.errors import IngestionFailed, InputError, MlopsError
from mlops.runtime import Runtime
from mlops.specs.features import JobSpec
from mlops.store import compute, job_lock, runs, writes
from mlops.store.stats import FeatureStats, new_stats
from mlops.store.validate import validate
from mlops.warehouse.contract import require_tables

REFRESH, BACKFILL = "refresh", "backfill"

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    job: str
    mode: str
    dry_run: bool
    points: int
    points_skipped: int = 0
    run_id: int | None = None
    status: str = runs.RUNNING
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    values_written: int = 0
    seconds: float = 0.0
    error: str | None = None
    reject_reasons: Counter = field(default_factory=Counter)
    stats: dict[str, FeatureStats] = field(default_factory=dict)

    @property
    def values_per_second(self) -> float:
        return self.values_written / self.seconds if self.seconds else 0.0


def refresh(
    rt: Runtime,
    job_name: str,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
    scheduled_for: datetime | None = None,
    on_progress: Progress | None = None,
    wait: timedelta | None = None,
) -> IngestReport:
    """Ingest one snapshot of the job's view at ``as_of`` (default: now). ``JobBusy`` when
    another run of the job holds it past ``wait`` (default: no wait)."""
    point = to_utc_naive(as_of) if as_of else rt.clock.now()
    if point > rt.clock.now():
        raise InputError(
            f"--as-of {point} is in the future", "features can only be computed for the past"
        )
    job = rt.repo.job(job_name)
    return _ingest(rt, job, REFRESH, [point], dry_run, scheduled_for, on_progress, wait)


def backfill(
    rt: Runtime,
    job_name: str,
    *,
    start: datetime,
    end: datetime,
    every: timedelta | None = None,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    wait: timedelta | None = None,
) -> IngestReport:
    """Ingest every point in [start, end) spaced ``every`` apart, oldest first; resumable.
    ``JobBusy`` as for ``refresh``."""
    job = rt.repo.job(job_name)
    points = backfill_points(start, end, every or job.default_every, rt.clock.now())
    return _ingest(rt, job, BACKFILL, points, dry_run, None, on_progress, wait)


def backfill_points(
    start: datetime, end: datetime, every: timedelta, now: datetime
) -> list[datetime]:
    """The as_of grid of a backfill: start, start+every, ... strictly before end."""
    start, end = to_utc_naive(start), to_utc_naive(end)
    if every <= timedelta(0):
        raise InputError("--every must be positive", "e.g. --every 1d or --every 5m")
    if start >= end:
        raise InputError(
            f"--start {start} is not before --end {end}", "swap them or widen the range"
        )
    if end > now + every:
        raise InputError(
            f"--end {end} is in the future (now {now})", "end the backfill at today or earlier"
        )
    count = (end - start - timedelta(microseconds=1)) // every + 1
    return [start + i * every for i in range(count)]


def _ingest(
    rt: Runtime,
    job: JobSpec,
    mode: str,
    points: list[datetime],
    dry_run: bool,
    scheduled_for: datetime | None,
    on_progress: Progress | None,
    wait: timedelta | None,
) -> IngestReport:
    migrate.require_current(rt.store)
    require_tables(rt.warehouse, rt.repo)
    began = time.perf_counter()
    report = IngestReport(
        job=job.name, mode=mode, dry_run=dry_run, points=len(points), stats=new_stats(job)
    )
    # The lock is held until the run's end is recorded, failure included: a run that took it
    # after us and found our row still 'running' would mark it abandoned.
    with contextlib.ExitStack() as held:
        try:
            lock = None
            if not dry_run:
                lock = held.enter_context(job_lock.hold(rt.store, job.name, rt.clock, wait=wait))
            _run(rt, job, mode, points, dry_run, scheduled_for, on_progress, report, lock)
        except BaseException as exc:
            failure = _failure(rt, job, mode, exc)
            report.status = runs.FAILED
            report.error = str(failure) or type(failure).__name__
            report.seconds = time.perf_counter() - began
            if report.run_id is not None:
                _record_failure(rt, report)
            if failure is exc:
                raise
            raise failure from exc
        report.status = runs.SUCCEEDED
        report.seconds = time.perf_counter() - began
        if not dry_run:
            runs.finish_run(
                rt.store,
                report.run_id,
                status=runs.SUCCEEDED,
                finished_at=rt.clock.now(),
                seconds=report.seconds,
                **_counters(report),
            )
    return report


def _run(
    rt: Runtime,
    job: JobSpec,
    mode: str,
    points: list[datetime],
    dry_run: bool,
    scheduled_for: datetime | None,
    on_progress: Progress | None,
    report: IngestReport,
    lock: job_lock.JobLock | None,
) -> None:
    """The run itself, under the job's lock (none for a dry run): what is left to do, then
    chunk by chunk, computed, validated and written."""
    done = _ingested_points(rt, job, points)
    todo = [p for p in points if p not in done]
    report.points_skipped = len(points) - len(todo)
    rejects_stored = 0
    if not dry_run:
        report.run_id = runs.start_run(
            rt.store,
            job=job.name,
            mode=mode,
            started_at=rt.clock.now(),
            as_of_start=points[0],
            as_of_end=points[-1],
            scheduled_for=scheduled_for,
        )
    if on_progress:
        on_progress(report.points_skipped, len(points))
    for chunk, frame in compute.computed(rt, job, todo):
        checked = validate(job, frame)
        report.rows_read += len(frame)
        report.rows_rejected += checked.rows_rejected
        report.reject_reasons.update(checked.rejects["reason"].tolist())
        for name, stats in report.stats.items():
            stats.add(checked.good[name])
        share = checked.rows_rejected / len(frame) if len(frame) else 0.0
        if share > rt.settings.reject_threshold:
            if not dry_run:
                writes.store_rejects(rt, report.run_id, job, checked.rejects)
            raise _threshold_failure(checked, len(frame), rt.settings.reject_threshold)
        rows = len(checked.good)
        report.rows_written += rows
        report.values_written += rows * len(job.features)
        if lock is not None:
            lock.check()
            with rt.store.begin() as conn:
                writes.write_chunk(conn, job, report.run_id, chunk, checked.good, rt.clock.now())
                keep = max(0, writes.MAX_REJECTS_STORED - rejects_stored)
                if keep and not checked.rejects.empty:
                    writes.insert_rejects(conn, report.run_id, job, checked.rejects.head(keep))
                    rejects_stored += min(keep, len(checked.rejects))
                runs.update_run(conn, report.run_id, **_counters(report))
        if on_progress:
            on_progress(len(chunk), len(points))


def _failure(rt: Runtime, job: JobSpec, mode: str, exc: BaseException) -> BaseException:
    """The error to raise for ``exc``: ours and interrupts as they are, anything else as
    IngestionFailed saying what was kept and, for a database fault, what to do about it."""
    if isinstance(exc, MlopsError) or not isinstance(exc, Exception):
        return exc
    kept = "the previous values are still served"
    if mode == BACKFILL:
        kept = (
            "the chunks committed before the failure are kept and running the same backfill "
            f"again resumes after them; {kept}"
        )
    if isinstance(exc, compute.WarehouseFault):
        what, fix = failures.describe(exc.__cause__, rt.warehouse, "warehouse")
        return IngestionFailed(f"ingestion of {job.name} failed: {what}", f"{fix}; {kept}")
    if failures.is_database_error(exc, rt.store):
        what, fix = failures.describe(exc, rt.store, "store")
        return IngestionFailed(f"ingestion of {job.name} failed: {what}", f"{fix}; {kept}")
    return IngestionFailed(f"ingestion of {job.name} failed: {exc}", kept)


def _record_failure(rt: Runtime, report: IngestReport) -> None:
    try:
        runs.finish_run(
            rt.store,
            report.run_id,
            status=runs.FAILED,
            finished_at=rt.clock.now(),
            seconds=report.seconds,
            error=report.error,
        )
    except Exception as exc:
        if not failures.is_database_error(exc, rt.store):
            raise
        # The store refuses this write too (full, read-only, gone): the run stays 'running'
        # and the next run of the job marks it failed; the ingestion's own error is the one
        # the caller must see.
        log.warning("could not record run %s as failed: %s", report.run_id, exc)


def _counters(report: IngestReport) -> dict:
    return {
        "rows_read": report.rows_read,
        "rows_written": report.rows_written,
        "rows_rejected": report.rows_rejected,
        "values_written": report.values_written,
        "snapshots_skipped": report.points_skipped,
    }


def _ingested_points(rt: Runtime, job: JobSpec, points: list[datetime]) -> set[datetime]:
    snap = feature_snapshots
    with rt.store.connect() as conn:
        rows = conn.execute(
            select(snap.c.as_of).where(
                snap.c.job == job.name, snap.c.as_of >= points[0], snap.c.as_of <= points[-1]
            )
        )
        return {r[0] for r in rows}


def _threshold_failure(checked, rows: int, threshold: float) -> IngestionFailed:
    share = checked.rows_rejected / rows
    return IngestionFailed(
        f"{checked.rows_rejected} of {rows} rows ({share:.1%}) failed validation, more than "
        f"the threshold {threshold:.1%}; nothing was written for these as_of points. "
        f"Reasons: {_top_reasons(checked.rejects)}",
        "fix the view or the warehouse data, or raise MLOPS_REJECT_THRESHOLD; "
        "every rejected row is in ml_feature_rejects",
    )


def _top_reasons(rejects: pd.DataFrame, most: int = 3) -> str:
    counts = (rejects["feature"].fillna("row") + ": " + rejects["reason"]).value_counts()
    return "; ".join(f"{reason} ({n})" for reason, n in counts.head(most).items())
