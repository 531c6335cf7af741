"""Operations monitor: ops.report() over 1,000,000 logged predictions and a week of ingestion
runs (ETA every 5 minutes), and /metrics scrapes: the first reads it, the next within the
interval is served from that read, the next after it reads again (settled hours' answers held).

    python benchmarks/monitor_ops.py [--database-url URL] [--predictions N] [--repeat N]

Generates (once; reused while the parameters match) a store holding the prediction log over
the 14 days before the benchmark's clock (half of them inside the report's 7-day period;
80 % model answers, the rest spread over fallback reasons) and two weeks of ingestion runs
(churn daily, upsell every 6 h, ETA every 5 min; 2 % failed; delays of seconds). On
PostgreSQL it works in a schema of its own (bench_monitor_ops), so other benchmarks' tables
are left alone.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import text

from common import END, parser, percentiles, read_marker, set_marker, write
from mlops.clock import FrozenClock
from mlops.db import migrate
from mlops.db.schema import feature_snapshots, ingestion_runs, prediction_log
from mlops.monitoring import ops
from mlops.runtime import Runtime
from mlops.serving.metrics import OpsCollector
from mlops.settings import Settings
from mlops.warehouse.bulk import insert_frame

SCHEMA = "bench_monitor_ops"
JOB_SHARES = {"churn": 0.4, "upsell": 0.3, "eta": 0.3}
EVERY = {"churn": timedelta(days=1), "upsell": timedelta(hours=6), "eta": timedelta(minutes=5)}
REASONS = ["features_stale", "features_missing", "slo_exceeded", "flag_off", "ab_control"]
DAYS = 14


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--predictions", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    tag = f"monitor-ops-{args.predictions}p-s{args.seed}-v2"
    rt = _runtime(args, tag)
    generated = None
    if read_marker(rt.store) != tag:
        generated = generate(rt, args)
        set_marker(rt.store, tag)

    timings = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        found = ops.report(rt)
        timings.append((time.perf_counter() - began) * 1000)
    answers = sum(j.answers.total for j in found.jobs)
    runs = sum(sum(j.ingestion.runs.values()) for j in found.jobs)

    collector = OpsCollector.of(rt)
    began = time.perf_counter()
    families = list(collector.collect())  # reads the store
    first_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    list(collector.collect())  # within ops_metrics_seconds: served from the last read
    cached_ms = (time.perf_counter() - began) * 1000
    rt.clock.advance(timedelta(seconds=rt.settings.ops_metrics_seconds))
    began = time.perf_counter()
    list(collector.collect())  # read again, but the answers of settled hours are held
    reread_ms = (time.perf_counter() - began) * 1000

    write(
        "monitor_ops",
        rt,
        {
            "predictions": args.predictions,
            "answers_in_period": answers,
            "runs_in_period": runs,
            "generation": generated,
            "report": percentiles(timings) if len(timings) > 1 else {"ms": timings[0]},
            "scrape_read_ms": round(first_ms, 2),
            "scrape_cached_ms": round(cached_ms, 4),
            "scrape_reread_ms": round(reread_ms, 2),
            "families": len(families),
            "eta": {
                "success_rate": found.job("eta").ingestion.success_rate,
                "scheduler_delay_mean_s": found.job("eta").scheduler.mean,
                "fallback_rates": found.job("eta").answers.fallback_rates,
            },
        },
    )


def _runtime(args, tag: str) -> Runtime:
    home = args.home / tag
    url = args.database_url
    if url and url.startswith("postgresql"):
        from sqlalchemy import create_engine

        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        admin.dispose()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"
    settings = Settings(home=home, database_url=url or f"sqlite:///{home / 'store.db'}")
    rt = Runtime(settings=settings, clock=FrozenClock(END))
    migrate.upgrade(rt.store)
    return rt


def generate(rt: Runtime, args) -> dict:
    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    n = args.predictions
    jobs = rng.choice(list(JOB_SHARES), size=n, p=list(JOB_SHARES.values()))
    fallback = rng.random(n) < 0.2
    reasons = np.where(fallback, rng.choice(REASONS, size=n), None)
    logged = pd.Timestamp(END) - pd.to_timedelta(rng.integers(0, DAYS * 86400, n), unit="s")
    log = pd.DataFrame(
        {
            "logged_at": logged.floor("s"),
            "request_id": np.char.add("r", np.arange(n).astype(str)),
            "endpoint": np.where(jobs == "eta", "eta", "dossier"),
            "job": jobs,
            "entity_id": np.char.add("E", rng.integers(0, 100_000, n).astype(str)),
            "prediction": rng.random(n),
            "source": np.where(fallback, "heuristic", "model"),
            "reason": reasons,
            "latency_ms": rng.random(n) * 5,
        }
    )
    # Appended as answers happen: ids in time order, as in production.
    log = log.sort_values("logged_at", kind="stable", ignore_index=True)
    runs, snapshots = [], []
    for job, every in EVERY.items():
        count = int(timedelta(days=DAYS) / every)
        back = np.arange(count, 0, -1) * every.total_seconds()
        scheduled = pd.Timestamp(END) - pd.to_timedelta(back, unit="s")
        delay = pd.to_timedelta(rng.integers(1, 90, count), unit="s")
        failed = rng.random(count) < 0.02
        duration = rng.gamma(4.0, 0.5 if job == "eta" else 20.0, count)
        frame = pd.DataFrame(
            {
                "job": job,
                "mode": "refresh",
                "as_of_start": scheduled,
                "as_of_end": scheduled,
                "scheduled_for": scheduled,
                "started_at": scheduled + delay,
                "finished_at": scheduled + delay + pd.to_timedelta(duration.round(), unit="s"),
                "duration_seconds": duration,
                "status": np.where(failed, "failed", "succeeded"),
                "rows_read": np.where(failed, 0, 200_000 if job != "eta" else 40),
                "rows_written": np.where(failed, 0, 200_000 if job != "eta" else 40),
                "rows_rejected": 0,
                "values_written": 0,
                "snapshots_skipped": 0,
                "error": np.where(failed, "warehouse timeout", None),
            }
        )
        runs.append(frame)
        snapshots.append(
            pd.DataFrame(
                {
                    "job": job,
                    "as_of": scheduled[~failed],
                    "run_id": 0,
                    "chunk_id": 0,
                    "entity_count": 40 if job == "eta" else 200_000,
                }
            )
        )
    with rt.store.begin() as conn:
        for table in (prediction_log, ingestion_runs, feature_snapshots):
            conn.execute(table.delete())
        insert_frame(conn, prediction_log, log)
        insert_frame(conn, ingestion_runs, pd.concat(runs, ignore_index=True))
        insert_frame(conn, feature_snapshots, pd.concat(snapshots, ignore_index=True))
    if rt.store.dialect.name == "postgresql":
        with rt.store.connect() as conn:
            conn.exec_driver_sql("ANALYZE ml_prediction_log")
            conn.commit()
    seconds = time.perf_counter() - began
    print(f"generated {n:,} predictions in {seconds:.1f} s", file=sys.stderr)
    return {"seconds": round(seconds, 1)}


if __name__ == "__main__":
    main()
