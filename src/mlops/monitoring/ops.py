"""The operational monitor: per job, how ingestion runs went (success rate, rows, duration,
scheduler delay), how fresh the served features are against their TTL, and how often serving
fell back to the heuristic, and why. ``report`` only reads; ``check`` also raises and resolves
the stale-features and failed-ingestion alerts.

Every figure is aggregated in the database (the prediction log can hold millions of rows):
a handful of indexed queries per job, never a row per run or answer brought back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Integer, cast, func, select

from mlops.clock import to_utc_naive
from mlops.db.schema import feature_snapshots, ingestion_runs
from mlops.monitoring import alerts, answer_counts
from mlops.monitoring.alerts import Alert
from mlops.monitoring.answer_counts import AnswerTally
from mlops.runtime import Runtime
from mlops.specs.features import JobSpec
from mlops.store.runs import FAILED, RUNNING, SUCCEEDED

DEFAULT_PERIOD = timedelta(days=7)
MODEL = "model"
# A heuristic answer logged without a reason still counts as a fallback, under this label.
NO_REASON = "unspecified"


@dataclass(frozen=True)
class LatestRun:
    """The job's most recent finished run, whatever the period: what the failure alert reads."""

    run_id: int
    mode: str
    status: str
    started_at: datetime
    error: str | None

    @property
    def failed(self) -> bool:
        """Whether the run ended in failure."""
        return self.status == FAILED


@dataclass(frozen=True)
class Ingestion:
    """Runs started in the period. Rows and durations are of successful runs (a failed run
    writes nothing and its duration is time to failure); the success rate ignores runs still
    running."""

    runs: dict[str, int]
    rows_last: int | None
    rows_mean: float | None
    duration_last: float | None
    duration_p50: float | None
    duration_max: float | None
    latest: LatestRun | None

    @property
    def finished(self) -> int:
        """Runs that succeeded or failed (not those still running)."""
        return self.runs.get(SUCCEEDED, 0) + self.runs.get(FAILED, 0)

    @property
    def success_rate(self) -> float | None:
        """Succeeded over finished runs; None without finished runs."""
        return self.runs.get(SUCCEEDED, 0) / self.finished if self.finished else None


@dataclass(frozen=True)
class SchedulerDelay:
    """started_at - scheduled_for, in seconds, over the period's runs a scheduler started."""

    runs: int
    mean: float | None
    max: float | None
    last: float | None


@dataclass(frozen=True)
class Freshness:
    """Age of the newest served values against the job's TTL."""

    newest: datetime | None
    age_seconds: float | None
    ttl_seconds: float

    @property
    def ratio(self) -> float | None:
        """Age over TTL: past 1 the values are stale."""
        return None if self.age_seconds is None else self.age_seconds / self.ttl_seconds

    @property
    def stale(self) -> bool:
        """Past the TTL, or nothing ingested yet (serving has nothing fresh to use either way)."""
        return self.age_seconds is None or self.age_seconds > self.ttl_seconds


@dataclass(frozen=True)
class Answers:
    """Answers logged in the period, counted by (source, reason)."""

    counts: dict[tuple[str, str | None], int]

    @property
    def total(self) -> int:
        """Every answer in the period, from the model or not."""
        return sum(self.counts.values())

    @property
    def fallbacks(self) -> dict[str, int]:
        """Answers not from the model, by reason, most frequent first."""
        found: dict[str, int] = {}
        for (source, reason), n in self.counts.items():
            if source != MODEL:
                found[reason or NO_REASON] = found.get(reason or NO_REASON, 0) + n
        return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def fallback_rates(self) -> dict[str, float]:
        """Share of all the job's answers that fell back, per reason, most frequent first."""
        total = self.total
        return {reason: n / total for reason, n in self.fallbacks.items()} if total else {}


@dataclass(frozen=True)
class JobOps:
    """One job's operational figures."""

    job: str
    ingestion: Ingestion
    scheduler: SchedulerDelay
    freshness: Freshness
    answers: Answers


@dataclass(frozen=True)
class OpsReport:
    """Every job's figures over [since, checked_at]."""

    checked_at: datetime
    since: datetime
    jobs: list[JobOps]

    def job(self, name: str) -> JobOps:
        """The figures of the job called ``name``."""
        return next(j for j in self.jobs if j.job == name)


