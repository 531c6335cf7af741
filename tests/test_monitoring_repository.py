"""Monitoring declared in the repository: a job's outcome, guardrail, cohorts and monitoring
defaults are read from its job file, every invalid declaration is a problem with its file and
line, the per-job settings override them, and a job of a new name is labelled and scored
from its own label SQL with nothing else to write."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlops import repository
from mlops.errors import ConfigError
from mlops.examples.marketplace import warehouse as wh
from mlops.monitoring import accuracy, guardrails, job_settings, labelling
from mlops.runtime import Runtime
from tests.conftest import NOW
from tests.monitoring_support import delivery, load, log_predictions, order
from tests.repo_support import JOBS, copy_example, edit


def _line_of(path: Path, text: str) -> int:
    """The first line that is ``text`` (indented or not), past any comment naming it."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(text))


def _problems(root: Path, **kwargs) -> list[str]:
    with pytest.raises(repository.RepositoryInvalid) as caught:
        repository.load(root, **kwargs)
    return caught.value.problems


def test_the_example_declares_todays_monitoring_figures():
    churn, upsell, eta = JOBS["churn"], JOBS["upsell"], JOBS["eta"]
    assert (churn.accuracy_floor, upsell.accuracy_floor, eta.accuracy_floor) == (0.70, 0.65, 8.0)
    assert [j.guardrail.margin for j in (churn, upsell, eta)] == [0.02, 0.01, 0.02]
    assert all(j.auto_fallback and j.ab_treatment_share == 1.0 for j in JOBS.values())
    assert churn.outcome.sql == "outcomes_churn" and churn.outcome.otherwise == 1.0
    # Upsell and ETA reuse their label SQL: the outcome needs no SQL of its own.
    assert upsell.outcome.sql == upsell.label.sql and eta.outcome.sql == eta.label.sql
    assert eta.outcome.within is None and eta.outcome.settles == timedelta(hours=2)
    assert eta.guardrail.key_column == "delivery_id" and churn.guardrail.key_column == "customer_id"


def test_invalid_outcome_and_guardrail_declarations_name_file_and_line(tmp_path):
    root = copy_example(tmp_path)
    churn, upsell, eta = (root / "jobs" / f"{n}.yaml" for n in ("churn", "upsell", "eta"))
    edit(eta, "  column: late\n", "")
    edit(churn, "  hit_label: 0 # retained", "  hit_label: 0 # retained\n  unit: subject")
    edit(upsell, "  subject: offer_id\n  within: 24h\n", "  otherwise: 0\n")
    edit(churn, "  sql: outcomes_churn", "  sql: outcomes_lost")
    edit(churn, "cohorts: cohorts_churn", "cohorts: cohorts_missing")
    edit(eta, "  better: lower", "  better: smaller")
    problems = "\n".join(_problems(root))
    assert f"jobs/eta.yaml:{_line_of(eta, 'better: smaller')}: guardrail.better" in problems
    assert (
        f"jobs/churn.yaml:{_line_of(churn, 'unit: subject')}: guardrail.unit: a subject unit "
        "needs outcome.subject" in problems
    )
    assert (
        f"jobs/churn.yaml:{_line_of(churn, 'sql: outcomes_lost')}: outcome.sql: there is no "
        "sql/outcomes_lost.sql" in problems
    )
    assert f"jobs/churn.yaml:{_line_of(churn, 'cohorts:')}: cohorts: there is no" in problems
    assert f"jobs/upsell.yaml:{_line_of(upsell, 'otherwise: 0')}: outcome.otherwise" in problems
    assert f"jobs/upsell.yaml:{_line_of(upsell, 'outcome:')}: outcome: say how" in problems
    # eta's file did not validate (better), so its cross-file checks wait for the fix.
    edit(eta, "  better: smaller", "  better: lower")
    problems = "\n".join(_problems(root))
    line = _line_of(eta, "guardrail:")
    assert f"jobs/eta.yaml:{line}: guardrail: sql and column go together" in problems


