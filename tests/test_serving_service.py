"""The serving library on SQLite and PostgreSQL: each endpoint from the model and from the
heuristic, and every fallback reason made to happen for real."""

import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from mlops.db.schema import feature_values, prediction_log
from mlops.examples.marketplace.answers import CustomerNotFound, OfferNotFound
from mlops.serving import flags, trips
from mlops.serving.service import Service
from tests.conftest import NOW
from tests.repo_support import JOBS
from tests.serving_support import (
    BrokenBooster,
    SlowBooster,
    a_customer,
    a_zone,
    make_service,
    mlflow_copy,
    wait_until,
)


def _profile_by_hand(rt, customer_id):
    """The profile figures computed with pandas from the raw tables, not the service's SQL."""
    with rt.warehouse.connect() as conn:
        orders = pd.read_sql("SELECT * FROM orders", conn)
        shown = pd.read_sql("SELECT * FROM offer_impressions", conn)
    orders["placed_at"] = pd.to_datetime(orders["placed_at"])
    shown["shown_at"] = pd.to_datetime(shown["shown_at"])
    mine = orders[(orders.customer_id == customer_id) & (orders.status == "completed")]
    mine = mine[mine.placed_at < NOW]
    in_90 = mine[mine.placed_at >= NOW - timedelta(days=90)]
    in_30 = mine[mine.placed_at >= NOW - timedelta(days=30)]
    seen = shown[
        (shown.customer_id == customer_id)
        & (shown.shown_at >= NOW - timedelta(days=90))
        & (shown.shown_at < NOW)
    ]
    last = mine.placed_at.max()
    return {
        "orders_90d": len(in_90),
        "orders_30d": len(in_30),
        "spend_90d": round(float(in_90.total_amount.astype(float).sum()), 2),
        "days_since_last_order": (NOW - last).total_seconds() / 86400,
        "impressions_90d": len(seen),
        "acceptance_rate_90d": seen.accepted.astype(bool).mean() if len(seen) else None,
    }


def test_dossier_from_the_models(service, serving_rt):
    customer = a_customer(serving_rt)
    answer = service.extension.dossier(customer, request_id="r1")
    assert answer.churn.source == "model" and answer.churn.reason is None
    assert answer.churn.model_version == 1 and answer.upsell.model_version == 1
    assert answer.churn.computed_at == NOW and answer.churn.staleness_seconds == 0
    assert 0 < answer.churn.probability < 1
    assert answer.churn.band == (
        "low"
        if answer.churn.probability < 0.3
        else "medium"
        if answer.churn.probability < 0.6
        else "high"
    )
    assert answer.upsell.source == "model" and answer.upsell.offer_id.startswith("OF")
    expected = _profile_by_hand(serving_rt, customer)
    profile = answer.profile
    assert profile.orders_90d == expected["orders_90d"]
    assert profile.orders_30d == expected["orders_30d"]
    assert profile.spend_90d == pytest.approx(expected["spend_90d"], abs=0.01)
    assert profile.days_since_last_order == pytest.approx(expected["days_since_last_order"])
    # the model's propensity is the best of the offers it ranks in compose
    composed = service.extension.compose(customer, limit=1)
    assert composed.offers[0].offer_id == answer.upsell.offer_id
    assert composed.offers[0].propensity == pytest.approx(answer.upsell.propensity)


def test_unknown_customer_is_not_found(service):
    with pytest.raises(CustomerNotFound):
        service.extension.dossier("NO-SUCH-CUSTOMER")


