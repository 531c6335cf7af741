"""``mlops monitor report``: writes the monitoring dashboard as one HTML file and lists its
panels."""

from __future__ import annotations

import typer

from mlops.cli.monitor_common import ready


def report_command(
    ctx: typer.Context,
    out: str = typer.Option(
        "report.html", "--out", help="The HTML file to write (replaced atomically)."
    ),
    since: str = typer.Option("30d", "--since", help="Window back from now: 24h, 7d, 30d ..."),
) -> None:
    """Write the monitoring dashboard as one self-contained HTML file (charts work offline):
    the page `GET /dashboard` serves."""
    from pathlib import Path

    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from mlops.cli.output import console, parse_duration
    from mlops.monitoring import report

    window = parse_duration(since)
    rt = ready(ctx)
    written = report.write_report(rt, Path(out), since=window)
    table = Table("panel", "points", "notes", box=box.SIMPLE_HEAD)
    for panel in written.panels:
        notes = escape("\n".join(panel.notes))
        if panel.error:
            notes = f"[red]could not read: {escape(panel.error)}[/red]"
        table.add_row(panel.title, f"{panel.points:,}", notes or "-")
    console.print(table)
    empty = sum(p.empty for p in written.panels)
    console.print(
        f"wrote {written.path} ({written.size / 1e6:.1f} MB, {len(written.panels)} panels"
        + (f", {empty} with no data yet" if empty else "")
        + ")",
        highlight=False,
    )