def test_a_snapshot_outcome_takes_no_event_matching(tmp_path):
    root = copy_example(tmp_path)
    churn = root / "jobs" / "churn.yaml"
    edit(churn, "  sql: outcomes_churn\n", "")
    (problem,) = _problems(root)
    assert problem.startswith(f"jobs/churn.yaml:{_line_of(churn, 'outcome:')}: outcome: a snapshot")
    assert "name it in outcome.sql, or remove them" in problem


def test_a_snapshot_job_without_an_outcome_is_labelled_by_its_scored_snapshot(tmp_path, migrated):
    """Without outcomes_churn, churn's predictions get labels_churn's label of the snapshot they
    were scored from: the label training gives that customer and as_of."""
    root = copy_example(tmp_path)
    churn = root / "jobs" / "churn.yaml"
    text = churn.read_text()
    start, end = text.index("# Accuracy in production"), text.index("# A/B guardrail")
    churn.write_text(text[:start] + text[end:])
    (root / "sql" / "outcomes_churn.sql").unlink()
    rt = Runtime(settings=migrated.settings.model_copy(update={"repo": root}), clock=migrated.clock)
    try:
        assert rt.repo.job("churn").outcome.kind == "snapshot"
        wh.create_tables(rt.warehouse)
        snap = NOW - timedelta(days=40)
        load(
            rt,
            wh.customers,
            [
                {"customer_id": c, "signup_at": NOW - timedelta(days=400)}
                | {"region": "north", "plan": "basic"}
                for c in ("stays", "leaves", "asleep")
            ],
        )
        load(
            rt,
            wh.orders,
            [
                order("o1", "stays", snap - timedelta(days=10)),
                order("o2", "leaves", snap - timedelta(days=20)),
                order("o3", "stays", snap + timedelta(days=3)),  # back within 30 days
                order("o4", "asleep", snap - timedelta(days=200)),  # not active: no label
            ],
        )
        at = {"features_computed_at": snap, "logged_at": snap + timedelta(hours=3)}
        log_predictions(
            rt,
            [
                {"job": "churn", "entity_id": "stays", "prediction": 0.2} | at,
                {"job": "churn", "entity_id": "leaves", "prediction": 0.9} | at,
                {"job": "churn", "entity_id": "asleep", "prediction": 0.5} | at,
                # Scored without stored features: no snapshot, no label.
                {"job": "churn", "entity_id": "leaves", "prediction": 0.4}
                | {"logged_at": snap + timedelta(hours=4)},
                # Its snapshot's 30 days have not passed: not due.
                {"job": "churn", "entity_id": "stays", "prediction": 0.3}
                | {"features_computed_at": NOW - timedelta(days=10), "logged_at": NOW},
            ],
        )
        frame = labelling.labelled(rt, "churn")
        assert dict(zip(frame.entity_id, frame.label, strict=True)) == {"stays": 0.0, "leaves": 1.0}
    finally:
        rt.close()


def test_per_job_settings_override_the_declarations_and_must_name_jobs(tmp_path, migrated):
    root = copy_example(tmp_path)
    problems = _problems(
        root,
        job_overrides={"accuracy_floor": {"fraud": 0.8}, "ab_treatment_share": {"eta": 1.5}},
    )
    assert problems == [
        "MLOPS_ACCURACY_FLOOR names no job of the repository: fraud (fix the setting; jobs: "
        "churn, eta, ticket, upsell)",
        "MLOPS_AB_TREATMENT_SHARE: eta is 1.5: give a share from 0 to 1",
    ]
    update = {"accuracy_floor": {"eta": 5.0}, "auto_fallback": {"upsell": False}}
    rt = Runtime(settings=migrated.settings.model_copy(update=update), clock=migrated.clock)
    try:
        assert job_settings.accuracy_floor(rt, "eta") == 5.0
        assert job_settings.accuracy_floor(rt, "churn") == 0.70  # declared
        assert not job_settings.auto_fallback(rt, "upsell") and job_settings.auto_fallback(
            rt, "churn"
        )
        assert job_settings.guardrail_margin(rt, "upsell") == 0.01
    finally:
        rt.close()
    bad = migrated.settings.model_copy(update={"guardrail_margin": {"price": 0.1}})
    with pytest.raises(repository.RepositoryInvalid, match="MLOPS_GUARDRAIL_MARGIN names no job"):
        _ = Runtime(settings=bad, clock=migrated.clock).repo