@dataclass(frozen=True)
class OpsCheck:
    """A report and the alerts its check newly opened."""

    report: OpsReport
    opened: list[Alert]


def report(
    rt: Runtime,
    *,
    since: datetime | timedelta | None = None,
    jobs: Sequence[str] | None = None,
    tally: AnswerTally | None = None,
) -> OpsReport:
    """Operational figures per job over [since, now] (default: the last 7 days). Reads only.
    A ``tally`` kept between calls counts the logged answers of settled hours only once."""
    now = rt.clock.now()
    start = _start(now, since)
    with rt.store.connect() as conn:
        found = [_job_ops(conn, spec, start, now, tally) for spec in _specs(rt, jobs)]
    return OpsReport(checked_at=now, since=start, jobs=found)


def check(
    rt: Runtime,
    *,
    since: datetime | timedelta | None = None,
    jobs: Sequence[str] | None = None,
) -> OpsCheck:
    """``report``, then reconcile each job's alerts: stale features past TTL, and a latest run
    that failed. An incident is raised once and resolved when the condition clears."""
    found = report(rt, since=since, jobs=jobs)
    opened: list[Alert] = []
    for ops in found.jobs:
        stale = stale_message(ops)
        opened += alerts.check(rt, "stale_features", ops.job, {"features": stale} if stale else {})
        failed = failure_message(ops)
        opened += alerts.check(
            rt, "ingestion_failed", ops.job, {"ingestion": failed} if failed else {}
        )
    return OpsCheck(report=found, opened=opened)


def freshness(rt: Runtime, *, jobs: Sequence[str] | None = None) -> dict[str, Freshness]:
    """Each job's freshness now, without the period's run and answer figures."""
    now = rt.clock.now()
    with rt.store.connect() as conn:
        return {spec.name: _freshness(conn, spec, now) for spec in _specs(rt, jobs)}


def stale_message(ops: JobOps) -> str | None:
    """The stale-features alert's text, or None when the job's values are fresh."""
    f = ops.freshness
    if not f.stale:
        return None
    if f.newest is None:
        return f"{ops.job}: no feature values ingested yet (run: mlops ingest {ops.job})"
    return (
        f"{ops.job} features are {span(f.age_seconds or 0.0)} old, past their TTL of "
        f"{span(f.ttl_seconds)} (newest snapshot {f.newest:%Y-%m-%d %H:%M:%S}); serving answers "
        f"by heuristic (check the scheduler, or run: mlops ingest {ops.job})"
    )


def failure_message(ops: JobOps) -> str | None:
    """The failed-ingestion alert's text, or None when the latest finished run succeeded."""
    latest = ops.ingestion.latest
    if latest is None or not latest.failed:
        return None
    error = (latest.error or "no error recorded").strip()
    if len(error) > 300:
        error = error[:297] + "..."
    return (
        f"{ops.job}: the latest ingestion run ({latest.mode}, run {latest.run_id}, started "
        f"{latest.started_at:%Y-%m-%d %H:%M:%S}) failed: {error}"
    )


def _specs(rt: Runtime, jobs: Sequence[str] | None) -> list[JobSpec]:
    return [rt.repo.job(name) for name in jobs] if jobs else list(rt.repo.jobs.values())


def _start(now: datetime, since: datetime | timedelta | None) -> datetime:
    if since is None:
        return now - DEFAULT_PERIOD
    if isinstance(since, timedelta):
        return now - since
    return to_utc_naive(since)


def _job_ops(
    conn: Connection, spec: JobSpec, start: datetime, now: datetime, tally: AnswerTally | None
) -> JobOps:
    if tally is None:
        answers = answer_counts.count(conn, spec.name, start, now, closed=True)
    else:
        answers = tally.count(conn, spec.name, start, now)
    return JobOps(
        job=spec.name,
        ingestion=_ingestion(conn, spec.name, start, now),
        scheduler=_scheduler(conn, spec.name, start, now),
        freshness=_freshness(conn, spec, now),
        answers=Answers(counts=dict(answers)),
    )


