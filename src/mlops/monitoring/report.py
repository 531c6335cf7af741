"""The dashboard drawn: one Plotly figure per panel, laid out on one HTML page. The report file
inlines plotly.js (one self-contained file, readable offline); the service's page loads it from
a cacheable route instead of resending ~4.8 MB with every page. The figures themselves are
built in the ``chart_*`` modules; this one picks each panel's and assembles the page."""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import plotly.graph_objects as go

from mlops.errors import InputError
from mlops.monitoring.chart_distributions import cohorts_chart, features_chart
from mlops.monitoring.chart_monitors import (
    accuracy_chart,
    drift_chart,
    drift_features_chart,
    guardrails_chart,
    residuals_chart,
)
from mlops.monitoring.chart_operations import fallbacks_chart, freshness_chart, ingestion_chart
from mlops.monitoring.chart_style import FONT, empty_chart
from mlops.monitoring.dashboard import DEFAULT_WINDOW, Dashboard, gather
from mlops.monitoring.ops import describe_period
from mlops.monitoring.panel import Panel, Window
from mlops.runtime import Runtime

# The page's order: what on-call looks at first on top.
ORDER = (
    "drift",
    "drift_features",
    "fallbacks",
    "freshness",
    "residuals",
    "accuracy",
    "guardrails",
    "features",
    "cohorts",
    "ingestion",
)


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


def page(
    rt: Runtime,
    *,
    since: timedelta = DEFAULT_WINDOW,
    plotly_src: str,
    serving: Mapping[str, int | None] | None = None,
) -> str:
    """The dashboard page for the service: plotly.js loaded from ``plotly_src``; ``serving``
    the versions the service has loaded."""
    return render(gather(rt, since=since, serving=serving), plotly_src=plotly_src)


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
        status=_status(dashboard),
        sections="\n".join(sections),
        scripts="\n".join(scripts),
        css=_CSS,
    )


def _status(dashboard: Dashboard) -> str:
    """What serves each job, and the incidents open now."""
    serving = " · ".join(
        f"<b>{html.escape(job)}</b> "
        + (f"v{version}" if version is not None else "heuristic (no champion)")
        for job, version in dashboard.serving.items()
    )
    parts = [f'<p class="serving" id="serving">Serving: {serving}</p>']
    found = dashboard.alerts
    if found:
        items = "".join(
            f"<li><b>{html.escape(a.kind)}</b> · {html.escape(a.job)}: "
            # A message that names its subject first needs no subject before it.
            + ("" if a.message.startswith(a.subject) else f"{html.escape(a.subject)}: ")
            + f"{html.escape(a.message)} "
            f'<span class="since">(open since {a.opened_at:%Y-%m-%d %H:%M})</span></li>'
            for a in found
        )
        parts.append(
            f'<details class="alerts" id="alerts" open><summary>{len(found)} open '
            f"alert{'s' if len(found) != 1 else ''} "
            f"(<code>mlops monitor drift|ops|accuracy|guardrails</code> re-check them)"
            f"</summary><ul>{items}</ul></details>"
        )
    else:
        parts.append('<p class="alerts" id="alerts">No open alerts.</p>')
    for problem in dashboard.problems:
        parts.append(f'<p class="error">{html.escape(problem)}</p>')
    return "\n".join(parts)


def _section(panel: Panel) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in panel.notes)
    parts = [
        f'<section class="panel" id="{panel.key}">',
        f"<h2>{html.escape(panel.title)}</h2>",
        f'<p class="caption">{html.escape(panel.caption)}</p>',
    ]
    if panel.command:
        parts.append(
            f'<p class="explain">In a terminal: <code class="command">'
            f"{html.escape(panel.command)}</code></p>"
        )
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
.explain { margin: 0 0 6px; color: #5a6270; font-size: 12px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.command { background: #eef0f4; padding: 1px 5px; border-radius: 3px; user-select: all; }
.status { padding: 10px 24px 0; max-width: 1500px; margin: 0 auto; font-size: 13px; }
.status p, .status details { margin: 0 0 6px; }
.alerts summary { cursor: pointer; color: #b00020; font-weight: 600; }
.alerts ul { margin: 4px 0 0; padding-left: 18px; }
.since { color: #5a6270; }
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
<div class="status">
{status}
</div>
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
        return empty_chart(panel)
    return _BUILDERS[panel.key](panel, window)


_BUILDERS = {
    "features": features_chart,
    "cohorts": cohorts_chart,
    "drift": drift_chart,
    "drift_features": drift_features_chart,
    "accuracy": accuracy_chart,
    "guardrails": guardrails_chart,
    "residuals": residuals_chart,
    "ingestion": ingestion_chart,
    "freshness": freshness_chart,
    "fallbacks": fallbacks_chart,
}
