"""``mlops jobs``: what the feature repository declares, and each job's state."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from mlops.cli.output import console
from mlops.cli.runtime import runtime

app = typer.Typer(
    help="The repository's jobs: what is declared and their state.", no_args_is_help=True
)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every job of the repository: entity, task, view, schedules, TTL, features."""
    from mlops import durations

    rt = runtime(ctx)
    repo = rt.repo
    table = Table(
        "job",
        "entity",
        "task",
        "view",
        "refresh",
        "TTL",
        "retrain",
        "features",
        box=box.SIMPLE_HEAD,
    )
    for job in repo.jobs.values():
        table.add_row(
            job.name,
            job.entity,
            job.task,
            job.view,
            job.refresh_cron,
            durations.text(job.ttl),
            job.retrain_cron,
            str(len(job.features)),
        )
    console.print(table)
    console.print(f"{len(repo.jobs)} job(s) in {repo.name!r} at {repo.path}")


@app.command()
def describe(
    ctx: typer.Context, job: str = typer.Argument(..., help="A job of the repository.")
) -> None:
    """One job: its declaration (label, inputs, heuristic, features) and its state (latest
    ingestion, freshness against TTL, champion)."""
    from mlops import durations
    from mlops.db import migrate
    from mlops.monitoring import ops

    rt = runtime(ctx)
    spec = rt.repo.job(job)
    console.print(f"[bold]{spec.name}[/bold]: {spec.description} (owner {spec.owner})")
    label = spec.label
    if label is not None:
        console.print(
            f"entity {spec.entity} ({spec.entity_key}), {spec.task}; view sql/{spec.view}.sql; "
            f"label sql/{label.sql}.sql ({label.kind}, horizon {durations.text(label.horizon)})"
        )
    console.print(
        f"refresh {spec.refresh_cron}, TTL {durations.text(spec.ttl)}, backfill every "
        f"{durations.text(spec.default_every)}, retrain {spec.retrain_cron}"
    )
    if spec.inputs:
        console.print("request inputs: " + ", ".join(f"{i.name} ({i.dtype})" for i in spec.inputs))
    if spec.heuristic:
        console.print(f"heuristic {spec.heuristic.name}({', '.join(spec.heuristic.inputs)})")
    table = Table("feature", "dtype", "range", "nullable", "owner", box=box.SIMPLE_HEAD)
    for f in spec.features:
        bounds = (
            "" if f.min_value is None and f.max_value is None else f"[{f.min_value}, {f.max_value}]"
        )
        table.add_row(f.name, f.dtype, bounds, "yes" if f.nullable else "", f.owner)
    console.print(table)
    migrate.require_current(rt.store)
    state = ops.report(rt, jobs=[spec.name]).job(spec.name)
    latest, age = state.ingestion.latest, state.freshness.age_seconds
    when = (
        f"{latest.mode} {latest.status}, started {latest.started_at:%Y-%m-%d %H:%M}"
        if latest
        else "none in the last 7 days"
    )
    console.print(f"latest ingestion: {when}")
    ttl = durations.text(spec.ttl)
    console.print(
        f"freshness: newest values {age / 3600:.1f} h old (TTL {ttl})"
        if age is not None
        else "freshness: no values yet"
    )
    from mlops.training import tracking_versions

    champion = tracking_versions.champion_version(rt.settings, spec.name)
    console.print(f"champion: {f'v{champion}' if champion else 'none (the heuristic answers)'}")
