"""``mlops specs sync``: make ml_feature_specs match the repository's jobs, as a plan and then
an apply. A feature removed from the repository is retired (``retired_at`` set), never
deleted, so its history stays readable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update

from mlops.db import migrate
from mlops.db.schema import feature_specs
from mlops.specs.features import FeatureSpec, JobSpec

# Columns compared to decide whether a synced feature changed.
_COMPARED = (
    "entity",
    "dtype",
    "description",
    "owner",
    "source_view",
    "ttl_seconds",
    "nullable",
    "min_value",
    "max_value",
    "allowed_values",
    "psi_warn",
    "psi_alert",
    "ks_pvalue",
)


@dataclass
class Change:
    job: str
    name: str
    fields: dict[str, tuple] = field(default_factory=dict)  # column -> (before, after)


@dataclass
class SyncPlan:
    added: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    retired: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.retired)


def spec_row(spec: FeatureSpec) -> dict:
    """The ml_feature_specs columns describing one spec (without bookkeeping columns)."""
    return {
        "job": spec.job,
        "name": spec.name,
        "entity": spec.entity,
        "dtype": spec.dtype,
        "description": spec.description,
        "owner": spec.owner,
        "source_view": spec.source_view,
        "ttl_seconds": int(spec.ttl.total_seconds()),
        "nullable": spec.nullable,
        "min_value": spec.min_value,
        "max_value": spec.max_value,
        "allowed_values": json.dumps(list(spec.allowed_values)) if spec.allowed_values else None,
        "psi_warn": spec.psi_warn,
        "psi_alert": spec.psi_alert,
        "ks_pvalue": spec.ks_pvalue,
        "fingerprint": spec.fingerprint(),
    }


def plan(engine: Engine, jobs: Mapping[str, JobSpec]) -> SyncPlan:
    """Compare the jobs' specs with the table; writes nothing."""
    migrate.require_current(engine)
    wanted = {(s.job, s.name): s for job in jobs.values() for s in job.features}
    with engine.connect() as conn:
        current = {(r.job, r.name): r._mapping for r in conn.execute(select(feature_specs))}
    result = SyncPlan()
    for key, spec in wanted.items():
        row = spec_row(spec)
        existing = current.get(key)
        if existing is None:
            result.added.append(Change(*key))
            continue
        diff = {c: (existing[c], row[c]) for c in _COMPARED if existing[c] != row[c]}
        if existing["retired_at"] is not None:
            diff["retired_at"] = (existing["retired_at"], None)
        if diff:
            result.changed.append(Change(*key, diff))
        else:
            result.unchanged += 1
    for key, existing in current.items():
        if key not in wanted and existing["retired_at"] is None:
            result.retired.append(Change(*key))
    return result


def apply(engine: Engine, sync_plan: SyncPlan, now: datetime, jobs: Mapping[str, JobSpec]) -> None:
    """Carry out a plan (made for the same ``jobs``) in one transaction."""
    with engine.begin() as conn:
        apply_on(conn, sync_plan, now, jobs)


def apply_on(
    conn: Connection, sync_plan: SyncPlan, now: datetime, jobs: Mapping[str, JobSpec]
) -> None:
    """``apply`` inside the caller's transaction (``mlops apply`` writes specs and the rest of
    the repository's state at once)."""
    specs = {(s.job, s.name): s for job in jobs.values() for s in job.features}
    t = feature_specs
    for change in sync_plan.added:
        row = spec_row(specs[(change.job, change.name)])
        conn.execute(insert(t).values(**row, version=1, created_at=now, updated_at=now))
    for change in sync_plan.changed:
        row = spec_row(specs[(change.job, change.name)])
        conn.execute(
            update(t)
            .where(t.c.job == change.job, t.c.name == change.name)
            .values(**row, version=t.c.version + 1, updated_at=now, retired_at=None)
        )
    for change in sync_plan.retired:
        conn.execute(
            update(t)
            .where(t.c.job == change.job, t.c.name == change.name)
            .values(retired_at=now, updated_at=now)
        )


def spec_versions(engine: Engine, job: str) -> dict[str, int]:
    """The synced version of each active feature of a job (for lineage in training runs)."""
    t = feature_specs
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.name, t.c.version).where(t.c.job == job, t.c.retired_at.is_(None))
        )
        return {r.name: r.version for r in rows}
