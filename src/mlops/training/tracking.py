"""MLflow tracking and model registry for the training jobs.

One experiment per job (``mlops-<job>``), one registered model per job (named as the job),
aliases ``challenger`` and ``champion``. A version is an MLflow pyfunc model that wraps our
native files (LightGBM text + JSON, written by ``models.save``); serving loads those files
with ``models.load``, never through ``mlflow.pyfunc``. MLflow is imported inside functions:
``import mlflow`` costs 2+ s, and telemetry must be off before it is imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from mlops.errors import InputError, NotReadyError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings
    from mlops.training.models import Model

CHALLENGER = "challenger"
CHAMPION = "champion"
# Run artifact holding the per-feature reference distributions (pass it in ``artifacts``).
REFERENCE_ARTIFACT = "reference_distributions.json"
# Run tag naming the champion version the training run re-evaluated on its validation rows.
CHAMPION_VERSION_TAG = "champion_version"
JOB_TAG = "mlops.job"
# The logged model's name inside the run, and the pyfunc artifact key of our native files.
MODEL_NAME = "model"
NATIVE_KEY = "model"
PIP_PACKAGES = ("lightgbm", "pandas", "numpy")

# The pyfunc entry point, logged as "model from code" so the MLflow model holds no pickle.
# It needs mlops installed where it is loaded (mlflow models serve, batch scoring).
_PYFUNC_CODE = '''\
"""MLflow pyfunc entry point of an mlops model: the native files, loaded by mlops."""

from pathlib import Path

import mlflow
import pandas as pd

from mlops.training import models


class NativeModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model = models.load(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return models.predict(self.model, models.encode(self.model, model_input))


mlflow.models.set_model(NativeModel())
'''


@dataclass(frozen=True)
class RunInfo:
    """What one logged training run produced."""

    run_id: str
    model_uri: str  # models:/<job>/<version>
    version: int
    experiment_id: str
    model_id: str | None = None


@dataclass(frozen=True)
class VersionInfo:
    """A registered version with its run's metrics and tags (MLflow's own tags left out)."""

    job: str
    version: int
    run_id: str | None
    aliases: tuple[str, ...]
    created_at: datetime
    status: str
    source: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _mlflow():
    # Environment first: MLflow reads these when it is imported.
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow

    return mlflow


def configure(settings: Settings) -> None:
    """Turn telemetry off and point MLflow's tracking and registry at ``settings.mlflow_uri``."""
    mlflow = _mlflow()
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


def _client(settings: Settings, *, write: bool = False):
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


def _missing(exc: Exception) -> bool:
    return _error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def _exists(exc: Exception) -> bool:
    return _error_code(exc) in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def experiment_name(job: str) -> str:
    return f"mlops-{job}"


def _artifact_location(settings: Settings, job: str) -> str | None:
    # A tracking server owns its artifact store; a local folder URI would be wrong elsewhere.
    scheme = urlparse(settings.mlflow_uri).scheme
    if scheme in ("http", "https", "databricks"):
        return None
    return (Path(settings.mlflow_artifacts) / job).resolve().as_uri()


def experiment(settings: Settings, job: str) -> str:
    """The id of the job's experiment ``mlops-<job>``, created (or restored) when needed."""
    from mlflow.exceptions import MlflowException

    client = _client(settings, write=True)
    name = experiment_name(job)
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(
                name, artifact_location=_artifact_location(settings, job), tags={JOB_TAG: job}
            )
        except MlflowException as exc:  # created meanwhile by another process
            if not _exists(exc):
                raise
            found = client.get_experiment_by_name(name)
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=_json_default)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for name in PIP_PACKAGES:
        try:
            reqs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            reqs.append(name)
    return reqs


def log_training_run(
    settings: Settings,
    job: str,
    *,
    params: dict[str, Any],
    metrics: dict[str, float | None],
    model_dir: Path,
    input_example: pd.DataFrame,
    signature_frame: pd.DataFrame | None = None,
    tags: dict[str, Any] | None = None,
    artifacts: dict[str, Path | dict | list] | None = None,
    champion_version: int | None = None,
    run_name: str | None = None,
) -> RunInfo:
    """Log one training run, register its model under ``job`` and point ``challenger`` at it.

    Dict artifacts become ``<key>`` (``.json`` added if missing) at the run's root; paths are
    logged under ``<key>/``.
    ``champion_version`` names the champion whose ``champion_<metric>`` values were logged.
    """
    mlflow = _mlflow()
    from mlflow.models import infer_signature

    from mlops.training import models

    model_dir = Path(model_dir)
    experiment_id = experiment(settings, job)
    client = _client(settings, write=True)

    frame = input_example if signature_frame is None else signature_frame
    native = models.load(model_dir)
    run_tags = {key: _text(value) for key, value in (tags or {}).items()}
    run_tags[JOB_TAG] = job
    if champion_version is not None:
        run_tags[CHAMPION_VERSION_TAG] = str(int(champion_version))

    with tempfile.TemporaryDirectory(prefix="mlops-pyfunc-") as tmp, warnings.catch_warnings():
        # Schema hints about integer columns and the like: the signature is logged as inferred.
        warnings.simplefilter("ignore", UserWarning)
        # pandas deprecations raised inside MLflow's own code: nothing a user can act on.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
        signature = infer_signature(frame, models.predict(native, models.encode(native, frame)))
        code = Path(tmp) / "mlops_pyfunc.py"
        code.write_text(_PYFUNC_CODE)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
            run_id = run.info.run_id
            if params:
                mlflow.log_params({key: _text(value) for key, value in params.items()})
            for key, value in (artifacts or {}).items():
                if isinstance(value, (dict, list)):
                    text = json.dumps(value, sort_keys=True, indent=1, default=_json_default)
                    name = key if key.endswith(".json") else f"{key}.json"
                    mlflow.log_text(text, name)
                elif Path(value).is_dir():
                    mlflow.log_artifacts(str(value), key)
                else:
                    mlflow.log_artifact(str(value), key)
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(code),
                artifacts={NATIVE_KEY: str(model_dir)},
                signature=signature,
                input_example=input_example,
                # Explicit requirements: inferring them runs a 5-10 s subprocess.
                pip_requirements=_pip_requirements(),
            )
            # Logged after the model, so MLflow links them to it as well as to the run.
            values = {key: float(value) for key, value in metrics.items() if value is not None}
            if values:
                mlflow.log_metrics(values)
            version = _register(client, job, info, run_id)
            client.set_registered_model_alias(job, CHALLENGER, str(version))
    return RunInfo(
        run_id=run_id,
        model_uri=f"models:/{job}/{version}",
        version=version,
        experiment_id=experiment_id,
        model_id=getattr(info, "model_id", None),
    )


