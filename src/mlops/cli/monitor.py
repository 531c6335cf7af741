"""``mlops monitor``: drift, accuracy, operations, A/B guardrails and the HTML report."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Watch the models in production: drift, accuracy, operations, A/B guardrails.",
    no_args_is_help=True,
)


def _ready(ctx: typer.Context):
    from mlops.cli.runtime import runtime
    from mlops.db import migrate

    rt = runtime(ctx)
    migrate.require_current(rt.store)
    return rt


@app.command("accuracy")
def accuracy_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="churn, upsell, eta or all."),
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
    from mlops.monitoring import accuracy

    rt = _ready(ctx)
    found = accuracy.report(rt, job, since=_accuracy_since(since, rt.clock.now()), by=by)
    from mlops.cli.output import console

    for name in found.jobs:
        console.print(_accuracy_table(found, name, rt.settings.accuracy_floor.get(name)))
    parts = []
    for name in found.jobs:
        latest = found.latest(name)
        if latest is None:
            parts.append(f"{name} no complete period")
        else:
            parts.append(
                f"{name} {latest['statistic']} {_accuracy_number(latest['value'])} "
                f"on {latest['period']} ({latest['status']})"
            )
    console.print(
        f"model, latest complete {by}: {'; '.join(parts)}. {found.written} result(s) written, "
        f"{len(found.opened)} alert(s) opened.",
        highlight=False,
    )
    for alert in found.opened:
        console.print(f"  [red]{alert.kind}[/red] {alert.message}", highlight=False)


def _accuracy_since(value: str | None, now):
    from mlops.cli.output import parse_duration, parse_time
    from mlops.errors import InputError

    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except InputError:
        pass
    try:
        return parse_time(value, "--since")
    except InputError:
        raise InputError(
            f"cannot read --since {value!r}", "write a date like 2026-05-01 or a duration like 30d"
        ) from None


_ACCURACY_SHOWN = {
    "churn": {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "positive_rate": "rate"},
    "eta": {"mae": "MAE", "p90_abs_error": "p90 err", "within_10min": "<=10 min", "bias": "bias"},
}
_ACCURACY_SHOWN["upsell"] = _ACCURACY_SHOWN["churn"]


def _accuracy_table(found, job: str, floor: float | None):
    from rich import box
    from rich.table import Table

    rows = found.frame[found.frame["job"] == job]
    line = "ceiling" if job == "eta" else "floor"
    title = f"{job} accuracy by {found.by} since {found.since:%Y-%m-%d}"
    if rows.empty:
        return f"{title}: no labelled predictions"
    shown = _ACCURACY_SHOWN[job]
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
    colours = {"ok": "green", "alert": "red", "insufficient": "yellow"}
    for row in rows.to_dict("records"):
        status = row["status"]
        table.add_row(
            row["period"] + ("" if row["complete"] else "*"),
            row["source"],
            f"{row['n']:,}",
            *(_accuracy_number(row[m]) for m in shown),
            f"[{colours.get(status, 'white')}]{status}[/]",
        )
    return table


def _accuracy_number(value) -> str:
    import math

    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"
