"""``mlops train``: features -> training set -> model -> MLflow -> promotion gate."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich import box
from rich.status import Status
from rich.table import Table

from mlops.cli.output import console, err_console
from mlops.cli.runtime import runtime

# The figures worth a glance, in this order; everything is logged to MLflow.
SHOWN = {
    "classifier": ["roc_auc", "pr_auc", "log_loss", "brier"],
    "regressor": ["mae", "median_abs_error", "p90_abs_error", "within_10min", "bias"],
}


def train(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A job of the repository (mlops jobs list), or all."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Do everything in memory; write nothing anywhere."
    ),
    no_promote: bool = typer.Option(
        False, "--no-promote", help="Register the new version as challenger only."
    ),
) -> None:
    """Refresh features, train, compare with the heuristic and champion, register, promote.

    The new version gets the alias `challenger`; it becomes `champion` only when it beats
    the heuristic and is not worse than the current champion (see `mlops models promote`).
    """
    from mlops.training.train import train as train_job

    rt = runtime(ctx)
    reports = []
    for spec in rt.repo.resolve(job):
        with console.status(f"{spec.name}: starting") as status:
            report = train_job(
                rt,
                spec.name,
                dry_run=dry_run,
                promote=not no_promote,
                on_stage=_stages(status, spec.name),
            )
        reports.append(report)
        print_comparison(report, SHOWN[spec.kind])
    print_summary(reports)
    if dry_run:
        console.print("dry run: no features, MLflow runs or registry versions were written.")


def print_comparison(report, shown: list[str]) -> None:
    table = Table(
        "metric",
        "model",
        "heuristic",
        "champion",
        title=f"{report.job}: {report.rows_train:,} training rows, {report.rows_valid:,} "
        "validation rows (most recent window)",
        box=box.SIMPLE_HEAD,
    )
    for name in shown:
        table.add_row(
            name,
            _fmt(report.model_metrics.get(name)),
            _fmt(report.heuristic_metrics.get(name)),
            _fmt(report.champion_metrics.get(name)),
        )
    console.print(table)


def print_summary(reports) -> None:
    table = Table("job", "version", "champion?", "seconds", title="Training", box=box.SIMPLE_HEAD)
    for r in reports:
        version = "dry run" if r.dry_run else f"v{r.version}"
        table.add_row(r.job, version, "yes" if r.promoted else "no", f"{r.seconds:.1f}")
    console.print(table)
    for r in reports:
        if r.promotion:
            (console if r.promoted else err_console).print(
                f"{r.job}: {r.promotion}", highlight=False
            )
    if any(r.promoted for r in reports):
        console.print("undo a promotion with `mlops models rollback <job>`")


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _stages(status: Status, job: str) -> Callable[[str], None]:
    """Shows each stage of ``job``'s training on the spinner line."""

    def show(label: str) -> None:
        status.update(f"{job}: {label}")

    return show
