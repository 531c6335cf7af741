"""``mlops serve``: the HTTP service under uvicorn."""

from __future__ import annotations

import typer

from mlops.cli.output import console


def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Address to bind [default: MLOPS_SERVE_HOST]."),
    port: int = typer.Option(None, help="Port [default: MLOPS_SERVE_PORT]."),
    workers: int = typer.Option(None, help="Worker processes [default: MLOPS_SERVE_WORKERS]."),
) -> None:
    """Serve the dossier, order composer and ETA endpoints (plus /healthz, /readyz, /metrics).

    Champions load at start and follow the registry; the kill switch and trips are re-read
    every few seconds. Stop with Ctrl-C: pending prediction-log rows are written first.
    """
    import os
    import shutil
    import tempfile

    from mlops.cli.runtime import runtime
    from mlops.db import migrate
    from mlops.serving import server
    from mlops.serving.logs import config

    rt = runtime(ctx)
    settings = rt.settings
    migrate.require_current(rt.store)
    host = host or settings.serve_host
    port = port or settings.serve_port
    workers = workers or settings.serve_workers
    # Workers are separate processes that read the settings again: hand them the choices.
    os.environ.update(
        MLOPS_SERVE_HOST=host, MLOPS_SERVE_PORT=str(port), MLOPS_SERVE_WORKERS=str(workers)
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    metrics_dir = None
    if workers > 1:
        # Each worker writes its metrics to files that /metrics aggregates.
        metrics_dir = tempfile.mkdtemp(prefix="mlops-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    rt.close()
    console.print(f"serving on http://{host}:{port} with {workers} worker(s); docs at /docs")
    try:
        server.run(
            host,
            port,
            workers,
            log_config=config(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    console.print("stopped")
