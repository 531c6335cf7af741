"""The one Runtime a command works with, built from the settings on first use."""

from __future__ import annotations

import typer


def runtime(ctx: typer.Context):
    """The Runtime stored on the root context (created once per process)."""
    root = ctx.find_root()
    if root.obj is None:
        from mlops.runtime import Runtime
        from mlops.settings import Settings

        repo = ctx.meta.get("mlops_repo")
        root.obj = Runtime(settings=Settings(repo=repo)) if repo else Runtime()
        root.call_on_close(root.obj.close)
    return root.obj
