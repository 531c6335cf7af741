"""Drift check over 1,000,000 online values per feature: churn's 10 numeric features and its
one categorical (plan), for 1,000,000 customers.

The values are synthetic (numpy), validated and written through ingestion's own write path
(packed JSON rows in ml_feature_values, one Arrow history chunk); the champion is registered
in a local MLflow store with reference distributions built by training's own function, so
``drift.check`` runs end to end: registry, online read, statistics, results, alerts, trip.
The store is built once per --entities and reused.

python benchmarks/drift.py [--database-url URL] [--entities N] [--repeat N]
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from common import END, write
from mlops.clock import FrozenClock
from mlops.db import migrate
from mlops.db.schema import feature_values
from mlops.monitoring import drift
from mlops.runtime import Runtime
from mlops.settings import Settings
from mlops.specs import sync as specs_sync
from mlops.store import runs, writes
from mlops.store.validate import validate
from mlops.training import tracking, tracking_client, tracking_versions
from mlops.training.reference import reference_distributions

JOB = "churn"
REFERENCE_ROWS = 200_000


def synthetic(n: int, seed: int, shift: float = 1.0) -> pd.DataFrame:
    """Churn-like features; ``shift`` scales the spend features (1.0: the reference's world)."""
    rng = np.random.default_rng(seed)
    orders_90d = rng.poisson(4.0, n)
    orders_30d = rng.binomial(orders_90d, 0.35)
    has_orders = orders_90d > 0
    avg_value = np.where(has_orders, rng.gamma(4.0, 8.0, n) * shift, np.nan)
    return pd.DataFrame(
        {
            "days_since_last_order": np.where(has_orders, rng.exponential(12.0, n), np.nan),
            "orders_30d": orders_30d,
            "orders_90d": orders_90d,
            "order_trend": np.where(
                has_orders, np.minimum(3 * orders_30d / np.maximum(orders_90d, 1), 3), np.nan
            ),
            "spend_90d": np.nan_to_num(avg_value * orders_90d),
            "avg_order_value_90d": avg_value,
            "cancel_rate_90d": np.where(has_orders, rng.beta(1.0, 9.0, n), np.nan),
            "late_delivery_rate_90d": np.where(has_orders, rng.beta(2.0, 8.0, n), np.nan),
            "support_tickets_90d": rng.poisson(0.3, n),
            "tenure_days": rng.uniform(1.0, 700.0, n),
            "plan": rng.choice(["basic", "plus", "premium"], n, p=[0.6, 0.3, 0.1]),
        }
    )


def build_store(rt: Runtime, entities: int) -> float:
    """Write ``entities`` customers' churn features at END through ingestion's write path."""
    job = rt.repo.job(JOB)
    frame = synthetic(entities, seed=1, shift=1.5)  # spend drifted by half
    frame.insert(0, "entity_id", [f"C{i:07d}" for i in range(entities)])
    frame.insert(0, "as_of", pd.Timestamp(END))
    began = time.perf_counter()
    checked = validate(job, frame)
    run_id = runs.start_run(
        rt.store,
        job=JOB,
        mode="refresh",
        started_at=END,
        as_of_start=END,
        as_of_end=END,
        scheduled_for=None,
    )
    with rt.store.begin() as conn:
        writes.write_chunk(conn, job, run_id, [END], checked.good, END)
    runs.finish_run(
        rt.store,
        run_id,
        status=runs.SUCCEEDED,
        finished_at=END,
        seconds=time.perf_counter() - began,
        rows_read=entities,
        rows_written=len(checked.good),
        rows_rejected=checked.rows_rejected,
        values_written=len(checked.good) * len(job.features),
    )
    return time.perf_counter() - began


def register_champion(rt: Runtime) -> int:
    """A champion version of churn whose run holds reference distributions of the unshifted
    world (no model files: the drift monitor never loads the model)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    settings, job = rt.settings, rt.repo.job(JOB)
    tracking_client.configure(settings)
    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    experiment = tracking.experiment(settings, JOB)
    categorical = [f.name for f in job.features if f.dtype == "category"]
    reference = reference_distributions(
        synthetic(REFERENCE_ROWS, seed=2), job.feature_names, categorical
    )
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, json.dumps(reference), tracking.REFERENCE_ARTIFACT)
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(MlflowException):  # registered by an earlier run
        client.create_registered_model(JOB)
    version = client.create_model_version(JOB, run.info.artifact_uri, run.info.run_id)
    client.set_registered_model_alias(JOB, tracking_versions.CHAMPION, version.version)
    return int(version.version)


def main() -> None:
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database-url", default=None)
    p.add_argument("--home", type=Path, default=Path("/tmp/mlops-bench"))
    p.add_argument("--entities", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    home = args.home / f"drift-{args.entities}"
    settings = Settings(
        home=home,
        database_url=args.database_url or f"sqlite:///{home / 'store.db'}",
        warehouse_url=args.database_url or f"sqlite:///{home / 'warehouse.db'}",
    )
    rt = Runtime(settings=settings, clock=FrozenClock(END + timedelta(minutes=5)))
    migrate.upgrade(rt.store)
    specs_sync.apply(rt.store, specs_sync.plan(rt.store, rt.repo.jobs), END, rt.repo.jobs)
    with rt.store.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(feature_values).where(feature_values.c.job == JOB)
        ).scalar()
    write_seconds = None
    if stored != args.entities:
        from mlops.store.reset import clear_feature_data

        clear_feature_data(rt.store)
        write_seconds = build_store(rt, args.entities)
        print(f"wrote {args.entities:,} entities in {write_seconds:.1f} s", file=sys.stderr)
    version = register_champion(rt)

    job = rt.repo.job(JOB)
    load_before = os.getloadavg()[0]  # a shared machine: say how busy it was
    online = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        (result,) = drift.check(rt, JOB)
        online.append((time.perf_counter() - began, result))
    began = time.perf_counter()
    (history,) = drift.check(rt, JOB, window=timedelta(hours=1))
    history_seconds = time.perf_counter() - began
    best_seconds, best = min(online, key=lambda pair: pair[0])
    figures = {
        "job": JOB,
        "entities": args.entities,
        "features": len(best.features),
        "numeric_features": sum(f.kind == "numeric" for f in best.features),
        "values": args.entities * len(best.features),
        "champion_version": version,
        "store_write_seconds": None if write_seconds is None else round(write_seconds, 2),
        "online": {
            "check_seconds": [round(s, 3) for s, _ in online],
            "best_check_seconds": round(best_seconds, 3),
            "read_seconds": round(best.read_seconds, 3),
            "statistics_seconds": round(best.stats_seconds, 3),
            "registry_results_alerts_seconds": round(
                best_seconds - best.read_seconds - best.stats_seconds, 3
            ),
        },
        "history_window": {
            "check_seconds": round(history_seconds, 3),
            "read_seconds": round(history.read_seconds, 3),
            "statistics_seconds": round(history.stats_seconds, 3),
            "sample_size": history.features[0].sample_size,
        },
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "statuses": {f.feature: f.status for f in best.features},
        "alerting": [f.feature for f in best.alerting],
        "feature_names": job.feature_names,
    }
    write("drift", rt, figures)
    rt.close()


if __name__ == "__main__":
    main()
