"""``mlops warehouse``: the raw tables the feature views read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import typer
from rich.table import Table

from mlops.cli.output import console, parse_time, progress_bar
from mlops.cli.runtime import runtime

app = typer.Typer(help="The warehouse's raw tables and feature views.", no_args_is_help=True)


@app.command()
def seed(
    ctx: typer.Context,
    size: int = typer.Option(
        5_000, min=1, help="How many entities the repository's generator makes."
    ),
    days: int = typer.Option(120, min=1, help="Days of history, ending at --end."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives the same data."),
    end: str = typer.Option(None, help="End of the history (UTC); default now."),
    replace: bool = typer.Option(False, help="Delete the existing raw rows first."),
) -> None:
    """Generate a synthetic history with the repository's generator (its warehouse module's
    seed function; the bundled example's is a delivery marketplace)."""
    from mlops.warehouse import contract
    from mlops.warehouse.views import install_views

    rt = runtime(ctx)
    generate = contract.require_seed(rt.repo, "mlops warehouse seed")
    end_at = parse_time(end, "--end") if end else rt.clock.now()
    with progress_bar("seeding", size) as bar:
        summary = generate(
            rt.warehouse,
            size=size,
            days=days,
            seed=seed,
            end=end_at,
            replace=replace,
            on_progress=bar.stage,
        )
    _print_counts("Warehouse seeded", summary.rows)

    views = install_views(rt.warehouse, rt.repo, list(rt.repo.jobs.values()))
    if views:
        console.print(f"installed views: {', '.join(views)}")


@app.command()
def load(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Folder with <table>.csv or <table>.parquet files."
    ),
    replace: bool = typer.Option(False, help="Replace the rows of the tables being loaded."),
) -> None:
    """Load your own CSV or Parquet files into the tables the repository's warehouse module
    declares; everything is validated first, nothing half-written."""
    from mlops.warehouse import contract
    from mlops.warehouse.load import load_directory
    from mlops.warehouse.views import install_views

    rt = runtime(ctx)
    declared = contract.require(rt.repo, "mlops warehouse load")
    with progress_bar("loading") as bar:
        summary = load_directory(
            rt.warehouse,
            declared,
            directory,
            replace=replace,
            on_progress=bar.stage,
            clock=rt.clock,
        )
    _print_counts("Warehouse loaded", summary.rows)
    for table, cols in summary.ignored_columns.items():
        if cols:
            console.print(f"ignored extra columns in {table}: {', '.join(cols)}")
    views = install_views(rt.warehouse, rt.repo, list(rt.repo.jobs.values()))
    if views:
        console.print(f"installed views: {', '.join(views)}")


def _print_counts(title: str, rows: Mapping[str, int]) -> None:
    table = Table("table", "rows", title=title)
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
