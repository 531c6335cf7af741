"""Simulated traffic over the stored history, answered by the serving library: for each job,
requests at past times, each answered by ``Service.predict`` with the clock at the request's
time, so the answers are logged as if served then and the monitors (labelling, accuracy,
guardrails, the dashboard) have something to judge. ``mlops quickstart`` runs it.

What is replayed comes from the repository, never from code naming a job:

- a job with an event label: a sample of its label SQL's rows over its history (the events
  the job answers for, e.g. an offer shown or a delivery dispatched), each at its event time
  with the request-time inputs and the outcome's subject the row holds;
- any other job: a sample of its entities at uniformly drawn times over its history, with
  the inputs the repository's ``samples`` gives for the job, if it has any.

The service reads each entity's stored row as it was at the request's time (the latest of its
snapshots at or before it: what the online table held then), not today's values: a past answer
scored on later features would know its own outcome. Everything else is the service's own
code: champions, policy, A/B arms, circuits, the heuristic, the prediction log.

A job that declares a guardrail and runs no experiment is replayed as one (``control_share``
of its units get the heuristic), so the guardrail and the heuristic's accuracy have answers to
compare. The replay's budget is generous: an in-process replay on a busy machine says nothing
about serving latency, and budget cuts would only add noise to what it shows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from mlops.clock import Clock, FrozenClock
from mlops.db.schema import feature_history, feature_snapshots, feature_values
from mlops.errors import MlopsError
from mlops.runtime import Runtime
from mlops.serving import predict
from mlops.specs.features import JobSpec
from mlops.store.codec import decode_chunks
from mlops.store.online import StoredRow

log = logging.getLogger("mlops.serving")

# What a replayed request may take before the heuristic answers (see the module's docstring).
REPLAY_SLO_MS = 60_000.0
# The control arm's share when the replay runs a job's guardrail experiment.
CONTROL_SHARE = 0.2
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Request:
    """One replayed request: the job's entity at ``at``, with its inputs and subject."""

    at: datetime
    entity_id: str
    inputs: Mapping[str, Any]
    subject_id: str | None = None


@dataclass
class JobReplay:
    """What one job's replay sent and how it was answered."""

    job: str
    requests: int = 0
    source: str = ""  # where the requests came from
    first: datetime | None = None
    last: datetime | None = None
    answers: dict[str, int] = field(default_factory=dict)  # "model" or the fallback reason
    experiment: float | None = None  # the treatment share, when the replay ran an experiment
    skipped: str | None = None  # why the job was not replayed

    @property
    def model_share(self) -> float | None:
        """Share of the requests the model answered."""
        return self.answers.get("model", 0) / self.requests if self.requests else None


@dataclass
class ReplayReport:
    """Every job's replay and how long it took."""

    jobs: list[JobReplay]
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(j.requests for j in self.jobs)

    def summary(self) -> str:
        """One line: how many requests, over which span, answered how."""
        parts = []
        for j in self.jobs:
            if j.skipped:
                parts.append(f"{j.job} none ({j.skipped})")
                continue
            share = f"{j.model_share:.0%} by the model" if j.model_share is not None else ""
            ab = f", A/B {1 - (j.experiment or 1):.0%} control" if j.experiment else ""
            span = f"{j.first:%Y-%m-%d}..{j.last:%m-%d}" if j.first and j.last else ""
            parts.append(f"{j.job} {j.requests:,} ({j.source} {span}; {share}{ab})")
        return (
            f"replayed {self.requests:,} requests through the serving path in "
            f"{self.seconds:.1f} s: " + "; ".join(parts)
        )


def replay(
    rt: Runtime,
    *,
    requests: int,
    seed: int = 0,
    control_share: float = CONTROL_SHARE,
    on_progress: Progress | None = None,
) -> ReplayReport:
    """Replay up to ``requests`` requests per job over its stored history (see the module's
    docstring); every answer goes to the prediction log, stamped with its request's time."""
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    now = rt.clock.now()
    plans: dict[str, list[Request]] = {}
    report = ReplayReport([])
    for job in rt.repo.jobs.values():
        found = JobReplay(job.name)
        report.jobs.append(found)
        if requests <= 0:
            found.skipped = "replay off"
            continue
        try:
            planned, found.source = plan(rt, job, requests, rng, now)
        except MlopsError as exc:
            found.skipped = exc.message
            continue
        if not planned:
            found.skipped, found.source = found.source, ""
            continue
        plans[job.name] = planned
    if plans:
        _serve(rt, plans, report, control_share, on_progress)
    report.seconds = time.perf_counter() - began
    return report


# --- what to replay ----------------------------------------------------------------------


