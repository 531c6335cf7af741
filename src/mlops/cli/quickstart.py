"""``mlops quickstart``: run the whole loop on the embedded default, then say where to look."""

from __future__ import annotations

import typer

from mlops.cli.output import console, progress_bar
from mlops.cli.runtime import runtime


def quickstart(
    ctx: typer.Context,
    customers: int = typer.Option(5_000, min=100, help="Size of the synthetic warehouse."),
    days: int = typer.Option(120, min=30, help="Days of synthetic history."),
    seed: int = typer.Option(42, help="Random seed of the synthetic warehouse."),
    force: bool = typer.Option(
        False, help="Replace the data even when the database URLs are not the embedded default."
    ),
) -> None:
    """Migrate, sync specs, seed a synthetic warehouse, backfill and ingest every job."""
    from mlops import quickstart as qs
    from mlops.cli.ingest import print_reports

    rt = runtime(ctx)
    if not force:
        qs.check_embedded(rt.settings)
    with progress_bar("quickstart") as bar:
        result = qs.run(rt, customers=customers, days=days, seed=seed, on_stage=bar.stage)
    print_reports(result.ingestion)
    seeded = ", ".join(f"{n} {c:,}" for n, c in result.seeded.items())
    console.print(f"warehouse: {seeded}")
    console.print(
        f"done in {result.seconds:.1f} s. Store: {rt.settings.store_url}; "
        f"warehouse: {rt.settings.warehouse_db_url}"
    )
    console.print("next: `mlops ingest all --dry-run` to see today's features")
