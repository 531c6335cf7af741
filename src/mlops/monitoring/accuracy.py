"""Accuracy in production: the prediction log joined with the outcomes that reach the warehouse
later, scored with the training metrics per day or week, model and heuristic answers apart.

The labelled predictions come from ``monitoring/labelling.py``; this module scores them per
period, writes the scores to ``ml_monitor_results`` and raises the accuracy alerts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from mlops.errors import InputError
from mlops.monitoring.labelling import job_names, label_delay, labelled, require_past
from mlops.runtime import Runtime
from mlops.specs.features import Task

if TYPE_CHECKING:
    import pandas as pd

    from mlops.monitoring.alerts import Alert

DEFAULT_WINDOW = timedelta(days=90)  # covers two months of labels due a month later
PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7)}
# Per task: the statistic the alert line is set on, and every metric reported.
STATISTIC: dict[Task, str] = {"binary": "roc_auc", "regression": "mae"}
METRICS: dict[Task, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "log_loss", "brier", "positive_rate", "mean_predicted"),
    "regression": ("mae", "median_abs_error", "p90_abs_error", "within_10min", "bias"),
}
# Whether a higher statistic is worse (the alert line is a ceiling rather than a floor).
HIGHER_IS_WORSE: dict[Task, bool] = {"binary": False, "regression": True}
ALERT_SUBJECT = "model"
REPORT_COLUMNS = (
    "job",
    "period",
    "period_start",
    "period_end",
    "complete",
    "source",
    "n",
    "statistic",
    "value",
    "threshold",
    "status",
    "model_version",
)


@dataclass
class AccuracyReport:
    """One accuracy check: ``frame`` has a row per job, period and source (REPORT_COLUMNS, then
    the job's metrics); ``opened`` the accuracy alerts this check opened."""

    checked_at: datetime
    since: datetime
    by: str
    jobs: list[str]
    frame: pd.DataFrame
    written: int = 0
    opened: list[Alert] = field(default_factory=list)

    def latest(self, job: str, source: str = "model") -> dict[str, Any] | None:
        """The latest complete period's row of ``job`` and ``source``, if any."""
        rows = self.frame[
            (self.frame["job"] == job) & (self.frame["source"] == source) & self.frame["complete"]
        ]
        return None if rows.empty else {str(k): v for k, v in rows.iloc[-1].items()}


def report(
    rt: Runtime,
    job: str | None = None,
    *,
    since: datetime | None = None,
    by: str = "day",
    record: bool = True,
) -> AccuracyReport:
    """The training metrics per period (``by`` day or week, from ``since``, default 90 days
    ago, aligned to its period's start) for model and heuristic answers separately. With
    ``record``, writes one ``ml_monitor_results`` row per job, period and source and raises
    an accuracy alert when the model's latest complete period is past the job's floor."""
    import pandas as pd

    jobs = job_names(rt, job)
    if job in (None, "all"):  # every job that says how its predictions meet their outcomes
        jobs = [name for name in jobs if rt.repo.job(name).outcome is not None]
    if by not in PERIODS:
        raise InputError(f"cannot read --by {by!r}", "write --by day or --by week")
    now = rt.clock.now()
    require_past(since, now)
    first = pd.Series([pd.Timestamp(since or now - DEFAULT_WINDOW)])
    start = _period_start(first, by)[0].to_pydatetime()
    rows: list[dict[str, Any]] = []
    for name in jobs:
        rows.extend(_score(rt, name, labelled(rt, name, since=start), by, now))
    tasks = [rt.repo.job(name).task for name in jobs]
    metric_columns = list(dict.fromkeys(m for task in tasks for m in METRICS[task]))
    frame = pd.DataFrame(rows, columns=[*REPORT_COLUMNS, *metric_columns])
    result = AccuracyReport(checked_at=now, since=start, by=by, jobs=jobs, frame=frame)
    if record:
        from mlops.monitoring import results

        result.written = results.write(
            rt, [_result_row(row, by, now, METRICS[rt.repo.job(row["job"]).task]) for row in rows]
        )
        for name in jobs:
            result.opened.extend(_alert(rt, name, result.latest(name)))
    return result


# --- scoring, results and alerts -------------------------------------------------------


def _period_start(values: pd.Series, by: str) -> pd.Series:
    import pandas as pd

    day = values.dt.normalize()
    if by == "week":  # ISO weeks, from Monday
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    return day


def _score(
    rt: Runtime, job: str, frame: pd.DataFrame, by: str, now: datetime
) -> list[dict[str, Any]]:
    from mlops.monitoring import job_settings
    from mlops.training import metrics

    if frame.empty:
        return []
    spec = rt.repo.job(job)
    compute = metrics.regression if spec.task == "regression" else metrics.classification
    statistic, names = STATISTIC[spec.task], METRICS[spec.task]
    floor = job_settings.accuracy_floor(rt, job)
    higher_is_worse, delay = HIGHER_IS_WORSE[spec.task], label_delay(spec)
    frame = frame.assign(period_start=_period_start(frame["logged_at"], by))
    rows = []
    for (began, source), group in frame.groupby(["period_start", "source"], sort=True):
        start = cast("pd.Timestamp", began)  # a period_start value
        end = start + PERIODS[by]
        scores = compute(group["label"].to_numpy(), group["prediction"].to_numpy())
        value = scores[statistic]
        versions = group["model_version"].dropna()
        rows.append(
            {
                "job": job,
                "period": _period_label(start, by),
                "period_start": start.to_pydatetime(),
                "period_end": end.to_pydatetime(),
                "complete": end.to_pydatetime() + delay <= now,
                "source": source,
                "n": len(group),
                "statistic": statistic,
                "value": value,
                "threshold": floor,
                "status": _status(
                    higher_is_worse, len(group), value, floor, rt.settings.accuracy_min_sample
                ),
                "model_version": int(versions.mode().iloc[0]) if len(versions) else None,
                **{m: scores[m] for m in names},
            }
        )
    return rows


def _period_label(start: pd.Timestamp, by: str) -> str:
    if by == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{start:%Y-%m-%d}"


def _status(
    higher_is_worse: bool, n: int, value: float, floor: float | None, min_sample: int
) -> str:
    if n < min_sample or not math.isfinite(value):
        return "insufficient"
    if floor is None:
        return "ok"
    worse = value > floor if higher_is_worse else value < floor
    return "alert" if worse else "ok"


def _result_row(
    row: dict[str, Any], by: str, now: datetime, names: tuple[str, ...]
) -> dict[str, Any]:
    """An ``ml_monitor_results`` row: feature is ``<by>:<period start>:<source>``, e.g.
    ``day:2026-05-01:model`` or ``week:2026-04-27:heuristic``; detail holds every metric."""
    value = row["value"]
    detail = {
        "period": row["period"],
        "start": row["period_start"].isoformat(),
        "end": row["period_end"].isoformat(),
        "complete": bool(row["complete"]),
        "metrics": {m: _finite(row[m]) for m in names},
    }
    return {
        "checked_at": now,
        "monitor": "accuracy",
        "job": row["job"],
        "feature": f"{by}:{row['period_start']:%Y-%m-%d}:{row['source']}",
        "statistic": row["statistic"],
        "value": _finite(value),
        "threshold": row["threshold"],
        "status": row["status"],
        "sample_size": int(row["n"]),
        "model_version": row["model_version"],
        "detail": json.dumps(detail),
    }


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _alert(rt: Runtime, job: str, latest: dict[str, Any] | None) -> list[Alert]:
    """Open (or keep) the job's alert when the model's latest complete period is past the
    floor; resolve it when that period is within; leave it be when there is too little data."""
    from mlops.monitoring import alerts

    if latest is None or latest["status"] not in ("ok", "alert"):
        return []
    firing = {}
    if latest["status"] == "alert":
        task = rt.repo.job(job).task
        name = {"binary": "ROC-AUC", "regression": "MAE"}[task]
        side = "above the ceiling" if HIGHER_IS_WORSE[task] else "below the floor"
        firing[ALERT_SUBJECT] = (
            f"{job} model {name} {latest['value']:.3f} {side} {latest['threshold']:g} "
            f"on {latest['period']} ({latest['n']} labelled predictions)"
        )
    return alerts.check(rt, "accuracy", job, firing, scope=[ALERT_SUBJECT])
