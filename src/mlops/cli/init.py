"""``mlops init DIR``: scaffold a feature repository."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops.cli.output import console


def init(
    directory: Path = typer.Argument(..., help="The new repository's folder (absent or empty)."),
) -> None:
    """Make a feature repository: a copy of the bundled marketplace example (jobs/*.yaml,
    sql/*.sql, heuristics.py) to edit into your own jobs."""
    from mlops.repository.scaffold import init as scaffold

    repo = scaffold(directory)
    console.print(f"feature repository {repo.name!r} written to {repo.path}")
    console.print(f"jobs: {', '.join(repo.names)} (one file each in {repo.path / 'jobs'})")
    console.print(f"use it: export MLOPS_REPO={repo.path} (or pass --repo), then `mlops jobs list`")
