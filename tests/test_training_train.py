"""``train`` end to end on a small synthetic warehouse: dry run, registry, load back."""

import os
import shutil
from datetime import timedelta

import numpy as np
import pytest

from mlops.store import ingest
from mlops.training import datasets, models, tracking_artifacts, tracking_versions
from mlops.training.reference import population as reference_population
from mlops.training.train import train
from tests.conftest import NOW, seed
from tests.repo_support import REPO
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
