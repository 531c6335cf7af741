"""``mlops db``: the feature store's schema."""

from __future__ import annotations

import typer

from mlops.cli.output import console
from mlops.cli.runtime import runtime

app = typer.Typer(help="The feature store database.", no_args_is_help=True)


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Upgrade the feature store to the newest schema (safe to run again)."""
    from mlops.db import migrate as migrations

    rt = runtime(ctx)
    result = migrations.upgrade(rt.store)
    if result.applied:
        console.print(f"applied {len(result.applied)} migration(s): {', '.join(result.applied)}")
    console.print(
        f"store {rt.store.url.render_as_string(hide_password=True)} at revision {result.after}"
        + ("" if result.applied else " (already up to date)")
    )
