"""A second, tiny repository (tests/repos/library): its own warehouse tables with names and
columns the marketplace never uses, one job the engine has no code for, end to end: the plan
applied (specs, view, schedule, model), backfill, training and promotion, the generic route
and the fallback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from mlops.db import migrate
from mlops.db.types import Timestamp
from mlops.repository import apply, plan
from mlops.runtime import Runtime
from mlops.serving.service import Service
from mlops.store import ingest
from mlops.training.train import train
from tests.conftest import NOW

LIBRARY = Path(__file__).parent / "repos" / "library"
DAYS = 150

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _library_warehouse(engine, members: int = 300, seed: int = 7) -> None:
    """Members who join over the period and borrow at a rate of their own that fades for some
    (those lapse): the label is learnable and the rule is a fair baseline."""
    meta = MetaData()
    people = Table(
        "members",
        meta,
        Column("member_no", String(16), primary_key=True),
        Column("joined", Timestamp),
        Column("home_branch", String(16)),
    )
    loans = Table(
        "loans",
        meta,
        Column("loan_no", Integer, primary_key=True),
        Column("borrower", String(16), nullable=False),
        Column("taken", Timestamp, nullable=False),
    )
    meta.create_all(engine)
    rng = np.random.default_rng(seed)
    start = NOW - timedelta(days=DAYS)
    people_rows, loan_rows = [], []
    for i in range(members):
        member = f"M{i:04d}"
        joined = start + timedelta(days=float(rng.uniform(0, DAYS / 3)))
        branch = ("north", "south")[i % 2]
        people_rows.append({"member_no": member, "joined": joined, "home_branch": branch})
        rate = rng.uniform(0.02, 0.4)  # loans a day
        fades_at = joined + timedelta(days=float(rng.uniform(10, DAYS * 1.5)))
        day = joined
        while day < NOW:
            day += timedelta(days=float(rng.exponential(1 / rate)))
            if day < min(NOW, fades_at):
                loan_rows.append({"borrower": member, "taken": day.replace(microsecond=0)})
    with engine.begin() as conn:
        conn.execute(insert(people), people_rows)
        conn.execute(insert(loans), loan_rows)


def test_a_repository_with_its_own_tables_runs_end_to_end(settings, clock):
    rt = Runtime(settings=settings.model_copy(update={"repo": LIBRARY}), clock=clock)
    try:
        assert rt.repo.names == ("lapse",)
        migrate.upgrade(rt.store)
        jobs = rt.repo.jobs
        _library_warehouse(rt.warehouse)
        planned = plan.compute(rt)
        assert {(i.kind, i.action) for i in planned.items} == {
            ("spec", "added"),
            ("view", "added"),
            ("schedule", "added"),
            ("model", "added"),
        }
        apply.apply(rt, planned)
        assert plan.compute(rt).empty
        backfilled = ingest.backfill(
            rt, "lapse", start=NOW - timedelta(days=70), end=NOW, every=timedelta(days=1)
        )
        assert backfilled.status == "succeeded", backfilled.error
        assert ingest.refresh(rt, "lapse").status == "succeeded"

        report = train(rt, "lapse", refresh=False)
        assert report.promoted, report.promotion
        model, rule = report.model_metrics, report.heuristic_metrics
        assert model["roc_auc"] > rule["roc_auc"] > 0.5, (model, rule)

        svc = Service(rt)
        svc.start(poll=False)
        try:
            assert svc.extension is None  # no serving module: the generic route only
            answer = svc.predict("lapse", "M0001", {"branch": "north"})
            assert answer.source == "model" and answer.model_version == 1
            assert 0 < answer.value < 1 and answer.computed_at == NOW
            svc.set_flag("lapse", False, reason="test", actor="t")
            fallback = svc.predict("lapse", "M0001", {"branch": "north"})
            assert fallback.source == "heuristic" and fallback.reason == "flag_off"
            stored = svc.online.rows(jobs["lapse"], ["M0001"])["M0001"].values
            assert fallback.value == pytest.approx(
                jobs["lapse"].heuristic.row(stored | {"branch": "north"})
            )
        finally:
            svc.close()
    finally:
        rt.close()
