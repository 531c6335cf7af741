"""MLflow tracking for the training jobs: logging a training run and registering its model.

One experiment per job (``mlops-<job>``), one registered model per job (named as the job),
aliases ``challenger`` and ``champion``. A version is an MLflow pyfunc model that wraps our
native files (LightGBM text + JSON, written by ``models.save``); serving loads those files
with ``models.load``, never through ``mlflow.pyfunc``. The client lives in ``tracking_client``,
versions and aliases in ``tracking_versions``, a version's files in ``tracking_artifacts``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlops.training import tracking_client
from mlops.training.tracking_versions import CHALLENGER

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings
    from mlops.training.tracking_dataset import TrainingData

# Run artifact holding the per-feature reference distributions (pass it in ``artifacts``).
REFERENCE_ARTIFACT = "reference_distributions.json"
# Run tag naming the champion version the training run re-evaluated on its validation rows.
CHAMPION_VERSION_TAG = "champion_version"
JOB_TAG = "mlops.job"
# The tag MLflow's UI reads to open an experiment as model training; without it, an experiment
# whose runs log models from code opens in the GenAI view.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
# The logged model's name inside the run, and the pyfunc artifact key of our native files.
MODEL_NAME = "model"
NATIVE_KEY = "model"
# What the pyfunc entry point and the mlops modules it loads import (MLflow adds itself).
PIP_PACKAGES = ("mlops", "lightgbm", "pandas", "numpy")

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

    client = tracking_client.client(settings, write=True)
    name = experiment_name(job)
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(
                name,
                artifact_location=_artifact_location(settings, job),
                tags={JOB_TAG: job, KIND_TAG: KIND},
            )
        except MlflowException as exc:  # created meanwhile by another process
            if not tracking_client.exists(exc):
                raise
            found = client.get_experiment_by_name(name)
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    if found.tags.get(KIND_TAG) != KIND:  # created by an earlier release
        client.set_experiment_tag(found.experiment_id, KIND_TAG, KIND)
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
    training_data: TrainingData | None = None,
) -> RunInfo:
    """Log one training run, register its model under ``job`` and point ``challenger`` at it.

    Dict artifacts become ``<key>`` (``.json`` added if missing) at the run's root; paths are
    logged under ``<key>/``.
    ``champion_version`` names the champion whose ``champion_<metric>`` values were logged;
    ``training_data`` is logged as the run's training dataset.
    """
    mlflow = tracking_client.import_mlflow()
    from mlflow.models import infer_signature

    from mlops.training import models

    model_dir = Path(model_dir)
    experiment_id = experiment(settings, job)
    client = tracking_client.client(settings, write=True)

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
            if training_data is not None:
                from mlops.training.tracking_dataset import dataset

                mlflow.log_input(dataset(job, training_data), context="training")
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
        if not tracking_client.missing(exc):
            raise
        try:
            client.create_registered_model(job, tags={JOB_TAG: job})
        except MlflowException as again:
            if not tracking_client.exists(again):
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