def plan(
    rt: Runtime, job: JobSpec, n: int, rng: np.random.Generator, now: datetime
) -> tuple[list[Request], str]:
    """Up to ``n`` requests of the job over its history, in time order, and where they came
    from (or no request and why)."""
    start = _history_start(rt, job)
    if start is None:
        return [], f"no {job.name} features ingested"
    if job.label is not None and job.label.kind == "event":
        events = _events(rt, job, n, rng, start, now)
        if not events:
            return [], f"no {job.label.sql} events since {start:%Y-%m-%d %H:%M}"
        return events, f"{job.label.sql} events"
    given = _sample_inputs(rt, job)
    declared = [i.name for i in job.inputs if i.derive is None]
    missing = [name for name in declared if name not in given]
    if missing:
        return [], f"no sample value of {', '.join(missing)} (the warehouse contract's samples)"
    ids = _entities(rt, job, n, rng)
    if not ids:
        return [], f"no {job.name} entities stored"
    span = max((now - start).total_seconds(), 1.0)
    offsets = np.sort(rng.uniform(0, span, size=n))
    at = [(start + pd.Timedelta(seconds=float(s))).replace(microsecond=0) for s in offsets]
    picks = rng.choice(ids, size=n, replace=len(ids) < n)
    inputs = {name: given[name] for name in declared}
    requests = [Request(t, str(e), inputs) for t, e in zip(at, picks, strict=True)]
    return requests, "entities at random times"


def _history_start(rt: Runtime, job: JobSpec) -> datetime | None:
    snap = feature_snapshots
    with rt.store.connect() as conn:
        return conn.execute(
            select(func.min(snap.c.as_of)).where(snap.c.job == job.name, snap.c.entity_count > 0)
        ).scalar()


def _events(
    rt: Runtime, job: JobSpec, n: int, rng: np.random.Generator, start: datetime, now: datetime
) -> list[Request]:
    """A sample of the job's label rows (training's own read of them) as requests."""
    from mlops.training import datasets

    rows = datasets.labels(rt, job, start, now)
    rows = rows[(rows["event_time"] >= start) & (rows["event_time"] < now)]
    if len(rows) > n:
        rows = rows.iloc[np.sort(rng.choice(len(rows), size=n, replace=False))]
    rows = rows.sort_values("event_time", kind="stable")
    declared = [i.name for i in job.inputs if i.derive is None]
    subject = job.outcome.subject if job.outcome else None
    if subject is not None and subject not in rows.columns:
        subject = None
    out = []
    for row in rows.to_dict("records"):
        inputs = {name: _plain(row[name]) for name in declared}
        out.append(
            Request(
                row["event_time"].to_pydatetime().replace(microsecond=0),
                str(row["entity_id"]),
                inputs,
                None if subject is None or _missing(row[subject]) else str(row[subject]),
            )
        )
    return out


def _sample_inputs(rt: Runtime, job: JobSpec) -> Mapping[str, Any]:
    from mlops.warehouse import contract

    if all(i.derive is not None for i in job.inputs):
        return {}
    declared = contract.of(rt.repo)
    if declared is None or declared.samples is None:
        return {}
    return declared.samples(rt.warehouse).inputs.get(job.name, {})


def _entities(rt: Runtime, job: JobSpec, n: int, rng: np.random.Generator) -> list[str]:
    """Up to ``n`` (a few times, to draw from) of the job's stored entities."""
    fv = feature_values
    with rt.store.connect() as conn:
        ids: list[str] = list(
            conn.execute(
                select(fv.c.entity_id).where(fv.c.job == job.name).order_by(fv.c.entity_id)
            ).scalars()
        )
    if len(ids) > 4 * n:
        ids = [ids[i] for i in np.sort(rng.choice(len(ids), size=4 * n, replace=False))]
    return ids


# --- the rows as they were ------------------------------------------------------------------


class RowsAsOf:
    """Stored rows as the online table held them at the clock's time: each planned request's
    latest snapshot of its entity at or before the request (what ``OnlineStore.rows`` answers
    for a past request)."""

    def __init__(self, clock: Clock, rows: dict[tuple[str, str, datetime], StoredRow]) -> None:
        self.clock, self._rows = clock, rows

    def rows(self, spec: JobSpec, entity_ids: list[str]) -> dict[str, StoredRow]:
        now = self.clock.now()
        found = {e: self._rows.get((spec.name, e, now)) for e in entity_ids}
        return {e: row for e, row in found.items() if row is not None}

    def close(self) -> None:
        pass


