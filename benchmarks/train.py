"""Training time and model-vs-heuristic figures per job at a warehouse size.

    python benchmarks/train.py --customers 50000        # SQLite
    python benchmarks/train.py --customers 200000 --database-url URL

Backfills the history training needs (as quickstart does), then trains each job in
memory (dry run: nothing logged), timing the set build and the fit separately.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from common import END, parser, reset_store, runtime, write
from mlops.quickstart import DEFAULT_HISTORY
from mlops.store import ingest
from mlops.training.train import train


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(customers=50_000)
    args = p.parse_args()
    rt = runtime(args, "train")
    reset_store(rt)
    figures: dict = {"customers": args.customers}
    for job, spec in rt.repo.jobs.items():
        # As quickstart does: the repository's quickstart.history at the job's backfill spacing.
        span, every = spec.quickstart_history or DEFAULT_HISTORY, spec.default_every
        end = datetime.min + (END - datetime.min) // every * every
        began = time.perf_counter()
        backfill = ingest.backfill(
            rt, job, start=max(end - span, END - timedelta(days=args.days)), end=end, every=every
        )
        backfill_seconds = time.perf_counter() - began
        report = train(rt, job, dry_run=True, refresh=False)
        figures[job] = {
            "backfill_seconds": round(backfill_seconds, 1),
            "backfill_rows": backfill.rows_written,
            "train_seconds": round(report.seconds, 1),
            "rows_train": report.rows_train,
            "rows_valid": report.rows_valid,
            "model": {k: round(v, 4) for k, v in report.model_metrics.items()},
            "heuristic": {k: round(v, 4) for k, v in report.heuristic_metrics.items()},
        }
    write(f"train-{args.customers}", rt, figures)


if __name__ == "__main__":
    main()