def test_known_customer_without_features_gets_the_heuristic(service, serving_rt):
    customer = a_customer(serving_rt)
    with serving_rt.store.begin() as conn:
        conn.execute(delete(feature_values).where(feature_values.c.entity_id == customer))
    answer = service.extension.dossier(customer)
    assert answer.churn.source == answer.upsell.source == "heuristic"
    assert answer.churn.reason == answer.upsell.reason == "features_missing"
    assert answer.churn.model_version is None and answer.churn.computed_at is None
    # the fallback is the training heuristic on the warehouse's live figures
    inputs = _profile_by_hand(serving_rt, customer)
    assert answer.churn.probability == pytest.approx(JOBS["churn"].heuristic.row(inputs))
    best = max(
        JOBS["upsell"].heuristic.row({**inputs, "discount_pct": o.discount_pct})
        for o in service.extension.offers
    )
    assert answer.upsell.propensity == pytest.approx(best)


def test_stale_features_fall_back_when_the_clock_passes_the_ttl(service, serving_rt, clock):
    zone = a_zone(serving_rt)
    assert service.extension.eta(zone, 3.0, 2).source == "model"
    clock.advance(JOBS["eta"].ttl + timedelta(seconds=2))
    answer = service.extension.eta(zone, 3.0, 2)
    assert answer.source == "heuristic" and answer.reason == "features_stale"
    assert answer.computed_at == NOW
    assert answer.staleness_seconds > JOBS["eta"].ttl.total_seconds()
    assert answer.recommended_minutes == answer.sla_minutes and answer.model_minutes is None


def test_eta_combines_model_and_sla(service, serving_rt):
    zone = a_zone(serving_rt)
    dispatched = NOW - timedelta(minutes=3)
    answer = service.extension.eta(zone, 2.5, 3, dispatched_at=dispatched, delivery_id="D1")
    assert answer.source == "model" and answer.model_minutes is not None
    sla = JOBS["eta"].heuristic.row({"distance_km": 2.5, "zone": zone})
    assert answer.sla_minutes == pytest.approx(sla, abs=0.01)
    top = max(answer.model_minutes, answer.model_p90_minutes)
    assert answer.recommended_minutes == pytest.approx(min(answer.sla_minutes, top), abs=0.01)
    assert answer.at_risk == (answer.model_minutes > answer.sla_minutes)
    promised = (answer.promise_at - dispatched).total_seconds() / 60
    assert promised == pytest.approx(answer.recommended_minutes, abs=1 / 60)


def test_compose_ranks_by_model_and_by_rule(service, serving_rt):
    customer = a_customer(serving_rt)
    ids = ["OF003", "OF001", "OF002", "OF004"]
    ranked = service.extension.compose(customer, offer_ids=ids, limit=3)
    assert ranked.source == "model" and len(ranked.offers) == 3
    scores = [o.propensity for o in ranked.offers]
    assert scores == sorted(scores, reverse=True) and [o.rank for o in ranked.offers] == [1, 2, 3]
    assert {o.offer_id for o in ranked.offers} <= set(ids)
    service.set_flag("upsell", False, reason="test", actor="t")
    by_rule = service.extension.compose(customer, offer_ids=ids, limit=4)
    assert by_rule.source == "heuristic" and by_rule.reason == "flag_off"
    inputs = _profile_by_hand(serving_rt, customer)
    offers = {o.offer_id: o for o in service.extension.offers}
    expected = sorted(
        ids,
        key=lambda i: (
            -JOBS["upsell"].heuristic.row({**inputs, "discount_pct": offers[i].discount_pct})
        ),
    )
    got = [o.offer_id for o in by_rule.offers]
    assert [offers[i].discount_pct for i in got] == [offers[i].discount_pct for i in expected]
    with pytest.raises(OfferNotFound, match="unknown offer ids: NOPE"):
        service.extension.compose(customer, offer_ids=["OF001", "NOPE"])


