"""Online reads: the latest values of an entity, each marked fresh, stale (past TTL) or missing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import DBAPIError

from mlops.clock import Clock
from mlops.db.schema import feature_values
from mlops.specs.features import JobSpec, get_job
from mlops.store.codec import unpack_row

Status = Literal["fresh", "stale", "missing"]


@dataclass(frozen=True)
class FeatureValue:
    value: Any
    computed_at: datetime | None
    status: Status

    @property
    def usable(self) -> bool:
        return self.status == "fresh"


@dataclass(frozen=True)
class EntityFeatures:
    job: str
    entity_id: str
    computed_at: datetime | None
    age_seconds: float | None
    features: dict[str, FeatureValue]

    @property
    def status(self) -> Status:
        """Missing if no row, stale if any feature is past its TTL, else fresh."""
        statuses = {f.status for f in self.features.values()}
        for status in ("missing", "stale"):
            if status in statuses:
                return status
        return "fresh"

    def values(self) -> dict[str, Any]:
        return {name: f.value for name, f in self.features.items()}


_ONE = (
    select(feature_values.c.entity_id, feature_values.c.computed_at, feature_values.c.values_json)
    .where(feature_values.c.job == bindparam("job"))
    .where(feature_values.c.entity_id == bindparam("entity_id"))
)
_MANY = (
    select(feature_values.c.entity_id, feature_values.c.computed_at, feature_values.c.values_json)
    .where(feature_values.c.job == bindparam("job"))
    .where(feature_values.c.entity_id.in_(bindparam("entity_ids", expanding=True)))
)


def get_online_features(
    engine: Engine, clock: Clock, job: str | JobSpec, entity_ids: Sequence[str]
) -> dict[str, EntityFeatures]:
    """Latest values for each entity id; a stale value is returned marked stale, never as fresh."""
    spec = get_job(job) if isinstance(job, str) else job
    ids = [str(e) for e in entity_ids]
    with engine.connect() as conn:
        rows = _read(conn, spec, ids)
    return _entities(spec, ids, rows, clock.now())


class OnlineStore:
    """Online reads for a long-lived process: one autocommit connection per thread, so a
    read is one primary-key lookup with no pool checkout and no transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine, self.clock = engine, clock
        self._local = threading.local()

    def get(self, job: str | JobSpec, entity_ids: Sequence[str]) -> dict[str, EntityFeatures]:
        """Same answer as ``get_online_features``."""
        spec = get_job(job) if isinstance(job, str) else job
        ids = [str(e) for e in entity_ids]
        conn = self._connection()
        try:
            rows = _read(conn, spec, ids)
        except DBAPIError:
            # The database restarted or dropped us: one fresh connection, one retry.
            self._drop()
            rows = _read(self._connection(), spec, ids)
        return _entities(spec, ids, rows, self.clock.now())

    def close(self) -> None:
        self._drop()

    def _connection(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.invalidate()
            conn.close()


def _read(conn: Connection, spec: JobSpec, ids: list[str]) -> list:
    if len(ids) == 1:
        return conn.execute(_ONE, {"job": spec.name, "entity_id": ids[0]}).all()
    return conn.execute(_MANY, {"job": spec.name, "entity_ids": ids}).all() if ids else []


def _entities(spec: JobSpec, ids: list[str], rows, now: datetime) -> dict[str, EntityFeatures]:
    found = {r.entity_id: r for r in rows}
    return {eid: _entity(spec, eid, found.get(eid), now) for eid in ids}


def _entity(spec: JobSpec, entity_id: str, row, now: datetime) -> EntityFeatures:
    if row is None:
        missing = FeatureValue(None, None, "missing")
        return EntityFeatures(
            spec.name, entity_id, None, None, dict.fromkeys(spec.feature_names, missing)
        )
    packed = unpack_row(row.values_json)
    age = now - row.computed_at
    features = {}
    for f in spec.features:
        if f.name not in packed:
            features[f.name] = FeatureValue(None, row.computed_at, "missing")
        else:
            status: Status = "stale" if age > f.ttl else "fresh"
            features[f.name] = FeatureValue(packed[f.name], row.computed_at, status)
    return EntityFeatures(spec.name, entity_id, row.computed_at, age.total_seconds(), features)
