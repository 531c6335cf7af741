"""Online reads: the latest values of an entity, each marked fresh, stale (past TTL) or missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, func, select

from mlops.clock import Clock
from mlops.db.connections import ThreadConnections
from mlops.db.schema import feature_snapshots, feature_values
from mlops.specs.features import JobSpec
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


@dataclass(frozen=True)
class StoredRow:
    """One entity's stored values as read, before their age is judged (what caches hold)."""

    computed_at: datetime
    values: dict[str, Any]


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


def versions(conn: Connection) -> dict[str, int]:
    """Per job, the newest chunk written: it changes in the transaction that changes the job's
    online values (a refresh, a backfill, a reset), so caches keyed by it are never stale."""
    snap = feature_snapshots
    rows = conn.execute(select(snap.c.job, func.max(snap.c.chunk_id)).group_by(snap.c.job))
    return {job: chunk for job, chunk in rows}


def get_online_features(
    engine: Engine, clock: Clock, spec: JobSpec, entity_ids: Sequence[str]
) -> dict[str, EntityFeatures]:
    """Latest values for each entity id; a stale value is returned marked stale, never as fresh."""
    ids = [str(e) for e in entity_ids]
    rows: Sequence[Any] = []
    if ids:
        with engine.connect() as conn:
            rows = conn.execute(*_query(spec, ids)).all()
    return entities(spec, ids, _stored(rows), clock.now())


class OnlineStore:
    """Online reads for a long-lived process: one autocommit connection per thread, so a
    read is one primary-key lookup with no pool checkout and no transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.clock = clock
        self._conns = ThreadConnections(engine)

    def get(self, spec: JobSpec, entity_ids: Sequence[str]) -> dict[str, EntityFeatures]:
        """Same answer as ``get_online_features``."""
        ids = [str(e) for e in entity_ids]
        return entities(spec, ids, self.rows(spec, ids), self.clock.now())

    def rows(self, spec: JobSpec, entity_ids: list[str]) -> dict[str, StoredRow]:
        """The stored rows of the entities that have one, unjudged."""
        return _stored(self._conns.all(*_query(spec, entity_ids)) if entity_ids else [])

    def close(self) -> None:
        self._conns.close()


def _query(spec: JobSpec, ids: list[str]) -> tuple:
    if len(ids) == 1:
        return _ONE, {"job": spec.name, "entity_id": ids[0]}
    return _MANY, {"job": spec.name, "entity_ids": ids}


def _stored(rows) -> dict[str, StoredRow]:
    return {r.entity_id: StoredRow(r.computed_at, unpack_row(r.values_json)) for r in rows}


def entities(
    spec: JobSpec, ids: list[str], rows: dict[str, StoredRow], now: datetime
) -> dict[str, EntityFeatures]:
    """Each id's features judged at ``now`` (missing where ``rows`` has none)."""
    return {eid: entity(spec, eid, rows.get(eid), now) for eid in ids}


def entity(spec: JobSpec, entity_id: str, row: StoredRow | None, now: datetime) -> EntityFeatures:
    """One entity's features judged at ``now``: fresh, stale (past TTL) or missing."""
    if row is None:
        missing = FeatureValue(None, None, "missing")
        return EntityFeatures(
            spec.name, entity_id, None, None, dict.fromkeys(spec.feature_names, missing)
        )
    packed = row.values
    age = now - row.computed_at
    features = {}
    for f in spec.features:
        if f.name not in packed:
            features[f.name] = FeatureValue(None, row.computed_at, "missing")
        else:
            status: Status = "stale" if age > f.ttl else "fresh"
            features[f.name] = FeatureValue(packed[f.name], row.computed_at, status)
    return EntityFeatures(spec.name, entity_id, row.computed_at, age.total_seconds(), features)