def test_flags_global_and_per_job_take_effect_without_restart(service, serving_rt):
    customer, zone = a_customer(serving_rt), a_zone(serving_rt)
    service.set_flag("churn", False, reason="INC-1", actor="oncall")
    answer = service.extension.dossier(customer)
    assert answer.churn.reason == "flag_off" and answer.upsell.source == "model"
    # another replica (here: the CLI's library call) turns everything off in the database
    flags.write(serving_rt.store, "ml", False, reason="INC-2", actor="cli", at=NOW)
    assert service.extension.eta(zone, 3.0).source == "model"  # not polled yet
    assert service.refresh_controls()  # the poll sees the change
    assert service.extension.eta(zone, 3.0).reason == "flag_off"
    assert service.extension.dossier(customer).upsell.reason == "flag_off"
    flags.write(serving_rt.store, "ml", True, reason="fixed", actor="cli", at=NOW)
    flags.write(serving_rt.store, "churn", True, reason="fixed", actor="cli", at=NOW)
    service.refresh_controls()
    assert service.extension.dossier(customer).churn.source == "model"


def test_flag_change_clears_cached_features(service, serving_rt):
    zone = a_zone(serving_rt)
    assert service.extension.eta(zone, 3.0).source == "model"  # the zone's row is now cached
    with serving_rt.store.begin() as conn:
        conn.execute(delete(feature_values).where(feature_values.c.entity_id == zone))
    assert service.extension.eta(zone, 3.0).source == "model"  # served from the cache
    service.set_flag("upsell", False, reason="any change", actor="t")
    assert service.extension.eta(zone, 3.0).reason == "features_missing"  # cache cleared


def test_drift_and_guardrail_trips_send_the_job_to_the_heuristic(service, serving_rt):
    zone = a_zone(serving_rt)
    trips.record(serving_rt.store, "eta", "guardrail", "p90 error above 10 min", at=NOW)
    service.refresh_controls()
    assert service.extension.eta(zone, 3.0).reason == "guardrail"
    trips.record(serving_rt.store, "eta", "drift", "PSI 0.4 on distance_km", at=NOW)
    service.refresh_controls()
    assert service.extension.eta(zone, 3.0).reason == "drift"
    assert trips.clear(serving_rt.store, "eta", actor="oncall", at=NOW) == 2
    service.refresh_controls()
    assert service.extension.eta(zone, 3.0).source == "model"


def test_no_champion_means_heuristics_only(serving_rt, tmp_path):
    empty = tmp_path / "empty-registry"
    svc = make_service(serving_rt, mlflow_tracking_uri=f"sqlite:///{empty / 'mlflow.db'}")
    try:
        assert svc.readiness()["mode"] == "heuristics only"
        assert svc.extension.eta(a_zone(serving_rt), 3.0).reason == "no_champion"
        assert svc.extension.dossier(a_customer(serving_rt)).churn.reason == "no_champion"
    finally:
        svc.close()
    assert not empty.exists()  # serving never creates a registry


def test_a_slow_model_is_cut_off_and_then_the_circuit_opens(serving_rt, clock):
    svc = make_service(
        serving_rt, slo_ms={"eta": 10.0}, circuit_overruns=2, circuit_cooldown_seconds=60
    )
    try:
        zone = a_zone(serving_rt)
        model = svc.champions.get("eta").model
        fast = model.booster
        model.booster = SlowBooster(fast, 0.5)
        began = time.perf_counter()
        answer = svc.extension.eta(zone, 3.0)
        assert time.perf_counter() - began < 0.3  # answered at the 20 ms budget, not 0.5 s
        assert answer.reason == "slo_exceeded" and answer.source == "heuristic"
        assert svc.extension.eta(zone, 3.0).reason == "slo_exceeded"
        assert svc.extension.eta(zone, 3.0).reason == "circuit_open"  # two overruns opened it
        model.booster = fast
        assert svc.extension.eta(zone, 3.0).reason == "circuit_open"
        # The cut-off paths still sleep on their threads; the circuit holds until they end.
        wait_until(lambda: not svc.stuck["eta"], timeout=5)
        clock.advance(timedelta(seconds=61))  # after the cool-down one attempt goes through
        assert svc.extension.eta(zone, 3.0).source == "model"
    finally:
        svc.close()


