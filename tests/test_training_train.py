"""``train`` end to end on a small synthetic warehouse: dry run, registry, load back."""

import os
from datetime import timedelta

import numpy as np
import pytest

from mlops.specs import get_job
from mlops.store import ingest
from mlops.training import datasets, models, tracking
from mlops.training.reference import POPULATION_ROWS
from mlops.training.reference import population as reference_population
from mlops.training.train import train
from tests.conftest import NOW
from tests.store_tables import row_counts


@pytest.fixture
def history(seeded):
    from mlops.warehouse.seed import seed_warehouse

    # Enough deliveries (a few thousand) for the ETA model to beat the SLA rule.
    seed_warehouse(seeded.warehouse, customers=1500, days=30, seed=7, end=NOW, replace=True)
    ingest.backfill(seeded, "eta", start=NOW - timedelta(days=8), end=NOW)
    return seeded


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


def test_train_registers_promotes_and_loads_back_identically(history):
    first = train(history, "eta")
    assert first.version == 1 and first.promoted and first.champion_metrics == {}
    model, version = tracking.load_native(history.settings, "eta", tracking.CHAMPION)
    assert version == 1
    # the champion, loaded back by alias, scores the validation rows exactly as in training
    _train, valid = datasets.build(history, "eta").split()
    predicted = models.predict(model, models.encode(model, valid))
    mae = float(np.mean(np.abs(predicted - valid[datasets.LABEL].to_numpy(dtype=float))))
    assert mae == pytest.approx(first.model_metrics["mae"], rel=1e-9)
    reference = tracking.reference_for(history.settings, "eta", "champion")
    ts = datasets.build(history, "eta")
    assert set(reference) == set(ts.features)
    # Stored features are described over what serving saw at the window's end (the newest
    # snapshots of every zone), request-time inputs over the training rows.
    population = reference_population(history.store, get_job("eta"), ts.end)
    assert len(population) == POPULATION_ROWS  # 20 zones x 250 five-minute snapshots
    assert population["as_of"].max() == ts.end
    assert reference["late_share_2h"]["rows"] == len(population)
    assert reference["late_share_2h"]["mean"] == pytest.approx(population["late_share_2h"].mean())
    assert reference["distance_km"]["rows"] == len(ts.frame)
    second = train(history, "eta", refresh=False, promote=False)
    assert second.version == 2 and not second.promoted
    assert second.champion_metrics["mae"] == pytest.approx(first.model_metrics["mae"], rel=0.2)
    assert tracking.aliases(history.settings, "eta") == {"champion": 1, "challenger": 2}
