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


_STATUS_COLOURS = {
    "ok": "green",
    "warn": "yellow",
    "alert": "bold red",
    "breach": "bold red",
    "insufficient": "dim",
}
_CLEAR_TRIPS = (
    "a tripped job answers from its heuristic until cleared: mlops flags clear-trips <job>"
)


def _coloured(status: str) -> str:
    return f"[{_STATUS_COLOURS.get(status, 'white')}]{status}[/]"


def _figure(value, spec: str = ".3f") -> str:
    """``value`` formatted, or "-" when there is none (None, NaN)."""
    import math

    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _print_opened(opened) -> None:
    """A line per alert the check opened."""
    from mlops.cli.output import console

    for alert in opened:
        console.print(f"  [red]{alert.kind}[/red] {alert.message}", highlight=False)


@app.command("ops")
def ops_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="churn, upsell, eta or all."),
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
    from mlops.specs import resolve_jobs

    names = [spec.name for spec in resolve_jobs(job)]
    rt = _ready(ctx)
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
    _print_opened(opened)


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
    from mlops.cli.output import console, parse_since
    from mlops.monitoring import accuracy

    rt = _ready(ctx)
    found = accuracy.report(rt, job, since=parse_since(since, rt.clock.now()), by=by)

    for name in found.jobs:
        console.print(_accuracy_table(found, name, rt.settings.accuracy_floor.get(name)))
    parts = []
    for name in found.jobs:
        latest = found.latest(name)
        if latest is None:
            parts.append(f"{name} no complete period")
        else:
            parts.append(
                f"{name} {latest['statistic']} {_figure(latest['value'])} "
                f"on {latest['period']} ({latest['status']})"
            )
    console.print(
        f"model, latest complete {by}: {'; '.join(parts)}. {found.written} result(s) written, "
        f"{len(found.opened)} alert(s) opened.",
        highlight=False,
    )
    _print_opened(found.opened)


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
    for row in rows.to_dict("records"):
        table.add_row(
            row["period"] + ("" if row["complete"] else "*"),
            row["source"],
            f"{row['n']:,}",
            *(_figure(row[m]) for m in shown),
            _coloured(row["status"]),
        )
    return table


@app.command("drift")
def drift_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="churn, upsell, eta or all."),
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
    from mlops.specs.features import resolve_jobs

    period = parse_duration(window) if window else None
    resolve_jobs(job)  # an unknown job is bad input before anything is read
    rt = _ready(ctx)
    found = drift.check(rt, job, window=period)
    checked = [r for r in found if r.error is None]
    if not checked:
        first = found[0].error
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
            _figure(f.psi),
            "KS" if f.test == "ks" else "chi2",
            _figure(f.pvalue, ".3g"),
            f"{f.sample_size:,}",
            _coloured(f.status),
        )
    return table


def _drift_summary(rt, checked) -> None:
    from mlops.cli.output import console

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
        elif rt.settings.auto_fallback.get(job, False):
            trips.append(f"{job} already tripped")
        else:
            trips.append(f"{job} not tripped (auto fallback off: the model still answers)")
    console.print(f"trips recorded: {'; '.join(trips)}")
    console.print(_CLEAR_TRIPS)


@app.command("report")
def report_command(
    ctx: typer.Context,
    out: str = typer.Option(
        "report.html", "--out", help="The HTML file to write (replaced atomically)."
    ),
    since: str = typer.Option("30d", "--since", help="Window back from now: 24h, 7d, 30d ..."),
) -> None:
    """Write the monitoring dashboard as one self-contained HTML file (charts work offline):
    the page `GET /dashboard` serves."""
    from pathlib import Path

    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from mlops.cli.output import console, parse_duration
    from mlops.monitoring import report

    window = parse_duration(since)
    rt = _ready(ctx)
    written = report.write_report(rt, Path(out), since=window)
    table = Table("panel", "points", "notes", box=box.SIMPLE_HEAD)
    for panel in written.panels:
        notes = escape("\n".join(panel.notes))
        if panel.error:
            notes = f"[red]could not read: {escape(panel.error)}[/red]"
        table.add_row(panel.title, f"{panel.points:,}", notes or "-")
    console.print(table)
    empty = sum(p.empty for p in written.panels)
    console.print(
        f"wrote {written.path} ({written.size / 1e6:.1f} MB, {len(written.panels)} panels"
        + (f", {empty} with no data yet" if empty else "")
        + ")",
        highlight=False,
    )


@app.command("guardrails")
def guardrails_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="churn, upsell, eta or all."),
    since: str = typer.Option(
        None,
        "--since",
        help="From a UTC date(-time) or a duration back from now (30d); default: every "
        "answer since the job's guardrail trip was last cleared.",
    ),
) -> None:
    """The A/B arms on each job's guardrail metric: treatment (model) against control
    (heuristic), a one-sided non-inferiority z-test with a minimum sample per arm; a
    significant regression past the margin raises an alert and trips the fallback."""
    from rich import box
    from rich.table import Table

    from mlops.cli.output import console, parse_since
    from mlops.monitoring import guardrails

    rt = _ready(ctx)
    found = guardrails.check(rt, job, since=parse_since(since, rt.clock.now()))
    s = rt.settings
    table = Table(
        title=f"A/B guardrails (one-sided, alpha {s.guardrail_alpha:g}, "
        f"at least {s.guardrail_min_sample:,} per arm)",
        caption="difference = treatment - control; acceptance and retention: higher is "
        "better; late share: lower is better",
        box=box.SIMPLE_HEAD,
    )
    for name in ("job", "metric", "control (n)", "treatment (n)"):
        table.add_column(name, justify="left" if name in ("job", "metric") else "right")
    table.add_column(f"difference [{1 - 2 * s.guardrail_alpha:.0%} CI]", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("p-value", justify="right")
    table.add_column("decision")
    for g in found:
        c = g.comparison
        table.add_row(
            g.job,
            g.metric.name,
            _guardrails_arm(c.control),
            _guardrails_arm(c.treatment),
            "-"
            if c.difference is None
            else f"{c.difference:+.1%} [{c.ci_low:+.1%}, {c.ci_high:+.1%}]",
            f"{c.margin:.1%}",
            _figure(c.p_value, ".3g"),
            _coloured(c.decision) + (" [red](tripped)[/red]" if g.trip else ""),
        )
    console.print(table)
    counts = {d: sum(g.decision == d for g in found) for d in ("breach", "warn", "ok")}
    short = sum(g.decision == "insufficient" for g in found)
    opened = sum(len(g.opened) for g in found)
    tripped = [g.job for g in found if g.trip]
    console.print(
        f"{len(found)} job(s) compared: {counts['breach']} breach, {counts['warn']} warn, "
        f"{counts['ok']} ok, {short} without enough data; {opened} alert(s) opened; "
        f"trips recorded: {', '.join(tripped) or 'none'}.",
        highlight=False,
    )
    for g in found:
        if g.decision == "breach" and not rt.settings.auto_fallback.get(g.job, False):
            console.print(f"  {g.job}: auto fallback off, the model still answers")
    if tripped:
        console.print(f"  {_CLEAR_TRIPS}")


def _guardrails_arm(arm) -> str:
    return "-" if arm.rate is None else f"{arm.rate:.1%} ({arm.n:,})"