def test_a_model_that_raises_falls_back(service, serving_rt):
    customer = a_customer(serving_rt)
    model = service.champions.get("churn").model
    model.booster = BrokenBooster()
    answer = service.extension.dossier(customer)
    assert answer.churn.reason == "model_error" and 0 < answer.churn.probability < 1
    assert answer.upsell.source == "model"  # the other job is unaffected


def test_heuristic_path_with_the_store_database_down(serving_rt, backend, tmp_path):
    """The feature store's database unreachable: ETA still answers, by rule, and says why."""
    if backend == "sqlite":
        down = tmp_path / "a-directory-not-a-database"
        down.mkdir()
        url = f"sqlite:///{down}"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1"
    svc = make_service(serving_rt, database_url=url)
    try:
        ready = svc.readiness()
        assert not ready["ready"] and ready["database"].startswith("unreachable")
        assert b"mlops_feature_age_seconds" in svc.metrics.render()[0]  # scrapes still work
        answer = svc.extension.eta("Z01", 4.0, 2)
        assert answer.source == "heuristic"
        assert answer.reason in ("features_unavailable", "slo_exceeded")
        assert answer.recommended_minutes == answer.sla_minutes > 0
    finally:
        svc.close()


def test_new_champion_is_picked_up_without_restart(serving_rt, trained_home, tmp_path):
    from mlops.training import tracking_versions

    uri = mlflow_copy(trained_home, tmp_path / "registry")
    svc = make_service(serving_rt, mlflow_tracking_uri=uri)
    try:
        zone = a_zone(serving_rt)
        assert svc.extension.eta(zone, 3.0).model_version == 1
        tracking_versions.delete_alias(
            svc.settings, "eta", tracking_versions.CHAMPION
        )  # as a rollback to none
        assert svc.reload_models() == ["eta: champion v1 unloaded"]
        assert svc.extension.eta(zone, 3.0).reason == "no_champion"
        tracking_versions.set_alias(svc.settings, "eta", tracking_versions.CHAMPION, 1)
        assert svc.reload_models() == ["eta: champion none -> v1"]
        assert svc.extension.eta(zone, 3.0).model_version == 1
    finally:
        svc.close()


def test_prediction_log_is_written_in_batches_and_on_shutdown(serving_rt):
    svc = make_service(serving_rt, prediction_log_flush_seconds=60, prediction_log_batch=1000)
    customer, zone = a_customer(serving_rt), a_zone(serving_rt)
    svc.extension.dossier(customer, request_id="req-1")
    svc.extension.eta(zone, 3.0, delivery_id="D9", request_id="req-2")
    svc.extension.compose(customer, limit=2, request_id="req-3")
    with serving_rt.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prediction_log)).scalar() == 0
    svc.close()  # a clean shutdown writes what is pending
    with serving_rt.store.connect() as conn:
        rows = conn.execute(select(prediction_log).order_by(prediction_log.c.prediction_id)).all()
    assert [(r.endpoint, r.job, r.request_id) for r in rows] == [
        ("dossier", "churn", "req-1"),
        ("dossier", "upsell", "req-1"),
        ("eta", "eta", "req-2"),
        ("compose", "upsell", "req-3"),
        ("compose", "upsell", "req-3"),
    ]
    eta = rows[2]
    assert eta.entity_id == zone and eta.subject_id == "D9" and eta.source == "model"
    assert eta.model_version == 1 and eta.features_computed_at == NOW and eta.latency_ms > 0
    assert rows[1].subject_id.startswith("OF") and rows[0].subject_id is None


# One logged answer (the ml_prediction_log columns but the id), for the writer's tests.
LOG_RECORD = {
    "logged_at": NOW,
    "request_id": "r",
    "endpoint": "eta",
    "job": "eta",
    "entity_id": "Z01",
    "subject_id": None,
    "prediction": 12.0,
    "source": "model",
    "reason": None,
    "model_version": 1,
    "features_computed_at": NOW,
    "latency_ms": 1.0,
}


