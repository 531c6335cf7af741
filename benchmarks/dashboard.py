"""Monitoring dashboard: gather every panel and render the page over a month of production-like
data, the way `GET /dashboard` and `mlops monitor report` do.

    python benchmarks/dashboard.py [--database-url URL] [--customers N] [--predictions N]

Generates (once; reused while the parameters match) a warehouse from the synthetic seed, and a
store holding 30 days of: the prediction log (churn scores for the warehouse's customers, ETA
answers for its delivered deliveries), feature history (churn daily, upsell every 12 h, ETA
every 5 minutes, as immutable chunks), one ingestion run per snapshot, a daily drift check of
every feature and a daily accuracy check. On PostgreSQL everything lives in a schema of its
own (bench_dashboard). Prints the time of each panel, of drawing the figures and of the whole
page, and the page's size.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, text

from common import END, parser, percentiles, read_marker, runtime, set_marker, write
from mlops.db.schema import (
    feature_history,
    feature_snapshots,
    ingestion_runs,
    monitor_results,
    prediction_log,
)
from mlops.examples.marketplace.warehouse import customers, deliveries
from mlops.monitoring import dashboard, report
from mlops.store.codec import encode_chunk
from mlops.warehouse.bulk import insert_frame

DAYS = 30
SCHEMA = "bench_dashboard"
# Its own marker: the warehouse marker of common.runtime says what was seeded there.
DASHBOARD_MARKER = "bench_dashboard_marker"
EVERY = {"churn": timedelta(days=1), "upsell": timedelta(hours=12), "eta": timedelta(minutes=5)}
# Snapshots per history chunk, as a backfill would group them.
PER_CHUNK = {"churn": 1, "upsell": 1, "eta": 288}
REASONS = ["features_stale", "slo_exceeded", "flag_off", "drift"]
RESULT_COLUMNS = [
    "checked_at",
    "monitor",
    "job",
    "feature",
    "statistic",
    "value",
    "threshold",
    "status",
]


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(customers=100_000, days=40)
    p.add_argument("--predictions", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    args.database_url = _own_schema(args.database_url)
    rt = runtime(args, "dashboard")
    tag = f"dashboard-{args.predictions}p-{args.customers}c-v3"
    generated = None
    if read_marker(rt.store, DASHBOARD_MARKER) != tag:
        generated = generate(rt, args)
        set_marker(rt.store, tag, DASHBOARD_MARKER)

    since = timedelta(days=DAYS)
    panels: dict[str, list[float]] = {s.key: [] for s in dashboard.PANELS}
    gather_ms, render_ms, page_bytes = [], [], 0
    for _ in range(args.repeat):
        window = dashboard.window_for(rt, since)
        began = time.perf_counter()
        found = []
        for spec in dashboard.PANELS:
            t = time.perf_counter()
            found.append(dashboard._read(spec, rt, window))
            panels[spec.key].append((time.perf_counter() - t) * 1000)
        gather_ms.append((time.perf_counter() - began) * 1000)
        board = dashboard.Dashboard(rt.clock.now(), window, found)
        began = time.perf_counter()
        page = report.render(board, plotly_src=report.plotly_js_route())
        render_ms.append((time.perf_counter() - began) * 1000)
        page_bytes = len(page.encode())
    errors = {p.key: p.error for p in board.panels if p.error}
    write(
        "dashboard",
        rt,
        {
            "customers": args.customers,
            "predictions": args.predictions,
            "generation": generated,
            # The first page of a process reads every charted history chunk; later pages only
            # the chunks written since (their statistics are memoised), as in a server.
            "gather_first_ms": round(gather_ms[0], 1),
            "gather_later_ms": _summary(gather_ms[1:] or gather_ms),
            "panel_first_ms": {key: round(ms[0], 1) for key, ms in panels.items()},
            "features_later_ms": _summary(panels["features"][1:] or panels["features"]),
            "render_ms": _summary(render_ms),
            "page_bytes_service": page_bytes,
            "report_file_bytes": page_bytes + len(report.plotly_js()),
            "points": {p.key: p.points for p in board.panels},
            "errors": errors,
        },
    )


def _own_schema(url: str | None) -> str | None:
    """On PostgreSQL, a schema of this benchmark's own (other benchmarks' tables untouched)."""
    if not url or not url.startswith("postgresql"):
        return url
    from sqlalchemy import create_engine

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    admin.dispose()
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"


def _summary(ms: list[float]) -> dict:
    return percentiles(ms) if len(ms) > 1 else {"ms": round(ms[0], 2)}


def generate(rt, args) -> dict:
    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    now = pd.Timestamp(END)
    with rt.warehouse.connect() as conn:
        ids = np.array(conn.execute(select(customers.c.customer_id)).scalars().all())
        done = pd.DataFrame(
            conn.execute(
                select(
                    deliveries.c.delivery_id, deliveries.c.zone, deliveries.c.dispatched_at
                ).where(
                    deliveries.c.delivered_at.is_not(None),
                    deliveries.c.dispatched_at >= END - timedelta(days=DAYS),
                )
            ).all(),
            columns=["delivery_id", "zone", "dispatched_at"],
        )
    zones = sorted(done["zone"].unique())
    with rt.store.begin() as conn:
        for table in (prediction_log, feature_history, feature_snapshots, ingestion_runs):
            conn.execute(table.delete())
        conn.execute(monitor_results.delete())
        insert_frame(conn, prediction_log, _predictions(rng, args.predictions, ids, done, now))
        runs = _history(conn, rt.repo, rng, now, ids, zones)
        insert_frame(conn, ingestion_runs, runs)
        insert_frame(conn, monitor_results, _results(rt.repo, rng, now))
    if rt.store.dialect.name == "postgresql":
        with rt.store.connect() as conn:
            for table in ("ml_prediction_log", "ml_feature_snapshots", "ml_monitor_results"):
                conn.exec_driver_sql(f"ANALYZE {table}")
            conn.commit()
    seconds = time.perf_counter() - began
    print(f"generated the store in {seconds:.1f} s", file=sys.stderr)
    return {"seconds": round(seconds, 1)}


def _predictions(rng, n, ids, done, now) -> pd.DataFrame:
    jobs = rng.choice(["churn", "upsell", "eta"], size=n, p=[0.4, 0.3, 0.3])
    fallback = rng.random(n) < 0.1
    logged = now - pd.to_timedelta(rng.integers(0, DAYS * 86400, n), unit="s")
    entity = ids[rng.integers(0, len(ids), n)].astype(object)
    subject = np.full(n, None, dtype=object)
    eta = np.flatnonzero(jobs == "eta")
    picked = done.iloc[rng.integers(0, len(done), len(eta))]
    entity[eta] = picked["zone"].to_numpy()
    subject[eta] = picked["delivery_id"].to_numpy()
    logged = logged.to_numpy().copy()
    logged[eta] = pd.to_datetime(picked["dispatched_at"]).to_numpy()
    prediction = np.where(jobs == "eta", rng.gamma(6, 5, n), rng.beta(2, 5, n))
    frame = pd.DataFrame(
        {
            "logged_at": pd.to_datetime(logged).floor("s"),
            "request_id": np.char.add("r", np.arange(n).astype(str)),
            "endpoint": np.where(jobs == "eta", "eta", "dossier"),
            "job": jobs,
            "entity_id": entity,
            "subject_id": subject,
            "prediction": prediction,
            "source": np.where(fallback, "heuristic", "model"),
            "reason": np.where(fallback, rng.choice(REASONS, size=n), None),
            "latency_ms": rng.random(n) * 5,
        }
    )
    return frame.sort_values("logged_at", kind="stable", ignore_index=True)


def _history(conn, repo, rng, now, ids, zones) -> pd.DataFrame:
    runs, run_id = [], 0
    for name, every in EVERY.items():
        job = repo.job(name)
        entities = np.array(zones if job.entity == "zone" else ids, dtype=object)
        count = int(timedelta(days=DAYS) / every)
        points = [now - every * k for k in range(count, -1, -1)]
        for first in range(0, len(points), PER_CHUNK[name]):
            group = points[first : first + PER_CHUNK[name]]
            run_id += 1
            rows = len(entities) * len(group)
            # One frame built whole (a concat of per-snapshot frames would encode as one Arrow
            # batch per snapshot, unlike what ingestion writes).
            frame = pd.DataFrame(
                {
                    "as_of": np.repeat(pd.DatetimeIndex(group).to_numpy(), len(entities)),
                    "entity_id": np.tile(entities, len(group)),
                    **{f.name: _values(rng, f, rows) for f in job.features},
                }
            )
            chunk_id = conn.execute(
                insert(feature_history).returning(feature_history.c.chunk_id),
                {
                    "job": name,
                    "run_id": run_id,
                    "min_as_of": group[0].to_pydatetime(),
                    "max_as_of": group[-1].to_pydatetime(),
                    "row_count": len(frame),
                    "feature_names": ",".join(job.feature_names),
                    "payload": encode_chunk(frame),
                    "created_at": group[-1].to_pydatetime(),
                },
            ).scalar_one()
            conn.execute(
                insert(feature_snapshots),
                [
                    {
                        "job": name,
                        "as_of": t.to_pydatetime(),
                        "run_id": run_id,
                        "chunk_id": chunk_id,
                        "entity_count": len(entities),
                    }
                    for t in group
                ],
            )
            duration = float(rng.gamma(4.0, 0.5 if name == "eta" else 20.0))
            runs.append(
                {
                    "job": name,
                    "mode": "refresh" if len(group) == 1 else "backfill",
                    "as_of_start": group[0],
                    "as_of_end": group[-1],
                    "scheduled_for": group[-1],
                    "started_at": group[-1],
                    "finished_at": group[-1] + pd.Timedelta(seconds=round(duration)),
                    "duration_seconds": duration,
                    "status": "succeeded",
                    "rows_read": len(frame),
                    "rows_written": len(frame),
                    "rows_rejected": 0,
                    "values_written": len(frame) * len(job.features),
                    "snapshots_skipped": 0,
                    "error": None,
                }
            )
    return pd.DataFrame(runs)


def _values(rng, feature, rows: int) -> np.ndarray:
    """Values shaped like the real ones (counts, rates with few decimals), so that chunks
    compress as ingested ones do; random doubles would not compress at all."""
    if feature.dtype == "category":
        return rng.choice(list(feature.allowed_values or ("a", "b")), rows)
    if feature.dtype == "int":
        return rng.poisson(6.0, rows)
    return np.round(rng.gamma(2.0, 5.0, rows), 2)


def _results(repo, rng, now) -> pd.DataFrame:
    rows = []
    for day in range(DAYS):
        at = now - pd.Timedelta(days=day)
        for job in repo.jobs.values():
            for f in job.features:
                psi = float(rng.gamma(1.0, 0.06))
                status = "alert" if psi > f.psi_alert else "warn" if psi > f.psi_warn else "ok"
                rows.append((at, "drift", job.name, f.name, "psi", psi, f.psi_alert, status))
        for job, statistic in (("churn", "roc_auc"), ("upsell", "roc_auc"), ("eta", "mae")):
            for period in range(90):
                start = (at - pd.Timedelta(days=period + 1)).strftime("%Y-%m-%d")
                for source in ("model", "heuristic"):
                    value = float(rng.normal(0.75, 0.03) if statistic == "roc_auc" else 6.0)
                    feature = f"day:{start}:{source}"
                    rows.append((at, "accuracy", job, feature, statistic, value, 0.7, "ok"))
    frame = pd.DataFrame(
        rows,
        columns=RESULT_COLUMNS,
    )
    return frame.assign(sample_size=500, detail='{"complete": true}')


if __name__ == "__main__":
    main()