def _ingestion(conn: Connection, job: str, start: datetime, now: datetime) -> Ingestion:
    r = ingestion_runs
    # Served by the index on (job, started_at).
    period = (r.c.job == job, r.c.started_at >= start, r.c.started_at <= now)
    by_status = conn.execute(
        select(
            r.c.status,
            func.count(),
            func.avg(r.c.rows_written),
            func.max(r.c.duration_seconds),
            func.count(r.c.duration_seconds),
        )
        .where(*period)
        .group_by(r.c.status)
    ).all()
    runs = {status: int(n) for status, n, *_ in by_status}
    ok = next((row for row in by_status if row[0] == SUCCEEDED), None)
    newest = (r.c.started_at.desc(), r.c.run_id.desc())
    last = conn.execute(
        select(r.c.rows_written, r.c.duration_seconds)
        .where(*period, r.c.status == SUCCEEDED)
        .order_by(*newest)
        .limit(1)
    ).first()
    latest = conn.execute(
        select(r.c.run_id, r.c.mode, r.c.status, r.c.started_at, r.c.error)
        .where(r.c.job == job, r.c.status != RUNNING, r.c.started_at <= now)
        .order_by(*newest)
        .limit(1)
    ).first()
    timed = int(ok[4]) if ok else 0
    return Ingestion(
        runs=runs,
        rows_last=int(last.rows_written) if last else None,
        rows_mean=_float(ok[2]) if ok else None,
        duration_last=_float(last.duration_seconds) if last else None,
        duration_p50=_median_duration(conn, period, timed),
        duration_max=_float(ok[3]) if ok else None,
        latest=LatestRun(**latest._mapping) if latest else None,
    )


def _median_duration(conn: Connection, period: tuple, count: int) -> float | None:
    """The median of the successful runs' durations, read as the one or two middle rows."""
    if not count:
        return None
    r = ingestion_runs
    middle = conn.execute(
        select(r.c.duration_seconds)
        .where(*period, r.c.status == SUCCEEDED, r.c.duration_seconds.is_not(None))
        .order_by(r.c.duration_seconds)
        .offset((count - 1) // 2)
        .limit(1 if count % 2 else 2)
    ).scalars()
    values = [float(v) for v in middle]
    return sum(values) / len(values)


def _scheduler(conn: Connection, job: str, start: datetime, now: datetime) -> SchedulerDelay:
    r = ingestion_runs
    scheduled = (
        r.c.job == job,
        r.c.started_at >= start,
        r.c.started_at <= now,
        r.c.scheduled_for.is_not(None),
    )
    delay = _epoch(conn, r.c.started_at) - _epoch(conn, r.c.scheduled_for)
    n, mean, most = conn.execute(
        select(func.count(), func.avg(delay), func.max(delay)).where(*scheduled)
    ).one()
    last = conn.execute(
        select(delay).where(*scheduled).order_by(r.c.started_at.desc(), r.c.run_id.desc()).limit(1)
    ).scalar()
    return SchedulerDelay(runs=int(n), mean=_float(mean), max=_float(most), last=_float(last))


def _freshness(conn: Connection, spec: JobSpec, now: datetime) -> Freshness:
    # The newest snapshot that stored any entity is the newest computed_at in
    # ml_feature_values (ingestion upserts exactly those rows), read by primary key here
    # instead of scanning the job's values.
    s = feature_snapshots
    newest = conn.execute(
        select(func.max(s.c.as_of)).where(s.c.job == spec.name, s.c.entity_count > 0)
    ).scalar()
    # A value is stale once any of its features is past its TTL (as online reads judge it).
    ttl = min((f.ttl for f in spec.features), default=spec.ttl)
    return Freshness(
        newest=newest,
        age_seconds=(now - newest).total_seconds() if newest else None,
        ttl_seconds=ttl.total_seconds(),
    )


def _epoch(conn: Connection, column):
    """Seconds since the epoch of a timestamp column, in the database's own terms."""
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", column)
    return cast(func.strftime("%s", column), Integer)


def _float(value) -> float | None:
    return None if value is None else float(value)


def span(seconds: float) -> str:
    """A duration for people: 42 s, 12.5 min, 3.2 h, 2.1 d."""
    size = abs(seconds)
    if size < 120:
        return f"{seconds:.3g} s" if size < 10 else f"{seconds:.0f} s"
    if size < 7200:
        return f"{seconds / 60:.1f} min"
    if size < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def describe_period(period: timedelta) -> str:
    """A period for headings and help texts: '36 hours', '7 days'."""
    hours = period.total_seconds() / 3600
    if hours < 48:
        return f"{hours:g} hours"
    return f"{hours / 24:g} days"
