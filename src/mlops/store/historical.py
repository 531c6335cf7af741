"""Point-in-time reads: for each (entity, event time), the latest snapshot at or before the
event time and no older than the feature's TTL, else null. Joined with ``merge_asof`` on
columnar history chunks, never in a Python loop."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import Engine, select

from mlops.db.schema import feature_history
from mlops.errors import InputError
from mlops.specs.features import JobSpec
from mlops.store.codec import decode_chunks

if TYPE_CHECKING:
    from mlops.repository import Repository


def get_historical_features(
    engine: Engine, entity_rows: pd.DataFrame, features: Sequence[str], *, repo: Repository
) -> pd.DataFrame:
    """``entity_rows`` has ``entity_id`` and ``event_time``; ``features`` are ``job:name`` or a
    whole ``job`` of ``repo``. Returns the rows in their order with one column per feature
    (named as the feature, or ``job:name`` when two jobs share a name) and ``<job>_as_of``."""
    missing = {"entity_id", "event_time"} - set(entity_rows.columns)
    if missing:
        raise InputError(
            f"entity_rows lacks {', '.join(sorted(missing))}", "pass entity_id and event_time"
        )
    wanted = _parse(repo, features)
    names = [n for names in wanted.values() for n in names]
    clash = {n for n in names if names.count(n) > 1}
    left = entity_rows.copy()
    left["event_time"] = pd.to_datetime(left["event_time"]).astype("datetime64[ns]")
    left["entity_id"] = left["entity_id"].astype(str)
    left["_row"] = range(len(left))
    left = left.sort_values("event_time", kind="stable")
    for job, feature_names in wanted.items():
        history = _load_history(engine, job, left["event_time"].min(), left["event_time"].max())
        history = history[["entity_id", "as_of", *feature_names]].rename(
            columns={n: f"{job.name}:{n}" for n in feature_names if n in clash}
            | {"as_of": f"{job.name}_as_of"}
        )
        left = pd.merge_asof(
            left,
            history,
            left_on="event_time",
            right_on=f"{job.name}_as_of",
            by="entity_id",
            direction="backward",
            allow_exact_matches=True,
            tolerance=pd.Timedelta(job.ttl),
        )
    return left.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def _parse(repo: Repository, features: Sequence[str]) -> dict[JobSpec, list[str]]:
    wanted: dict[JobSpec, list[str]] = {}
    for ref in features:
        job_name, _, name = ref.partition(":")
        job = repo.job(job_name)
        names = [job.feature(name).name] if name else job.feature_names
        wanted.setdefault(job, [])
        wanted[job] += [n for n in names if n not in wanted[job]]
    if not wanted:
        raise InputError(
            "no features requested",
            "pass a job, e.g. ['<job>'], or one feature, ['<job>:<feature>']",
        )
    entities = {job.entity for job in wanted}
    if len(entities) > 1:
        raise InputError(
            f"features of different entities ({', '.join(sorted(entities))}) in one call",
            "request each entity's features in its own call",
        )
    return wanted


def load_history(engine: Engine, job: JobSpec) -> pd.DataFrame:
    """Every ingested snapshot of a job as one frame (as_of, entity_id, features)."""
    return _load_history(engine, job, None, None)


def load_snapshots(engine: Engine, job: JobSpec, first: datetime, last: datetime) -> pd.DataFrame:
    """The snapshots of a job taken from ``first`` to ``last`` (inclusive), as one frame."""
    frame = _load_history(engine, job, pd.Timestamp(first), pd.Timestamp(last))
    return frame[(frame["as_of"] >= first) & (frame["as_of"] <= last)].reset_index(drop=True)


def _load_history(engine: Engine, job: JobSpec, first, last) -> pd.DataFrame:
    stmt = select(feature_history.c.payload).where(feature_history.c.job == job.name)
    if first is not None:
        # Only chunks that can hold a qualifying snapshot: at or before the last event,
        # and no older than the TTL before the first one.
        stmt = stmt.where(
            feature_history.c.max_as_of >= (first - job.ttl).to_pydatetime(),
            feature_history.c.min_as_of <= last.to_pydatetime(),
        )
    with engine.connect() as conn:
        payloads = [r[0] for r in conn.execute(stmt.order_by(feature_history.c.chunk_id))]
    table = decode_chunks(payloads)
    if table is None:
        frame = pd.DataFrame(
            {"entity_id": pd.Series(dtype=str), "as_of": pd.Series(dtype="datetime64[ns]")}
        )
    else:
        frame = table.to_pandas()
    for name in job.feature_names:
        if name not in frame.columns:
            frame[name] = None
    frame["as_of"] = frame["as_of"].astype("datetime64[ns]")
    frame["entity_id"] = frame["entity_id"].astype(str)
    return frame.sort_values("as_of", kind="stable").reset_index(drop=True)
