"""The dashboard drawn: one Plotly figure per panel, laid out on one HTML page. The report file
inlines plotly.js (one self-contained file, readable offline); the service's page loads it from
a cacheable route instead of resending ~4.8 MB with every page."""

from __future__ import annotations

import html
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mlops.errors import InputError
from mlops.monitoring.dashboard import (
    DEFAULT_WINDOW,
    KEY_FEATURES,
    STATUS_BY_RANK,
    STATUS_RANK,
    Dashboard,
    Panel,
    Window,
    gather,
)
from mlops.monitoring.ops import describe_period, span
from mlops.runtime import Runtime
from mlops.specs.features import JOBS

STATUS_COLOURS = {
    "insufficient": "#c7c7c7",
    "ok": "#2ca02c",
    "warn": "#ff9f1c",
    "alert": "#d62728",
}
RUN_COLOURS = {"succeeded": "#2ca02c", "failed": "#d62728", "running": "#7f7f7f"}
SOURCE_COLOURS = {"model": "#1f77b4", "heuristic": "#ff7f0e"}
LIVE, REFERENCE = "#1f77b4", "#7f7f7f"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# The page's order: what on-call looks at first on top.
ORDER = (
    "drift",
    "fallbacks",
    "freshness",
    "residuals",
    "accuracy",
    "features",
    "cohorts",
    "ingestion",
)
TIME_AXIS = "time (UTC)"


@dataclass(frozen=True)
class ReportFile:
    path: Path
    size: int
    panels: list[Panel]


def write_report(rt: Runtime, out: Path, *, since: timedelta = DEFAULT_WINDOW) -> ReportFile:
    """Gather the dashboard and write it as one self-contained HTML file, atomically: the page
    is rendered in full first, then written to a temporary file beside ``out`` and renamed."""
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out} is a folder", "pass a file name, e.g. --out report.html")
    if not out.parent.is_dir():
        raise InputError(f"no folder {out.parent}", "create it first or pick another --out")
    dashboard = gather(rt, since=since)
    data = render(dashboard).encode()
    atomic_write(out, data)
    return ReportFile(out, len(data), dashboard.panels)


def page(rt: Runtime, *, since: timedelta = DEFAULT_WINDOW, plotly_src: str) -> str:
    """The dashboard page for the service: plotly.js loaded from ``plotly_src``."""
    return render(gather(rt, since=since), plotly_src=plotly_src)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a report from its readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@cache
def plotly_js() -> bytes:
    """plotly.js, minified, from the installed plotly package (no CDN: it must work offline)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


@cache
def plotly_js_route() -> str:
    """Where the service serves plotly.js: versioned, so it can be cached for good."""
    from plotly.offline import get_plotlyjs_version

    return f"/dashboard/plotly-{get_plotlyjs_version()}.min.js"


# --- the page ----------------------------------------------------------------------------------


def render(dashboard: Dashboard, *, plotly_src: str | None = None) -> str:
    """The HTML page; plotly.js inlined unless ``plotly_src`` says where the page loads it."""
    panels = sorted(dashboard.panels, key=lambda p: ORDER.index(p.key) if p.key in ORDER else 99)
    sections, scripts = [], []
    for panel in panels:
        fig = figure(panel, dashboard.window)
        sections.append(_section(panel))
        spec = _json(fig.to_plotly_json())
        scripts.append(f"  draw({json.dumps('chart-' + panel.key)}, {spec});")
    if plotly_src is None:
        library = f"<script>{plotly_js().decode()}</script>"
    else:
        library = f'<script src="{html.escape(plotly_src)}"></script>'
    w = dashboard.window
    summary = (
        f"Generated {dashboard.generated_at:%Y-%m-%d %H:%M} UTC · the last "
        f"{describe_period(w.end - w.start)} "
        f"(since {w.start:%Y-%m-%d %H:%M}) · per {w.bucket} · {len(panels)} panels"
    )
    return _PAGE.format(
        library=library,
        summary=html.escape(summary),
        sections="\n".join(sections),
        scripts="\n".join(scripts),
        css=_CSS,
    )


def _section(panel: Panel) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in panel.notes)
    parts = [
        f'<section class="panel" id="{panel.key}">',
        f"<h2>{html.escape(panel.title)}</h2>",
        f'<p class="caption">{html.escape(panel.caption)}</p>',
    ]
    if panel.error:
        parts.append(f'<p class="error">Could not read this panel: {html.escape(panel.error)}</p>')
    if notes:
        parts.append(f'<ul class="notes">{notes}</ul>')
    parts.append(f'<div class="chart" id="chart-{panel.key}"></div></section>')
    return "\n".join(parts)


def _json(spec: dict) -> str:
    from plotly.utils import PlotlyJSONEncoder

    # Inside a <script>: no "</script>" or "<!--" may come out of a string (a feature name, an
    # error message), so every "<" is written as its JSON escape.
    return json.dumps(spec, cls=PlotlyJSONEncoder, separators=(",", ":")).replace("<", "\\u003c")


_CSS = (
    f"body {{ font-family: {FONT}; }}"
    + """
