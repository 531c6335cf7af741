"""``mlops monitor ops``: ingestion, scheduler delay, feature freshness and fallback rates per
job, as two tables, with the operational alerts the check opened."""

from __future__ import annotations

import typer

from mlops.cli.monitor_common import print_opened, ready


def ops_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="A job of the repository (mlops jobs list), or all."),
    since: str = typer.Option(
        "7d", "--since", help="Period: a duration back from now (7d, 12h) or a UTC date-time."
    ),
) -> None:
    """Ingestion success rate, rows, durations, scheduler delay, feature freshness against TTL
    and fallback rates per job; raises (once) and resolves the stale-features and
    failed-ingestion alerts."""
    from rich import box
    from rich.table import Table

    from mlops.cli.output import console, parse_since
    from mlops.monitoring import ops

    rt = ready(ctx)
    names = [spec.name for spec in rt.repo.resolve(job)]
    checked = ops.check(rt, since=parse_since(since, rt.clock.now()), jobs=names)
    found = checked.report
    title = f"since {found.since:%Y-%m-%d %H:%M} UTC"
    runs = Table(
        "job",
        "last",
        "success",
        "runs",
        "rows last (mean)",
        "duration last / p50 / max",
        "sched. delay last / mean / max",
        title=f"Ingestion {title}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    serving = Table(
        "job",
        "freshness: age / TTL",
        "answers",
        "fallbacks by reason (share of answers)",
        title=f"Features and answers {title}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for j in found.jobs:
        ing, sched, fresh = j.ingestion, j.scheduler, j.freshness
        last = "-" if ing.latest is None else _OPS_STATUS.get(ing.latest.status, ing.latest.status)
        runs.add_row(
            j.job,
            f"[red]{last}[/red]" if ing.latest and ing.latest.failed else last,
            "-" if ing.success_rate is None else f"{ing.success_rate:.0%}",
            ", ".join(f"{n} {_OPS_STATUS.get(st, st)}" for st, n in sorted(ing.runs.items()))
            or "none",
            "-" if ing.rows_last is None else f"{ing.rows_last:,} ({ing.rows_mean:,.0f})",
            _ops_spans(ing.duration_last, ing.duration_p50, ing.duration_max),
            _ops_spans(sched.last, sched.mean, sched.max) if sched.runs else "never scheduled",
        )
        rates = list(j.answers.fallback_rates.items())
        serving.add_row(
            j.job,
            _ops_freshness(fresh),
            f"{j.answers.total:,}",
            ", ".join(f"{reason} {rate:.1%}" for reason, rate in rates[:3]) or "none",
        )
    console.print(runs)
    console.print(serving)
    opened = checked.opened
    summary = f"{len(found.jobs)} job(s) checked; {len(opened)} alert(s) opened"
    console.print(
        summary + (": " + "; ".join(f"{a.kind} {a.job}" for a in opened) if opened else "."),
        highlight=False,
    )
    print_opened(opened)


_OPS_STATUS = {"succeeded": "ok"}
_OPS_UNITS = ((86400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s"))


def _ops_spans(*seconds) -> str:
    """Durations in one unit, the one that suits the largest: '0.08 / 0.07 / 0.2 s'."""
    known = [abs(s) for s in seconds if s is not None]
    if not known:
        return "-"
    size, unit = next(((n, u) for n, u in _OPS_UNITS if max(known) >= 2 * n), (1.0, "s"))
    return " / ".join("-" if s is None else _ops_number(s / size) for s in seconds) + f" {unit}"


def _ops_number(value: float) -> str:
    return f"{value:.2g}" if abs(value) < 10 else f"{value:,.0f}"


def _ops_freshness(fresh) -> str:
    if fresh.age_seconds is None:
        return "[red]never ingested[/red]"
    text = f"{_ops_spans(fresh.age_seconds)} / {_ops_spans(fresh.ttl_seconds)}"
    return f"[red]{text} STALE[/red]" if fresh.stale else text
