"""``train`` end to end on a small synthetic warehouse: dry run, registry, load back."""

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

import mlops
from mlops.store import ingest
from mlops.training import datasets, models, tracking_artifacts, tracking_versions
from mlops.training.reference import population as reference_population
from mlops.training.train import train
from tests.conftest import NOW, seed
from tests.repo_support import REPO
from tests.serving_support import free_port, wait_until
from tests.store_tables import row_counts


def with_eta_history(rt) -> None:
    from mlops.examples.marketplace.seed import seed_warehouse

    seed(rt)
    # Enough deliveries (a few thousand) for the ETA model to beat the SLA rule.
    seed_warehouse(rt.warehouse, customers=1500, days=30, seed=7, end=NOW, replace=True)
    ingest.backfill(rt, "eta", start=NOW - timedelta(days=8), end=NOW)


@pytest.fixture
def history(migrated, templates, request):
    """``with_eta_history`` built once per session and backend, its content copied here."""
    templates(request, with_eta_history).copy_into(migrated)
    return migrated


@pytest.fixture
def registry_history(history, mlflow_template):
    """``history`` with an empty MLflow store at head in its home (a copy of the session's
    template: MLflow creating its database is 1-2 s of each first ``train``)."""
    home = history.settings.home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(mlflow_template, home / "mlflow.db")
    return history


def _files(home):
    found = {}
    for root, _dirs, names in os.walk(home):
        for name in names:
            path = os.path.join(root, name)
            found[path] = os.path.getsize(path)
    return found


def test_dry_run_writes_nothing_anywhere(history):
    before_db, before_files = row_counts(history.store), _files(history.settings.home)
    report = train(history, "eta", dry_run=True)
    assert report.version is None and not report.promoted
    assert report.rows_train > 0 and report.model_metrics["mae"] > 0
    assert report.heuristic_metrics["mae"] > 0  # side by side on the same rows
    assert row_counts(history.store) == before_db
    assert _files(history.settings.home) == before_files  # no MLflow store, no artifacts


def test_train_registers_promotes_and_loads_back_identically(registry_history):
    history = registry_history
    first = train(history, "eta")
    assert first.version == 1 and first.promoted and first.champion_metrics == {}
    model, version = tracking_artifacts.load_native(
        history.settings, "eta", tracking_versions.CHAMPION
    )
    assert version == 1
    # the champion, loaded back by alias, scores the validation rows exactly as in training
    _train, valid = datasets.build(history, "eta").split()
    predicted = models.predict(model, models.encode(model, valid))
    mae = float(np.mean(np.abs(predicted - valid[datasets.LABEL].to_numpy(dtype=float))))
    assert mae == pytest.approx(first.model_metrics["mae"], rel=1e-9)
    reference = tracking_artifacts.reference_for(history.settings, "eta", "champion")
    ts = datasets.build(history, "eta")
    assert set(reference) == set(ts.features)
    # Stored features are described over what serving saw at the window's end (for ETA the
    # last day of snapshots, the span its drift check compares), request-time inputs over the
    # training rows.
    population = reference_population(history.store, REPO.job("eta"), ts.end)
    assert len(population) == 20 * (24 * 12 + 1)  # 20 zones, a day of 5-minute snapshots
    assert population["as_of"].min() == ts.end - REPO.job("eta").drift_window
    assert population["as_of"].max() == ts.end
    assert reference["late_share_2h"]["rows"] == len(population)
    assert reference["late_share_2h"]["mean"] == pytest.approx(population["late_share_2h"].mean())
    assert reference["distance_km"]["rows"] == len(ts.frame)
    second = train(history, "eta", refresh=False, promote=False)
    assert second.version == 2 and not second.promoted
    assert second.champion_metrics["mae"] == pytest.approx(first.model_metrics["mae"], rel=0.2)
    assert tracking_versions.aliases(history.settings, "eta") == {"champion": 1, "challenger": 2}


