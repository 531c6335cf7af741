"""Ingestion throughput: feature values written per second, view to committed latest + history.

    python benchmarks/ingest.py                      # SQLite, 200,000 customers
    python benchmarks/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Also times the ETA backfill of 120 days of 5-minute snapshots (34,560 as_of points) on a
quickstart-sized warehouse (--eta-customers).
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    main()
