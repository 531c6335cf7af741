"""The MLflow client for the tracking modules: MLflow imported with telemetry off, pointed at
``settings.mlflow_uri``, and the error codes it raises. Shared by ``tracking`` (logging runs),
``tracking_versions`` (versions and aliases) and ``tracking_artifacts`` (a version's files).

MLflow is imported inside functions: ``import mlflow`` costs 2+ s, and telemetry must be off
before it is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.errors import NotReadyError

if TYPE_CHECKING:
    from mlops.settings import Settings


def import_mlflow():
    # Environment first: MLflow reads these when it is imported.
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow

    return mlflow


def configure(settings: Settings) -> None:
    """Turn telemetry off and point MLflow's tracking and registry at ``settings.mlflow_uri``."""
    mlflow = import_mlflow()
    settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def missing_store(settings: Settings) -> Path | None:
    """The embedded SQLite store's path when the file is not there (nothing registered yet, or
    the file was removed), else None."""
    path = _sqlite_file(settings.mlflow_uri)
    return path if path is not None and not path.exists() else None


def client(settings: Settings, *, write: bool = False):
    """A client on the settings' store. Readers never create the embedded SQLite store:
    MLflow would, and a dry run or ``models list`` on a fresh home must write nothing."""
    if not write:
        path = _sqlite_file(settings.mlflow_uri)
        if path is not None and not path.exists():
            raise NotReadyError(
                f"no MLflow store at {path}: nothing is registered yet",
                "train a model first: `mlops train <job>`",
            )
    configure(settings)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def _error_code(exc: Exception) -> str:
    return getattr(exc, "error_code", "") or ""


def missing(exc: Exception) -> bool:
    return _error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def exists(exc: Exception) -> bool:
    return _error_code(exc) in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
