"""The dashboard's distribution panels: key features of the ingested snapshots against the
champion's training reference, and the score served per cohort of each job that declares its
cohorts. Both read large tables (feature history chunks, the prediction log), so they sample
and memoise."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from mlops.db.schema import feature_history, feature_snapshots, prediction_log
from mlops.errors import NotReadyError
from mlops.monitoring.panel import Panel, Window
from mlops.monitoring.panel_sql import read_frame
from mlops.runtime import Runtime
from mlops.serving.memo import Memo
from mlops.specs.features import JobSpec

QUANTILES = (0.1, 0.5, 0.9)
# Cohorts beyond the largest few are pooled as "other": more lines than this are unreadable.
MAX_COHORTS = 8
# Predictions of a job read for the cohort chart at most (a sample when there are more).
COHORT_SAMPLE = 100_000
# Snapshots charted per job: spread over the window when there are more (a job may have one
# every 5 minutes, or one a day of millions of entities).
MAX_SNAPSHOTS = 40


# --- feature distributions against the reference ---------------------------------------------


def read_features(rt: Runtime, window: Window, panel: Panel) -> None:
    from mlops.training import tracking_artifacts

    stats, refs = [], []
    for job in rt.repo.jobs.values():
        job_name, names = job.name, job.dashboard_features
        panel.charted[job_name] = names
        live = _live_stats(rt.store, job, names, window)
        if live.empty:
            panel.notes.append(
                f"{job_name}: no feature snapshots in the window (run `mlops ingest {job_name}`)"
            )
        stats.append(live.assign(job=job_name))
        try:
            reference = tracking_artifacts.reference_for(rt.settings, job_name, "champion")
        except Exception as exc:  # no registry, no champion, no artifact: chart without it
            reason = getattr(exc, "message", None) or str(exc)
            panel.notes.append(f"{job_name}: no champion reference ({reason[:160]})")
        else:
            refs.append(reference_stats(reference, names).assign(job=job_name))
    panel.frames = {
        "snapshots": pd.concat(stats, ignore_index=True),
        "reference": pd.concat(refs, ignore_index=True) if refs else _reference_frame([]),
    }


def _live_stats(engine: Engine, job: JobSpec, names: tuple[str, ...], window: Window):
    """Statistics of up to MAX_SNAPSHOTS snapshots spread over the window, read a history
    chunk at a time (a month of daily snapshots of every entity is millions of rows)."""
    snap = feature_snapshots
    with engine.connect() as conn:
        points = conn.execute(
            select(snap.c.as_of, snap.c.chunk_id, snap.c.run_id)
            .where(
                snap.c.job == job.name,
                snap.c.as_of >= window.start,
                snap.c.as_of <= window.end,
                snap.c.entity_count > 0,
            )
            .order_by(snap.c.as_of)
        ).all()
        wanted: dict[tuple, list[datetime]] = {}
        for as_of, chunk_id, run_id in spread(points, MAX_SNAPSHOTS):
            wanted.setdefault((chunk_id, run_id), []).append(as_of)
        rows = []
        for (chunk_id, run_id), times in wanted.items():
            key = (str(engine.url), chunk_id, run_id, tuple(times), tuple(names))
            rows += _CHUNK_STATS.get(
                key, lambda c=chunk_id, t=times: chunk_stats(_payload(conn, c), t, names)
            )
    frame = pd.DataFrame(rows, columns=["as_of", "feature", "mean", "p10", "p50", "p90", "count"])
    return frame.sort_values(["feature", "as_of"], ignore_index=True)


def _payload(conn, chunk_id: int) -> bytes:
    fh = feature_history
    return conn.execute(select(fh.c.payload).where(fh.c.chunk_id == chunk_id)).scalar_one()


# History chunks are immutable once written: a chunk's statistics, once computed, hold for as
# long as it exists, so a server's next page reads only the chunks written since.
_CHUNK_STATS: Memo[list[dict]] = Memo(2_048)


def chunk_stats(payload: bytes, times: list[datetime], names) -> list[dict]:
    """Per snapshot of a history chunk (one of ``times``) and numeric feature: mean, the
    p10/p50/p90 band and the count of non-null values."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc

    buffer = pa.py_buffer(payload)
    schema = ipc.open_stream(buffer).schema
    wanted = [i for i, name in enumerate(schema.names) if name == "as_of" or name in names]
    # Only the charted columns are decompressed, without Arrow's thread pool: on a busy
    # machine (the page is read while serving) that decodes a chunk several times faster.
    options = ipc.IpcReadOptions(use_threads=False, included_fields=wanted)
    table = ipc.open_stream(buffer, options=options).read_all()
    as_of = table.column("as_of").to_numpy().astype("datetime64[s]")
    columns = {}
    for name in names:
        if name not in table.column_names:
            continue  # a feature added after this chunk was written
        kind = table.schema.field(name).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            # Nulls become NaN, dropped below.
            column = pc.cast(table.column(name), pa.float64())
            columns[name] = column.to_numpy(zero_copy_only=False)
    rows = []
    for t in times:
        mask = as_of == np.datetime64(t, "s")
        for name, values in columns.items():
            v = values[mask]
            v = v[~np.isnan(v)]
            if not len(v):
                continue
            q = np.quantile(v, QUANTILES)
            rows.append(
                {
                    "as_of": pd.Timestamp(t),
                    "feature": name,
                    "mean": float(v.mean()),
                    "p10": float(q[0]),
                    "p50": float(q[1]),
                    "p90": float(q[2]),
                    "count": len(v),
                }
            )
    return rows


