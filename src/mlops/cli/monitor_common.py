"""What every ``mlops monitor`` command shares: the runtime once the store's migrations are
current, status colours, figures and the lines for the alerts a check opened."""

from __future__ import annotations

import typer


def ready(ctx: typer.Context):
    from mlops.cli.runtime import runtime
    from mlops.db import migrate

    rt = runtime(ctx)
    migrate.require_current(rt.store)
    return rt


_STATUS_COLOURS = {
    "ok": "green",
    "warn": "yellow",
    "alert": "bold red",
    "breach": "bold red",
    "insufficient": "dim",
}
CLEAR_TRIPS = (
    "a tripped job answers from its heuristic until cleared: mlops flags clear-trips <job>"
)


def coloured(status: str) -> str:
    return f"[{_STATUS_COLOURS.get(status, 'white')}]{status}[/]"


def figure(value, spec: str = ".3f") -> str:
    """``value`` formatted, or "-" when there is none (None, NaN)."""
    import math

    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def print_opened(opened) -> None:
    """A line per alert the check opened."""
    from mlops.cli.output import console

    for alert in opened:
        console.print(f"  [red]{alert.kind}[/red] {alert.message}", highlight=False)
