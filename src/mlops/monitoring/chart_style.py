"""The dashboard charts' shared look: status colours, font and layout, and the trace helpers
several charts use (a legend entry once across subplots, a shaded band, the time axis), so
every panel reads alike."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from mlops.monitoring.panel import Panel, Window

STATUS_COLOURS = {
    "insufficient": "#c7c7c7",
    "ok": "#2ca02c",
    "warn": "#ff9f1c",
    "alert": "#d62728",
}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
TIME_AXIS = "time (UTC)"


def apply_layout(fig: go.Figure, height: int, **extra) -> go.Figure:
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


def empty_chart(panel: Panel) -> go.Figure:
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
    return apply_layout(fig, 160)


def add_line(fig, x, y, name, shown: set[str], at: dict, **style) -> None:
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


def time_range(window: Window) -> list:
    """The window with a little room on the right, so the latest point is not cut in half."""
    return [window.start, window.end + (window.end - window.start) * 0.02]


def add_band(fig, x, low, high, colour, name, shown: set[str], at: dict) -> None:
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
    add_line(
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


def jobs_in(panel: Panel, jobs: pd.Series) -> list[str]:
    """The jobs present, the repository's in its order, then any others by name."""
    present = set(jobs)
    return [j for j in panel.jobs if j in present] + sorted(present - set(panel.jobs))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
