"""A registered version's files: its native model folder (read in place from a local
artifact store, downloaded once from a remote one), the native model loaded from it, and its
run's reference distributions, read without loading the model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mlops.errors import NotReadyError
from mlops.training import tracking_client
from mlops.training.tracking import NATIVE_KEY, REFERENCE_ARTIFACT
from mlops.training.tracking_versions import CHAMPION, model_version, version_number

if TYPE_CHECKING:
    from mlops.settings import Settings
    from mlops.training.models import Model


def _model_location(client, mv) -> str:
    """Artifact URI of the MLflow model folder behind a version."""
    source = str(mv.source)
    match = re.fullmatch(r"models:/(m-[0-9a-f]+)", source)
    if match:
        return client.get_logged_model(match.group(1)).artifact_location
    if source.startswith(("models:/", "runs:/")):
        from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        if source.startswith("runs:/"):
            return RunsArtifactRepository.get_underlying_uri(source)
        return ModelsArtifactRepository.get_underlying_uri(source)
    return source


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def _native_dir(model_folder: Path) -> Path:
    from mlflow.models import Model as MlflowModel

    flavor = MlflowModel.load(str(model_folder / "MLmodel")).flavors.get("python_function", {})
    relative = (flavor.get("artifacts") or {}).get(NATIVE_KEY, {}).get("path")
    if not relative:
        raise NotReadyError(
            f"{model_folder} is not an mlops model (no {NATIVE_KEY!r} artifact)",
            "register models with `mlops train`",
        )
    return model_folder / relative


def download_model(settings: Settings, job: str, alias_or_version: int | str) -> Path:
    """The local folder of the version's native model files, for ``models.load``.

    A local artifact store is read in place (nothing is written, dry runs stay clean); a
    remote one is downloaded once into ``<home>/cache/models``.
    """
    mlflow = tracking_client.import_mlflow()
    client = tracking_client.client(settings)
    mv = model_version(client, job, alias_or_version)
    location = _model_location(client, mv)
    folder = _local_path(location)
    if folder is None:
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", str(mv.source).rsplit("/", 1)[-1])
        folder = settings.home / "cache" / "models" / f"{job}-v{mv.version}-{key}"
        if not (folder / "MLmodel").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
            try:
                got = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=location,
                        dst_path=str(tmp),
                        tracking_uri=settings.mlflow_uri,
                        registry_uri=settings.mlflow_uri,
                    )
                )
                try:
                    os.replace(got, folder)  # whole or not at all
                except OSError:
                    if not (folder / "MLmodel").exists():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return _native_dir(folder)


def load_native(settings: Settings, job: str, alias: int | str = CHAMPION) -> tuple[Model, int]:
    """The version's native model (``models.load``) and its version number."""
    from mlops.training import models

    version = version_number(settings, job, alias)
    return models.load(download_model(settings, job, version)), version


def reference_for(settings: Settings, job: str, alias_or_version: int | str) -> dict:
    """The version's reference distributions (a JSON artifact of its run); no model load."""
    mlflow = tracking_client.import_mlflow()
    from mlflow.exceptions import MlflowException

    client = tracking_client.client(settings)
    mv = model_version(client, job, alias_or_version)
    name = REFERENCE_ARTIFACT
    with tempfile.TemporaryDirectory(prefix="mlops-reference-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=mv.run_id,
                artifact_path=name,
                dst_path=tmp,
                tracking_uri=settings.mlflow_uri,
            )
        except (MlflowException, OSError):
            path = None
        if not mv.run_id or path is None or not Path(path).is_file():
            raise NotReadyError(
                f"version {mv.version} of {job!r} has no {name}",
                f"retrain it with `mlops train {job}`",
            )
        return json.loads(Path(path).read_text())
