"""Point-in-time join: get_historical_features for 100,000 entity rows x 10 features.

    python benchmarks/historical.py [--database-url URL] [--customers N] [--snapshots K]

History: daily churn snapshots of every customer (customers x snapshots rows).
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pandas as pd

from common import END, parser, reset_store, runtime, write
from mlops.store import ingest
from mlops.store.historical import get_historical_features


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(customers=20_000)
    p.add_argument("--snapshots", type=int, default=30)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    rt = runtime(args, "ingest")
    reset_store(rt)
    start = END - timedelta(days=args.snapshots)
    ingest.backfill(rt, "churn", start=start, end=END)
    with rt.store.connect() as conn:
        ids = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT entity_id FROM ml_feature_values WHERE job = 'churn'"
            )
        ]
    rng = np.random.default_rng(0)
    seconds = rng.integers(0, args.snapshots * 86400, args.rows)
    rows = pd.DataFrame(
        {
            "entity_id": rng.choice(ids, args.rows),
            "event_time": pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s"),
        }
    )
    features = [f"churn:{n}" for n in rt.repo.job("churn").feature_names[:10]]
    timings = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        out = get_historical_features(rt.store, rows, features, repo=rt.repo)
        timings.append(time.perf_counter() - began)
    filled = float(out["orders_30d"].notna().mean())
    write(
        "historical",
        rt,
        {
            "entity_rows": args.rows,
            "features": len(features),
            "history_rows": len(ids) * args.snapshots,
            "median_seconds": round(float(np.median(timings)), 3),
            "best_seconds": round(min(timings), 3),
            "rows_with_values": round(filled, 4),
        },
    )


if __name__ == "__main__":
    main()
