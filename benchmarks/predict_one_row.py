"""Single-row predict latency of a churn model (the serving path), in-process, no database.

Trains on synthetic rows with the churn job's features, then times, per call: encode_row
(feature mapping -> 1 x n float64), the native booster's predict, and the whole calibrated
predict_row, for models of several sizes; the heuristic's row function for comparison.

python benchmarks/predict_one_row.py [--calls 5000] [--trees 100,300,1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=5_000)
    p.add_argument("--rows", type=int, default=20_000, help="synthetic training rows")
    p.add_argument("--trees", default="100,300,1000", help="model sizes (boosting rounds)")
    p.add_argument("--threads", default="1", help="OMP_NUM_THREADS, as serving sets it")
    args = p.parse_args()
    # OpenMP reads this once, when LightGBM loads: it must be set before the import.
    os.environ["OMP_NUM_THREADS"] = args.threads

    import json
    import platform
    from datetime import datetime

    import numpy as np
    import pandas as pd

    from common import RESULTS, percentiles
    from mlops import repository
    from mlops.training import heuristics, models_fit
    from mlops.training import models as m

    churn = repository.load(repository.bundled()).job("churn")
    rng = np.random.default_rng(0)
    frame = _churn_rows(np, pd, rng, args.rows)
    features = churn.feature_names
    categorical = [f.name for f in churn.features if f.dtype == "category"]
    rows = frame.sample(n=min(1_000, len(frame)), random_state=1).to_dict("records")

    def timed(fn) -> dict[str, float]:
        for row in rows[:200]:  # warm caches and OpenMP's thread pool
            fn(row)
        samples = []
        for i in range(args.calls):
            row = rows[i % len(rows)]
            began = time.perf_counter()
            fn(row)
            samples.append((time.perf_counter() - began) * 1000)
        return percentiles(samples)

    results = []
    for trees in (int(t) for t in args.trees.split(",")):
        model = models_fit.fit(
            "classifier",
            frame,
            features,
            categorical,
            "label",
            # No holdout: exactly ``trees`` rounds, so the size is what is measured.
            params={"min_holdout_rows": len(frame) + 1, "rounds_without_holdout": trees},
        )
        encoded = {id(r): m.encode_row(model, r) for r in rows}
        figures = {
            "trees": model.booster.num_trees(),
            "encode_row": timed(lambda r, model=model: m.encode_row(model, r)),
            "booster_predict": timed(
                lambda r, model=model, encoded=encoded: model.booster.predict(
                    encoded[id(r)], raw_score=True
                )
            ),
            "predict_row": timed(lambda r, model=model: m.predict_row(model, r)),
        }
        results.append(figures)
        print(
            f"{figures['trees']:>5} trees: predict_row p50 {figures['predict_row']['p50_ms']} ms,"
            f" p99 {figures['predict_row']['p99_ms']} ms",
            file=sys.stderr,
        )
    heuristic = timed(lambda r: heuristics.score_row(churn, r))

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "predict_one_row.json"
    payload = {
        "benchmark": "predict_one_row",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": datetime.now().isoformat(timespec="seconds"),
        "omp_num_threads": args.threads,
        "calls": args.calls,
        "features": len(features),
        "models": results,
        "heuristic_churn_risk_row": heuristic,
    }
    path.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))


def _churn_rows(np, pd, rng, n: int):
    """Churn-job features with plausible ranges and a label that depends on several of them."""
    days = rng.exponential(12.0, n)
    days[rng.random(n) < 0.08] = np.nan
    o90 = rng.poisson(8.0, n)
    o30 = rng.binomial(o90, 0.33)
    tickets = rng.poisson(0.4, n)
    plan = rng.choice(np.array(["basic", "plus", "premium"], dtype=object), n, p=[0.6, 0.3, 0.1])
    frame = pd.DataFrame(
        {
            "days_since_last_order": days,
            "orders_30d": o30,
            "orders_90d": o90,
            "order_trend": np.where(o90 > 0, o30 / np.maximum(o90 / 3, 1e-9), np.nan),
            "spend_90d": o90 * rng.uniform(7, 16, n) * 2.5,
            "avg_order_value_90d": np.where(o90 > 0, rng.uniform(15, 45, n), np.nan),
            "cancel_rate_90d": np.where(o90 > 0, rng.beta(2, 28, n), np.nan),
            "late_delivery_rate_90d": np.where(o90 > 0, rng.beta(2, 10, n), np.nan),
            "support_tickets_90d": tickets,
            "tenure_days": rng.uniform(0, 500, n),
            "plan": plan,
        }
    )
    z = -2.5 + 0.05 * np.nan_to_num(days, nan=60) + 0.9 * tickets - 0.8 * (plan == "premium")
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return frame


if __name__ == "__main__":
    main()
