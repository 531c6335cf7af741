"""Charts of the operational panels: ingestion runs' duration and rows, each job's freshness
as a share of its TTL, and fallback rates stacked by reason."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mlops.monitoring.chart_style import (
    STATUS_COLOURS,
    TIME_AXIS,
    apply_layout,
    jobs_in,
    time_range,
)
from mlops.monitoring.ops import span
from mlops.monitoring.panel import Panel, Window

RUN_COLOURS = {"succeeded": "#2ca02c", "failed": "#d62728", "running": "#7f7f7f"}


def ingestion_chart(panel: Panel, window: Window) -> go.Figure:
    runs = panel.frames["runs"]
    jobs = jobs_in(panel, runs["job"])
    fig = make_subplots(
        rows=2,
        cols=len(jobs),
        shared_xaxes=True,
        subplot_titles=jobs,
        vertical_spacing=0.08,
        horizontal_spacing=0.07,
    )
    shown: set[str] = set()
    for c, job in enumerate(jobs, start=1):
        part = runs[runs["job"] == job]
        for status, rows in part.groupby("status", sort=True):
            custom = rows[["run_id", "mode", "rows_read", "rows_rejected"]].assign(
                error=rows["error"].fillna("").astype(str).str.slice(0, 160).map(html.escape)
            )
            hover = (
                "run %{customdata[0]} (%{customdata[1]})<br>%{x|%Y-%m-%d %H:%M:%S}<br>"
                f"{status}<br>"
            )
            for r, column, label in (
                (1, "duration_seconds", "%{y:.2f} s"),
                (2, "rows_written", "%{y} rows written"),
            ):
                fig.add_scatter(
                    x=rows["started_at"],
                    y=rows[column],
                    mode="markers",
                    name=status,
                    legendgroup=status,
                    showlegend=status not in shown,
                    marker={"color": RUN_COLOURS.get(status, "#9467bd"), "size": 7},
                    customdata=custom,
                    hovertemplate=hover + label + "<br>%{customdata[4]}<extra></extra>",
                    row=r,
                    col=c,
                )
                shown.add(status)
        fig.update_xaxes(range=time_range(window), row=1, col=c)
        fig.update_xaxes(title_text=TIME_AXIS, range=time_range(window), row=2, col=c)
    fig.update_yaxes(title_text="duration (s)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="rows written", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(rangemode="tozero")
    return apply_layout(fig, 460)


def freshness_chart(panel: Panel, window: Window) -> go.Figure:
    frame = panel.frames["freshness"].iloc[::-1]  # first job at the top
    share = frame["age_seconds"].astype(float) / frame["ttl_seconds"] * 100
    # A job stale for days would squash the others: bars stop at 200%, the label says the truth.
    shown = share.clip(upper=200).fillna(0)
    labels = [
        "never ingested"
        if pd.isna(age)
        else f"{span(age)} old of a {span(ttl)} TTL ({age / ttl:.0%})"
        for age, ttl in zip(frame["age_seconds"], frame["ttl_seconds"], strict=True)
    ]
    colours = [STATUS_COLOURS["alert"] if s else STATUS_COLOURS["ok"] for s in frame["stale"]]
    fig = go.Figure(
        go.Bar(
            x=shown,
            y=frame["job"],
            orientation="h",
            marker={"color": colours},
            customdata=labels,
            hovertemplate="%{y}: %{customdata}<extra></extra>",
            width=0.6,
        )
    )
    for job, x, label in zip(frame["job"], shown, labels, strict=True):
        fig.add_annotation(
            x=x, y=job, text=label, showarrow=False, xanchor="left", xshift=6, font_size=12
        )
    fig.add_vline(x=100, line={"dash": "dash", "color": "#444"}, annotation_text="TTL")
    fig.update_xaxes(title_text="age of the latest snapshot (% of TTL)", range=[0, 260])
    return apply_layout(fig, 240, margin={"l": 70, "r": 24, "t": 24, "b": 48}, showlegend=False)


def fallbacks_chart(panel: Panel, window: Window) -> go.Figure:
    rates = panel.frames["rates"]
    jobs = panel.jobs
    fig = make_subplots(
        rows=1, cols=len(jobs), subplot_titles=jobs, shared_yaxes=True, horizontal_spacing=0.04
    )
    palette = qualitative.Safe
    reasons = sorted(set(rates["reason"]))
    colours = {reason: palette[i % len(palette)] for i, reason in enumerate(reasons)}
    shown: set[str] = set()
    width_ms = (3_600_000 if window.bucket == "hour" else 86_400_000) * 0.8
    for c, job in enumerate(jobs, start=1):
        part = rates[rates["job"] == job]
        for reason in reasons:
            rows = part[part["reason"] == reason]
            if rows.empty:
                continue
            fig.add_bar(
                x=rows["bucket"] + pd.Timedelta(hours=0.5 if window.bucket == "hour" else 12),
                y=rows["rate"],
                width=width_ms,
                name=reason,
                legendgroup=reason,
                showlegend=reason not in shown,
                marker={"color": colours[reason]},
                customdata=rows[["fallbacks", "answers"]],
                hovertemplate=f"{reason}<br>%{{x|%Y-%m-%d %H:%M}}<br>%{{y:.1%}} "
                "(%{customdata[0]} of %{customdata[1]} answers)<extra></extra>",
                row=1,
                col=c,
            )
            shown.add(reason)
        fig.update_xaxes(title_text=TIME_AXIS, range=time_range(window), row=1, col=c)
    fig.update_yaxes(
        title_text="share of answers", tickformat=".0%", rangemode="tozero", row=1, col=1
    )
    return apply_layout(fig, 340, barmode="stack")
