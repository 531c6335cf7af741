"""``mlops quickstart``: the whole loop on the embedded default, from an empty folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.db import migrate
from mlops.errors import InputError
from mlops.runtime import Runtime
from mlops.specs import sync as specs_sync
from mlops.store import ingest
from mlops.store.reset import clear_feature_data
from mlops.warehouse import contract
from mlops.warehouse.contract import Samples

if TYPE_CHECKING:
    from mlops.serving.replay import ReplayReport

Stage = Callable[[str, int, int], None]

# History backfilled for a job whose repository gives no quickstart.history.
DEFAULT_HISTORY = timedelta(days=30)
# Requests replayed per job through the serving path over the seeded history (see
# ``serving.replay``): a few seconds in all, enough for every panel to have answers.
DEFAULT_REPLAY = 500


@dataclass
class QuickstartResult:
    migrated: list[str]
    specs: specs_sync.SyncPlan
    seeded: dict[str, int]
    ingestion: list[ingest.IngestReport] = field(default_factory=list)
    training: list = field(default_factory=list)  # train.TrainReport per job
    replay: ReplayReport | None = None
    monitoring: Monitoring | None = None
    seconds: float = 0.0


@dataclass
class Monitoring:
    """What the first round of monitors found, and where the report went."""

    drift: list  # drift.JobDrift per job
    ops: object  # ops.OpsCheck
    alerts_opened: int
    report: Path
    samples: Samples  # what to try the endpoints with (the repository's samples, if any)


def check_embedded(settings) -> None:
    """Quickstart replaces data: refuse unless both databases are the embedded defaults."""
    if settings.database_url or settings.warehouse_url:
        raise InputError(
            "quickstart replaces the warehouse and the feature store's data, and "
            "MLOPS_DATABASE_URL or MLOPS_WAREHOUSE_URL points at a database of yours",
            "unset them to use the embedded default, or pass --force to replace that data",
        )


def run(
    rt: Runtime,
    *,
    size: int = 5_000,
    days: int = 120,
    seed: int = 42,
    on_stage: Stage | None = None,
    train_models: bool = True,
    monitor: bool = True,
    replay: int = DEFAULT_REPLAY,
) -> QuickstartResult:
    """Migrate, sync specs, seed the warehouse with the repository's generator (``size``
    entities), backfill history, refresh every job, train, register and promote every job's
    model, replay up to ``replay`` requests per job through the serving path over the seeded
    history (0: none), then run the monitors once and write the HTML report to
    ``<home>/report.html``."""
    from mlops.warehouse.views import install_views

    generate = contract.require_seed(rt.repo, "mlops quickstart")
    began = time.perf_counter()
    stage = on_stage or (lambda label, done, total: None)
    now = rt.clock.now()
    stage("migrating the store", 0, 1)
    migrated = migrate.upgrade(rt.store).applied
    jobs = rt.repo.jobs
    plan = specs_sync.plan(rt.store, jobs)
    specs_sync.apply(rt.store, plan, now, jobs)
    # A fresh synthetic warehouse: snapshots of an earlier one must not be kept.
    clear_feature_data(rt.store)
    summary = generate(
        rt.warehouse,
        size=size,
        days=days,
        seed=seed,
        end=now,
        replace=True,
        on_progress=lambda label, done, total: stage(f"seeding {label}", done, total),
    )
    install_views(rt.warehouse, rt.repo, list(jobs.values()))
    result = QuickstartResult(migrated, plan, dict(summary.rows))
    # Each job's history (the repository's quickstart.history) at its backfill spacing.
    for name, job in jobs.items():
        span, every = job.quickstart_history or DEFAULT_HISTORY, job.default_every
        end = datetime.min + (now - datetime.min) // every * every  # aligned on the spacing
        start = max(end - span, now - timedelta(days=days))
        done = 0

        def progress(step: int, total: int, name=name) -> None:
            nonlocal done
            done += step
            stage(f"backfilling {name}", done, total)

        result.ingestion.append(
            ingest.backfill(rt, name, start=start, end=end, every=every, on_progress=progress)
        )
    for name in jobs:
        stage(f"refreshing {name}", 0, 1)
        result.ingestion.append(ingest.refresh(rt, name))
    if train_models:
        from mlops.training.train import train

        for i, name in enumerate(jobs):
            stage(f"training {name}", i, len(jobs))
            result.training.append(train(rt, name, refresh=False))
    if replay > 0:
        result.replay = replay_traffic(rt, replay, seed, stage)
    if monitor:
        stage("monitoring", 0, 1)
        result.monitoring = first_checks(rt)
    result.seconds = time.perf_counter() - began
    return result


def replay_traffic(rt: Runtime, requests: int, seed: int, stage: Stage) -> ReplayReport:
    """Simulated traffic over the seeded history, answered by the serving library, so the
    monitors and the dashboard have answers to judge (see ``serving.replay``)."""
    from mlops.serving import replay

    stage("replaying traffic", 0, 1)
    return replay.replay(
        rt,
        requests=requests,
        seed=seed,
        on_progress=lambda done, total: stage("replaying traffic", done, total),
    )


def first_checks(rt: Runtime) -> Monitoring:
    """Every monitor once (accuracy and guardrails judge the replayed answers, if any), then
    the report."""
    from mlops.monitoring import accuracy, drift, guardrails, ops, report

    found = drift.check(rt)
    checked = ops.check(rt)
    # Per week: the replay's few hundred answers per job are too few per day to judge.
    accuracy.report(rt, by="week")
    guardrails.check(rt)
    rt.settings.home.mkdir(parents=True, exist_ok=True)
    written = report.write_report(rt, rt.settings.home / "report.html")
    declared = contract.of(rt.repo)
    samples = declared.samples(rt.warehouse) if declared and declared.samples else Samples()
    opened = sum(len(r.opened) for r in found) + len(checked.opened)
    return Monitoring(found, checked, opened, written.path, samples)
