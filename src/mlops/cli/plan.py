"""``mlops plan`` and ``mlops apply``: what a change of the feature repository does to the
specs, views, schedule and registered models, and carrying it out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from mlops.cli.output import console
from mlops.cli.runtime import runtime

if TYPE_CHECKING:
    from mlops.repository.plan import Plan

_MARK = {"added": "[green]+[/green]", "changed": "[yellow]~[/yellow]", "retired": "[red]-[/red]"}


def plan(ctx: typer.Context) -> None:
    """Show what `mlops apply` would change, and change nothing.

    Compares the feature repository with what is there now: feature specs with
    ml_feature_specs; views, schedule tasks and job models with what the last apply recorded
    (and views with the warehouse on PostgreSQL); jobs with their registered models in MLflow.
    Each object is added (+), changed (~, with the field before -> after) or retired (-).
    A job whose model is trained from something that changed is flagged "retrain needed".
    """
    from mlops.repository import plan as repo_plan

    rt = runtime(ctx)
    found = repo_plan.compute(rt)
    print_plan(found)
    console.print(found.summary(), highlight=False)
    if not found.empty:
        console.print("apply it with `mlops apply`", highlight=False)


def apply(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan, change nothing (the same as `mlops plan`)."
    ),
) -> None:
    """Apply the feature repository: print the plan, then carry it out.

    Writes the spec changes and the applied views, schedule and job models to the store in
    one transaction, (re)installs changed views in the warehouse (PostgreSQL), and tags the
    registered model of a job removed from the repository `mlops.retired`. Nothing is
    deleted: retired features keep their history, retired views stay in the warehouse, a
    retired job's model keeps its versions and aliases. Running it again changes nothing.

    A job whose model is trained from something that changed (features, inputs, label, view
    SQL, LightGBM parameters) is flagged "retrain needed": its champion keeps serving until
    `mlops train JOB` promotes a new one.
    """
    from mlops.repository import apply as repo_apply
    from mlops.repository import plan as repo_plan

    rt = runtime(ctx)
    found = repo_plan.compute(rt)
    print_plan(found)
    if dry_run:
        console.print(found.summary(), highlight=False)
        console.print("dry run: nothing written. Run without --dry-run to apply.")
        return
    done = repo_apply.apply(rt, found)
    console.print(done.summary(), highlight=False)
    if found.retrain:
        names = " ".join(found.retrain)
        console.print(
            f"retrain needed: {names} (`mlops train JOB`; the champion keeps serving meanwhile)",
            highlight=False,
        )
    if not found.empty:
        console.print(
            f"undo: revert the change in {rt.repo.path} and apply again (retired objects are "
            "revived, never recreated from nothing).",
            highlight=False,
        )


def print_plan(found: Plan) -> None:
    """The plan as one table: kind, change, object, what changes, note."""
    if found.empty:
        return
    table = Table("", "kind", "object", "what changes", "note", title="Plan", box=box.SIMPLE_HEAD)
    for item in found.items:
        detail = "; ".join(f"{c.field}: {c.before} -> {c.after}" for c in item.changes)
        table.add_row(
            _MARK[item.action],
            item.kind,
            escape(item.name),
            escape(detail or item.action),
            escape(item.note),
        )
    console.print(table)
