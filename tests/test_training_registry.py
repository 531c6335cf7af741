"""MLflow tracking, the registry's aliases, the promotion gate, rollback and its history.

Every test has its own MLOPS_HOME (MLflow's SQLite store and artifact folder under it, even
when the feature store is PostgreSQL); a template MLflow database (``mlflow_template`` in
conftest) saves its 3-4 s creation.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.errors import InputError, NotReadyError
from mlops.settings import Settings
from mlops.training import (
    models,
    models_fit,
    registry,
    tracking,
    tracking_artifacts,
    tracking_versions,
)
from tests.repo_support import JOBS, REPO

FEATURES = ["recency", "orders", "plan"]
REFERENCE = {"recency": {"kind": "numeric", "null_share": 0.0, "bins": [0, 5, 10]}}


@pytest.fixture
def ml(migrated, mlflow_template):
    """A migrated store and an empty MLflow store under the test's home."""
    home = migrated.settings.home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(mlflow_template, home / "mlflow.db")
    return migrated


@pytest.fixture
def mls(tmp_path, mlflow_template) -> Settings:
    """Settings with an empty MLflow store, for tests that never touch the feature store."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    return Settings(home=home, database_url=f"sqlite:///{tmp_path / 'store.db'}")


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    recency = rng.uniform(0, 60, n)
    orders = rng.poisson(3, n).astype(float)
    orders[::17] = np.nan  # missing values travel through encode the same way
    plan = rng.choice(["basic", "plus", "premium"], n).astype(object)
    churn = (recency / 60 + rng.normal(0, 0.2, n) > 0.5).astype(int)
    minutes = 10 + recency / 3 + rng.normal(0, 2, n)
    return pd.DataFrame(
        {"recency": recency, "orders": orders, "plan": plan, "label": churn, "minutes": minutes}
    )


def _fit(job: str, frame: pd.DataFrame):
    kind = "regressor" if job == "eta" else "classifier"
    label = "minutes" if job == "eta" else "label"
    tiny = {"rounds_without_holdout": 8, "num_leaves": 4, "min_data_in_leaf": 5}
    tiny |= {"min_data_per_group": 5, "num_threads": 1}
    return models_fit.fit(kind, frame, FEATURES, ["plan"], label, params=tiny, p90=False)


def _log(
    where,
    tmp_path: Path,
    job: str = "churn",
    *,
    score: float,
    heuristic: float,
    champion: float | None = None,
    champion_version: int | None = None,
    seed: int = 0,
):
    """Fit a tiny model and log it as the training job would; returns (RunInfo, model, frame).
    ``where`` is a Runtime or Settings."""
    settings = getattr(where, "settings", where)
    frame = _frame(seed=seed)
    model = _fit(job, frame)
    metric = registry.GATE_METRIC[REPO.job(job).task][0]
    metrics = {metric: score, f"heuristic_{metric}": heuristic, "rows_train": 250.0}
    metrics |= {"freshness_newest_age_seconds": 60.0, "freshness_oldest_age_seconds": 7200.0}
    if champion is not None:
        metrics[f"champion_{metric}"] = champion
    model_dir = tmp_path / f"native-{job}-{seed}"
    models.save(model, model_dir)
    info = tracking.log_training_run(
        settings,
        job,
        params={"kind": model.kind, "num_leaves": 4, "features": FEATURES},
        metrics=metrics,
        model_dir=model_dir,
        input_example=frame[FEATURES].head(5),
        signature_frame=frame[FEATURES],
        tags={
            "training_window_start": "2026-03-01 00:00:00",
            "training_window_end": "2026-05-31 00:00:00",
            "training_set_fingerprint": "abc123",
            "features": "recency@v1,orders@v1,plan@v2",
        },
        artifacts={
            tracking.REFERENCE_ARTIFACT: REFERENCE,
            "calibration": {"table": [{"bin": 0, "predicted": 0.1, "observed": 0.12}]},
        },
        champion_version=champion_version,
    )
    return info, model, frame


def _client(settings):
    from mlflow import MlflowClient

    return MlflowClient(settings.mlflow_uri, settings.mlflow_uri)


def test_a_run_is_logged_registered_and_made_challenger(mls, tmp_path):
    info, _, _ = _log(mls, tmp_path, score=0.81, heuristic=0.70)
    client = _client(mls)

    exp = client.get_experiment(info.experiment_id)
    assert exp.name == "mlops-churn"
    assert exp.artifact_location == (mls.home / "mlartifacts" / "churn").resolve().as_uri()
    run = client.get_run(info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["num_leaves"] == "4"
    assert json.loads(run.data.params["features"]) == FEATURES
    assert run.data.metrics["roc_auc"] == pytest.approx(0.81)
    assert run.data.metrics["heuristic_roc_auc"] == pytest.approx(0.70)
    assert run.data.metrics["freshness_oldest_age_seconds"] == 7200.0
    assert run.data.tags["training_set_fingerprint"] == "abc123"
    assert run.data.tags["features"] == "recency@v1,orders@v1,plan@v2"
    assert run.data.tags[tracking.JOB_TAG] == "churn"
    logged = {a.path for a in client.list_artifacts(info.run_id)}
    assert {"reference_distributions.json", "calibration.json"} <= logged

    assert info.version == 1 and info.model_uri == "models:/churn/1"
    assert tracking_versions.aliases(mls, "churn") == {"challenger": 1}
    version = client.get_model_version("churn", "1")
    assert version.run_id == info.run_id

    import mlflow

    logged_model = mlflow.models.get_model_info("models:/churn@challenger")
    assert logged_model.signature.inputs.input_names() == FEATURES
    assert logged_model.saved_input_example_info["type"] == "dataframe"
    # The requirements were given, pinned, not inferred in a subprocess.
    folder = tracking_artifacts.download_model(mls, "churn", 1).parent.parent
    requirements = (folder / "requirements.txt").read_text()
    assert f"lightgbm=={__import__('lightgbm').__version__}" in requirements
    # Model from code: no pickle in the MLflow model.
    assert not list(folder.rglob("*.pkl"))


def test_native_model_downloaded_by_alias_predicts_as_before(mls, tmp_path):
    info, model, frame = _log(mls, tmp_path, score=0.81, heuristic=0.70)
    expected = models.predict(model, models.encode(model, frame))

    directory = tracking_artifacts.download_model(mls, "churn", "challenger")
    # A local artifact store is read in place: nothing written (a dry run stays clean).
    assert mls.home / "mlartifacts" / "churn" in directory.parents
    assert not (mls.home / "cache").exists()
    again = models.load(directory)
    assert np.array_equal(models.predict(again, models.encode(again, frame)), expected)
    native, version = tracking_artifacts.load_native(mls, "churn", "challenger")
    assert version == info.version
    assert np.array_equal(models.predict(native, models.encode(native, frame)), expected)

    # The pyfunc wrapper (for MLflow's own tools) answers the same through the registry.
    import mlflow

    pyfunc = mlflow.pyfunc.load_model("models:/churn@challenger")
    assert np.allclose(np.asarray(pyfunc.predict(frame[FEATURES])), expected)


def test_a_remote_artifact_store_is_downloaded_once_into_the_cache(mls, tmp_path, monkeypatch):
    _info, model, frame = _log(mls, tmp_path, score=0.81, heuristic=0.70)
    monkeypatch.setattr(tracking_artifacts, "_local_path", lambda uri: None)
    directory = tracking_artifacts.download_model(mls, "churn", 1)
    assert mls.home / "cache" / "models" in directory.parents
    again = models.load(directory)
    expected = models.predict(model, models.encode(model, frame))
    assert np.array_equal(models.predict(again, models.encode(again, frame)), expected)
    assert tracking_artifacts.download_model(mls, "churn", 1) == directory


def test_reference_distributions_are_read_without_loading_the_model(mls, tmp_path, monkeypatch):
    _log(mls, tmp_path, score=0.81, heuristic=0.70)

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(models, "load", no_model)
    monkeypatch.setattr(tracking_artifacts, "download_model", no_model)
    assert tracking_artifacts.reference_for(mls, "churn", "challenger") == REFERENCE
    assert tracking_artifacts.reference_for(mls, "churn", 1) == REFERENCE


def test_a_failed_run_registers_nothing(mls, tmp_path):
    frame = _frame()
    model_dir = models.save(_fit("churn", frame), tmp_path / "native")
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        tracking.log_training_run(
            mls,
            "churn",
            params={},
            metrics={"roc_auc": 0.8},
            model_dir=model_dir,
            input_example=frame[FEATURES].head(3),
            artifacts={"broken": {"value": object()}},
        )
    [run] = _client(mls).search_runs([tracking.experiment(mls, "churn")])
    assert run.info.status == "FAILED"
    assert tracking_versions.aliases(mls, "churn") == {}
    assert tracking_versions.list_versions(mls, "churn") == []


def test_readers_on_a_fresh_home_write_nothing(tmp_path):
    settings = Settings(home=tmp_path / "fresh")
    with pytest.raises(NotReadyError, match="mlops train"):
        tracking_artifacts.load_native(settings, "churn", "champion")
    assert tracking_versions.aliases(settings, "churn") == {}
    assert tracking_versions.list_versions(settings, "eta") == []
    assert not (tmp_path / "fresh").exists()


def test_readers_leave_an_existing_store_byte_identical(mls, tmp_path):
    _log(mls, tmp_path, score=0.81, heuristic=0.70)

    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(mls.home.rglob("*")) if p.is_file()}

    before = snapshot()
    tracking_artifacts.load_native(mls, "churn", "challenger")
    tracking_artifacts.reference_for(mls, "churn", 1)
    tracking_versions.list_versions(mls, "churn")
    with pytest.raises(NotReadyError):
        tracking_artifacts.load_native(mls, "eta", "champion")
    assert snapshot() == before


def test_missing_models_and_aliases_say_what_to_do(mls, tmp_path):
    with pytest.raises(NotReadyError, match="mlops train upsell"):
        tracking_artifacts.load_native(mls, "upsell", "champion")
    _log(mls, tmp_path, score=0.81, heuristic=0.70)
    with pytest.raises(NotReadyError, match="mlops models promote churn"):
        tracking_artifacts.download_model(mls, "churn", "champion")
    with pytest.raises(InputError, match="no version 7"):
        tracking_artifacts.reference_for(mls, "churn", 7)


def test_promote_moves_champion_when_the_gate_passes(ml, tmp_path):
    _log(ml, tmp_path, score=0.81, heuristic=0.70)
    result = registry.promote(ml, "churn", actor="alice")
    assert (result.action, result.from_version, result.to_version) == ("promote", None, 1)
    assert result.at == ml.clock.now()
    # The challenger became the champion: no alias is left calling it a contender.
    assert tracking_versions.aliases(ml.settings, "churn") == {"champion": 1}
    assert tracking_versions.champion_version(ml.settings, "churn") == 1
    [row] = registry.history(ml, "churn")
    assert row["actor"] == "alice" and row["action"] == "promote"
    assert "gate passed" in row["reason"] and "0.8100" in row["reason"]
    assert row["metrics"]["model"] == pytest.approx(0.81)


def test_promote_refuses_a_version_worse_than_the_heuristic(ml, tmp_path):
    _log(ml, tmp_path, score=0.65, heuristic=0.70)
    with pytest.raises(registry.GateRefused) as refused:
        registry.promote(ml, "churn", actor="alice")
    message = str(refused.value)
    assert "0.6500" in message and "0.7000" in message and "--force" in message
    assert refused.value.exit_code == 2
    assert refused.value.comparison.heuristic == pytest.approx(0.70)
    assert tracking_versions.champion_version(ml.settings, "churn") is None
    assert registry.history(ml) == []


def test_promote_refuses_a_version_worse_than_the_champion_beyond_tolerance(ml, tmp_path):
    _log(ml, tmp_path, score=0.80, heuristic=0.70)
    registry.promote(ml, "churn", actor="alice")
    # Beats the heuristic but is 2.5% below the champion on the same validation rows.
    _log(ml, tmp_path, score=0.78, heuristic=0.70, champion=0.80, champion_version=1, seed=1)
    with pytest.raises(registry.GateRefused) as refused:
        registry.promote(ml, "churn", actor="bob")
    message = str(refused.value)
    assert "champion v1" in message and "0.7800" in message and "0.8000" in message
    assert "1.0% tolerance" in message and "--force" in message
    assert tracking_versions.champion_version(ml.settings, "churn") == 1
    # Within the tolerance it passes; a looser tolerance lets the worse one through too.
    _log(ml, tmp_path, score=0.795, heuristic=0.70, champion=0.80, champion_version=1, seed=2)
    assert registry.promote(ml, "churn", actor="bob").to_version == 3
    assert (
        registry.gate(ml, "churn", version=2, tolerance=0.05)
        .problems[0]
        .startswith("the run of v2 evaluated champion v1")
    )


def test_eta_is_judged_by_mae_lower_is_better(ml, tmp_path):
    _log(ml, tmp_path, "eta", score=6.0, heuristic=5.0)
    assert "does not beat the heuristic" in registry.gate(ml, "eta").problems[0]
    _log(ml, tmp_path, "eta", score=4.0, heuristic=5.0, seed=1)
    registry.promote(ml, "eta", actor="alice")
    _log(ml, tmp_path, "eta", score=4.1, heuristic=5.0, champion=4.0, champion_version=2, seed=2)
    assert "beyond the 1.0% tolerance" in registry.gate(ml, "eta").problems[0]
    assert registry.gate(ml, "eta", tolerance=0.05).passed


def test_a_comparison_with_another_champion_is_refused(ml, tmp_path):
    _log(ml, tmp_path, score=0.80, heuristic=0.70)
    _log(ml, tmp_path, score=0.85, heuristic=0.70, seed=1)  # trained before any champion
    registry.promote(ml, "churn", version=1, actor="alice")
    with pytest.raises(registry.GateRefused, match=r"evaluated no champion.*retrain"):
        registry.promote(ml, "churn", version=2, actor="alice")


def test_a_failed_alias_move_leaves_no_history(ml, tmp_path, monkeypatch):
    _log(ml, tmp_path, score=0.81, heuristic=0.70)

    def registry_down(*args, **kwargs):
        raise ConnectionError("registry unreachable")

    monkeypatch.setattr(tracking_versions, "set_alias", registry_down)
    with pytest.raises(ConnectionError):
        registry.promote(ml, "churn", actor="alice")
    assert registry.history(ml) == []
    assert tracking_versions.aliases(ml.settings, "churn") == {"challenger": 1}


def test_force_promotes_anyway_and_records_why(ml, tmp_path):
    _log(ml, tmp_path, score=0.65, heuristic=0.70)
    result = registry.promote(
        ml, "churn", actor="carol", force=True, reason="incident 42: heuristic is broken"
    )
    assert result.action == "force"
    assert tracking_versions.champion_version(ml.settings, "churn") == 1
    [row] = registry.history(ml, "churn")
    assert row["action"] == "force" and row["actor"] == "carol"
    assert row["reason"].startswith("incident 42: heuristic is broken (forced past the gate:")
    assert "does not beat the heuristic" in row["reason"]
    assert row["metrics"]["passed"] is False


def test_rollback_returns_to_the_previous_champion(ml, tmp_path):
    with pytest.raises(InputError, match="no previous champion"):
        registry.rollback(ml, "churn", actor="dave")
    _log(ml, tmp_path, score=0.80, heuristic=0.70)
    registry.promote(ml, "churn", actor="alice")
    ml.clock.advance(timedelta(days=30))
    _log(ml, tmp_path, score=0.82, heuristic=0.70, champion=0.80, champion_version=1, seed=1)
    registry.promote(ml, "churn", actor="bob")
    assert tracking_versions.champion_version(ml.settings, "churn") == 2
    ml.clock.advance(timedelta(hours=2))

    result = registry.rollback(ml, "churn", actor="dave", reason="v2 pages on-call")
    assert (result.action, result.from_version, result.to_version) == ("rollback", 2, 1)
    assert tracking_versions.champion_version(ml.settings, "churn") == 1
    with pytest.raises(InputError, match=r"no previous champion.*champion is v1"):
        registry.rollback(ml, "churn", actor="dave")

    rows = registry.history(ml, "churn")
    assert [(r["action"], r["from_version"], r["to_version"], r["actor"]) for r in rows] == [
        ("rollback", 2, 1, "dave"),
        ("promote", 1, 2, "bob"),
        ("promote", None, 1, "alice"),
    ]
    assert [r["at"] for r in rows] == [
        ml.clock.now(),
        ml.clock.now() - timedelta(hours=2),
        ml.clock.now() - timedelta(days=30, hours=2),
    ]
    assert rows[0]["reason"] == "v2 pages on-call"
    assert rows[0]["metrics"] == {"metric": "roc_auc", "from_value": 0.82, "to_value": 0.8}


def test_champion_stack_skips_undone_promotions():
    rows = [
        {"action": "promote", "from_version": None, "to_version": 1},
        {"action": "promote", "from_version": 1, "to_version": 2},
        {"action": "force", "from_version": 2, "to_version": 3},
        {"action": "rollback", "from_version": 3, "to_version": 2},
        {"action": "promote", "from_version": 2, "to_version": 4},
    ]
    assert registry._champion_stack(rows) == [1, 2, 4]
    assert registry._champion_stack(rows[:4]) == [1, 2]


def test_list_models_shows_versions_aliases_and_metrics(ml, tmp_path):
    assert registry.list_models(ml) == {job: [] for job in JOBS}
    _log(ml, tmp_path, score=0.80, heuristic=0.70)
    registry.promote(ml, "churn", actor="alice")
    _log(ml, tmp_path, score=0.82, heuristic=0.70, champion=0.80, champion_version=1, seed=1)
    listed = registry.list_models(ml)
    assert [v["version"] for v in listed["churn"]] == [2, 1]
    assert [v["aliases"] for v in listed["churn"]] == [["challenger"], ["champion"]]
    assert listed["churn"][0]["metrics"]["champion_roc_auc"] == pytest.approx(0.80)
    assert listed["churn"][1]["tags"]["training_set_fingerprint"] == "abc123"
    assert listed["churn"][0]["created_at"].tzinfo is None


def test_importing_is_free_and_nothing_contacts_the_network(tmp_path, mlflow_template):
    """In a fresh interpreter without CI markers (MLflow skips telemetry under CI by itself):
    the modules import without MLflow, and configure + registry calls open no socket
    beyond this machine."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    script = textwrap.dedent(
        f"""
        import socket, sys
        attempts = []
        real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
        LOCAL = ("127.0.0.1", "::1", "localhost")

        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL:
                attempts.append(address)
                raise OSError("network disabled in this test")
            return real_connect(self, address)

        def getaddrinfo(host, *args, **kwargs):
            if host not in LOCAL and host is not None:
                attempts.append(host)
                raise OSError("network disabled in this test")
            return real_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

        from mlops.settings import Settings
        from mlops.training import registry, tracking, tracking_artifacts
        from mlops.training import tracking_client, tracking_versions
        assert "mlflow" not in sys.modules, "mlflow imported at module level"
        settings = Settings(home={str(home)!r})
        tracking_client.configure(settings)
        tracking.experiment(settings, "churn")
        assert tracking_versions.aliases(settings, "churn") == {{}}
        from mlflow.telemetry import get_telemetry_client
        assert get_telemetry_client() is None, "telemetry is on"
        import mlflow
        mlflow.MlflowClient().search_experiments()
        print("ATTEMPTS", attempts)
        """
    )
    markers = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY"}
    env = {k: v for k, v in os.environ.items() if k not in markers and k != "DO_NOT_TRACK"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ATTEMPTS []" in done.stdout, done.stdout


def test_history_needs_a_migrated_store(rt):
    with pytest.raises(NotReadyError, match="mlops db migrate"):
        registry.history(rt)


def test_no_socket_leaves_this_machine_while_logging_and_promoting(ml, tmp_path, monkeypatch):
    attempts = []
    real = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
        ):
            attempts.append(address)
            raise OSError("network disabled in this test")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    _log(ml, tmp_path, score=0.81, heuristic=0.70)
    registry.promote(ml, "churn", actor="alice")
    assert attempts == []
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
