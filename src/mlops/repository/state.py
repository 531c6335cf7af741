"""Each declared job's state, for ``mlops jobs list|describe``: whether the repository's
declaration of it is applied, its latest ingestion, the freshness of its values, its champion
and whether that champion was trained before the job's model definition last changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select

from mlops.db.schema import repository_objects
from mlops.repository.plan import ADDED, RETIRED, Item, Plan

if TYPE_CHECKING:
    from mlops.monitoring.ops import Freshness, LatestRun
    from mlops.runtime import Runtime

Applied = Literal["applied", "pending", "not applied"]


@dataclass(frozen=True)
class JobState:
    """One job as the store, the warehouse and the registry hold it now."""

    job: str
    applied: Applied
    latest: LatestRun | None
    freshness: Freshness
    champion: int | None
    # Why the champion is outdated (its model definition changed after it was trained, or a
    # pending change would), or None.
    retrain: str | None = None
    pending: list[Item] = field(default_factory=list)


def job_states(rt: Runtime, plan: Plan) -> dict[str, JobState]:
    """The state of every job of ``rt.repo``; ``plan`` is ``repository.plan.compute(rt)``."""
    from mlops.monitoring import ops

    names = list(rt.repo.jobs)
    report = ops.report(rt, jobs=names)
    with rt.store.connect() as conn:
        changed = {
            r.name: r.changed_at
            for r in conn.execute(
                select(repository_objects.c.name, repository_objects.c.changed_at).where(
                    repository_objects.c.kind == "model", repository_objects.c.retired_at.is_(None)
                )
            )
        }
    found = {}
    for name in names:
        pending = [i for i in plan.items if i.job == name and i.action != RETIRED]
        model = plan.models.get(name)
        champion = model.aliases.get("champion") if model else None
        new = any(i.kind == "model" and i.action == ADDED for i in pending)
        applied: Applied = "not applied" if new else "pending" if pending else "applied"
        retrain = None
        if name in plan.retrain:
            retrain = "a pending change of what its model is trained from (`mlops plan`)"
        elif champion is not None and changed.get(name) is not None:
            trained = _created(rt, name, champion)
            if trained is not None and trained < changed[name]:
                retrain = (
                    f"champion v{champion} was trained {trained:%Y-%m-%d %H:%M}, before its "
                    f"model definition changed ({changed[name]:%Y-%m-%d %H:%M})"
                )
        ops_state = report.job(name)
        found[name] = JobState(
            job=name,
            applied=applied,
            latest=ops_state.ingestion.latest,
            freshness=ops_state.freshness,
            champion=champion,
            retrain=retrain,
            pending=pending,
        )
    return found


def _created(rt: Runtime, job: str, version: int) -> datetime | None:
    from mlops.training import tracking_versions

    return tracking_versions.version_info(rt.settings, job, version).created_at
