"""Point-in-time training sets: labels computed in the warehouse, features from the
store's history as they were known at each label's event time (never after)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select

from mlops.db.schema import feature_snapshots
from mlops.errors import NotReadyError
from mlops.runtime import Runtime
from mlops.specs.features import JobSpec
from mlops.store.historical import get_historical_features
from mlops.warehouse import views

LABEL = "label"


@dataclass
class TrainingSet:
    job: str
    frame: pd.DataFrame  # entity_id, event_time, features, extra inputs, label, feature_as_of
    features: list[str]
    categorical: list[str]
    start: datetime
    end: datetime
    dropped_without_features: int
    # How far past its event time a row's label looks: training rows must end before the
    # validation window starts, or the split would leak the validation period into training.
    horizon: timedelta = timedelta(0)

    def split(self, valid_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Train on the older rows, validate on the most recent window; never shuffled."""
        frame = self.frame
        cutoff = frame["event_time"].quantile(1 - valid_fraction)
        valid = frame[frame["event_time"] >= cutoff]
        horizon = pd.Timedelta(self.horizon)
        train = frame[frame["event_time"] + horizon <= cutoff]
        if train.empty or valid.empty:
            raise NotReadyError(
                f"{self.job}: not enough labelled history to split "
                f"({len(frame)} rows from {self.start} to {self.end})",
                f"backfill more history: mlops ingest {self.job} --backfill --start ... --end ...",
            )
        return train.reset_index(drop=True), valid.reset_index(drop=True)

    def fingerprint(self) -> str:
        """A hash of the exact rows and columns trained on."""
        hashed = pd.util.hash_pandas_object(self.frame, index=False).to_numpy()
        digest = hashlib.sha256(hashed.tobytes())
        digest.update(",".join(self.frame.columns).encode())
        return digest.hexdigest()

    def freshness(self) -> dict[str, float]:
        """Age in hours of the newest and oldest snapshot used, relative to each row's event."""
        age = (self.frame["event_time"] - self.frame["feature_as_of"]).dt.total_seconds() / 3600
        return {
            "feature_age_hours_min": float(age.min()),
            "feature_age_hours_max": float(age.max()),
        }


def build(rt: Runtime, job_name: str, *, end: datetime | None = None) -> TrainingSet:
    """The job's labelled rows up to ``end`` (default now) with point-in-time features."""
    job = rt.repo.job(job_name)
    now = end or rt.clock.now()
    start = _first_snapshot(rt, job)
    rows = labels(rt, job, start, now)
    frame = get_historical_features(rt.store, rows, [job.name], repo=rt.repo)
    frame = frame.rename(columns={f"{job.name}_as_of": "feature_as_of"})
    has_features = frame["feature_as_of"].notna()
    frame = frame[has_features].sort_values("event_time", kind="stable").reset_index(drop=True)
    features = job.model_inputs
    keep = ["entity_id", "event_time", "feature_as_of", *features, LABEL]
    return TrainingSet(
        job=job.name,
        frame=frame[keep],
        features=features,
        categorical=job.categorical,
        start=start,
        end=now,
        dropped_without_features=int((~has_features).sum()),
        horizon=job.label_horizon,
    )


def labels(rt: Runtime, job: JobSpec, start: datetime, now: datetime) -> pd.DataFrame:
    """The label SQL's rows from ``start`` to ``now`` (columns ``entity_id``, ``event_time``,
    ``label`` and the request-time inputs): a snapshot label over the job's snapshot points
    whose horizon has passed, an event label over ``[start, now)``."""
    assert job.label is not None
    sql = rt.repo.sql(job.label.sql)
    with rt.warehouse.connect() as conn:
        if job.label.kind == "snapshot":
            points = _snapshot_points(rt, job, start, now - job.label.horizon)
            rows = views.run_over_grid(conn, sql, points, rt.repo.windows)
            time_column = "as_of"
        else:
            rows = views.run_query(conn, sql, {"start": start, "end": now, "now": now})
            time_column = "event_time"
    given = [i.name for i in job.inputs if i.derive is None]
    missing = [c for c in (time_column, job.entity_key, LABEL, *given) if c not in rows.columns]
    if missing:
        raise NotReadyError(
            f"sql/{job.label.sql}.sql does not return {', '.join(missing)}",
            f"a {job.label.kind} label returns {time_column}, {job.entity_key}, {LABEL} and "
            "each request-time input that is not derived (see the job's inputs)",
        )
    rows = rows.rename(columns={time_column: "event_time", job.entity_key: "entity_id"})
    rows["entity_id"] = rows["entity_id"].astype(str)
    rows["event_time"] = pd.to_datetime(rows["event_time"]).astype("datetime64[ns]")
    for spec in job.inputs:
        if spec.derive == "entity":
            rows[spec.name] = rows["entity_id"]
        elif spec.derive == "hour":
            rows[spec.name] = rows["event_time"].dt.hour
        elif spec.derive == "weekday":
            rows[spec.name] = rows["event_time"].dt.day_of_week
    return rows


def _first_snapshot(rt: Runtime, job: JobSpec) -> datetime:
    with rt.store.connect() as conn:
        first = conn.execute(
            select(func.min(feature_snapshots.c.as_of)).where(feature_snapshots.c.job == job.name)
        ).scalar()
    if first is None:
        raise NotReadyError(
            f"no {job.name} features have been ingested",
            f"run `mlops ingest {job.name} --backfill --start ... --end ...` first",
        )
    return first


def _snapshot_points(rt: Runtime, job: JobSpec, start: datetime, last: datetime) -> list[datetime]:
    snap = feature_snapshots
    with rt.store.connect() as conn:
        points = list(
            conn.execute(
                select(snap.c.as_of)
                .where(snap.c.job == job.name, snap.c.as_of >= start, snap.c.as_of <= last)
                .order_by(snap.c.as_of)
            ).scalars()
        )
    if not points:
        raise NotReadyError(
            f"no {job.name} snapshot is old enough to have its label "
            f"(the label looks {job.label_horizon.days} days ahead)",
            f"backfill {job.name} history older than {last}",
        )
    return points