def _renamed(tmp_path: Path) -> Path:
    """The example with eta renamed to delivery_minutes, its label SQL in seconds instead."""
    root = copy_example(tmp_path)
    (root / "jobs" / "eta.yaml").rename(root / "jobs" / "delivery_minutes.yaml")
    edit(root / "jobs" / "delivery_minutes.yaml", "name: eta", "name: delivery_minutes")
    edit(
        root / "repository.yaml",
        "jobs: [churn, upsell, eta, ticket]",
        "jobs: [churn, upsell, delivery_minutes, ticket]",
    )
    (root / "sql" / "labels_eta.sql").rename(root / "sql" / "labels_delivery.sql")
    edit(root / "jobs" / "delivery_minutes.yaml", "sql: labels_eta", "sql: labels_delivery")
    # Seconds, not minutes: the labels seen below can only come from this file.
    edit(root / "sql" / "labels_delivery.sql", "/ 60.0 AS label", "/ 1.0 AS label")
    return root


def test_a_job_of_a_new_name_is_labelled_and_scored_from_its_label_sql(tmp_path, migrated):
    root = _renamed(tmp_path)
    settings = migrated.settings.model_copy(
        update={
            "repo": root,
            "accuracy_floor": {"delivery_minutes": 100.0},
            "accuracy_min_sample": 1,
        }
    )
    rt = Runtime(settings=settings, clock=migrated.clock)
    try:
        wh.create_tables(rt.warehouse)
        t = NOW.replace(hour=0) - timedelta(days=1, minutes=-10)  # yesterday: a complete day
        job = "delivery_minutes"
        log_predictions(
            rt,
            [
                {"job": job, "entity_id": "z1", "subject_id": f"d{i}", "prediction": 1800.0}
                | {"logged_at": t + timedelta(minutes=i)}
                for i in range(3)
            ]
            # An answer for another job's name is no answer of this one.
            + [
                {
                    "job": "eta",
                    "entity_id": "z1",
                    "subject_id": "d0",
                    "prediction": 1.0,
                    "logged_at": t,
                }
            ],
        )
        load(
            rt,
            wh.deliveries,
            [
                delivery("d0", t, t + timedelta(minutes=30)),
                delivery("d1", t, t + timedelta(minutes=40)),
                delivery("d2", t, None),  # in flight: no label yet
            ],
        )
        frame = labelling.labelled(rt, job)
        assert dict(zip(frame.subject_id, frame.label, strict=True)) == {"d0": 1800.0, "d1": 2400.0}
        assert set(frame.job) == {job}
        found = accuracy.report(rt, since=NOW - timedelta(days=5))
        assert found.jobs == ["churn", "upsell", job, "ticket"]
        (row,) = found.frame[found.frame.job == job].to_dict("records")
        assert (row["statistic"], row["value"], row["n"]) == ("mae", 300.0, 2)
        assert row["threshold"] == 100.0 and row["status"] == "alert"
        assert "delivery_minutes model MAE 300.000 above the ceiling 100" in found.opened[0].message
        (result,) = guardrails.check(rt, job, record=False)
        assert result.metric.name == "late_share" and result.decision == "insufficient"
    finally:
        rt.close()


def test_a_job_without_outcome_or_guardrail_is_left_out_of_all_and_refused_by_name(
    tmp_path, migrated
):
    root = copy_example(tmp_path)
    upsell = root / "jobs" / "upsell.yaml"
    text = upsell.read_text()
    start, end = text.index("# Accuracy in production"), text.index("accuracy_floor:")
    upsell.write_text(text[:start] + text[end:])
    rt = Runtime(settings=migrated.settings.model_copy(update={"repo": root}), clock=migrated.clock)
    try:
        wh.create_tables(rt.warehouse)
        assert accuracy.report(rt, record=False).jobs == ["churn", "eta", "ticket"]
        assert [g.job for g in guardrails.check(rt, record=False)] == ["churn", "eta"]
        with pytest.raises(ConfigError, match="declares no outcome"):
            labelling.labelled(rt, "upsell")
        with pytest.raises(ConfigError, match="declares no guardrail"):
            guardrails.check(rt, "upsell")
    finally:
        rt.close()