def _register(client, job: str, info, run_id: str) -> int:
    # Registered through the client rather than log_model(registered_model_name=...), which
    # prints "Successfully registered model" lines into the CLI's output.
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(job)
    except MlflowException as exc:
        if not _missing(exc):
            raise
        try:
            client.create_registered_model(job, tags={JOB_TAG: job})
        except MlflowException as again:
            if not _exists(again):
                raise
    model_id = getattr(info, "model_id", None)
    created = client.create_model_version(
        name=job, source=info.model_uri, run_id=run_id, model_id=model_id
    )
    if model_id:
        # What MLflow's own registration records, so its UI links the logged model.
        link = [{"name": job, "version": str(created.version)}]
        client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(link)})
    return int(created.version)


def _registered(client, job: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(job)
    except MlflowException as exc:
        if _missing(exc):
            raise NotReadyError(
                f"no model is registered as {job!r}", f"train one first: `mlops train {job}`"
            ) from None
        raise


def aliases(settings: Settings, job: str) -> dict[str, int]:
    """The job's aliases and the versions they point at (empty when nothing is registered)."""
    try:
        model = _registered(_client(settings), job)
    except NotReadyError:
        return {}
    return {alias: int(version) for alias, version in (model.aliases or {}).items()}


def champion_version(settings: Settings, job: str) -> int | None:
    """The version ``champion`` points at, or None."""
    return aliases(settings, job).get(CHAMPION)


def _model_version(client, job: str, ref: int | str):
    from mlflow.exceptions import MlflowException

    model = _registered(client, job)
    text = str(ref)
    if text.isdigit():
        version = int(text)
    else:
        version = (model.aliases or {}).get(text)
        if version is None:
            hint = (
                f"run `mlops models promote {job}` first"
                if text == CHAMPION
                else f"run `mlops train {job}` first"
            )
            raise NotReadyError(f"no version of {job!r} has the alias {text!r}", hint)
    try:
        return client.get_model_version(job, str(version))
    except MlflowException as exc:
        if _missing(exc):
            raise InputError(
                f"{job!r} has no version {version}", "see `mlops models list`"
            ) from None
        raise


def _version_info(client, job: str, mv, alias_map: dict[str, Any]) -> VersionInfo:
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        metrics = dict(run.data.metrics)
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    version = int(mv.version)
    return VersionInfo(
        job=job,
        version=version,
        run_id=mv.run_id,
        aliases=tuple(sorted(a for a, v in alias_map.items() if int(v) == version)),
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).replace(
            tzinfo=None, microsecond=0
        ),
        status=str(mv.status),
        source=str(mv.source),
        metrics=metrics,
        tags=tags,
    )


def version_info(settings: Settings, job: str, ref: int | str) -> VersionInfo:
    """One version (a number or an alias) with its run's metrics and tags."""
    client = _client(settings)
    mv = _model_version(client, job, ref)
    return _version_info(client, job, mv, _registered(client, job).aliases or {})


def list_versions(settings: Settings, job: str) -> list[VersionInfo]:
    """Every registered version of the job, newest first (empty when none)."""
    try:
        client = _client(settings)
        model = _registered(client, job)
    except NotReadyError:
        return []
    alias_map = model.aliases or {}
    found = client.search_model_versions(f"name = '{job}'")
    infos = [_version_info(client, job, mv, alias_map) for mv in found]
    return sorted(infos, key=lambda info: info.version, reverse=True)


def set_alias(settings: Settings, job: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` of the job's registered model."""
    client = _client(settings, write=True)
    _model_version(client, job, version)
    client.set_registered_model_alias(job, alias, str(int(version)))


def delete_alias(settings: Settings, job: str, alias: str) -> None:
    """Remove ``alias`` from the job's registered model; a missing alias is fine."""
    from mlflow.exceptions import MlflowException

    try:
        _client(settings, write=True).delete_registered_model_alias(job, alias)
    except MlflowException as exc:
        if not _missing(exc):
            raise


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
    mlflow = _mlflow()
    client = _client(settings)
    mv = _model_version(client, job, alias_or_version)
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


def version_number(settings: Settings, job: str, alias_or_version: int | str) -> int:
    """The version number an alias points at (a number is checked and returned)."""
    return int(_model_version(_client(settings), job, alias_or_version).version)


def reference_for(settings: Settings, job: str, alias_or_version: int | str) -> dict:
    """The version's reference distributions (a JSON artifact of its run); no model load."""
    mlflow = _mlflow()
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    mv = _model_version(client, job, alias_or_version)
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
