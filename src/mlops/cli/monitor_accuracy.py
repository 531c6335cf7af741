"""``mlops monitor accuracy``: the accuracy report's metrics per period as a table per job, with
the model's latest complete period and the alerts the check opened."""

from __future__ import annotations

import typer

from mlops.cli.monitor_common import coloured, figure, print_opened, ready


def accuracy_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="A job of the repository (mlops jobs list), or all."),
    since: str = typer.Option(
        None,
        "--since",
        help="From a UTC date(-time) or a duration back from now (30d, 8w); default 90 days.",
    ),
    by: str = typer.Option("day", "--by", help="Period of the metrics: day or week."),
) -> None:
    """Predictions joined with their outcomes (labels not yet due left out): the training
    metrics per period for model and heuristic answers apart; writes them to
    ml_monitor_results and raises (once) an alert when the model falls past the floor."""
    from mlops.cli.output import console, parse_since
    from mlops.monitoring import accuracy, job_settings

    rt = ready(ctx)
    found = accuracy.report(rt, job, since=parse_since(since, rt.clock.now()), by=by)

    for name in found.jobs:
        floor = job_settings.accuracy_floor(rt, name)
        console.print(_accuracy_table(found, name, rt.repo.job(name).task, floor))
    parts = []
    for name in found.jobs:
        latest = found.latest(name)
        if latest is None:
            parts.append(f"{name} no complete period")
        else:
            parts.append(
                f"{name} {latest['statistic']} {figure(latest['value'])} "
                f"on {latest['period']} ({latest['status']})"
            )
    console.print(
        f"model, latest complete {by}: {'; '.join(parts)}. {found.written} result(s) written, "
        f"{len(found.opened)} alert(s) opened.",
        highlight=False,
    )
    print_opened(found.opened)


# The metrics shown per task (the report has them all).
_ACCURACY_SHOWN = {
    "binary": {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "positive_rate": "rate"},
    "regression": {
        "mae": "MAE",
        "p90_abs_error": "p90 err",
        "within_10min": "<=10 min",
        "bias": "bias",
    },
}


def _accuracy_table(found, job: str, task: str, floor: float | None):
    from rich import box
    from rich.table import Table

    rows = found.frame[found.frame["job"] == job]
    line = "ceiling" if task == "regression" else "floor"
    title = f"{job} accuracy by {found.by} since {found.since:%Y-%m-%d}"
    if rows.empty:
        return f"{title}: no labelled predictions"
    shown = _ACCURACY_SHOWN[task]
    table = Table(
        title=title + ("" if floor is None else f" ({line} {floor:g})"),
        caption=None if rows["complete"].all() else "* labels still arriving",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("period", no_wrap=True)
    table.add_column("source")
    table.add_column("n", justify="right")
    for header in shown.values():
        table.add_column(header, justify="right")
    table.add_column("status")
    for row in rows.to_dict("records"):
        table.add_row(
            row["period"] + ("" if row["complete"] else "*"),
            row["source"],
            f"{row['n']:,}",
            *(figure(row[m]) for m in shown),
            coloured(row["status"]),
        )
    return table
