"""Charts of what the monitors found: the drift status heatmap, accuracy per period against
its alert line, and each regression job's residuals: distribution and trend."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mlops.monitoring.chart_style import (
    STATUS_COLOURS,
    TIME_AXIS,
    add_line,
    apply_layout,
    jobs_in,
)
from mlops.monitoring.panel import Panel, Window
from mlops.monitoring.panel_monitors import STATUS_BY_RANK, STATUS_RANK

SOURCE_COLOURS = {"model": "#1f77b4", "heuristic": "#ff7f0e"}


def drift_chart(panel: Panel, window: Window) -> go.Figure:
    frame = panel.frames["status"].copy()
    frame["row"] = frame["job"] + " · " + frame["feature"]
    frame["column"] = frame["checked_at"].dt.strftime("%m-%d %H:%M")
    columns = list(dict.fromkeys(frame.sort_values("checked_at")["column"]))
    rows = sorted(dict.fromkeys(frame["row"]), reverse=True)  # first job at the top
    z = frame.pivot_table(index="row", columns="column", values="rank", aggfunc="max")
    z = z.reindex(index=rows, columns=columns)
    psi = frame.pivot_table(index="row", columns="column", values="psi", aggfunc="max")
    psi = psi.reindex(index=rows, columns=columns)
    text = z.apply(lambda col: col.map(STATUS_BY_RANK)).fillna("not checked")
    hover = text + "<br>PSI " + psi.map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
    n = len(STATUS_RANK)
    scale = []
    for rank, status in sorted(STATUS_BY_RANK.items()):
        scale += [[rank / n, STATUS_COLOURS[status]], [(rank + 1) / n, STATUS_COLOURS[status]]]
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(dtype=float),
            x=columns,
            y=rows,
            customdata=hover.to_numpy(dtype=object),
            hovertemplate="%{y}<br>check %{x}<br>%{customdata}<extra></extra>",
            colorscale=scale,
            zmin=-0.5,
            zmax=n - 0.5,
            xgap=1,
            ygap=1,
            colorbar={
                "tickvals": list(range(n)),
                "ticktext": [STATUS_BY_RANK[rank] for rank in range(n)],
                "title": {"text": "status"},
                "thickness": 14,
            },
        )
    )
    fig.update_xaxes(title_text="check (UTC)", type="category")
    fig.update_yaxes(type="category", automargin=True)
    return apply_layout(
        fig, max(260, 90 + 20 * len(rows)), margin={"l": 200, "r": 24, "t": 16, "b": 60}
    )


def accuracy_chart(panel: Panel, window: Window) -> go.Figure:
    trend = panel.frames["trend"]
    jobs = jobs_in(panel, trend["job"])
    fig = make_subplots(rows=1, cols=len(jobs), subplot_titles=jobs, horizontal_spacing=0.08)
    shown: set[str] = set()
    for c, job in enumerate(jobs, start=1):
        part = trend[trend["job"] == job]
        for source, rows in part.groupby("source", sort=True):
            colour = SOURCE_COLOURS.get(source, "#9467bd")
            # Hollow markers: periods whose labels are not all due yet, or too few to judge.
            settled = rows["complete"] & (rows["status"] != "insufficient")
            add_line(
                fig,
                rows["period_start"],
                rows["value"],
                source,
                shown,
                {"row": 1, "col": c},
                mode="lines+markers",
                line={"color": colour},
                marker={
                    "color": [colour if s else "#fff" for s in settled],
                    "line": {"color": colour, "width": 1.5},
                    "size": 7,
                },
                customdata=rows[["sample_size", "status", "by"]],
                hovertemplate=f"{html.escape(str(source))}<br>%{{customdata[2]}} of "
                "%{x|%Y-%m-%d}<br>%{y:.3f}<br>n=%{customdata[0]} · %{customdata[1]}"
                "<extra></extra>",
            )
        floor = part["threshold"].dropna()
        if len(floor):
            fig.add_hline(
                y=float(floor.iloc[-1]),
                line={"dash": "dot", "color": STATUS_COLOURS["alert"]},
                annotation_text="floor",
                annotation_font_size=11,
                row=1,
                col=c,
            )
        statistic = part["statistic"].iloc[0] if len(part) else "value"
        fig.update_yaxes(title_text=statistic.replace("_", " "), row=1, col=c)
        periods = part["period_start"]
        # Periods are days or weeks: a lone one gets a few days around it, not milliseconds.
        pad = pd.Timedelta(days=2) if periods.nunique() < 2 else pd.Timedelta(hours=12)
        fig.update_xaxes(
            title_text="period start (UTC)",
            range=[periods.min() - pad, periods.max() + pad],
            row=1,
            col=c,
        )
    return apply_layout(fig, 360)


def residuals_chart(panel: Panel, window: Window) -> go.Figure:
    hist, over = panel.frames["histogram"], panel.frames["over_time"]
    if "job" not in hist.columns:  # one job's frames, as ``residuals`` makes them
        hist, over = hist.assign(job=""), over.assign(job="")
    jobs = list(dict.fromkeys(hist["job"])) or [""]
    titles = [f"{job} {what}".strip() for job in jobs for what in ("distribution", "over time")]
    fig = make_subplots(
        rows=len(jobs),
        cols=2,
        subplot_titles=titles,
        column_widths=[0.5, 0.5],
        horizontal_spacing=0.14,
    )
    shown: set[str] = set()
    for r, job in enumerate(jobs, start=1):
        for source, rows in hist[hist["job"] == job].groupby("source", sort=True):
            colour = SOURCE_COLOURS.get(source)
            fig.add_bar(
                x=(rows["left"] + rows["right"]) / 2,
                y=rows["count"],
                width=(rows["right"] - rows["left"]),
                name=source,
                legendgroup=source,
                showlegend=source not in shown,
                marker={"color": colour, "opacity": 0.6},
                hovertemplate=f"{source}<br>%{{x:.2f}}<br>%{{y}} predictions<extra></extra>",
                row=r,
                col=1,
            )
            shown.add(source)
        for source, rows in over[over["job"] == job].groupby("source", sort=True):
            colour = SOURCE_COLOURS.get(source)
            fig.add_scatter(
                x=rows["bucket"],
                y=rows["mean_residual"],
                mode="lines+markers",
                name=f"{source} mean",
                legendgroup=source,
                showlegend=False,
                line={"color": colour},
                hovertemplate=f"{source} mean residual<br>%{{y:.2f}}<extra></extra>",
                row=r,
                col=2,
            )
            fig.add_scatter(
                x=rows["bucket"],
                y=rows["mae"],
                mode="lines",
                name=f"{source} MAE",
                legendgroup=source,
                showlegend=False,
                line={"color": colour, "dash": "dot"},
                hovertemplate=f"{source} MAE<br>%{{y:.2f}}<extra></extra>",
                row=r,
                col=2,
            )
        fig.add_vline(x=0, line={"color": "#444", "width": 1}, row=r, col=1)
        fig.update_xaxes(title_text="predicted - actual", row=r, col=1)
        fig.update_yaxes(title_text="predictions", row=r, col=1)
        fig.update_xaxes(title_text=TIME_AXIS, row=r, col=2)
        fig.update_yaxes(title_text="solid: mean, dotted: MAE", row=r, col=2)
    return apply_layout(fig, 360 * len(jobs), barmode="overlay")
