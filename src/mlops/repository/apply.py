"""``mlops apply``: carry out a ``Plan`` so the store, the warehouse and the registry match the
feature repository.

In this order, so that a failure leaves a state the next plan shows and the next apply
completes (every step is idempotent):

1. views: changed or added ones are (re)installed in the warehouse (PostgreSQL; SQLite runs
   the SQL as a query and installs nothing); retired views are left in place, reported;
2. the store, in one transaction: the spec changes (``specs.sync``) and the applied views,
   schedule tasks and job models in ``ml_repository_objects`` (removed ones retired);
3. inside that transaction, before it commits, the registry: a retired job's registered
   model is tagged ``mlops.retired`` (its versions and aliases, ``champion`` included, are
   left as they are, so declaring the job again serves it at once); a job declared again
   has the tag cleared. Nothing in MLflow is ever deleted or re-pointed.

A job whose model definition changed is flagged "retrain needed" (the plan's note); the
record keeps when (``changed_at``), so ``mlops jobs describe`` can tell a champion trained
before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, update

from mlops.db.schema import repository_objects
from mlops.errors import ConfigError, InputError, brief
from mlops.repository import registered
from mlops.repository.plan import (
    ADDED,
    CHANGED,
    REGISTRY_FIELD,
    RETIRED,
    WAREHOUSE_FIELD,
    Plan,
    canonical,
)
from mlops.specs import sync as specs_sync
from mlops.warehouse.views import install_views

if TYPE_CHECKING:
    from mlops.runtime import Runtime
    from mlops.specs.features import JobSpec


@dataclass
class Applied:
    """What an apply did."""

    plan: Plan
    views_installed: list[str] = field(default_factory=list)
    models_tagged: list[str] = field(default_factory=list)
    models_untagged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was written."""
        if self.plan.empty:
            return f"nothing to apply: the repository {self.plan.repository!r} is applied"
        parts = [f"applied {self.plan.summary()}"]
        if self.views_installed:
            parts.append(f"views installed: {', '.join(self.views_installed)}")
        if self.models_tagged:
            parts.append(f"registered models tagged retired: {', '.join(self.models_tagged)}")
        if self.models_untagged:
            parts.append(f"retired tag cleared: {', '.join(self.models_untagged)}")
        return "; ".join(parts)


def apply(rt: Runtime, plan: Plan) -> Applied:
    """Carry out ``plan`` (computed for ``rt.repo``): views, then the store and the registry."""
    repo = rt.repo
    if plan.path != repo.path:
        raise InputError(
            f"the plan is of the repository at {plan.path}, not {repo.path}",
            "compute the plan with the same repository you apply",
        )
    done = Applied(plan)
    if plan.empty:
        return done
    now = rt.clock.now()
    views = {i.name for i in plan.of("view") if i.action in (ADDED, CHANGED)}
    jobs = [job for job in repo.jobs.values() if job.view in views]
    # One job per view: two jobs may read the same view.
    jobs = list({job.view: job for job in reversed(jobs)}.values())[::-1]
    for job in jobs:
        done.views_installed += _install(rt, job)
    with rt.store.begin() as conn:
        specs_sync.apply_on(conn, plan.specs, now, repo.jobs)
        _record(conn, plan, now)
        _registry(rt, plan, now, done)
    return done


def _install(rt: Runtime, job: JobSpec) -> list[str]:
    """Install one job's view (its own transaction: CREATE OR REPLACE is idempotent)."""
    from sqlalchemy.exc import DBAPIError

    try:
        return install_views(rt.warehouse, rt.repo, [job])
    except DBAPIError as exc:
        raise ConfigError(
            f"cannot install the view {job.view} in the warehouse: {brief(exc.orig or exc)}",
            f"fix sql/{job.view}.sql, or create the warehouse tables it reads (`mlops warehouse "
            "seed` or `mlops warehouse load`), then run `mlops apply` again (nothing was "
            "written to the store)",
        ) from None


def _record(conn: Connection, plan: Plan, now: datetime) -> None:
    t = repository_objects
    for item in plan.items:
        if item.kind == "spec":
            continue
        where = (t.c.kind == item.kind, t.c.name == item.name)
        if item.action == RETIRED:
            conn.execute(update(t).where(*where).values(retired_at=now))
            continue
        declared = plan.declared[(item.kind, item.name)]
        values = {
            "job": declared.job,
            "definition": canonical(declared.definition),
            "fingerprint": declared.fingerprint,
            "applied_at": now,
            "retired_at": None,
        }
        changed = any(c.field not in (REGISTRY_FIELD, WAREHOUSE_FIELD) for c in item.changes)
        if changed:
            values["changed_at"] = now
        if item.action == ADDED:
            # A row retired earlier comes back as added: revive it (its changed_at is kept
            # unless the definition differs from the one it was retired with).
            revived = conn.execute(update(t).where(*where).values(**values))
            if revived.rowcount == 0:
                conn.execute(insert(t).values(kind=item.kind, name=item.name, **values))
        elif changed:
            conn.execute(update(t).where(*where).values(**values))


def _registry(rt: Runtime, plan: Plan, now: datetime, done: Applied) -> None:
    when = now.isoformat(timespec="seconds")
    for item in plan.of("model"):
        model = plan.models.get(item.name)
        if model is None:
            continue
        if item.action == RETIRED and not model.retired:
            reason = f"job removed from the feature repository {plan.repository!r} (mlops apply)"
            registered.tag_retired(rt.settings, item.name, when, reason)
            done.models_tagged.append(item.name)
        elif item.action != RETIRED and model.retired:
            registered.untag_retired(rt.settings, item.name)
            done.models_untagged.append(item.name)