def test_prediction_log_keeps_rows_while_the_database_is_down(serving_rt, tmp_path):
    from mlops.db.engine import make_engine
    from mlops.serving.prediction_log import PredictionLog

    down = tmp_path / "dir"
    down.mkdir()
    broken = PredictionLog(
        make_engine(f"sqlite:///{down}"), batch=10, flush_seconds=60, max_pending=3
    )
    for i in range(4):
        broken.add({**LOG_RECORD, "request_id": f"r{i}"})
    assert broken.flush() == 0 and broken.pending == 3 and broken.dropped == 1
    # the same rows, handed to a log whose database is up, are all written
    healthy = PredictionLog(serving_rt.store, batch=2, flush_seconds=60, max_pending=10)
    while broken.pending:
        healthy.add(broken._pending.popleft())
    assert healthy.flush() == 3
    with serving_rt.store.connect() as conn:
        ids = conn.execute(select(prediction_log.c.request_id)).scalars().all()
    assert sorted(ids) == ["r1", "r2", "r3"]  # the oldest was dropped when the buffer filled


def test_prediction_log_writes_in_the_background_a_batch_at_a_time(serving_rt):
    from mlops.serving.prediction_log import PredictionLog

    writer = PredictionLog(serving_rt.store, batch=2, flush_seconds=60, max_pending=100)
    writer.start()
    try:
        for i in range(6):
            writer.add({**LOG_RECORD, "request_id": f"b{i}"})
        # A full batch wakes the writer long before its 60 s interval; it drains the rest.
        wait_until(lambda: writer.written >= 4, timeout=10)
    finally:
        writer.close()
    assert writer.written == 6 and writer.pending == 0
    with serving_rt.store.connect() as conn:
        ids = conn.execute(select(prediction_log.c.request_id)).scalars().all()
    assert sorted(ids) == [f"b{i}" for i in range(6)]


