"""``mlops models``: the registry's versions, promotion gate and rollback."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from mlops.cli.output import console
from mlops.cli.runtime import runtime

app = typer.Typer(help="Registered models: list, promote, roll back.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, job: str = typer.Argument(None, help="Only this job.")) -> None:
    """Versions per job with their aliases and gate metric, and the promotion history."""
    from mlops.training import registry

    rt = runtime(ctx)
    names = [j.name for j in rt.repo.resolve(job)]
    models = registry.list_models(rt)
    table = Table("job", "version", "aliases", "metric", "value", "created", box=box.SIMPLE_HEAD)
    for name in names:
        metric = registry.GATE_METRIC[rt.repo.job(name).task][0]
        for v in models.get(name, []):
            value = v["metrics"].get(metric)
            table.add_row(
                name,
                f"v{v['version']}",
                ", ".join(v["aliases"]),
                metric,
                "" if value is None else f"{value:.4f}",
                str(v["created_at"]),
            )
    console.print(table)
    history = [h for h in registry.history(rt) if h["job"] in names]
    if history:
        hist = Table(
            "when",
            "job",
            "action",
            "from",
            "to",
            "who",
            "why",
            title="Promotions",
            box=box.SIMPLE_HEAD,
        )
        for h in history:
            hist.add_row(
                str(h["at"]),
                h["job"],
                h["action"],
                _v(h["from_version"]),
                _v(h["to_version"]),
                h["actor"],
                h["reason"],
            )
        console.print(hist)


@app.command()
def promote(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A job of the repository (mlops jobs list)."),
    version: int = typer.Option(None, help="Version to promote; default the challenger."),
    force: bool = typer.Option(False, help="Promote even if the gate refuses (recorded)."),
    reason: str = typer.Option(None, help="Why, for the promotion history."),
) -> None:
    """Make a version the champion if it beats the heuristic and the current champion."""
    from mlops.training import registry
    from mlops.training.train import actor

    result = registry.promote(
        runtime(ctx), job, version=version, force=force, reason=reason, actor=actor()
    )
    console.print(
        f"{job}: champion is now v{result.to_version} (was {_v(result.from_version)}); "
        f"{result.reason}"
    )
    console.print(f"undo: mlops models rollback {job}")


@app.command()
def rollback(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A job of the repository (mlops jobs list)."),
    reason: str = typer.Option(None, help="Why, for the promotion history."),
) -> None:
    """Return the champion to the previous champion."""
    from mlops.training import registry
    from mlops.training.train import actor

    result = registry.rollback(runtime(ctx), job, actor=actor(), reason=reason)
    console.print(
        f"{job}: champion rolled back from {_v(result.from_version)} to v{result.to_version}"
    )
    console.print(f"undo: mlops models promote {job} --version {result.from_version}")


def _v(version) -> str:
    return "none" if version is None else f"v{version}"
