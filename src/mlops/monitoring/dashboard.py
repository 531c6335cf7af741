"""What the monitoring dashboard shows, read from the store (plus the cohorts the jobs declare,
from the warehouse, and the champions' reference distributions): one ``Panel`` of small frames
per chart, aggregated in the database where the rows are many. A panel with nothing to show
yet carries a note instead of failing, and a panel that cannot be read carries the error;
``report`` draws them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlops.errors import InputError
from mlops.monitoring.panel import Panel, Window
from mlops.monitoring.panel_distributions import read_cohorts, read_features
from mlops.monitoring.panel_monitors import read_accuracy, read_drift, read_residuals
from mlops.monitoring.panel_operations import read_fallbacks, read_freshness, read_ingestion
from mlops.runtime import Runtime

log = logging.getLogger("mlops.monitoring")

DEFAULT_WINDOW = timedelta(days=30)
# Windows up to this long are charted per hour, longer ones per day.
HOURLY_UP_TO = timedelta(days=3)


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
    panel = Panel(spec.key, spec.title, spec.caption, jobs=list(rt.repo.names))
    try:
        spec.read(rt, window, panel)
    except Exception as exc:
        # One unreadable source must not take the rest of the page down during an incident.
        log.exception("dashboard panel failed", extra={"panel": spec.key})
        panel.frames, panel.error = {}, f"{type(exc).__name__}: {exc}"
    return panel


PANELS: list[PanelSpec] = [
    PanelSpec(
        "features",
        "Feature distributions against the champion's reference",
        "Per job, the mean of a few key features in each ingested snapshot (line) with its "
        "10th-90th percentile band, against the champion's training mean (dashed) and band (grey).",
        read_features,
    ),
    PanelSpec(
        "cohorts",
        "Average score by cohort",
        "Per job that declares cohorts, the mean score served (model and heuristic answers) per "
        "cohort of each kind.",
        read_cohorts,
    ),
    PanelSpec(
        "drift",
        "Drift status per feature",
        "Worst status of each feature's drift statistics at each check; hover for the PSI.",
        read_drift,
    ),
    PanelSpec(
        "accuracy",
        "Accuracy: model vs heuristic",
        "Per period, the metric the alert line (dotted) is set on: ROC-AUC, MAE of a regression; "
        "hollow markers: labels not all due yet, or too few to judge.",
        read_accuracy,
    ),
    PanelSpec(
        "residuals",
        "Residuals of regression jobs",
        "Predicted minus actual values (positive: the prediction was too high).",
        read_residuals,
    ),
    PanelSpec(
        "ingestion",
        "Ingestion runs",
        "Duration and rows written per run, coloured by status.",
        read_ingestion,
    ),
    PanelSpec(
        "freshness",
        "Feature freshness",
        "Age of each job's latest snapshot as a share of its TTL: past 100% serving falls back.",
        read_freshness,
    ),
    PanelSpec(
        "fallbacks",
        "Fallback rates by reason",
        "Share of each job's answers that came from the heuristic, by reason.",
        read_fallbacks,
    ),
]
