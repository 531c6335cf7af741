"""The replay of simulated traffic through the serving path (``serving.replay``, what
``mlops quickstart`` runs): answers logged at past times from the features stored then, which
the monitors and every dashboard panel then judge; the jobs it cannot replay say why."""

import dataclasses
import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from mlops.clock import FrozenClock
from mlops.db.schema import prediction_log
from mlops.runtime import Runtime
from mlops.serving import replay
from mlops.settings import Settings
from mlops.specs.features import InputSpec
from tests.conftest import NOW


@pytest.fixture(scope="module")
def replayed(trained_home, tmp_path_factory):
    """A copy of the trained home's store and warehouse (its registry read in place) after a
    small replay: what quickstart leaves behind, at a fraction of the requests."""
    home = tmp_path_factory.mktemp("replayed") / "home"
    home.mkdir()
    for name in ("mlops.db", "warehouse.db"):
        shutil.copy(trained_home / name, home / name)
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{trained_home / 'mlflow.db'}")
    rt = Runtime(settings=settings, clock=FrozenClock(NOW))
    report = replay.replay(rt, requests=120, seed=1)
    yield rt, report
    rt.close()


def _log(rt) -> pd.DataFrame:
    t = prediction_log
    with rt.store.connect() as conn:
        rows = conn.execute(
            select(
                t.c.job,
                t.c.logged_at,
                t.c.features_computed_at,
                t.c.source,
                t.c.reason,
                t.c.arm,
                t.c.model_version,
                t.c.subject_id,
            )
        ).all()
    return pd.DataFrame(rows, columns=[c for c in rows[0]._fields]) if rows else pd.DataFrame()


def test_answers_are_logged_at_past_times_from_the_features_stored_then(replayed):
    rt, report = replayed
    log = _log(rt)
    assert report.requests == len(log) == 120 * len(rt.repo.jobs)
    assert all(j.skipped is None and j.requests == 120 for j in report.jobs), report.jobs
    for job, part in log.groupby("job"):
        # Spread over the job's history, not stamped now.
        span = part["logged_at"].max() - part["logged_at"].min()
        assert span > timedelta(days=7), (job, span)
        assert part["logged_at"].max() <= NOW
        # Point in time: each answer was scored from a snapshot taken at or before it.
        scored = part.dropna(subset=["features_computed_at"])
        assert len(scored) > 0.8 * len(part), job
        assert (scored["features_computed_at"] <= scored["logged_at"]).all(), job
        model = part[part["source"] == "model"]
        assert len(model) > 0.5 * len(part), (job, part["reason"].value_counts().to_dict())
        assert (model["model_version"] == 1).all()
    # Jobs with a guardrail run as an experiment (no job of the example runs one), so both arms
    # have answers: the control's from the heuristic.
    guarded = [j.name for j in rt.repo.jobs.values() if j.guardrail is not None]
    for job in guarded:
        arms = log[log["job"] == job].groupby("arm")["source"].agg(set).to_dict()
        assert arms["control"] == {"heuristic"} and "model" in arms["treatment"], (job, arms)
    # Event-labelled jobs replay their events, with the outcome's subject logged.
    for job in rt.repo.jobs.values():
        if job.outcome is not None and job.outcome.subject is not None:
            assert log.loc[log["job"] == job.name, "subject_id"].notna().all(), job.name
    assert "replayed 480 requests" in report.summary()


def test_the_monitors_and_every_panel_judge_the_replayed_answers(replayed):
    from mlops.monitoring import accuracy, dashboard, guardrails

    rt, _ = replayed
    scored = accuracy.report(rt, by="week").frame
    for job in ("churn", "upsell", "eta"):
        sources = set(scored.loc[scored["job"] == job, "source"])
        assert sources == {"model", "heuristic"}, (job, sources)
    for result in guardrails.check(rt):
        assert result.comparison.control.n > 0 and result.comparison.treatment.n > 0, result.job
    panels = {p.key: p for p in dashboard.gather(rt, since=timedelta(days=30)).panels}
    for key in ("cohorts", "accuracy", "residuals", "fallbacks", "guardrails"):
        assert not panels[key].empty and panels[key].error is None, (key, panels[key].notes)


def test_replay_off_or_nothing_to_replay_says_why(migrated):
    off = replay.replay(migrated, requests=0)
    assert off.requests == 0 and {j.skipped for j in off.jobs} == {"replay off"}
    empty = replay.replay(migrated, requests=5)
    assert empty.requests == 0
    assert [j.skipped for j in empty.jobs] == [
        f"no {name} features ingested" for name in migrated.repo.names
    ]
    assert "churn none (no churn features ingested)" in empty.summary()


def test_a_job_whose_inputs_have_no_sample_is_not_replayed(replayed):
    rt, _ = replayed
    job = rt.repo.job("ticket")
    needs = dataclasses.replace(job, inputs=(*job.inputs, InputSpec("coupon", "float")))
    planned, why = replay.plan(rt, needs, 5, np.random.default_rng(0), NOW)
    assert planned == [] and why.startswith("no sample value of coupon")


def test_replay_on_the_backend_under_test(serving_rt):
    """Every job refreshed once at NOW: the replay answers there from the stored rows."""
    report = replay.replay(serving_rt, requests=10)
    log = _log(serving_rt)
    churn = log[log["job"] == "churn"]
    assert len(churn) == 10 and (churn["logged_at"] == NOW).all()
    assert (churn["features_computed_at"] == NOW).all()
    assert "model" in set(churn["source"]), churn["reason"].value_counts().to_dict()
    assert report.requests == len(log)
