"""``mlops schedule list|export`` and ``mlops scheduler run``: the task table, its Airflow and
crontab exports, and the built-in scheduler that runs it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table

from mlops.cli.output import console, err_console
from mlops.cli.runtime import runtime

app = typer.Typer(
    help="The schedule of ingestion, retraining and monitoring: list it, or export it to "
    "Airflow or crontab.",
    no_args_is_help=True,
)
scheduler_app = typer.Typer(
    help="The built-in scheduler: runs the schedule on this machine (several machines may "
    "each run one: a database lease keeps a task from running twice).",
    no_args_is_help=True,
)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every task with its cron (UTC), command line, retries, timeout and next three runs.

    A task marked └ runs right after the one above it, for the same slot. The first retry
    waits the delay shown, each next one twice as long. SLOT is the cron time the run is for
    (ingestion records it, to measure scheduler delay). In staging (MLOPS_ENVIRONMENT=staging)
    training runs with --dry-run.
    """
    from mlops.scheduling.tasks import build, human, next_slots

    rt = runtime(ctx)
    schedule = build(rt.settings, rt.repo)
    now = rt.clock.now()
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("task", no_wrap=True)
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("next runs", no_wrap=True)
    table.add_column("command", min_width=14, overflow="fold")
    table.add_column("retries", no_wrap=True)
    table.add_column("timeout", no_wrap=True)
    for task in schedule.tasks:
        follows = "then, always" if task.when == "done" else "then, if ok"
        command = " ".join(task.command) + (" --scheduled-for SLOT" if task.takes_slot else "")
        nexts = next_slots(task.cron, now, 3) if task.cron else []
        table.add_row(
            task.name if task.cron else f"└ {task.name}",
            task.cron or follows,
            "\n".join(f"{t:%m-%d %H:%M}" for t in nexts),
            command,
            f"{task.retries} ({human(task.retry_delay)})",
            human(task.timeout),
        )
    console.print(table)
    roots = len(schedule.roots)
    console.print(
        f"{len(schedule.tasks)} tasks: {roots} on a cron, {len(schedule.tasks) - roots} after "
        f"another; environment {rt.settings.environment}; now {now:%Y-%m-%d %H:%M} UTC. "
        "Run them with `mlops scheduler run`, or export with `mlops schedule export`.",
        highlight=False,
    )


@app.command()
def export(
    ctx: typer.Context,
    airflow: Path = typer.Option(
        None, "--airflow", help="Write the DAG module (mlops_schedule.py) into this folder."
    ),
    crontab: bool = typer.Option(False, "--crontab", help="Print crontab lines on stdout."),
    lock_dir: str = typer.Option(
        "/tmp", "--lock-dir", help="Crontab: folder of the flock files that prevent overlaps."
    ),
) -> None:
    """Export the schedule: Airflow DAGs (one per cron task, its chain as BashOperators with
    the same commands, cron, retries, backoff and timeout; catchup off, one run at a time)
    or crontab lines.

    Uses the current settings: MLOPS_ENVIRONMENT=staging exports training with --dry-run,
    and the MLOPS_* settings in force (MLOPS_HOME made absolute) are written into the export,
    secrets excepted. A run fails when its ingestion fails; failed tasks are POSTed to
    MLOPS_ALERT_WEBHOOK_URL. The generated files never import mlops; the workers need `mlops`
    on PATH.
    """
    from mlops.errors import InputError
    from mlops.scheduling import airflow as airflow_export
    from mlops.scheduling import crontab as crontab_export
    from mlops.scheduling.environment import for_workers
    from mlops.scheduling.tasks import build

    if (airflow is None) == (not crontab):
        raise InputError(
            "choose one of --airflow DIR and --crontab",
            "e.g. mlops schedule export --airflow ~/airflow/dags",
        )
    rt = runtime(ctx)
    settings = rt.settings
    schedule = build(settings, rt.repo)
    now, environment = rt.clock.now(), settings.environment
    secrets = for_workers(settings).secrets
    if crontab:
        text = crontab_export.render(
            schedule,
            settings,
            generated_at=now,
            lock_dir=lock_dir,
            bin_dir=crontab_export.mlops_folder(),
        )
        typer.echo(text, nl=False)
        err_console.print(
            f"{len(schedule.roots)} crontab lines ({environment}), with the MLOPS_* settings "
            "in force now; install with "
            "`mlops schedule export --crontab > mlops.cron && crontab mlops.cron`."
            + (f" Add by hand (secrets, not written): {', '.join(secrets)}." if secrets else ""),
            highlight=False,
        )
        return
    path = airflow_export.write(schedule, settings, airflow, generated_at=now)
    pool = airflow_export.warehouse_pool(settings)
    console.print(
        f"wrote {path}: {len(schedule.roots)} DAGs ({environment}), ids "
        f"{', '.join(airflow_export.dag_id(r) for r in schedule.roots)}, with the MLOPS_* "
        "settings in force now. Create the warehouse pool once: `airflow pools set "
        f"{pool} {airflow_export.POOL_SLOTS} 'mlops refreshes'`; then switch the DAGs on in "
        "the UI or with `airflow dags unpause`."
        + (
            f" The workers' environment must hold (secrets, not written): {', '.join(secrets)}."
            if secrets
            else ""
        ),
        highlight=False,
    )


