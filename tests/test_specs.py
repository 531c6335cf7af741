from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from mlops.db.schema import feature_specs
from mlops.errors import InputError
from mlops.specs import sync as specs_sync
from mlops.specs.features import JobSpec
from tests.repo_support import JOBS, REPO


def test_every_job_has_enough_fully_described_features():
    minimum = {"churn": 8, "upsell": 6, "eta": 6, "ticket": 6}
    for name, job in JOBS.items():
        assert len(job.features) >= minimum[name]
        assert len(set(job.feature_names)) == len(job.features)
        for f in job.features:
            assert f.description and f.owner and f.entity == job.entity
            assert f.ttl == job.ttl and f.source_view == job.view
            assert 0 < f.psi_warn < f.psi_alert and 0 < f.ks_pvalue < 1
            if f.dtype != "category":
                assert f.min_value is not None and f.max_value is not None


def test_ttls_and_schedules_follow_the_design():
    assert REPO.job("churn").ttl == timedelta(hours=36)
    assert REPO.job("upsell").ttl == timedelta(hours=12)
    assert REPO.job("eta").ttl == timedelta(minutes=15)
    assert REPO.job("eta").refresh_cron == "*/5 * * * *"
    assert [j.name for j in REPO.resolve("all")] == ["churn", "upsell", "eta", "ticket"]


def test_unknown_job_error_lists_the_choices():
    with pytest.raises(InputError, match="churn, upsell, eta"):
        REPO.job("nope")


def _with_features(features) -> dict[str, JobSpec]:
    churn = JOBS["churn"]
    return {**JOBS, "churn": replace(churn, features=tuple(features))}


def test_sync_adds_then_reports_in_sync(migrated):
    store = migrated.store
    plan = specs_sync.plan(store, JOBS)
    assert len(plan.added) == sum(len(j.features) for j in JOBS.values())
    specs_sync.apply(store, plan, migrated.clock.now(), JOBS)
    again = specs_sync.plan(store, JOBS)
    assert again.empty and again.unchanged == len(plan.added)


def test_dry_run_plan_writes_nothing(migrated):
    specs_sync.plan(migrated.store, JOBS)
    with migrated.store.connect() as conn:
        assert conn.execute(select(feature_specs)).all() == []


def test_change_bumps_version_and_removal_retires_not_deletes(migrated):
    store, now = migrated.store, migrated.clock.now()
    specs_sync.apply(store, specs_sync.plan(store, JOBS), now, JOBS)
    churn = list(JOBS["churn"].features)
    changed = replace(churn[1], max_value=99.0)
    jobs = _with_features([changed, *churn[2:]])  # first feature removed, second changed
    plan = specs_sync.plan(store, jobs)
    assert [c.name for c in plan.retired] == [churn[0].name]
    assert [c.name for c in plan.changed] == [churn[1].name]
    assert plan.changed[0].fields["max_value"] == (churn[1].max_value, 99.0)
    specs_sync.apply(store, plan, now, jobs)
    with store.connect() as conn:
        rows = {
            r.name: r
            for r in conn.execute(select(feature_specs).where(feature_specs.c.job == "churn"))
        }
    assert rows[churn[0].name].retired_at == now  # still there, history readable
    assert rows[churn[1].name].version == 2 and rows[churn[1].name].max_value == 99.0
    assert churn[0].name not in specs_sync.spec_versions(store, "churn")
    # Restoring the feature in code revives it.
    revive = specs_sync.plan(store, JOBS)
    assert {c.name for c in revive.changed} == {churn[0].name, churn[1].name}
