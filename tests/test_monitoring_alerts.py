"""The one alert path (raised once per incident, resolved when gone, webhook with retries and a
timeout), monitor results, and the automatic fallback trip."""

from __future__ import annotations

import logging
import socket
import time
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from mlops.db.schema import alerts as alerts_table
from mlops.db.schema import monitor_results
from mlops.monitoring import alerts, fallback, results
from mlops.runtime import Runtime
from mlops.serving import trips
from tests.webhook_support import Hook


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


def with_settings(rt, **update) -> Runtime:
    return Runtime(settings=rt.settings.model_copy(update=update), clock=rt.clock)


def rows(rt):
    with rt.store.connect() as conn:
        return conn.execute(select(alerts_table).order_by(alerts_table.c.alert_id)).all()


def test_an_incident_is_raised_once_and_resolved_when_gone(migrated, hook, caplog):
    rt = with_settings(migrated, alert_webhook_url=SecretStr(hook.url))
    caplog.set_level(logging.INFO, logger="mlops.monitoring")
    opened = alerts.check(rt, "drift", "churn", {"tenure_days": "PSI 0.41 > 0.25"})
    assert [a.subject for a in opened] == ["tenure_days"]
    migrated.clock.advance(timedelta(hours=1))
    assert alerts.check(rt, "drift", "churn", {"tenure_days": "PSI 0.44 > 0.25"}) == []
    (row,) = rows(rt)
    assert (row.status, row.occurrences, row.message, row.delivered) == (
        "open",
        2,
        "PSI 0.44 > 0.25",
        True,
    )
    assert [p["status"] for p in hook.received] == ["open"]
    assert [r.getMessage().split()[0] for r in caplog.records].count(alerts.OPENED) == 1

    migrated.clock.advance(timedelta(hours=1))
    alerts.check(rt, "drift", "churn", {})
    (row,) = rows(rt)
    assert row.status == "resolved" and row.resolved_at == migrated.clock.now()
    assert [p["status"] for p in hook.received] == ["open", "resolved"]
    assert alerts.open_alerts(rt) == []

    # The same condition coming back is a new incident.
    again = alerts.check(rt, "drift", "churn", {"tenure_days": "PSI 0.30 > 0.25"})
    assert len(again) == 1 and again[0].alert_id != row.alert_id
    assert [a.subject for a in alerts.open_alerts(rt, "churn")] == ["tenure_days"]


def test_only_subjects_in_scope_are_resolved(migrated):
    alerts.check(migrated, "drift", "eta", {"a": "x", "b": "y"})
    alerts.check(migrated, "drift", "eta", {}, scope={"a"})
    assert [a.subject for a in alerts.open_alerts(migrated, "eta")] == ["b"]
    # Another job's or kind's incidents are untouched.
    alerts.check(migrated, "stale_features", "eta", {"features": "stale"})
    alerts.check(migrated, "drift", "eta", {})
    assert [(a.kind, a.subject) for a in alerts.open_alerts(migrated)] == [
        ("stale_features", "features")
    ]


def test_webhook_retries_until_accepted(migrated):
    receiver = Hook(statuses=[500, 503])
    try:
        rt = with_settings(migrated, alert_webhook_url=SecretStr(receiver.url))
        alerts.check(rt, "accuracy", "upsell", {"model": "ROC-AUC 0.58 < 0.65"}, backoff_seconds=0)
        assert len(receiver.received) == 3
        assert receiver.received[-1]["kind"] == "accuracy"
        assert rows(rt)[0].delivered
    finally:
        receiver.close()


def test_an_unreachable_webhook_is_logged_without_its_url_and_retried_next_check(migrated, caplog):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook?token=s3cret"
    rt = with_settings(migrated, alert_webhook_url=SecretStr(dead), alert_webhook_retries=1)
    caplog.set_level(logging.INFO, logger="mlops.monitoring")
    opened = alerts.check(rt, "guardrail", "eta", {"late_share": "worse"}, backoff_seconds=0)
    assert len(opened) == 1 and not rows(rt)[0].delivered
    failures = [r for r in caplog.records if "webhook failed after 2 attempts" in r.getMessage()]
    assert failures and all("s3cret" not in r.getMessage() for r in caplog.records)

    receiver = Hook()
    try:
        rt = with_settings(migrated, alert_webhook_url=SecretStr(receiver.url))
        assert alerts.check(rt, "guardrail", "eta", {"late_share": "worse"}) == []
        assert [p["alert_id"] for p in receiver.received] == [opened[0].alert_id]
        assert rows(rt)[0].delivered
    finally:
        receiver.close()


def test_a_slow_webhook_times_out(migrated):
    receiver = Hook(delay=1.0)
    try:
        rt = with_settings(
            migrated,
            alert_webhook_url=SecretStr(receiver.url),
            alert_webhook_timeout_seconds=0.1,
            alert_webhook_retries=0,
        )
        started = time.perf_counter()
        alerts.check(rt, "ingestion_failed", "churn", {"ingestion": "run 7 failed"})
        assert time.perf_counter() - started < 0.9
        assert not rows(rt)[0].delivered
    finally:
        receiver.close()


def test_unknown_alert_kind_is_refused(migrated):
    with pytest.raises(ValueError, match="not one of"):
        alerts.check(migrated, "vibes", "churn", {"x": "y"})
    assert rows(migrated) == []


def test_results_round_trip_and_refuse_bad_rows(migrated):
    now = migrated.clock.now()
    row = dict(
        checked_at=now,
        monitor="drift",
        job="churn",
        feature="tenure_days",
        statistic="psi",
        value=0.3,
        threshold=0.25,
        status="alert",
        sample_size=300,
    )
    assert results.write(migrated, [row]) == 1
    with migrated.store.connect() as conn:
        stored = conn.execute(select(monitor_results)).one()
    assert (stored.feature, stored.value, stored.model_version) == ("tenure_days", 0.3, None)
    with pytest.raises(ValueError, match="status"):
        results.write(migrated, [{**row, "status": "bad"}])
    with pytest.raises(ValueError, match="columns"):
        results.write(migrated, [{**row, "colour": "red"}])
    with migrated.store.connect() as conn:
        assert len(conn.execute(select(monitor_results)).all()) == 1


def test_auto_fallback_trips_once_and_only_when_on(migrated):
    first = fallback.trip(migrated, "churn", "drift", "tenure_days PSI 0.4")
    assert first is not None and first.kind == "drift"
    assert fallback.trip(migrated, "churn", "drift", "again") is None
    assert fallback.trip(migrated, "churn", "guardrail", "retention") is not None
    assert [t.kind for t in trips.active(migrated.store)["churn"]] == ["drift", "guardrail"]

    off = with_settings(migrated, auto_fallback={"churn": True, "upsell": False, "eta": True})
    assert fallback.trip(off, "upsell", "drift", "x") is None
    assert "upsell" not in trips.active(migrated.store)
