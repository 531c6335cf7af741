"""``mlops monitor drift``: each job's live feature values against its champion's reference, a
table per job, then the drift alerts and fallback trips the check recorded."""

from __future__ import annotations

import typer

from mlops.cli.monitor_common import CLEAR_TRIPS, coloured, figure, ready


def drift_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="A job of the repository (mlops jobs list), or all."),
    window: str | None = typer.Option(
        None,
        "--window",
        help="Compare every snapshot of this period (e.g. 7d) instead of the current online "
        "values (ETA, 20 zones, compares the last day by default).",
    ),
) -> None:
    """Live feature values against the champion's reference: PSI and KS (numeric), PSI and
    chi-square (categories); alerts and, where automatic fallback is on, a trip."""
    from mlops.cli.output import console, parse_duration
    from mlops.errors import NotReadyError
    from mlops.monitoring import drift

    period = parse_duration(window) if window else None
    rt = ready(ctx)
    rt.repo.resolve(job)  # an unknown job is bad input before anything is read
    found = drift.check(rt, job, window=period)
    checked = [r for r in found if r.error is None]
    if not checked:
        first = next(r.error for r in found if r.error is not None)
        if len(found) == 1:
            raise first
        raise NotReadyError("no job has a champion to compare with", first.hint)
    for result in found:
        if result.error is not None:
            console.print(f"[yellow]{result.job}: not checked[/yellow]: {result.error}")
        else:
            console.print(
                f"[bold]{result.job}[/bold]: {result.source} values vs champion "
                f"v{result.model_version}",
                highlight=False,
            )
            console.print(_drift_table(result))
    _drift_summary(rt, checked)


def _drift_table(result):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("feature", no_wrap=True)
    table.add_column("PSI", justify="right")
    table.add_column("test")
    table.add_column("p-value", justify="right")
    table.add_column("sample", justify="right")
    table.add_column("status")
    for f in result.features:
        table.add_row(
            f.feature,
            figure(f.psi),
            "KS" if f.test == "ks" else "chi2",
            figure(f.pvalue, ".3g"),
            f"{f.sample_size:,}",
            coloured(f.status),
        )
    return table


def _drift_summary(rt, checked) -> None:
    from mlops.cli.output import console
    from mlops.monitoring import job_settings

    alerting = {r.job: r for r in checked if r.alerting}
    if not alerting:
        console.print(f"no drift alert in {', '.join(r.job for r in checked)}")
        return
    for job, result in alerting.items():
        names = ", ".join(f.feature for f in result.alerting)
        console.print(f"[bold red]drift alert[/bold red] {job}: {names}", highlight=False)
    new = sum(len(r.opened) for r in checked)
    ongoing = sum(len(r.alerting) for r in checked) - new
    console.print(f"alerts raised: {new} new, {ongoing} ongoing")
    trips = []
    for job, result in alerting.items():
        if result.trip is not None:
            trips.append(f"{job} tripped now")
        elif job_settings.auto_fallback(rt, job):
            trips.append(f"{job} already tripped")
        else:
            trips.append(f"{job} not tripped (auto fallback off: the model still answers)")
    console.print(f"trips recorded: {'; '.join(trips)}")
    console.print(CLEAR_TRIPS)
