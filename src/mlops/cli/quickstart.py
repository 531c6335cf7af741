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
    serve: bool = typer.Option(False, "--serve", help="Then serve the endpoints (mlops serve)."),
) -> None:
    """Migrate, sync specs, seed a synthetic warehouse, backfill and ingest every job, train,
    register and promote every job's model, run the monitors once and write the HTML report
    (on the repository's jobs: by default the bundled marketplace example)."""
    from mlops import quickstart as qs
    from mlops.cli.ingest import print_reports
    from mlops.cli.train import SHOWN, print_comparison, print_summary
    from mlops.errors import redact

    rt = runtime(ctx)
    if not force:
        qs.check_embedded(rt.settings)
    with progress_bar("quickstart") as bar:
        result = qs.run(rt, customers=customers, days=days, seed=seed, on_stage=bar.stage)
    print_reports(result.ingestion)
    seeded = ", ".join(f"{n} {c:,}" for n, c in result.seeded.items())
    console.print(f"warehouse: {seeded}")
    console.print(
        f"done in {result.seconds:.1f} s. Store: {redact(rt.settings.store_url)}; "
        f"warehouse: {redact(rt.settings.warehouse_db_url)}"
    )
    console.print(
        f"MLflow: {rt.settings.mlflow_uri} (browse with `mlflow ui --backend-store-uri "
        f"{rt.settings.mlflow_uri}`)"
    )
    if result.monitoring:
        print_monitoring(result.monitoring)
    # Last, what a newcomer came for: the models against the rules, and what to try next.
    for report in result.training:
        print_comparison(report, SHOWN[rt.repo.job(report.job).kind])
    print_summary(result.training)
    if result.monitoring:
        print_next(rt.settings, result.monitoring, serving=serve)
    if serve:
        from mlops.cli.serve import serve as serve_command

        serve_command(ctx, host=None, port=None, workers=None)


def print_monitoring(found) -> None:
    states = ", ".join(f"{r.job} {r.status}" for r in found.drift)
    console.print(
        f"monitors: drift {states}; {found.alerts_opened} alert(s) opened "
        f"(`mlops monitor drift|ops|accuracy|guardrails` for the details)"
    )
    console.print(f"report: {found.report} (open it in a browser; the service has /dashboard)")


def print_next(settings, found, *, serving: bool) -> None:
    base = f"http://{settings.serve_host}:{settings.serve_port}"
    json = "-H 'content-type: application/json' -d"
    compose = (
        f'{{"customer_id": "{found.customer_id}", '
        '"cart": [{"category": "grocery", "quantity": 2, "unit_price": 4.5}]}'
    )
    eta = f'{{"zone": "{found.zone}", "distance_km": 3.2, "item_count": 2}}'
    console.print("next:" if not serving else "serving now; try:", style="bold")
    if not serving:
        console.print("  mlops serve            (or `mlops quickstart --serve` next time)")
    for line in (
        f"curl {base}/v1/customers/{found.customer_id}/dossier",
        f"curl {base}/v1/orders/compose {json} '{compose}'",
        f"curl {base}/v1/deliveries/eta {json} '{eta}'",
        f"open {base}/docs and {base}/dashboard",
    ):
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
