"""``mlops flags``: the kill switch (global ``ml`` and per job) and the fallback trips."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from mlops.cli.output import console
from mlops.cli.runtime import runtime

app = typer.Typer(
    help="Kill switch: turn ML answers on or off (serving falls back to rules within seconds, "
    "no restart).",
    no_args_is_help=True,
)


def _ready(ctx: typer.Context):
    from mlops.db import migrate

    rt = runtime(ctx)
    migrate.require_current(rt.store)
    return rt


@app.command()
def get(ctx: typer.Context) -> None:
    """Every flag (never set means on) and the drift or guardrail trips in force."""
    from mlops.serving import flags, trips

    rt = _ready(ctx)
    table = Table("flag", "state", "reason", "by", "at", box=box.SIMPLE_HEAD)
    for flag in flags.read(rt.store, rt.repo.names).values():
        table.add_row(
            flag.name,
            "[green]on[/green]" if flag.enabled else "[red]off[/red]",
            flag.reason,
            flag.updated_by or "",
            str(flag.updated_at or ""),
        )
    console.print(table)
    active = trips.active(rt.store)
    for job, found in active.items():
        for trip in found:
            console.print(
                f"[yellow]trip[/yellow] {job}: {trip.kind} since {trip.tripped_at}: {trip.detail}"
            )
    if active:
        console.print("clear with: mlops flags clear-trips <job>")


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="ml (every job) or a job of the repository."),
    state: str = typer.Argument(..., help="on or off."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why, e.g. an incident id."),
) -> None:
    """Turn ML answers on or off; serving replicas apply it at their next poll."""
    from mlops.errors import InputError
    from mlops.serving import flags
    from mlops.training.train import actor

    if state.lower() not in ("on", "off"):
        raise InputError(f"cannot read state {state!r}", "write on or off")
    rt = _ready(ctx)
    flag = flags.write(
        rt.store,
        name,
        state.lower() == "on",
        reason=reason,
        actor=actor(),
        at=rt.clock.now(),
        jobs=rt.repo.names,
    )
    seconds = rt.settings.control_poll_seconds
    what = "every job" if flag.name == flags.GLOBAL else f"the {flag.name} job"
    answer = "models, where safe" if flag.enabled else "the heuristics"
    console.print(
        f"{flag.name} is {'on' if flag.enabled else 'off'}: {what} answers from {answer} "
        f"within {seconds:g} s in every replica; cached features are cleared."
    )
    console.print(f"undo: mlops flags set {flag.name} {'off' if flag.enabled else 'on'} -r ...")


@app.command("clear-trips")
def clear_trips(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A job of the repository (mlops jobs list)."),
) -> None:
    """Clear a job's drift or guardrail trips, so its model may answer again."""
    from mlops.serving import trips
    from mlops.training.train import actor

    rt = _ready(ctx)
    rt.repo.job(job)
    cleared = trips.clear(rt.store, job, actor=actor(), at=rt.clock.now())
    console.print(f"{job}: {cleared} trip(s) cleared")
