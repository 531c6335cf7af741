"""``mlops quickstart``: the whole loop on the embedded default, from an empty folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from mlops.db import migrate
from mlops.runtime import Runtime
from mlops.specs import JOBS
from mlops.specs import sync as specs_sync
from mlops.store import ingest

Stage = Callable[[str, int, int], None]

# ETA snapshots every 5 minutes are the expensive part of the history; two weeks give
# the ETA model thousands of deliveries with zone features as of dispatch.
ETA_HISTORY = timedelta(days=14)


@dataclass
class QuickstartResult:
    migrated: list[str]
    specs: specs_sync.SyncPlan
    seeded: dict[str, int]
    ingestion: list[ingest.IngestReport] = field(default_factory=list)
    seconds: float = 0.0


def run(
    rt: Runtime,
    *,
    customers: int = 5_000,
    days: int = 120,
    seed: int = 42,
    on_stage: Stage | None = None,
) -> QuickstartResult:
    """Migrate, sync specs, seed the warehouse, backfill history and refresh every job."""
    from mlops.warehouse.seed import seed_warehouse
    from mlops.warehouse.views import install_views

    began = time.perf_counter()
    stage = on_stage or (lambda label, done, total: None)
    now = rt.clock.now()
    stage("migrating the store", 0, 1)
    migrated = migrate.upgrade(rt.store).applied
    plan = specs_sync.plan(rt.store)
    specs_sync.apply(rt.store, plan, now)
    summary = seed_warehouse(
        rt.warehouse,
        customers=customers,
        days=days,
        seed=seed,
        end=now,
        replace=True,
        on_progress=lambda label, done, total: stage(f"seeding {label}", done, total),
    )
    install_views(rt.warehouse, list(JOBS.values()))
    result = QuickstartResult(migrated, plan, summary.rows)
    day_start = now.replace(hour=0, minute=0, second=0)
    eta_end = now.replace(minute=now.minute - now.minute % 5, second=0)
    ranges = {
        "churn": (day_start - timedelta(days=days - 1), day_start),
        "upsell": (day_start - timedelta(days=days - 1), day_start),
        "eta": (eta_end - ETA_HISTORY, eta_end),
    }
    for name, (start, end) in ranges.items():
        done = 0

        def progress(step: int, total: int, name=name) -> None:
            nonlocal done
            done += step
            stage(f"backfilling {name}", done, total)

        result.ingestion.append(
            ingest.backfill(rt, name, start=start, end=end, on_progress=progress)
        )
    for name in JOBS:
        stage(f"refreshing {name}", 0, 1)
        result.ingestion.append(ingest.refresh(rt, name))
    result.seconds = time.perf_counter() - began
    return result
