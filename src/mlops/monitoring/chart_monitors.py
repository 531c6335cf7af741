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
    time_range,
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
        fig.update_xaxes(title_text=TIME_AXIS, range=time_range(window), row=r, col=2)
        fig.update_yaxes(title_text="solid: mean, dotted: MAE", row=r, col=2)
    return apply_layout(fig, 360 * len(jobs), barmode="overlay")


ARM_COLOURS = {"control": SOURCE_COLOURS["heuristic"], "treatment": SOURCE_COLOURS["model"]}
DECISION_STATUS = {"breach": "alert", "warn": "warn", "ok": "ok", "insufficient": "insufficient"}


def guardrails_chart(panel: Panel, window: Window) -> go.Figure:
    """Per job, each arm's rate of its guardrail metric (left) and the treatment's difference
    from the control with its interval, against the margin it may not cross (right)."""
    latest = panel.frames["latest"]
    jobs = jobs_in(panel, latest["job"])
    latest = latest.set_index("job").loc[jobs]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["rate per arm", "treatment - control, with its interval"],
        horizontal_spacing=0.16,
    )
    labels = [f"{job}<br>{html.escape(str(latest.at[job, 'metric']))}" for job in jobs]
    for arm in ("control", "treatment"):
        rates = latest[f"{arm}_rate"].astype(float)
        counts = latest[f"{arm}_n"]
        fig.add_bar(
            y=labels,
            x=rates,
            orientation="h",
            name=arm,
            marker={"color": ARM_COLOURS[arm]},
            text=[f"n={n:,}" for n in counts],
            textposition="outside",
            cliponaxis=False,
            customdata=list(zip(counts, latest["description"], strict=True)),
            hovertemplate=f"{arm}<br>%{{customdata[1]}}: %{{x:.3f}}<br>%{{customdata[0]}} units"
            "<extra></extra>",
            row=1,
            col=1,
        )
    colours = [
        STATUS_COLOURS[DECISION_STATUS.get(str(d), "insufficient")] for d in latest["decision"]
    ]
    difference = latest["difference"].astype(float)
    fig.add_scatter(
        y=labels,
        x=difference,
        mode="markers",
        name="difference",
        marker={"color": colours, "size": 11, "line": {"color": "#333", "width": 1}},
        error_x={
            "type": "data",
            "symmetric": False,
            "array": (latest["ci_high"].astype(float) - difference).tolist(),
            "arrayminus": (difference - latest["ci_low"].astype(float)).tolist(),
            "color": "#555",
        },
        customdata=list(zip(latest["decision"], latest["p_value"].astype(float), strict=True)),
        hovertemplate="difference %{x:+.4f}<br>%{customdata[0]} (p=%{customdata[1]:.3g})"
        "<extra></extra>",
        row=1,
        col=2,
    )
    # The line the treatment may not cross: below the control for a metric better higher.
    line = [
        -float(m) if hib else float(m)
        for m, hib in zip(latest["margin"], latest["higher_is_better"], strict=True)
    ]
    fig.add_scatter(
        y=labels,
        x=line,
        mode="markers",
        name="margin",
        marker={
            "symbol": "line-ns",
            "size": 22,
            "line": {"color": STATUS_COLOURS["alert"], "width": 2},
        },
        hovertemplate="margin %{x:+.3f}<extra></extra>",
        row=1,
        col=2,
    )
    fig.add_vline(x=0, line={"color": "#444", "width": 1}, row=1, col=2)
    fig.update_xaxes(title_text="share of units", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="difference (share)", row=1, col=2)
    fig.update_yaxes(automargin=True, autorange="reversed")
    return apply_layout(fig, max(240, 90 + 70 * len(jobs)), barmode="group")


def drift_features_chart(panel: Panel, window: Window) -> go.Figure:
    """One feature at a time (a menu picks it, the most drifted first): the share of live
    values per bin against the reference's, over the bins the drift check's PSI compared."""
    bins = panel.frames["bins"]
    features: list[tuple[str, str, pd.DataFrame]] = []
    for (job, feature), rows in bins.groupby(["job", "feature"], sort=False):
        features.append((str(job), str(feature), rows.sort_values("bin")))
    order = {job: i for i, job in enumerate(panel.jobs)}
    # Most drifted first (no PSI: last), then the repository's job order.
    features.sort(
        key=lambda f: (
            -(f[2]["psi"].iloc[0] if pd.notna(f[2]["psi"].iloc[0]) else -1.0),
            order.get(f[0], len(order)),
            f[1],
        )
    )
    fig = go.Figure()
    buttons = []
    initial: dict = {}
    for i, (job, feature, rows) in enumerate(features):
        first = rows.iloc[0]
        psi = "n/a" if pd.isna(first["psi"]) else f"{first['psi']:.3f}"
        for name, column, colour in (
            ("reference", "reference", "#7f7f7f"),
            ("now", "live", "#1f77b4"),
        ):
            fig.add_bar(
                x=rows["bin"],
                y=rows[column],
                name=name,
                visible=i == 0,
                marker={"color": colour, "opacity": 0.85},
                customdata=rows[["label"]],
                hovertemplate=f"{name}<br>%{{customdata[0]}}<br>%{{y:.1%}} of values"
                "<extra></extra>",
            )
        visible = [j // 2 == i for j in range(2 * len(features))]
        title = (
            f"{html.escape(job)} · {html.escape(feature)}: PSI {psi}, {first['status']} "
            f"(n={int(first['sample_size']):,}, check {first['checked_at']:%Y-%m-%d %H:%M})"
        )
        axis = {
            "xaxis.tickvals": rows["bin"].tolist(),
            "xaxis.ticktext": [html.escape(str(label)) for label in rows["label"]],
            "title.text": title,
        }
        buttons.append(
            {
                "label": f"{job} · {feature} (PSI {psi})",
                "method": "update",
                "args": [{"visible": visible}, axis],
            }
        )
        if i == 0:
            initial = axis
    fig.update_layout(
        updatemenus=[
            {
                "buttons": buttons,
                "direction": "down",
                "x": 0,
                "xanchor": "left",
                "y": 1.22,
                "yanchor": "top",
                "showactive": True,
            }
        ],
        barmode="group",
        title={"text": initial["title.text"], "x": 0.99, "xanchor": "right", "font": {"size": 13}},
    )
    fig.update_xaxes(
        tickmode="array",
        tickvals=initial["xaxis.tickvals"],
        ticktext=initial["xaxis.ticktext"],
        title_text="bin (the reference's deciles; missing values last)",
    )
    fig.update_yaxes(title_text="share of values", tickformat=".0%", rangemode="tozero")
    return apply_layout(fig, 380, margin={"l": 64, "r": 24, "t": 90, "b": 72})
