"""What the monitoring dashboard shows, read from the store (plus the cohorts the jobs declare,
from the warehouse, and the champions' reference distributions): one ``Panel`` of small frames
per chart, aggregated in the database where the rows are many. A panel with nothing to show
yet carries a note instead of failing, and a panel that cannot be read carries the error;
``report`` draws them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlops.errors import InputError
from mlops.monitoring.alerts import Alert, open_alerts
from mlops.monitoring.panel import Panel, Window
from mlops.monitoring.panel_distributions import read_cohorts, read_features
from mlops.monitoring.panel_monitors import (
    read_accuracy,
    read_drift,
    read_drift_features,
    read_guardrails,
    read_residuals,
)
from mlops.monitoring.panel_operations import read_fallbacks, read_freshness, read_ingestion
from mlops.runtime import Runtime

log = logging.getLogger("mlops.monitoring")

DEFAULT_WINDOW = timedelta(days=30)
# Windows up to this long are charted per hour, longer ones per day.
HOURLY_UP_TO = timedelta(days=3)


@dataclass
class Dashboard:
    """Every panel, read over one window; the version serving each job and the open alerts."""

    generated_at: datetime
    window: Window
    panels: list[Panel]
    serving: dict[str, int | None] = field(default_factory=dict)  # job -> version (None: rules)
    alerts: list[Alert] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read of the above


def describe_window(window: Window) -> str:
    """The window as a duration the CLI reads: 30d, or 36h when not whole days."""
    seconds = int((window.end - window.start).total_seconds())
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{-(-seconds // 3600)}h"


def window_for(rt: Runtime, since: timedelta = DEFAULT_WINDOW) -> Window:
    """The period ending now (``rt.clock``) that the dashboard covers."""
    if since <= timedelta(0):
        raise InputError(f"window {since} is not positive", "pass a window like 24h, 7d or 30d")
    now = rt.clock.now()
    return Window(now - since, now, "hour" if since <= HOURLY_UP_TO else "day")


def gather(
    rt: Runtime,
    *,
    since: timedelta = DEFAULT_WINDOW,
    serving: Mapping[str, int | None] | None = None,
) -> Dashboard:
    """Read every panel over the window ending now, the open alerts, and the version serving
    each job: ``serving`` as a service holds it, else the registry's champion."""
    window = window_for(rt, since)
    panels = [_read(spec, rt, window) for spec in PANELS]
    found = Dashboard(rt.clock.now(), window, panels)
    try:
        found.alerts = open_alerts(rt)
    except Exception as exc:
        log.exception("dashboard alerts failed")
        found.problems.append(f"open alerts: {type(exc).__name__}: {exc}")
    if serving is not None:
        found.serving = {job: serving.get(job) for job in rt.repo.names}
    else:
        found.serving = _champions(rt, found.problems)
    return found


def _champions(rt: Runtime, problems: list[str]) -> dict[str, int | None]:
    """Each job's champion version in the registry (None: none, the heuristic answers)."""
    from mlops.training import tracking_versions

    versions: dict[str, int | None] = {}
    for job in rt.repo.names:
        try:
            versions[job] = tracking_versions.champion_version(rt.settings, job)
        except Exception as exc:  # an unreadable registry must not take the page down
            reason = getattr(exc, "message", None) or str(exc)
            problems.append(f"{job}: registry unreadable ({reason[:160]})")
            versions[job] = None
    return versions


@dataclass(frozen=True)
class PanelSpec:
    """A panel's title and caption, the function that fills its frames, and the command
    that explains its figures in a terminal (``{window}``: the window, e.g. 30d)."""

    key: str
    title: str
    caption: str
    read: Callable[[Runtime, Window, Panel], None]
    command: str = ""


def _read(spec: PanelSpec, rt: Runtime, window: Window) -> Panel:
    panel = Panel(
        spec.key,
        spec.title,
        spec.caption,
        jobs=list(rt.repo.names),
        command=spec.command.format(window=describe_window(window)),
    )
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
        "mlops monitor drift all --window {window}",
    ),
    PanelSpec(
        "cohorts",
        "Average score by cohort",
        "Per job that declares cohorts, the mean score served (model and heuristic answers) per "
        "cohort of each kind.",
        read_cohorts,
        "mlops jobs describe <job>",
    ),
    PanelSpec(
        "drift",
        "Drift status per feature",
        "Worst status of each feature's drift statistics at each check; hover for the PSI.",
        read_drift,
        "mlops monitor drift",
    ),
    PanelSpec(
        "drift_features",
        "Drift per feature: distribution now against the reference",
        "For the feature picked (the most drifted first), the share of live values in each of "
        "the bins the latest drift check's PSI compared, against the champion's training "
        "reference.",
        read_drift_features,
        "mlops monitor drift <job>",
    ),
    PanelSpec(
        "accuracy",
        "Accuracy: model vs heuristic",
        "Per period, the metric the alert line (dotted) is set on: ROC-AUC, MAE of a regression; "
        "hollow markers: labels not all due yet, or too few to judge.",
        read_accuracy,
        "mlops monitor accuracy --since {window}",
    ),
    PanelSpec(
        "guardrails",
        "A/B guardrails: treatment vs control",
        "Per job, the latest guardrail check: each arm's rate of the job's business metric, and "
        "the treatment's difference from the control with its interval; a significant "
        "difference past the margin (red tick) trips the job to its heuristic.",
        read_guardrails,
        "mlops monitor guardrails",
    ),
    PanelSpec(
        "residuals",
        "Residuals of regression jobs",
        "Predicted minus actual values (positive: the prediction was too high).",
        read_residuals,
        "mlops monitor accuracy --since {window}",
    ),
    PanelSpec(
        "ingestion",
        "Ingestion runs",
        "Duration and rows written per run, coloured by status.",
        read_ingestion,
        "mlops monitor ops --since {window}",
    ),
    PanelSpec(
        "freshness",
        "Feature freshness",
        "Age of each job's latest snapshot as a share of its TTL: past 100% serving falls back.",
        read_freshness,
        "mlops monitor ops",
    ),
    PanelSpec(
        "fallbacks",
        "Fallback rates by reason",
        "Share of each job's answers that came from the heuristic, by reason.",
        read_fallbacks,
        "mlops monitor ops --since {window}",
    ),
]
