"""Charts of the distribution panels: feature snapshots against the champion's reference,
one subplot per job and feature, and the mean score per cohort over time, one subplot per job
and cohort kind."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mlops.monitoring.chart_style import TIME_AXIS, add_band, add_line, apply_layout, time_range
from mlops.monitoring.panel import Panel, Window

LIVE, REFERENCE = "#1f77b4", "#7f7f7f"


def features_chart(panel: Panel, window: Window) -> go.Figure:
    live, ref = panel.frames["snapshots"], panel.frames["reference"]
    charted = panel.charted
    jobs = list(charted)
    cols = max((len(names) for names in charted.values()), default=1)
    titles = [f"{job} · {name}" for job in jobs for name in charted[job]]
    fig = make_subplots(
        rows=len(jobs),
        cols=cols,
        subplot_titles=titles,
        vertical_spacing=0.1,
        horizontal_spacing=0.06,
    )
    shown: set[str] = set()
    for r, job in enumerate(jobs, start=1):
        for c, name in enumerate(charted[job], start=1):
            at = {"row": r, "col": c}
            rows = ref[(ref["job"] == job) & (ref["feature"] == name)]
            if len(rows):
                row = rows.iloc[0]
                xs = [window.start, window.end]
                add_band(
                    fig, xs, [row.p10] * 2, [row.p90] * 2, REFERENCE, "reference p10-p90", shown, at
                )
                add_line(
                    fig,
                    xs,
                    [row["mean"]] * 2,
                    "reference mean",
                    shown,
                    at,
                    line={"color": REFERENCE, "dash": "dash"},
                    hovertemplate="reference mean %{y:.3g}<extra></extra>",
                )
            part = live[(live["job"] == job) & (live["feature"] == name)]
            if len(part):
                add_band(
                    fig, part["as_of"], part["p10"], part["p90"], LIVE, "live p10-p90", shown, at
                )
                add_line(
                    fig,
                    part["as_of"],
                    part["mean"],
                    "live mean",
                    shown,
                    at,
                    mode="lines+markers" if len(part) < 60 else "lines",
                    line={"color": LIVE},
                    marker={"size": 5},
                    customdata=part[["count"]],
                    hovertemplate="%{x|%Y-%m-%d %H:%M}<br>mean %{y:.3g}"
                    "<br>%{customdata[0]} values<extra></extra>",
                )
    fig.update_xaxes(range=time_range(window))
    return apply_layout(
        fig,
        250 * len(jobs) + 60,
        legend={"orientation": "h", "y": -0.06, "x": 0},
        margin={"l": 56, "r": 16, "t": 36, "b": 40},
    )


def cohorts_chart(panel: Panel, window: Window) -> go.Figure:
    scores = panel.frames["scores"]
    if "job" not in scores.columns:  # one job's frame, as cohort_scores makes it
        scores = scores.assign(job="")
    charts = list(dict.fromkeys(zip(scores["job"], scores["cohort_kind"], strict=True)))
    titles = [f"{job} by {kind}" if job else f"by {kind}" for job, kind in charts]
    fig = make_subplots(
        rows=1, cols=max(len(charts), 1), subplot_titles=titles, horizontal_spacing=0.1
    )
    palette = qualitative.Plotly
    for c, (job, kind) in enumerate(charts, start=1):
        part = scores[(scores["job"] == job) & (scores["cohort_kind"] == kind)]
        for i, (cohort, rows) in enumerate(part.groupby("cohort", sort=True)):
            fig.add_scatter(
                x=rows["bucket"],
                y=rows["mean_score"],
                mode="lines+markers",
                name=f"{job} {kind}: {cohort}".strip(),
                line={"color": palette[i % len(palette)], "dash": "solid" if c == 1 else "dot"},
                customdata=rows[["predictions"]],
                hovertemplate=f"{html.escape(str(cohort))}<br>%{{x|%Y-%m-%d %H:%M}}"
                "<br>mean score %{y:.3f}<br>%{customdata[0]} predictions<extra></extra>",
                row=1,
                col=c,
            )
        first = c == 1 or charts[c - 2][0] != job
        title = f"mean {job} score".replace("  ", " ") if first else None
        fig.update_yaxes(title_text=title, row=1, col=c)
        # The window, not the points' own span: one bucket alone got an axis of milliseconds
        # around it ("23:59:59.999 ... 00:00:00.001").
        fig.update_xaxes(title_text=TIME_AXIS, range=time_range(window), row=1, col=c)
    fig.update_yaxes(rangemode="tozero")
    return apply_layout(fig, 380)
