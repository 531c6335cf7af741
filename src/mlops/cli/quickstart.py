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
    """Migrate, sync specs, seed a synthetic warehouse, backfill and ingest every job, then
    train, register and promote the churn, upsell and ETA models."""
    from mlops import quickstart as qs
    from mlops.cli.ingest import print_reports
    from mlops.cli.train import SHOWN, print_comparison, print_summary
    from mlops.training.train import KIND

    rt = runtime(ctx)
    if not force:
        qs.check_embedded(rt.settings)
    with progress_bar("quickstart") as bar:
        result = qs.run(rt, customers=customers, days=days, seed=seed, on_stage=bar.stage)
    print_reports(result.ingestion)
    for report in result.training:
        print_comparison(report, SHOWN[KIND[report.job]])
    print_summary(result.training)
    seeded = ", ".join(f"{n} {c:,}" for n, c in result.seeded.items())
    console.print(f"warehouse: {seeded}")
    console.print(
        f"done in {result.seconds:.1f} s. Store: {rt.settings.store_url}; "
        f"warehouse: {rt.settings.warehouse_db_url}"
    )
    console.print(
        f"MLflow: {rt.settings.mlflow_uri} (browse with `mlflow ui --backend-store-uri "
        f"{rt.settings.mlflow_uri}`)"
    )
    console.print(
        "next: `mlops serve` (then http://127.0.0.1:8000/docs, "
        "/v1/customers/C0000001/dossier), `mlops models list`, `mlops flags get`"
    )
