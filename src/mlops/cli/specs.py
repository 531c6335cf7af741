"""``mlops specs``: feature specs from the repository to the ml_feature_specs table."""

from __future__ import annotations

import typer
from rich.table import Table

from mlops.cli.output import console
from mlops.cli.runtime import runtime

app = typer.Typer(
    help="Feature specs (the feature repository is the source of truth).", no_args_is_help=True
)


@app.command()
def sync(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, change nothing."),
) -> None:
    """Write the features of the repository's jobs to ml_feature_specs; removed ones are
    retired."""
    from mlops.specs import sync as specs_sync

    rt = runtime(ctx)
    plan = specs_sync.plan(rt.store, rt.repo.jobs)
    print_plan(plan)
    if dry_run:
        console.print("dry run: nothing written. Run without --dry-run to apply.")
        return
    if not plan.empty:
        specs_sync.apply(rt.store, plan, rt.clock.now(), rt.repo.jobs)
    console.print(
        f"specs synced: {len(plan.added)} added, {len(plan.changed)} changed, "
        f"{len(plan.retired)} retired, {plan.unchanged} unchanged"
    )
    if not plan.empty:
        console.print(
            f"undo: revert the change in {rt.repo.path / 'jobs'} and sync again (retired "
            "features keep their history; a re-added one is revived)."
        )


def print_plan(plan) -> None:
    if plan.empty:
        console.print(f"specs are in sync ({plan.unchanged} features)")
        return
    table = Table("", "job", "feature", "change", title="Spec plan")
    for change in plan.added:
        table.add_row("[green]+[/green]", change.job, change.name, "added")
    for change in plan.changed:
        detail = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in change.fields.items())
        table.add_row("[yellow]~[/yellow]", change.job, change.name, detail)
    for change in plan.retired:
        table.add_row("[red]-[/red]", change.job, change.name, "retired (history kept)")
    console.print(table)
