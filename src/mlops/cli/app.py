"""The root ``mlops`` command. Heavy libraries are imported inside commands so that
``mlops --help`` answers at once."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mlops.cli import (
    db,
    flags,
    ingest,
    init,
    jobs,
    models,
    monitor,
    plan,
    quickstart,
    schedule,
    serve,
    specs,
    train,
    warehouse,
)

app = typer.Typer(
    name="mlops",
    help="ML operations end to end: warehouse views -> feature store -> training -> serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(db.app, name="db")
app.add_typer(jobs.app, name="jobs")
app.add_typer(warehouse.app, name="warehouse")
app.add_typer(specs.app, name="specs")
app.add_typer(models.app, name="models")
app.add_typer(flags.app, name="flags")
app.add_typer(monitor.app, name="monitor")
app.add_typer(schedule.app, name="schedule")
app.add_typer(schedule.scheduler_app, name="scheduler")
app.command("init")(init.init)
app.command("plan")(plan.plan)
app.command("apply")(plan.apply)
app.command("ingest")(ingest.ingest)
app.command("train")(train.train)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve.serve)


@app.callback()
def root(
    ctx: typer.Context,
    repo: Path = typer.Option(
        None,
        "--repo",
        help="Feature repository folder (default: MLOPS_REPO, else the bundled example).",
        show_default=False,
    ),
) -> None:
    """ML operations end to end: warehouse views -> feature store -> training -> serving."""
    if repo is not None:
        ctx.meta["mlops_repo"] = repo


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: library errors become one line and an exit code."""
    from sqlalchemy.exc import DBAPIError

    from mlops.cli.output import print_error
    from mlops.db import failures
    from mlops.errors import ConfigError, MlopsError

    try:
        app(args=argv, prog_name="mlops")
    except MlopsError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except DBAPIError as exc:
        # A database that is down or refuses us before any step could say so in its own
        # words (the first query of a command): one line and the fix, not the driver's
        # traceback with its SQL.
        what, fix = failures.describe(exc, None, "")
        error = ConfigError(what, fix)
        print_error(error)
        sys.exit(error.exit_code)
