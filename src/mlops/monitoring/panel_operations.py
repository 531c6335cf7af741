"""The dashboard's operational panels: ingestion runs, feature freshness against TTL and
fallback rates by reason, counted the way ``mlops monitor ops`` and /metrics count them."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select

from mlops.db.schema import ingestion_runs, prediction_log
from mlops.monitoring.panel import Panel, Window
from mlops.monitoring.panel_sql import bucket_of, read_frame
from mlops.runtime import Runtime

MAX_RUNS = 5_000


# --- ingestion and freshness -----------------------------------------------------------------


def read_ingestion(rt: Runtime, window: Window, panel: Panel) -> None:
    runs = ingestion_runs
    stmt = (
        select(
            runs.c.run_id,
            runs.c.job,
            runs.c.mode,
            runs.c.status,
            runs.c.started_at,
            runs.c.duration_seconds,
            runs.c.rows_read,
            runs.c.rows_written,
            runs.c.rows_rejected,
            runs.c.error,
        )
        .where(runs.c.started_at >= window.start, runs.c.started_at <= window.end)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(MAX_RUNS)
    )
    frame = read_frame(rt.store, stmt, times=("started_at",)).iloc[::-1].reset_index(drop=True)
    if frame.empty:
        panel.notes.append("no ingestion runs in the window (run `mlops ingest all`)")
    elif len(frame) == MAX_RUNS:
        panel.notes.append(f"the latest {MAX_RUNS} runs")
    panel.frames = {"runs": frame}


def read_freshness(rt: Runtime, window: Window, panel: Panel) -> None:
    from mlops.monitoring import ops

    rows = []
    # Freshness is "now" whatever the window.
    for job, fresh in ops.freshness(rt).items():
        if fresh.newest is None:
            panel.notes.append(f"{job}: never ingested (run `mlops ingest {job}`)")
        rows.append(
            {
                "job": job,
                "latest_as_of": fresh.newest,
                "age_seconds": fresh.age_seconds,
                "ttl_seconds": fresh.ttl_seconds,
                "stale": fresh.stale,
            }
        )
    panel.frames = {"freshness": pd.DataFrame(rows)}


# --- fallback rates --------------------------------------------------------------------------


def read_fallbacks(rt: Runtime, window: Window, panel: Panel) -> None:
    lg = prediction_log
    b = bucket_of(lg.c.logged_at, window)
    stmt = (
        select(lg.c.job, b.label("bucket"), lg.c.source, lg.c.reason, func.count().label("answers"))
        .where(lg.c.logged_at >= window.start, lg.c.logged_at <= window.end)
        .group_by(lg.c.job, b, lg.c.source, lg.c.reason)
    )
    counts = read_frame(rt.store, stmt)
    if counts.empty:
        panel.notes.append("no predictions logged in the window")
    panel.frames = {"rates": fallback_rates(counts)}


def fallback_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """Share of a job's answers in each bucket that did not come from the model, per reason,
    from answer counts per (job, bucket, source, reason); counted by ``ops.Answers``, as
    ``mlops monitor ops`` and /metrics count them."""
    from mlops.monitoring.ops import Answers

    columns = ["job", "bucket", "reason", "fallbacks", "answers", "rate"]
    reasons = counts["reason"].astype(object).where(counts["reason"].notna(), None)
    # Plain tuples: a pandas group per bucket cost ~100 ms on three days per hour.
    buckets: dict[tuple, dict[tuple[str, str | None], int]] = {}
    for job, bucket, source, reason, n in zip(
        counts["job"], counts["bucket"], counts["source"], reasons, counts["answers"], strict=True
    ):
        buckets.setdefault((job, bucket), {})[(source, reason)] = int(n)
    rows = []
    for (job, bucket), by_kind in buckets.items():
        found = Answers(by_kind)
        for reason, n in found.fallbacks.items():
            rows.append([job, bucket, reason, n, found.total, n / found.total])
    out = pd.DataFrame(rows, columns=columns)
    out["bucket"] = _times(out["bucket"])
    return out.sort_values(["job", "reason", "bucket"], ignore_index=True)


def _times(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), format="%Y-%m-%d %H:%M:%S")
