"""``mlops quickstart``: run the whole loop on the embedded default, then say where to look."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from mlops.cli.output import console, progress_bar
from mlops.cli.runtime import runtime
from mlops.warehouse.contract import Request

if TYPE_CHECKING:
    from mlops.repository import Repository
    from mlops.specs.features import InputSpec
    from mlops.warehouse.contract import Samples


def quickstart(
    ctx: typer.Context,
    size: int = typer.Option(
        5_000,
        min=100,
        help="Size of the synthetic warehouse: entities the repository's generator makes.",
    ),
    days: int = typer.Option(120, min=30, help="Days of synthetic history."),
    seed: int = typer.Option(42, help="Random seed of the synthetic warehouse."),
    force: bool = typer.Option(
        False, help="Replace the data even when the database URLs are not the embedded default."
    ),
    serve: bool = typer.Option(False, "--serve", help="Then serve the endpoints (mlops serve)."),
    replay: int = typer.Option(
        500,  # quickstart.DEFAULT_REPLAY, not imported here: --help stays light
        min=0,
        help="Requests per job replayed through the serving path over the seeded history, so "
        "the monitors and the dashboard have answers to judge (0: none).",
    ),
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
        result = qs.run(rt, size=size, days=days, seed=seed, on_stage=bar.stage, replay=replay)
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
    if result.replay:
        console.print(result.replay.summary(), highlight=False)
    if result.monitoring:
        print_monitoring(result.monitoring)
    # Last, what a newcomer came for: the models against the rules, and what to try next.
    for report in result.training:
        print_comparison(report, SHOWN[rt.repo.job(report.job).kind])
    print_summary(result.training)
    if result.monitoring:
        print_next(rt.settings, rt.repo, result.monitoring.samples, serving=serve)
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


def print_next(settings, repo: Repository, samples: Samples, *, serving: bool) -> None:
    """The commands to try: the repository's own requests, then each job's generic route."""
    base = f"http://{settings.serve_host}:{settings.serve_port}"
    console.print("next:" if not serving else "serving now; try:", style="bold")
    if not serving:
        console.print("  mlops serve            (or `mlops quickstart --serve` next time)")
    lines = [curl(base, request) for request in samples.requests]
    for job in repo.jobs.values():
        body = {"entity_id": samples.entities.get(job.name, f"<{job.entity} id>")}
        given = samples.inputs.get(job.name, {})
        body["inputs"] = {
            spec.name: given.get(spec.name, _placeholder(spec))
            for spec in job.inputs
            if spec.derive is None
        }
        route = Request("POST", f"/v1/jobs/{job.name}/predict", body)
        lines.append(curl(base, route, explicit=True))
    lines.append(f"open {base}/docs and {base}/dashboard")
    for line in lines:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def curl(base: str, request: Request, *, explicit: bool = False) -> str:
    """The request as a curl command line: a JSON body if it has one, ``-X`` when its method
    is not curl's default (GET, or POST with a body) or ``explicit``."""
    default = "GET" if request.body is None else "POST"
    method = f"-X {request.method} " if explicit or request.method != default else ""
    line = f"curl {method}{base}{request.path}"
    if request.body is None:
        return line
    body = json.dumps(request.body).replace("'", "'\\''")  # inside single quotes for the shell
    return f"{line} -H 'content-type: application/json' -d '{body}'"


def _placeholder(spec: InputSpec) -> object:
    """An in-range value of the input's type, for a job whose repository gives no sample."""
    if spec.dtype == "category":
        return f"<{spec.name}>"
    low = spec.min_value if spec.min_value is not None else 0
    return int(low) if spec.dtype == "int" else float(low)
