"""``mlops monitor guardrails``: the A/B arms compared on each job's guardrail metric, as one
table, with the alerts and fallback trips the check recorded."""

from __future__ import annotations

import typer

from mlops.cli.monitor_common import CLEAR_TRIPS, coloured, figure, ready


def guardrails_command(
    ctx: typer.Context,
    job: str = typer.Argument("all", help="A job of the repository (mlops jobs list), or all."),
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
    from mlops.monitoring import guardrails, job_settings

    rt = ready(ctx)
    found = guardrails.check(rt, job, since=parse_since(since, rt.clock.now()))
    s = rt.settings
    table = Table(
        title=f"A/B guardrails (one-sided, alpha {s.guardrail_alpha:g}, "
        f"at least {s.guardrail_min_sample:,} per arm)",
        caption="difference = treatment - control; "
        + "; ".join(
            dict.fromkeys(
                f"{g.metric.name}: {'higher' if g.metric.higher_is_better else 'lower'} is better"
                for g in found
            )
        ),
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
            figure(c.p_value, ".3g"),
            coloured(c.decision) + (" [red](tripped)[/red]" if g.trip else ""),
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
        if g.decision == "breach" and not job_settings.auto_fallback(rt, g.job):
            console.print(f"  {g.job}: auto fallback off, the model still answers")
    if tripped:
        console.print(f"  {CLEAR_TRIPS}")


def _guardrails_arm(arm) -> str:
    return "-" if arm.rate is None else f"{arm.rate:.1%} ({arm.n:,})"
