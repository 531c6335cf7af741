"""Ingestion throughput: feature values written per second, view to committed latest + history.

    python benchmarks/ingest.py                      # SQLite, 200,000 customers
    python benchmarks/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Also times the ETA backfill of 120 days of 5-minute snapshots (34,560 as_of points) on a
quickstart-sized warehouse (--eta-customers).
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from common import END, parser, reset_store, runtime, write
from mlops.store import ingest


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--eta-customers", type=int, default=5_000)
    p.add_argument("--eta-days", type=int, default=120)
    args = p.parse_args()
    rt = runtime(args, "ingest")
    reset_store(rt)
    figures: dict = {"customers": args.customers}
    for job in ("churn", "upsell"):
        r = ingest.refresh(rt, job)
        figures[job] = {
            "rows": r.rows_written,
            "values": r.values_written,
            "seconds": round(r.seconds, 3),
            "values_per_second": round(r.values_per_second),
        }
    figures["churn_store_write"] = _store_write(rt)
    eta_args = argparse.Namespace(**{**vars(args), "customers": args.eta_customers})
    eta_rt = runtime(eta_args, "ingest")
    reset_store(eta_rt)
    r = ingest.backfill(
        eta_rt,
        "eta",
        start=END - timedelta(days=args.eta_days),
        end=END,
        every=timedelta(minutes=5),
    )
    figures["eta_backfill"] = {
        "customers": args.eta_customers,
        "as_of_points": r.points,
        "rows": r.rows_written,
        "values": r.values_written,
        "seconds": round(r.seconds, 2),
        "values_per_second": round(r.values_per_second),
    }
    write("ingest", rt, figures)


def _store_write(rt) -> dict:
    """The write path alone (validated rows -> committed latest + history), as Feast's
    materialize is measured: it starts from computed feature rows too."""
    from mlops.store import runs, writes
    from mlops.store.validate import validate
    from mlops.warehouse import views

    job = rt.repo.job("churn")
    point = END - timedelta(hours=1)
    with rt.warehouse.connect() as conn:
        view_began = time.perf_counter()
        frame = views.compute(conn, rt.repo, job, [point])
        view_seconds = time.perf_counter() - view_began
    good = validate(job, frame).good
    run_id = runs.start_run(
        rt.store,
        job="churn",
        mode="refresh",
        started_at=END,
        as_of_start=point,
        as_of_end=point,
        scheduled_for=None,
    )
    began = time.perf_counter()
    with rt.store.begin() as conn:
        writes.write_chunk(conn, job, run_id, [point], good, END)
    seconds = time.perf_counter() - began
    values = len(good) * len(job.features)
    return {
        "view_seconds": round(view_seconds, 3),
        "values": values,
        "seconds": round(seconds, 3),
        "values_per_second": round(values / seconds),
    }


if __name__ == "__main__":
    main()
