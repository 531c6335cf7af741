"""The dashboard's panels on what the monitors found: drift status per feature, accuracy of
model against heuristic per period, and the residuals of every regression job, read from the
monitors' own results (and the accuracy monitor's join of answers with outcomes) rather than
recomputed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import case, func, select

from mlops.db.schema import monitor_results
from mlops.monitoring.panel import Panel, Window
from mlops.monitoring.panel_sql import read_frame
from mlops.runtime import Runtime

# The heatmap's columns: the latest drift checks in the window.
MAX_DRIFT_CHECKS = 60
RESIDUAL_BINS = 40
STATUS_RANK = {"insufficient": 0, "ok": 1, "warn": 2, "alert": 3}
STATUS_BY_RANK = {rank: status for status, rank in STATUS_RANK.items()}


# --- drift status ----------------------------------------------------------------------------


def read_drift(rt: Runtime, window: Window, panel: Panel) -> None:
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
    frame = read_frame(rt.store, stmt, times=("checked_at",))
    frame["status"] = frame["rank"].map(STATUS_BY_RANK)
    panel.frames = {"status": frame[_DRIFT_COLUMNS]}


_DRIFT_COLUMNS = ["job", "feature", "checked_at", "rank", "status", "psi", "sample_size"]


def read_drift_features(rt: Runtime, window: Window, panel: Panel) -> None:
    """Per job, its latest drift check in the window: each feature's live distribution against
    the champion's reference over the bins the check's PSI compared (in the check's detail)."""
    r = monitor_results
    latest = (
        select(r.c.job, func.max(r.c.checked_at).label("at"))
        .where(r.c.monitor == "drift", r.c.checked_at >= window.start, r.c.checked_at <= window.end)
        .group_by(r.c.job)
        .subquery()
    )
    stmt = (
        select(
            r.c.job, r.c.feature, r.c.checked_at, r.c.value, r.c.status, r.c.sample_size, r.c.detail
        )
        .join(latest, (r.c.job == latest.c.job) & (r.c.checked_at == latest.c.at))
        .where(r.c.monitor == "drift", r.c.statistic == "psi")
        .order_by(r.c.job, r.c.feature)
    )
    frame = drift_distributions(read_frame(rt.store, stmt, times=("checked_at",)))
    if frame.empty:
        panel.notes.append("no drift checks in the window (run `mlops monitor drift`)")
    panel.frames = {"bins": frame}


_BIN_COLUMNS = [
    "job",
    "feature",
    "checked_at",
    "psi",
    "status",
    "sample_size",
    "bin",
    "label",
    "reference",
    "live",
]


def drift_distributions(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per bin from drift ``psi`` result rows whose detail holds the bins (checks
    recorded before the bins were kept have none and are left out)."""
    out = []
    for row in rows.itertuples():
        try:
            bins = json.loads(str(row.detail)).get("bins")
        except (TypeError, ValueError, AttributeError):
            continue
        if not bins:
            continue
        for i, (label, ref, live) in enumerate(
            zip(bins["labels"], bins["reference"], bins["live"], strict=True)
        ):
            out.append(
                [
                    row.job,
                    row.feature,
                    row.checked_at,
                    row.value,
                    row.status,
                    row.sample_size,
                    i,
                    label,
                    ref,
                    live,
                ]
            )
    return pd.DataFrame(out, columns=_BIN_COLUMNS)


# --- accuracy and residuals of regression jobs ----------------------------------------------


def read_accuracy(rt: Runtime, window: Window, panel: Panel) -> None:
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
    frame = accuracy_trend(read_frame(rt.store, stmt, times=("checked_at",)))
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


def read_residuals(rt: Runtime, window: Window, panel: Panel) -> None:
    from mlops.monitoring import labelling

    parts: dict[str, list[pd.DataFrame]] = {"histogram": [], "over_time": []}
    for job in rt.repo.jobs.values():
        if job.task != "regression" or job.outcome is None:
            continue
        # The accuracy monitor's own join of answers with their outcomes.
        labelled = labelling.labelled(rt, job.name, since=window.start)
        if labelled.empty:
            panel.notes.append(f"no {job.name} predictions with an outcome in the window yet")
        for key, frame in residuals(labelled, window).items():
            parts[key].append(frame.assign(job=job.name))
    if not parts["histogram"]:
        panel.notes.append("no regression job declares an outcome")
    empty = residuals(pd.DataFrame(columns=["logged_at", "source", "prediction", "label"]), window)
    panel.frames = {
        key: pd.concat(frames, ignore_index=True)
        if frames
        else empty[key].assign(job=pd.Series(dtype=object))
        for key, frames in parts.items()
    }


def residuals(labelled: pd.DataFrame, window: Window) -> dict[str, pd.DataFrame]:
    """Predicted minus actual, binned per source (model, heuristic) and per bucket."""
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


# --- A/B guardrails --------------------------------------------------------------------------


def read_guardrails(rt: Runtime, window: Window, panel: Panel) -> None:
    """Each job's latest guardrail check in the window: both arms' rates, the difference with
    its interval against the margin, and the decision (from the check's own detail)."""
    r = monitor_results
    latest = (
        select(r.c.job, func.max(r.c.checked_at).label("at"))
        .where(
            r.c.monitor == "guardrail",
            r.c.checked_at >= window.start,
            r.c.checked_at <= window.end,
        )
        .group_by(r.c.job)
        .subquery()
    )
    stmt = (
        select(r.c.job, r.c.checked_at, r.c.feature, r.c.model_version, r.c.detail)
        .join(latest, (r.c.job == latest.c.job) & (r.c.checked_at == latest.c.at))
        .where(r.c.monitor == "guardrail", r.c.statistic == "difference")
    )
    rows = read_frame(rt.store, stmt, times=("checked_at",))
    frame = guardrail_rows(rows)
    if frame.empty:
        panel.notes.append("no guardrail checks in the window (run `mlops monitor guardrails`)")
    for row in frame.to_dict("records"):
        if not row["control_n"]:
            panel.notes.append(
                f"{row['job']}: no control arm (no experiment: set MLOPS_AB_TREATMENT_SHARE)"
            )
        elif row["decision"] == "insufficient":
            panel.notes.append(
                f"{row['job']}: too few outcomes to judge ({row['control_n']:,} control, "
                f"{row['treatment_n']:,} treatment; {row['min_sample']:,} per arm needed)"
            )
    panel.frames = {"latest": frame}


_GUARDRAIL_COLUMNS = [
    "job",
    "checked_at",
    "metric",
    "description",
    "higher_is_better",
    "control_rate",
    "control_n",
    "treatment_rate",
    "treatment_n",
    "difference",
    "ci_low",
    "ci_high",
    "margin",
    "p_value",
    "min_sample",
    "decision",
    "model_version",
]


def guardrail_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per job from guardrail ``difference`` result rows (their detail holds the
    check's figures, see ``guardrails._detail``)."""
    out = []
    for row in rows.itertuples():
        try:
            d = json.loads(str(row.detail))
        except (TypeError, ValueError):
            continue
        ci = d.get("ci") or [None, None]
        out.append(
            {
                "job": row.job,
                "checked_at": row.checked_at,
                "metric": row.feature,
                "description": d.get("metric") or row.feature,
                "higher_is_better": bool(d.get("higher_is_better", True)),
                "control_rate": d["control"]["rate"],
                "control_n": int(d["control"]["n"]),
                "treatment_rate": d["treatment"]["rate"],
                "treatment_n": int(d["treatment"]["n"]),
                "difference": d.get("difference"),
                "ci_low": ci[0],
                "ci_high": ci[1],
                "margin": d.get("margin"),
                "p_value": d.get("p_value"),
                "min_sample": int(d.get("min_sample") or 0),
                "decision": d.get("decision"),
                "model_version": row.model_version,
            }
        )
    return pd.DataFrame(out, columns=_GUARDRAIL_COLUMNS)
