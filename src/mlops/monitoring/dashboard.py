"""What the monitoring dashboard shows, read from the store (plus the warehouse's customer
cohorts and the champions' reference distributions): one ``Panel`` of small frames per chart,
aggregated in the database where the rows are many. A panel with nothing to show yet carries a
note instead of failing, and a panel that cannot be read carries the error; ``report`` draws
them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from mlops.db.schema import (
    feature_history,
    feature_snapshots,
    ingestion_runs,
    monitor_results,
    prediction_log,
)
from mlops.errors import InputError
from mlops.runtime import Runtime
from mlops.serving.memo import Memo
from mlops.specs.features import JOBS, JobSpec

log = logging.getLogger("mlops.monitoring")

DEFAULT_WINDOW = timedelta(days=30)
# Windows up to this long are charted per hour, longer ones per day.
HOURLY_UP_TO = timedelta(days=3)
# The features charted per job: the ones a person reading the job's behaviour looks at first.
KEY_FEATURES: dict[str, tuple[str, ...]] = {
    "churn": ("days_since_last_order", "orders_90d", "spend_90d"),
    "upsell": ("impressions_90d", "acceptance_rate_90d", "avg_basket_items_90d"),
    "eta": ("avg_delivery_minutes_2h", "open_deliveries", "courier_load"),
}
QUANTILES = (0.1, 0.5, 0.9)
COHORTS = ("plan", "region")
# Cohorts beyond the largest few are pooled as "other": more lines than this are unreadable.
MAX_COHORTS = 8
# Churn predictions read for the cohort chart at most (a sample when there are more).
COHORT_SAMPLE = 100_000
# Snapshots charted per job: spread over the window when there are more (ETA has one every
# 5 minutes, churn one a day of every customer).
MAX_SNAPSHOTS = 40
# The heatmap's columns: the latest drift checks in the window.
MAX_DRIFT_CHECKS = 60
MAX_RUNS = 5_000
RESIDUAL_BINS = 40
STATUS_RANK = {"insufficient": 0, "ok": 1, "warn": 2, "alert": 3}
STATUS_BY_RANK = {rank: status for status, rank in STATUS_RANK.items()}


@dataclass(frozen=True)
class Window:
    """The period charted, ending now, and the time bucket its charts count in."""

    start: datetime
    end: datetime
    bucket: str  # "hour" or "day"

    @property
    def freq(self) -> str:
        """The bucket as a pandas frequency."""
        return "h" if self.bucket == "hour" else "D"


@dataclass
class Panel:
    """One chart's data: small frames, notes for the reader, or the error that stopped it."""

    key: str
    title: str
    caption: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def empty(self) -> bool:
        """Nothing to chart: no frame has a row."""
        return not any(len(frame) for frame in self.frames.values())

    @property
    def points(self) -> int:
        """Rows over all the frames."""
        return sum(len(frame) for frame in self.frames.values())


@dataclass
class Dashboard:
    """Every panel, read over one window."""

    generated_at: datetime
    window: Window
    panels: list[Panel]


def window_for(rt: Runtime, since: timedelta = DEFAULT_WINDOW) -> Window:
    """The period ending now (``rt.clock``) that the dashboard covers."""
    if since <= timedelta(0):
        raise InputError(f"window {since} is not positive", "pass a window like 24h, 7d or 30d")
    now = rt.clock.now()
    return Window(now - since, now, "hour" if since <= HOURLY_UP_TO else "day")


def gather(rt: Runtime, *, since: timedelta = DEFAULT_WINDOW) -> Dashboard:
    """Read every panel over the window ending now."""
    window = window_for(rt, since)
    panels = [_read(spec, rt, window) for spec in PANELS]
    return Dashboard(rt.clock.now(), window, panels)


@dataclass(frozen=True)
class PanelSpec:
    """A panel's title and caption, and the function that fills its frames."""

    key: str
    title: str
    caption: str
    read: Callable[[Runtime, Window, Panel], None]


def _read(spec: PanelSpec, rt: Runtime, window: Window) -> Panel:
    panel = Panel(spec.key, spec.title, spec.caption)
    try:
        spec.read(rt, window, panel)
    except Exception as exc:
        # One unreadable source must not take the rest of the page down during an incident.
        log.exception("dashboard panel failed", extra={"panel": spec.key})
        panel.frames, panel.error = {}, f"{type(exc).__name__}: {exc}"
    return panel


# --- time buckets, truncated in the database -------------------------------------------------


class _truncated(FunctionElement):
    """A timestamp truncated to the hour or day, as 'YYYY-MM-DD HH:00:00' text."""

    type = String()
    inherit_cache = True


class hour_of(_truncated):
    name = "hour_of"
    inherit_cache = True


class day_of(_truncated):
    name = "day_of"
    inherit_cache = True


