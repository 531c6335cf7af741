"""``mlops ingest``: warehouse views -> ml_feature_values (latest) + ml_feature_history."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from mlops.cli.output import console, parse_duration, parse_time, print_error, progress_bar
from mlops.cli.runtime import runtime


def ingest(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A job of the repository (mlops jobs list), or all."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Compute and validate, print what would be written, write nothing."
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="Snapshot time (UTC) for a refresh; default now."
    ),
    backfill: bool = typer.Option(False, "--backfill", help="Ingest a range of past snapshots."),
    start: str = typer.Option(None, help="Backfill: first as_of (UTC date or date-time)."),
    end: str = typer.Option(None, help="Backfill: end of the range, exclusive."),
    every: str = typer.Option(None, help="Backfill: spacing, e.g. 1d or 5m; default per job."),
    wait: str = typer.Option(
        None,
        "--wait",
        help="When another run of the job is under way, wait this long for it (e.g. 30s, "
        "10m) instead of stopping at once.",
    ),
    scheduled_for: str = typer.Option(None, hidden=True, help="Set by schedulers."),
) -> None:
    """Run a job's feature view in the warehouse and store the validated values.

    A refresh is all-or-nothing. A backfill commits chunk by chunk and resumes where it
    stopped: snapshots already ingested are skipped. One run of a job at a time: a second
    one stops (exit 2) or, with --wait, waits for the first.
    """
    from mlops.errors import IngestionFailed, InputError, JobBusy
    from mlops.store import ingest as ingestion

    rt = runtime(ctx)
    jobs = rt.repo.resolve(job)
    if backfill and not (start and end):
        raise InputError(
            "--backfill needs --start and --end", "e.g. --start 2026-01-01 --end 2026-02-01"
        )
    if not backfill and (start or end or every):
        raise InputError("--start/--end/--every only apply with --backfill", "add --backfill")
    waiting = parse_duration(wait) if wait else None
    reports, failures, busy = [], [], []
    for spec in jobs:
        with progress_bar(f"{spec.name}: ingesting") as bar:
            try:
                if backfill:
                    report = ingestion.backfill(
                        rt,
                        spec.name,
                        start=parse_time(start, "--start"),
                        end=parse_time(end, "--end"),
                        every=parse_duration(every) if every else None,
                        dry_run=dry_run,
                        on_progress=bar.advance,
                        wait=waiting,
                    )
                else:
                    report = ingestion.refresh(
                        rt,
                        spec.name,
                        as_of=parse_time(as_of, "--as-of") if as_of else None,
                        dry_run=dry_run,
                        scheduled_for=parse_time(scheduled_for, "--scheduled-for")
                        if scheduled_for
                        else None,
                        on_progress=bar.advance,
                        wait=waiting,
                    )
            except IngestionFailed as exc:
                failures.append((spec.name, exc))
                continue
            except JobBusy as exc:
                if len(jobs) == 1:
                    raise
                busy.append(exc)  # the other jobs still run
                continue
        reports.append(report)
        if dry_run:
            print_feature_stats(report)
    print_reports(reports)
    for _, failure in failures:
        print_error(failure)
    for refused in busy:
        print_error(refused)
    if dry_run:
        console.print("dry run: nothing was written.")
    elif backfill and reports:
        # History is append-only (training sets must be reproducible): a backfill is not
        # undone; running it again skips what it wrote.
        console.print(
            "history is append-only: a backfill is kept; running the same command again "
            "skips the snapshots already written."
        )
    if failures:
        raise typer.Exit(1)
    if busy:
        raise typer.Exit(busy[0].exit_code)


def print_reports(reports) -> None:
    """One row per run: snapshots new (+ already done), rows, values and speed."""
    if not reports:
        return
    headers = ["job", "run", "snapshots", "rows", "rejected", "values", "sec", "values/s"]
    table = Table(
        *headers, title="Ingestion", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for r in reports:
        skipped = f" (+{r.points_skipped:,})" if r.points_skipped else ""
        outcome = "ok" if r.status == "succeeded" else r.status
        table.add_row(
            r.job,
            f"{'dry run' if r.dry_run else r.mode} {outcome}",
            f"{r.points - r.points_skipped:,}{skipped}",
            f"{r.rows_written:,}",
            f"{r.rows_rejected:,}",
            f"{r.values_written:,}",
            f"{r.seconds:.1f}",
            f"{r.values_per_second:,.0f}",
        )
    console.print(table)
    if any(r.points_skipped for r in reports):
        console.print("(+N): snapshots already ingested earlier, skipped")


def print_feature_stats(report) -> None:
    table = Table(
        "feature", "rows", "null %", "min", "max", "mean / top", title=f"{report.job}: would write"
    )
    for s in report.stats.values():
        if s.dtype == "category":
            top = ", ".join(f"{k} {v}" for k, v in s.categories.most_common(3))
            table.add_row(s.name, f"{s.rows:,}", f"{s.null_share:.1%}", "", "", top)
        else:
            table.add_row(
                s.name,
                f"{s.rows:,}",
                f"{s.null_share:.1%}",
                _num(s.minimum),
                _num(s.maximum),
                _num(s.mean),
            )
    console.print(table)
    if report.reject_reasons:
        console.print(
            f"rejected rows: {report.rows_rejected:,}; reasons: "
            + "; ".join(f"{k} ({v})" for k, v in report.reject_reasons.most_common(5))
        )


def _num(value) -> str:
    return "" if value is None else f"{value:,.3g}"
