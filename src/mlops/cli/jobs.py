"""``mlops jobs``: what the feature repository declares, and each job's state."""

from __future__ import annotations

from pathlib import Path

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
    """Every job of the repository: entity, task, view, schedules, TTL, features, and its
    state: applied or not (`mlops plan`), latest ingestion, freshness, champion."""
    from mlops import durations

    rt = runtime(ctx)
    repo = rt.repo
    states, why = _states(rt)
    table = Table(
        "job",
        "entity",
        "task",
        "view",
        "refresh",
        "TTL",
        "retrain",
        "features",
        *(("applied", "latest ingestion", "fresh", "champion") if states else ()),
        box=box.SIMPLE_HEAD,
    )
    for job in repo.jobs.values():
        row = [
            job.name,
            job.entity,
            job.task,
            job.view,
            job.refresh_cron,
            durations.text(job.ttl),
            job.retrain_cron,
            str(len(job.features)),
        ]
        if states:
            row += _state_cells(states[job.name])
        table.add_row(*row)
    console.print(table)
    console.print(f"{len(repo.jobs)} job(s) in {repo.name!r} at {repo.path}", highlight=False)
    if why:
        console.print(f"state not shown: {why}", highlight=False)


def _states(rt) -> tuple[dict, str | None]:
    """Every job's state, or why there is none to show (a store not made or not migrated)."""
    from sqlalchemy.engine import make_url

    from mlops.errors import NotReadyError
    from mlops.repository import plan as repo_plan
    from mlops.repository.state import job_states

    url = make_url(rt.settings.store_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # Listing must not create the embedded store as a side effect.
        return {}, "no feature store yet: `mlops db migrate`, then `mlops apply`"
    try:
        return job_states(rt, repo_plan.compute(rt)), None
    except NotReadyError as exc:
        return {}, f"{exc.message}: {exc.hint}"


def _state_cells(state) -> list[str]:
    latest = state.latest
    ran = f"{latest.status} {latest.started_at:%m-%d %H:%M}" if latest else "-"
    age = state.freshness.age_seconds
    fresh = "-" if age is None else "stale" if state.freshness.stale else "yes"
    champion = f"v{state.champion}" if state.champion else "-"
    if state.retrain:
        champion += " (retrain)"
    return [state.applied, ran, fresh, champion]


@app.command()
def describe(
    ctx: typer.Context, job: str = typer.Argument(..., help="A job of the repository.")
) -> None:
    """One job: its declaration (label, inputs, heuristic, features) and its state (latest
    ingestion, freshness against TTL, champion)."""
    from mlops import durations

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
    from mlops.repository import plan as repo_plan
    from mlops.repository.state import job_states

    state = job_states(rt, repo_plan.compute(rt))[spec.name]
    latest, age = state.latest, state.freshness.age_seconds
    when = (
        f"{latest.mode} {latest.status}, started {latest.started_at:%Y-%m-%d %H:%M}"
        if latest
        else "none in the last 7 days"
    )
    console.print(f"latest ingestion: {when}")
    ttl = durations.text(spec.ttl)
    console.print(
        f"freshness: newest values {age / 3600:.1f} h old (TTL {ttl})"
        + (", stale" if state.freshness.stale else "")
        if age is not None
        else "freshness: no values yet"
    )
    champion = state.champion
    console.print(f"champion: {f'v{champion}' if champion else 'none (the heuristic answers)'}")
    if state.retrain:
        console.print(f"retrain needed: {state.retrain}", highlight=False)
    console.print(f"repository: {_applied(state)}", highlight=False)


def _applied(state) -> str:
    if state.applied == "applied":
        return "applied (the store matches the declaration)"
    if state.applied == "not applied":
        return "not applied yet: run `mlops apply`"
    return f"{len(state.pending)} change(s) not applied: see `mlops plan`, then `mlops apply`"