@scheduler_app.command("run")
def run(
    ctx: typer.Context,
    once: bool = typer.Option(
        False, "--once", help="Run what is due now (retries included), then exit."
    ),
    owner: str = typer.Option(
        None, "--owner", help="Name of this scheduler in leases and runs; default host:pid:id."
    ),
) -> None:
    """Run the schedule until SIGTERM or Ctrl-C: each task at its cron time (UTC).

    Every attempt is recorded in ml_scheduler_runs with the slot it was due for, so the
    scheduler delay is measured. A task runs only while this process holds its lease in the
    database, so several schedulers never run it twice. Failures are retried with doubling
    delays up to the task's limit. After downtime the latest missed slot of each task runs
    once. On SIGTERM/SIGINT the running tasks finish (a second signal stops at once) and the
    leases are released.
    """
    import logging
    import logging.config
    from collections import Counter

    from mlops.db import migrate
    from mlops.scheduling.scheduler import Scheduler
    from mlops.scheduling.tasks import build
    from mlops.serving.logs import config

    rt = runtime(ctx)
    migrate.require_current(rt.store)
    schedule = build(rt.settings, rt.repo)
    logging.config.dictConfig(config("WARNING"))
    outcomes: Counter = Counter()

    def show(attempt) -> None:
        if attempt.status == "running":
            console.print(
                f"{attempt.started_at:%Y-%m-%d %H:%M:%S} start {attempt.task} "
                f"(slot {attempt.scheduled_for:%H:%M:%S}, attempt {attempt.attempt}, "
                f"delay {attempt.delay.total_seconds():.0f} s)",
                highlight=False,
            )
            return
        outcomes[attempt.status] += 1
        colour = {"succeeded": "green", "skipped": "yellow"}.get(attempt.status, "red")
        detail = attempt.error or attempt.summary or ""
        console.print(
            f"{(attempt.finished_at or attempt.started_at):%Y-%m-%d %H:%M:%S} "
            f"[{colour}]{attempt.status}[/{colour}] {attempt.task}"
            + (f": {detail}" if detail else ""),
            highlight=False,
        )

    scheduler = Scheduler(rt, schedule, owner=owner, on_attempt=show)
    console.print(
        f"scheduler {scheduler.owner}: {len(schedule.roots)} cron tasks "
        f"({rt.settings.environment}); {'running what is due' if once else 'Ctrl-C to stop'}",
        highlight=False,
    )
    try:
        scheduler.run(once=once)
    except KeyboardInterrupt:
        err_console.print("stopped at once: runs still going are recorded as running")
        raise typer.Exit(130) from None
    done = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items())) or "nothing ran"
    console.print(f"scheduler stopped: {done}; leases released.", highlight=False)
