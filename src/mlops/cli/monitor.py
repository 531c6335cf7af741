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