def spread(items: list, limit: int) -> list:
    """At most ``limit`` of the (ordered) items, evenly spaced, keeping the first and last."""
    if len(items) <= limit:
        return list(items)
    if limit == 1:
        return [items[-1]]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def reference_stats(reference: dict, names) -> pd.DataFrame:
    """The champion's training distribution of each numeric feature: mean and p10/p50/p90 (from
    the reference's fixed sample)."""
    rows = []
    for name in names:
        entry = reference.get(name) or {}
        sample = entry.get("sample") or []
        if entry.get("kind") != "numeric" or not sample:
            continue
        q = np.quantile(np.asarray(sample, dtype=float), QUANTILES)
        rows.append({"feature": name, "mean": entry["mean"], "p10": q[0], "p50": q[1], "p90": q[2]})
    return _reference_frame(rows)


def _reference_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["feature", "mean", "p10", "p50", "p90", "job"])


# --- score by cohort ------------------------------------------------------------------------


def read_cohorts(rt: Runtime, window: Window, panel: Panel) -> None:
    """The mean score served per bucket and cohort of every job that declares cohorts."""
    parts = []
    for job in rt.repo.jobs.values():
        if job.cohorts is not None:
            parts.append(_job_cohorts(rt, job, window, panel))
    if not parts:
        panel.notes.append("no job declares cohorts (cohorts: in its job file)")
    scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_SCORE_COLUMNS)
    panel.frames = {"scores": scores}


def _job_cohorts(rt: Runtime, job: JobSpec, window: Window, panel: Panel) -> pd.DataFrame:
    from mlops.warehouse import views

    lg = prediction_log
    logged = (lg.c.job == job.name, lg.c.logged_at >= window.start, lg.c.logged_at <= window.end)
    with rt.store.connect() as conn:
        total = conn.execute(select(func.count()).where(*logged)).scalar_one()
    if not total:
        panel.notes.append(f"no {job.name} predictions logged in the window")
        return pd.DataFrame(columns=_SCORE_COLUMNS)
    # A month of scores is millions of rows; a systematic sample by id (the log's order) keeps
    # hundreds per cohort and day.
    step = -(-total // COHORT_SAMPLE)
    stmt = select(lg.c.logged_at, lg.c.entity_id, lg.c.prediction).where(*logged)
    if step > 1:
        stmt = stmt.where(lg.c.prediction_id % step == 0)
        panel.notes.append(f"a 1-in-{step} sample of {total:,} {job.name} predictions")
    predictions = read_frame(rt.store, stmt, times=("logged_at",))
    # The warehouse may be another database: its small entity -> cohort map is joined here.
    with rt.warehouse.connect() as conn:
        cohort_map = views.run_query(conn, rt.repo.sql(job.cohorts), {})
    if job.entity_key not in cohort_map.columns:
        raise NotReadyError(
            f"sql/{job.cohorts}.sql does not return {job.entity_key}",
            f"a cohorts SQL returns {job.entity_key} and one column per cohort kind",
        )
    cohort_map = cohort_map.rename(columns={job.entity_key: "entity_id"})
    cohort_map["entity_id"] = cohort_map["entity_id"].astype(str)
    return cohort_scores(predictions, cohort_map, window).assign(job=job.name)


_SCORE_COLUMNS = ["job", "cohort_kind", "cohort", "bucket", "mean_score", "predictions"]


def cohort_scores(
    predictions: pd.DataFrame, cohort_map: pd.DataFrame, window: Window
) -> pd.DataFrame:
    """Mean score per bucket and cohort (each column of ``cohort_map`` but ``entity_id``) of
    logged predictions (logged_at, entity_id, prediction). Entities the map does not know are
    'unknown'; beyond the largest cohorts, 'other'."""
    columns = [c for c in _SCORE_COLUMNS if c != "job"]
    if predictions.empty:
        return pd.DataFrame(columns=columns)
    joined = predictions.merge(cohort_map, on="entity_id", how="left")
    bucket = joined["logged_at"].dt.floor(window.freq).rename("bucket")
    out = []
    for kind in [c for c in cohort_map.columns if c != "entity_id"]:
        cohort = joined[kind].fillna("unknown").astype(str)
        sizes = cohort.value_counts()
        if len(sizes) > MAX_COHORTS + 1:
            cohort = cohort.where(cohort.isin(sizes.index[:MAX_COHORTS]), "other")
        grouped = joined["prediction"].groupby([cohort.rename("cohort"), bucket])
        part = grouped.agg(mean_score="mean", predictions="size").reset_index()
        out.append(part.assign(cohort_kind=kind)[columns])
    frame = pd.concat(out, ignore_index=True)
    return frame.sort_values(["cohort_kind", "cohort", "bucket"], ignore_index=True)