:root { color-scheme: light; }
body { margin: 0; background: #f4f5f7; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 4px 0 0; color: #c9cfdb; font-size: 13px; }
main { display: grid; grid-template-columns: minmax(0, 1fr); gap: 16px;
       padding: 16px 24px; max-width: 1500px; margin: 0 auto; }
.panel { background: #fff; border-radius: 6px; box-shadow: 0 1px 3px rgba(0,0,0,.12);
         padding: 12px 16px; min-width: 0; }
h2 { font-size: 16px; margin: 0 0 2px; }
.caption { margin: 0 0 6px; color: #5a6270; font-size: 13px; }
.notes { margin: 0 0 6px; padding-left: 18px; color: #8a5a00; font-size: 12px; }
.error { margin: 0 0 6px; color: #b00020; font-size: 13px; }
"""
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mlops monitoring</title>
<link rel="icon" href="data:,">
<style>{css}</style>
{library}
</head>
<body>
<header><h1>mlops monitoring</h1><p>{summary}</p></header>
<main>
{sections}
</main>
<script>
(function () {{
  var pending = [];
  function draw(id, fig) {{
    var config = {{responsive: true, displaylogo: false}};
    pending.push(Plotly.newPlot(id, fig.data, fig.layout, config));
  }}
{scripts}
  Promise.all(pending).then(function () {{ document.body.dataset.rendered = "true"; }});
}})();
</script>
</body>
</html>
"""


# --- the figures -------------------------------------------------------------------------------


def figure(panel: Panel, window: Window) -> go.Figure:
    """The panel's chart; an empty chart saying why when there is nothing to draw."""
    if panel.error or panel.empty:
        return _empty(panel)
    return _BUILDERS[panel.key](panel, window)


def _layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    base = {
        "template": "plotly_white",
        "height": height,
        "font": {"family": FONT, "size": 12},
        "margin": {"l": 64, "r": 24, "t": 36, "b": 48},
        "hoverlabel": {"font": {"family": FONT}},
    }
    fig.update_layout(base | extra)
    fig.update_annotations(font_size=13)  # subplot titles
    return fig


def _empty(panel: Panel) -> go.Figure:
    if panel.error:
        message = "Could not read this panel (see above)"
    else:
        message = "No data yet" + (f": {panel.notes[0]}" if panel.notes else "")
    fig = go.Figure()
    fig.add_annotation(
        text=html.escape(message),
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        font={"size": 14, "color": "#5a6270"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, 160)


def _features(panel: Panel, window: Window) -> go.Figure:
    live, ref = panel.frames["snapshots"], panel.frames["reference"]
    jobs = list(KEY_FEATURES)
    cols = max(len(names) for names in KEY_FEATURES.values())
    titles = [f"{job} · {name}" for job in jobs for name in KEY_FEATURES[job]]
    fig = make_subplots(
        rows=len(jobs),
        cols=cols,
        subplot_titles=titles,
        vertical_spacing=0.1,
        horizontal_spacing=0.06,
    )
    shown: set[str] = set()
    for r, job in enumerate(jobs, start=1):
        for c, name in enumerate(KEY_FEATURES[job], start=1):
            at = {"row": r, "col": c}
            rows = ref[(ref["job"] == job) & (ref["feature"] == name)]
            if len(rows):
                row = rows.iloc[0]
                xs = [window.start, window.end]
                _band(
                    fig, xs, [row.p10] * 2, [row.p90] * 2, REFERENCE, "reference p10-p90", shown, at
                )
                _line(
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
                _band(fig, part["as_of"], part["p10"], part["p90"], LIVE, "live p10-p90", shown, at)
                _line(
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
    fig.update_xaxes(range=_time_range(window))
    return _layout(
        fig,
        250 * len(jobs) + 60,
        legend={"orientation": "h", "y": -0.06, "x": 0},
        margin={"l": 56, "r": 16, "t": 36, "b": 40},
    )


def _line(fig, x, y, name, shown: set[str], at: dict, **style) -> None:
    """A trace in a legend group whose legend entry appears once across the subplots."""
    fig.add_scatter(
        x=list(x),
        y=list(y),
        name=name,
        legendgroup=name,
        showlegend=name not in shown,
        **({"mode": "lines"} | style),
        **at,
    )
    shown.add(name)


def _time_range(window: Window) -> list:
    """The window with a little room on the right, so the latest point is not cut in half."""
    return [window.start, window.end + (window.end - window.start) * 0.02]


def _band(fig, x, low, high, colour, name, shown: set[str], at: dict) -> None:
    """A shaded band between ``low`` and ``high`` (the upper edge drawn first, then filled)."""
    edge = {"width": 0, "color": colour}
    fig.add_scatter(
        x=list(x),
        y=list(high),
        mode="lines",
        line=edge,
        hoverinfo="skip",
        showlegend=False,
        legendgroup=name,
        **at,
    )
    _line(
        fig,
        x,
        low,
        name,
        shown,
        at,
        line=edge,
        fill="tonexty",
        fillcolor=_rgba(colour, 0.18),
        hoverinfo="skip",
    )


def _jobs_in(jobs: pd.Series) -> list[str]:
    """The jobs present, known ones in the specs' order, then any others by name."""
    present = set(jobs)
    return [j for j in JOBS if j in present] + sorted(present - set(JOBS))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _cohorts(panel: Panel, window: Window) -> go.Figure:
    scores = panel.frames["scores"]
    kinds = list(dict.fromkeys(scores["cohort_kind"]))
    fig = make_subplots(
        rows=1, cols=len(kinds), subplot_titles=[f"by {k}" for k in kinds], horizontal_spacing=0.1
    )
    palette = qualitative.Plotly
    for c, kind in enumerate(kinds, start=1):
        part = scores[scores["cohort_kind"] == kind]
        for i, (cohort, rows) in enumerate(part.groupby("cohort", sort=True)):
            fig.add_scatter(
                x=rows["bucket"],
                y=rows["mean_score"],
                mode="lines+markers",
                name=f"{kind}: {cohort}",
                line={"color": palette[i % len(palette)], "dash": "solid" if c == 1 else "dot"},
                customdata=rows[["predictions"]],
                hovertemplate=f"{html.escape(str(cohort))}<br>%{{x|%Y-%m-%d %H:%M}}"
                "<br>mean score %{y:.3f}<br>%{customdata[0]} predictions<extra></extra>",
                row=1,
                col=c,
            )
        fig.update_yaxes(title_text="mean churn probability" if c == 1 else None, row=1, col=c)
        fig.update_xaxes(title_text=TIME_AXIS, row=1, col=c)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, 380)


def _drift(panel: Panel, window: Window) -> go.Figure:
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
    return _layout(fig, max(260, 90 + 20 * len(rows)), margin={"l": 200, "r": 24, "t": 16, "b": 60})


def _accuracy(panel: Panel, window: Window) -> go.Figure:
    trend = panel.frames["trend"]
    jobs = _jobs_in(trend["job"])
    fig = make_subplots(rows=1, cols=len(jobs), subplot_titles=jobs, horizontal_spacing=0.08)
    shown: set[str] = set()
    for c, job in enumerate(jobs, start=1):
        part = trend[trend["job"] == job]
        for source, rows in part.groupby("source", sort=True):
            colour = SOURCE_COLOURS.get(source, "#9467bd")
            # Hollow markers: periods whose labels are not all due yet, or too few to judge.
            settled = rows["complete"] & (rows["status"] != "insufficient")
            _line(
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
    return _layout(fig, 360)


def _residuals(panel: Panel, window: Window) -> go.Figure:
    hist, over = panel.frames["histogram"], panel.frames["over_time"]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("distribution", "over time"),
        column_widths=[0.5, 0.5],
        horizontal_spacing=0.14,
    )
    for source, rows in hist.groupby("source", sort=True):
        colour = SOURCE_COLOURS.get(source)
        fig.add_bar(
            x=(rows["left"] + rows["right"]) / 2,
            y=rows["count"],
            width=(rows["right"] - rows["left"]),
            name=source,
            legendgroup=source,
            marker={"color": colour, "opacity": 0.6},
            hovertemplate=f"{source}<br>%{{x:.1f}} min<br>%{{y}} deliveries<extra></extra>",
            row=1,
            col=1,
        )
    for source, rows in over.groupby("source", sort=True):
        colour = SOURCE_COLOURS.get(source)
        fig.add_scatter(
            x=rows["bucket"],
            y=rows["mean_residual"],
            mode="lines+markers",
            name=f"{source} mean",
            legendgroup=source,
            showlegend=False,
            line={"color": colour},
            hovertemplate=f"{source} mean residual<br>%{{y:.2f}} min<extra></extra>",
            row=1,
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
            hovertemplate=f"{source} MAE<br>%{{y:.2f}} min<extra></extra>",
            row=1,
            col=2,
        )
    fig.add_vline(x=0, line={"color": "#444", "width": 1}, row=1, col=1)
    fig.update_xaxes(title_text="predicted - actual (minutes)", row=1, col=1)
    fig.update_yaxes(title_text="deliveries", row=1, col=1)
    fig.update_xaxes(title_text=TIME_AXIS, row=1, col=2)
    fig.update_yaxes(title_text="minutes (solid: mean, dotted: MAE)", row=1, col=2)
    return _layout(fig, 360, barmode="overlay")


def _ingestion(panel: Panel, window: Window) -> go.Figure:
    runs = panel.frames["runs"]
    jobs = _jobs_in(runs["job"])
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
        fig.update_xaxes(range=_time_range(window), row=1, col=c)
        fig.update_xaxes(title_text=TIME_AXIS, range=_time_range(window), row=2, col=c)
    fig.update_yaxes(title_text="duration (s)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="rows written", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, 460)


def _freshness(panel: Panel, window: Window) -> go.Figure:
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
    return _layout(fig, 240, margin={"l": 70, "r": 24, "t": 24, "b": 48}, showlegend=False)


def _fallbacks(panel: Panel, window: Window) -> go.Figure:
    rates = panel.frames["rates"]
    jobs = list(JOBS)
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
        fig.update_xaxes(title_text=TIME_AXIS, range=_time_range(window), row=1, col=c)
    fig.update_yaxes(
        title_text="share of answers", tickformat=".0%", rangemode="tozero", row=1, col=1
    )
    return _layout(fig, 340, barmode="stack")


_BUILDERS = {
    "features": _features,
    "cohorts": _cohorts,
    "drift": _drift,
    "accuracy": _accuracy,
    "residuals": _residuals,
    "ingestion": _ingestion,
    "freshness": _freshness,
    "fallbacks": _fallbacks,
}