def test_prediction_log_writes_every_row_of_any_batch_exactly(serving_rt):
    from mlops.serving.prediction_log import PredictionLog

    # 1,301 rows: statements of 512, 512, 256, 16, 4 and 1 row; times repeat and vary, some
    # values are missing (NULL) or left out (arm), so memoised processing must keep them apart.
    writer = PredictionLog(serving_rt.store, batch=5000, flush_seconds=60, max_pending=5000)
    expected = []
    for i in range(1301):
        row = {
            **LOG_RECORD,
            "request_id": f"x{i}",
            "logged_at": NOW + timedelta(seconds=i // 7),
            "features_computed_at": None if i % 5 == 0 else NOW - timedelta(hours=i % 3),
            "prediction": i / 8,
            "reason": "features_stale" if i % 2 else None,
        }
        if i % 11 == 0:
            row["arm"] = "control"
        writer.add(row)
        at, features_at = row["logged_at"], row["features_computed_at"]
        expected.append((f"x{i}", at, features_at, i / 8, row["reason"], row.get("arm")))
    assert writer.flush() == 1301
    p = prediction_log
    with serving_rt.store.connect() as conn:
        got = conn.execute(
            select(
                p.c.request_id,
                p.c.logged_at,
                p.c.features_computed_at,
                p.c.prediction,
                p.c.reason,
                p.c.arm,
            ).order_by(p.c.prediction_id)
        ).all()
    assert [tuple(r) for r in got] == expected


def test_readiness_and_metrics(service, serving_rt):
    ready = service.readiness()
    assert ready == {
        "ready": True,
        "database": "ok",
        "mode": "models",
        "champions": {"churn": 1, "upsell": 1, "eta": 1, "ticket": 1},
        "problems": {},
        "redis": "off",
        "prediction_log": {"state": "ok", "pending": 0, "dropped": 0},
        "degraded": [],
    }
    service.extension.eta(a_zone(serving_rt), 3.0)
    service.set_flag("eta", False, reason="t", actor="t")
    service.extension.eta(a_zone(serving_rt), 3.0)
    text = service.metrics.render()[0].decode()
    assert 'mlops_answers_total{endpoint="eta",job="eta",reason="",source="model"} 1.0' in text
    assert (
        'mlops_answers_total{endpoint="eta",job="eta",reason="flag_off",source="heuristic"} 1.0'
        in text
    )
    assert 'mlops_model_version{job="churn"} 1.0' in text
    assert 'mlops_feature_age_seconds{job="eta"} 0.0' in text


def test_service_is_usable_without_starting_http(serving_rt):
    svc = Service(serving_rt)
    svc.start(poll=False)
    try:
        values = np.array(
            [svc.extension.eta(a_zone(serving_rt), d).sla_minutes for d in (1.0, 2.0, 4.0)]
        )
        assert np.all(np.diff(values) > 0)  # further is longer
    finally:
        svc.close()


def test_scores_are_memoised_exactly_by_version_and_feature_values(serving_rt):
    import json

    from sqlalchemy import update

    svc = make_service(serving_rt, feature_cache_seconds=0)
    try:
        customer = a_customer(serving_rt)
        first = svc.extension.dossier(customer)
        svc.champions.get("churn").model.booster = BrokenBooster()  # a call would now fail
        # The memo answered, not the model.
        assert svc.extension.dossier(customer).churn == first.churn
        fv = feature_values
        with serving_rt.store.begin() as conn:
            packed = conn.execute(
                select(fv.c.values_json).where(fv.c.job == "churn", fv.c.entity_id == customer)
            ).scalar_one()
            values = json.loads(packed)
            values["orders_30d"] = (values["orders_30d"] or 0) + 5
            conn.execute(
                update(fv)
                .where(fv.c.job == "churn", fv.c.entity_id == customer)
                .values(values_json=json.dumps(values))
            )
        # New values: the model is called.
        assert svc.extension.dossier(customer).churn.reason == "model_error"
    finally:
        svc.close()


def test_inline_isolation_catches_an_overrun_when_it_ends(serving_rt):
    import asyncio

    svc = make_service(
        # A 200 ms budget: the first, cold answer must be the model's even on a loaded runner.
        serving_rt,
        model_isolation="inline",
        slo_ms={"eta": 100.0},
        circuit_overruns=1,
    )
    try:
        request = {
            "zone": a_zone(serving_rt),
            "distance_km": 3.0,
            "item_count": 1,
            "dispatched_at": None,
            "delivery_id": None,
        }
        fast = asyncio.run(svc.answer_async("eta", **request))
        assert fast.source == "model"
        model = svc.champions.get("eta").model
        model.booster = SlowBooster(model.booster, 0.4)
        began = time.perf_counter()
        slow = asyncio.run(svc.answer_async("eta", **request))
        assert time.perf_counter() - began >= 0.4  # inline: not cut off, caught at the end
        assert slow.reason == "slo_exceeded" and slow.recommended_minutes == slow.sla_minutes
        assert asyncio.run(svc.answer_async("eta", **request)).reason == "circuit_open"
    finally:
        svc.close()


def test_kill_switch_answers_at_once_while_model_paths_are_jammed(serving_rt):
    import threading

    svc = make_service(serving_rt, model_threads=1, slo_ms={"eta": 500.0})
    try:
        zone = a_zone(serving_rt)
        model = svc.champions.get("eta").model
        model.booster = SlowBooster(model.booster, 2.0)
        jam = threading.Thread(target=lambda: svc.extension.eta(zone, 3.0))
        jam.start()
        time.sleep(0.1)  # the only model thread is busy for 2 s now
        svc.set_flag("eta", False, reason="incident", actor="oncall")
        began = time.perf_counter()
        answer = svc.extension.eta(zone, 3.0)
        assert answer.reason == "flag_off"
        assert time.perf_counter() - began < 0.5  # not queued behind the jam (budget: 1 s)
        jam.join()
    finally:
        svc.close()