def test_reference_population_is_the_newest_snapshots_of_every_entity(seeded):
    from mlops.training.reference import POPULATION_ROWS

    churn = REPO.job("churn")
    ingest.backfill(seeded, "churn", start=NOW - timedelta(days=40), end=NOW)
    population = reference_population(seeded.store, churn, NOW)
    per_snapshot = population.groupby("as_of").size()
    # 300 customers a day: the newest days until POPULATION_ROWS rows, nothing after NOW.
    assert per_snapshot.sum() >= POPULATION_ROWS > per_snapshot.sum() - per_snapshot.iloc[0]
    assert per_snapshot.index.max() == NOW - timedelta(days=1)
    assert reference_population(seeded.store, churn, NOW - timedelta(days=90)).empty


def _third_party_imports(source: str, seen: set[str]) -> set[str]:
    """Top-level packages ``source`` imports, following ``mlops`` modules (at any depth,
    function-level imports included) into their own source files."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top != "mlops":
                found.add(top)
                continue
            if name in seen:
                continue
            seen.add(name)
            try:
                spec = importlib.util.find_spec(name)
            except ModuleNotFoundError:  # ``from mlops.x import a_function``
                continue
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                found |= _third_party_imports(Path(spec.origin).read_text(), seen)
    return {name for name in found if name not in sys.stdlib_module_names} | {"mlops"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_mlflow_run_is_named_typed_and_its_model_serves_on_its_own(registry_history):
    import mlflow
    from mlflow import MlflowClient

    from mlops.training import tracking

    history = registry_history
    report = train(history, "eta", promote=False)
    client = MlflowClient(history.settings.mlflow_uri)
    experiment = client.get_experiment_by_name("mlops-eta")
    # Without the kind tag MLflow's UI opens the experiment as a GenAI one.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(client.get_model_version("eta", str(report.version)).run_id)
    start, end = report.window
    assert run.info.run_name == f"eta {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}"
    (used,) = run.inputs.dataset_inputs
    ts = datasets.build(history, "eta")
    assert used.dataset.name == "eta-training-set"
    assert (
        used.dataset.digest
        == ts.fingerprint()[:36]
        == run.data.tags["training_set_fingerprint"][:36]
    )
    assert used.dataset.source_type == "mlops_feature_store"
    source = json.loads(used.dataset.source)
    assert source["job"] == "eta" and source["label_sql"] == "sql/labels_eta.sql"
    assert source["store"] == history.settings.store_url
    assert json.loads(used.dataset.profile)["num_rows"] == len(ts.frame)
    assert {tag.key: tag.value for tag in used.tags}["mlflow.data.context"] == "training"

    # The logged model names every package its entry point imports, mlops included.
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/eta/{report.version}"))
    requirements = (folder / "requirements.txt").read_text().split()
    named = {re.split(r"[=<>~!@ ]", line)[0].lower() for line in requirements}
    distributions = importlib.metadata.packages_distributions()
    imported = _third_party_imports(tracking._PYFUNC_CODE, set())
    # A module shipped by several distributions (mlflow: mlflow, mlflow-skinny...) is named
    # by the one of its own name.
    needed = {
        name if name in distributions.get(name, [name]) else distributions[name][0].lower()
        for name in imported
    }
    assert needed <= named, f"requirements.txt lacks {needed - named}"
    assert f"mlops=={mlops.__version__}" in requirements

    # ... and `mlflow models serve` answers from it as mlops does.
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": history.settings.mlflow_uri}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/eta/{report.version}",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _train_rows, valid = ts.split()
        rows = valid[ts.features].head(20)
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", date_format="iso"))}

        def answer():
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                return httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=5)
            except httpx.TransportError:
                return None

        response = wait_until(answer, timeout=60, step=0.25)
        assert response.status_code == 200, response.text
        model, _version = tracking_artifacts.load_native(history.settings, "eta", "challenger")
        expected = models.predict(model, models.encode(model, rows))
        assert np.allclose(response.json()["predictions"], expected)
    finally:
        server.terminate()
        server.wait(timeout=20)