def rows_as_of(
    rt: Runtime, job: JobSpec, requests: list[Request]
) -> dict[tuple[str, str, datetime], StoredRow]:
    """Each request's row (keyed by job, entity and time), from the job's history chunks: only
    the requested entities' rows are converted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = sorted({r.entity_id for r in requests})
    last = max(r.at for r in requests)
    h = feature_history
    with rt.store.connect() as conn:
        payloads = conn.execute(
            select(h.c.payload)
            .where(h.c.job == job.name, h.c.min_as_of <= last)
            .order_by(h.c.chunk_id)
        ).scalars()
        table = decode_chunks(list(payloads))
    if table is None:
        return {}
    table = table.filter(pc.is_in(table["entity_id"].cast(pa.string()), pa.array(ids)))
    history = table.to_pandas()
    history["as_of"] = history["as_of"].astype("datetime64[ns]")
    history["entity_id"] = history["entity_id"].astype(str)
    left = pd.DataFrame(
        {
            "entity_id": [r.entity_id for r in requests],
            "at": pd.to_datetime([r.at for r in requests]).astype("datetime64[ns]"),
        }
    ).drop_duplicates()
    joined = pd.merge_asof(
        left.sort_values("at", kind="stable"),
        history.sort_values("as_of", kind="stable"),
        left_on="at",
        right_on="as_of",
        by="entity_id",
        direction="backward",
        allow_exact_matches=True,
    )
    names = [n for n in job.feature_names if n in joined.columns]
    out = {}
    for row in joined[joined["as_of"].notna()].to_dict("records"):
        values = {n: _plain(row[n]) for n in names}
        stored = StoredRow(row["as_of"].to_pydatetime(), values)
        out[(job.name, row["entity_id"], row["at"].to_pydatetime())] = stored
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _plain(value: Any) -> Any:
    """A Python value as the online table's JSON gives it back (None for a missing one)."""
    if _missing(value) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# --- serving them --------------------------------------------------------------------------


def _serve(
    rt: Runtime,
    plans: dict[str, list[Request]],
    report: ReplayReport,
    control_share: float,
    on_progress: Progress | None,
) -> None:
    """Answer every planned request in time order with a Service whose clock is the request's
    time and whose stored rows are as they were then; the log is written at the end."""
    from mlops.serving.service import Service

    s = rt.settings
    settings = s.model_copy(
        update={
            "slo_ms": {predict.ENDPOINT: REPLAY_SLO_MS},
            # The clock jumps between requests: no cached row may outlive its request.
            "feature_cache_seconds": 0.0,
            "redis_url": None,
            "prediction_log_max_pending": max(
                s.prediction_log_max_pending, sum(map(len, plans.values())) + 1
            ),
        }
    )
    clock = FrozenClock(rt.clock.now())
    replay_rt = Runtime(settings=settings, clock=clock)
    # The same engines and repository: the replay writes to the store the monitors read.
    replay_rt.__dict__.update({k: getattr(rt, k) for k in ("repo", "store", "warehouse")})
    rows: dict[tuple[str, str, datetime], StoredRow] = {}
    for name, planned in plans.items():
        rows.update(rows_as_of(rt, rt.repo.job(name), planned))
    svc = Service(replay_rt, online=RowsAsOf(clock, rows))
    try:
        svc.start(poll=False)
        # An experiment where a model answers: without one both arms would be the heuristic.
        shares = dict(s.ab_treatment_share)
        for name in plans:
            job = rt.repo.job(name)
            declared = shares.get(name, job.ab_treatment_share)
            if job.guardrail is None or declared < 1.0 or not 0 < control_share < 1:
                continue
            if svc.champions.get(name) is not None:
                shares[name] = 1.0 - control_share
        settings.ab_treatment_share = shares
        everything = sorted(
            ((r.at, name, r) for name, planned in plans.items() for r in planned),
            key=lambda item: item[0],
        )
        by_job = {j.job: j for j in report.jobs}
        for name in plans:
            declared = shares.get(name, rt.repo.job(name).ab_treatment_share)
            by_job[name].experiment = declared if declared < 1.0 else None
        total = len(everything)
        for i, (at, name, request) in enumerate(everything, start=1):
            clock.set(at)
            answer = svc.predict(
                name,
                request.entity_id,
                dict(request.inputs),
                at=at,
                subject_id=request.subject_id,
                request_id=f"replay-{i}",
            )
            found = by_job[name]
            found.requests += 1
            kind = answer.reason or answer.source
            found.answers[kind] = found.answers.get(kind, 0) + 1
            found.first = found.first or at
            found.last = at
            if on_progress and (i % 200 == 0 or i == total):
                on_progress(i, total)
    finally:
        svc.close()  # writes the pending log