@compiles(_truncated, "sqlite")
def _sqlite_truncated(element, compiler, **kw):
    # SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS' text (mlops.db.types): cutting the text
    # is several times cheaper than strftime over a million rows.
    column = compiler.process(element.clauses, **kw)
    if element.name == "hour_of":
        return f"substr({column}, 1, 13) || ':00:00'"
    return f"substr({column}, 1, 10) || ' 00:00:00'"


@compiles(_truncated, "postgresql")
def _pg_truncated(element, compiler, **kw):
    fmt = "YYYY-MM-DD HH24:00:00" if element.name == "hour_of" else "YYYY-MM-DD 00:00:00"
    return f"to_char({compiler.process(element.clauses, **kw)}, '{fmt}')"


def bucket_of(column, window: Window):
    """``column`` truncated to the window's bucket, computed by the database."""
    return hour_of(column) if window.bucket == "hour" else day_of(column)


def _times(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), format="%Y-%m-%d %H:%M:%S")


def _frame(engine: Engine, stmt, *, times: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a Core SELECT as a frame, taken from the driver's cursor as they are
    (SQLAlchemy's per-row processing was most of the time on a month of predictions); the
    ``times`` columns are parsed here instead."""
    with engine.connect() as conn:
        result = conn.execute(stmt)
        rows = result.cursor.fetchall()
        result.close()
    frame = pd.DataFrame.from_records(rows, columns=[c.key for c in stmt.selected_columns])
    for name in times:
        # SQLite gives text, PostgreSQL datetimes: both parse.
        frame[name] = pd.to_datetime(frame[name]).astype("datetime64[ns]")
    return frame


# --- feature distributions against the reference ---------------------------------------------


def _features(rt: Runtime, window: Window, panel: Panel) -> None:
    from mlops.training import tracking

    stats, refs = [], []
    for job_name, names in KEY_FEATURES.items():
        job = JOBS[job_name]
        live = _live_stats(rt.store, job, names, window)
        if live.empty:
            panel.notes.append(
                f"{job_name}: no feature snapshots in the window (run `mlops ingest {job_name}`)"
            )
        stats.append(live.assign(job=job_name))
        try:
            reference = tracking.reference_for(rt.settings, job_name, "champion")
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
    chunk at a time (a month of daily churn snapshots is millions of rows)."""
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


# --- churn score by cohort ---------------------------------------------------------------------


def _cohorts(rt: Runtime, window: Window, panel: Panel) -> None:
    lg = prediction_log
    churn = (lg.c.job == "churn", lg.c.logged_at >= window.start, lg.c.logged_at <= window.end)
    with rt.store.connect() as conn:
        total = conn.execute(select(func.count()).where(*churn)).scalar_one()
    if not total:
        panel.notes.append("no churn predictions logged in the window")
        panel.frames = {"scores": pd.DataFrame(columns=_SCORE_COLUMNS)}
        return
    # A month of scores is millions of rows; a systematic sample by id (the log's order) keeps
    # hundreds per cohort and day.
    step = -(-total // COHORT_SAMPLE)
    stmt = select(lg.c.logged_at, lg.c.entity_id, lg.c.prediction).where(*churn)
    if step > 1:
        stmt = stmt.where(lg.c.prediction_id % step == 0)
        panel.notes.append(f"a 1-in-{step} sample of {total:,} churn predictions")
    predictions = _frame(rt.store, stmt, times=("logged_at",))
    # The warehouse may be another database: its small customer -> cohort map is joined here.
    from mlops.warehouse.schema import customers

    cohort_map = _frame(
        rt.warehouse, select(customers.c.customer_id, *map(customers.c.get, COHORTS))
    )
    panel.frames = {"scores": cohort_scores(predictions, cohort_map, window)}


_SCORE_COLUMNS = ["cohort_kind", "cohort", "bucket", "mean_score", "predictions"]


def cohort_scores(
    predictions: pd.DataFrame, cohort_map: pd.DataFrame, window: Window
) -> pd.DataFrame:
    """Mean churn score per bucket and cohort (plan, region) of logged predictions (logged_at,
    entity_id, prediction). Customers the warehouse does not know are 'unknown'; beyond the
    largest cohorts, 'other'."""
    if predictions.empty:
        return pd.DataFrame(columns=_SCORE_COLUMNS)
    joined = predictions.merge(
        cohort_map.rename(columns={"customer_id": "entity_id"}), on="entity_id", how="left"
    )
    bucket = joined["logged_at"].dt.floor(window.freq).rename("bucket")
    out = []
    for kind in COHORTS:
        cohort = joined[kind].fillna("unknown").astype(str)
        sizes = cohort.value_counts()
        if len(sizes) > MAX_COHORTS + 1:
            cohort = cohort.where(cohort.isin(sizes.index[:MAX_COHORTS]), "other")
        grouped = joined["prediction"].groupby([cohort.rename("cohort"), bucket])
        part = grouped.agg(mean_score="mean", predictions="size").reset_index()
        out.append(part.assign(cohort_kind=kind)[_SCORE_COLUMNS])
    frame = pd.concat(out, ignore_index=True)
    return frame.sort_values(["cohort_kind", "cohort", "bucket"], ignore_index=True)


# --- drift status ----------------------------------------------------------------------------


def _drift(rt: Runtime, window: Window, panel: Panel) -> None:
    r = monitor_results
    drift = (
        r.c.monitor == "drift",
        r.c.checked_at >= window.start,
        r.c.checked_at <= window.end,
    )
    times = select(r.c.checked_at).where(*drift).distinct()
    with rt.store.connect() as conn:
        recent = conn.execute(
            times.order_by(r.c.checked_at.desc()).limit(MAX_DRIFT_CHECKS)
        ).scalars()
        first = min(recent, default=None)
    if first is None:
        panel.notes.append("no drift checks in the window (run `mlops monitor drift`)")
        panel.frames = {"status": pd.DataFrame(columns=_DRIFT_COLUMNS)}
        return
    rank = case(STATUS_RANK, value=r.c.status, else_=0)
    stmt = (
        select(
            r.c.job,
            r.c.feature,
            r.c.checked_at,
            func.max(rank).label("rank"),
            func.max(case((r.c.statistic == "psi", r.c.value))).label("psi"),
            func.max(r.c.sample_size).label("sample_size"),
        )
        .where(r.c.monitor == "drift", r.c.checked_at >= first, r.c.checked_at <= window.end)
        .group_by(r.c.job, r.c.feature, r.c.checked_at)
        .order_by(r.c.job, r.c.feature, r.c.checked_at)
    )
    frame = _frame(rt.store, stmt, times=("checked_at",))
    frame["status"] = frame["rank"].map(STATUS_BY_RANK)
    panel.frames = {"status": frame[_DRIFT_COLUMNS]}


_DRIFT_COLUMNS = ["job", "feature", "checked_at", "rank", "status", "psi", "sample_size"]


# --- accuracy and ETA residuals --------------------------------------------------------------


def _accuracy(rt: Runtime, window: Window, panel: Panel) -> None:
    r = monitor_results
    # Each accuracy check rewrites every period it can score (feature "<by>:<period>:<source>");
    # the latest check that scored a period is its answer.
    latest = (
        select(r.c.job, r.c.feature, func.max(r.c.checked_at).label("at"))
        .where(
            r.c.monitor == "accuracy",
            r.c.checked_at >= window.start,
            r.c.checked_at <= window.end,
        )
        .group_by(r.c.job, r.c.feature)
        .subquery()
    )
    stmt = (
        select(
            r.c.checked_at,
            r.c.job,
            r.c.feature,
            r.c.statistic,
            r.c.value,
            r.c.threshold,
            r.c.status,
            r.c.sample_size,
            r.c.detail,
        )
        .join(
            latest,
            (r.c.job == latest.c.job)
            & (r.c.feature == latest.c.feature)
            & (r.c.checked_at == latest.c.at),
        )
        .where(r.c.monitor == "accuracy")
    )
    frame = accuracy_trend(_frame(rt.store, stmt, times=("checked_at",)))
    if frame.empty:
        panel.notes.append("no accuracy checks in the window (run `mlops monitor accuracy`)")
    panel.frames = {"trend": frame}


_TREND = [
    "job",
    "by",
    "period_start",
    "source",
    "statistic",
    "value",
    "threshold",
    "status",
    "sample_size",
    "complete",
    "checked_at",
]


def accuracy_trend(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy result rows as one point per job, period and source, in the period size
    (day or week) of each job's latest check; ``complete`` says whether all labels were due."""
    if rows.empty:
        return pd.DataFrame(columns=_TREND)
    parts = rows["feature"].str.split(":", n=2, expand=True).reindex(columns=range(3))
    frame = rows.assign(
        by=parts[0],
        period_start=pd.to_datetime(parts[1], format="%Y-%m-%d", errors="coerce"),
        source=parts[2],
        checked_at=pd.to_datetime(rows["checked_at"]),
        complete=rows["detail"].map(_complete),
    ).dropna(subset=["period_start", "source"])
    newest = frame.sort_values("checked_at").groupby("job")["by"].last()
    frame = frame[frame["by"] == frame["job"].map(newest)]
    return frame[_TREND].sort_values(["job", "source", "period_start"]).reset_index(drop=True)


def _complete(detail) -> bool:
    try:
        return bool(json.loads(detail).get("complete", True))
    except (TypeError, ValueError, AttributeError):
        return True


def _residuals(rt: Runtime, window: Window, panel: Panel) -> None:
    from mlops.monitoring import accuracy

    # The accuracy monitor's own join of ETA answers with delivered outcomes.
    labelled = accuracy.labelled(rt, "eta", since=window.start)
    if labelled.empty:
        panel.notes.append("no ETA predictions with a delivered outcome in the window yet")
    panel.frames = eta_residuals(labelled, window)


def eta_residuals(labelled: pd.DataFrame, window: Window) -> dict[str, pd.DataFrame]:
    """Predicted minus actual minutes, binned per source (model, heuristic) and per bucket."""
    frame = labelled.dropna(subset=["prediction", "label"])
    residual = frame["prediction"].astype(float) - frame["label"].astype(float)
    if residual.empty:
        return {
            "histogram": pd.DataFrame(columns=["source", "left", "right", "count"]),
            "over_time": pd.DataFrame(
                columns=["bucket", "source", "mean_residual", "mae", "count"]
            ),
        }
    limit = max(float(np.nanquantile(np.abs(residual), 0.99)), 1.0)
    edges = np.linspace(-limit, limit, RESIDUAL_BINS + 1)
    hist = []
    for source, part in residual.groupby(frame["source"]):
        # Beyond the 99th percentile: counted in the outer bins rather than stretching the axis.
        counts = np.histogram(part.clip(-limit, limit), bins=edges)[0]
        hist.append(
            pd.DataFrame(
                {"source": source, "left": edges[:-1], "right": edges[1:], "count": counts}
            )
        )
    bucket = pd.to_datetime(frame["logged_at"]).dt.floor(window.freq).rename("bucket")
    grouped = pd.DataFrame({"residual": residual, "abs": residual.abs()}).groupby(
        [bucket, frame["source"].rename("source")]
    )
    over_time = grouped.agg(
        mean_residual=("residual", "mean"), mae=("abs", "mean"), count=("residual", "size")
    )
    return {"histogram": pd.concat(hist, ignore_index=True), "over_time": over_time.reset_index()}


# --- ingestion and freshness -----------------------------------------------------------------


def _ingestion(rt: Runtime, window: Window, panel: Panel) -> None:
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
    frame = _frame(rt.store, stmt, times=("started_at",)).iloc[::-1].reset_index(drop=True)
    if frame.empty:
        panel.notes.append("no ingestion runs in the window (run `mlops ingest all`)")
    elif len(frame) == MAX_RUNS:
        panel.notes.append(f"the latest {MAX_RUNS} runs")
    panel.frames = {"runs": frame}


def _freshness(rt: Runtime, window: Window, panel: Panel) -> None:
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


def _fallbacks(rt: Runtime, window: Window, panel: Panel) -> None:
    lg = prediction_log
    b = bucket_of(lg.c.logged_at, window)
    stmt = (
        select(lg.c.job, b.label("bucket"), lg.c.source, lg.c.reason, func.count().label("answers"))
        .where(lg.c.logged_at >= window.start, lg.c.logged_at <= window.end)
        .group_by(lg.c.job, b, lg.c.source, lg.c.reason)
    )
    counts = _frame(rt.store, stmt)
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


PANELS: list[PanelSpec] = [
    PanelSpec(
        "features",
        "Feature distributions against the champion's reference",
        "Per job, the mean of a few key features in each ingested snapshot (line) with its "
        "10th-90th percentile band, against the champion's training mean (dashed) and band (grey).",
        _features,
    ),
    PanelSpec(
        "cohorts",
        "Average churn score by cohort",
        "Mean churn probability served (model and heuristic answers) per plan and per region.",
        _cohorts,
    ),
    PanelSpec(
        "drift",
        "Drift status per feature",
        "Worst status of each feature's drift statistics at each check; hover for the PSI.",
        _drift,
    ),
    PanelSpec(
        "accuracy",
        "Accuracy: model vs heuristic",
        "Per period, the metric the alert floor (dotted) is set on: ROC-AUC, ETA MAE in minutes; "
        "hollow markers: labels not all due yet, or too few to judge.",
        _accuracy,
    ),
    PanelSpec(
        "residuals",
        "ETA residuals",
        "Predicted minus actual delivery minutes (positive: the promise was too long).",
        _residuals,
    ),
    PanelSpec(
        "ingestion",
        "Ingestion runs",
        "Duration and rows written per run, coloured by status.",
        _ingestion,
    ),
    PanelSpec(
        "freshness",
        "Feature freshness",
        "Age of each job's latest snapshot as a share of its TTL: past 100% serving falls back.",
        _freshness,
    ),
    PanelSpec(
        "fallbacks",
        "Fallback rates by reason",
        "Share of each job's answers that came from the heuristic, by reason.",
        _fallbacks,
    ),
]
