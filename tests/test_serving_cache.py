"""What serving keeps in memory: feature rows (in the process, and in Redis shared between
replicas when MLOPS_TEST_REDIS_URL is set; Redis down degrades to direct reads), dropped when a
refresh writes new values; profiles for their lifetime; and answers computed from memory with
no read, no model call and no thread hop."""

import logging
import os
from datetime import timedelta

import numpy as np
import pytest
from pydantic import SecretStr
from sqlalchemy import delete, text

from mlops.db.schema import feature_values
from mlops.examples.marketplace import warehouse as wh
from mlops.serving.endpoints import Unavailable
from mlops.store import ingest
from mlops.training import models, split_keys
from tests.conftest import NOW
from tests.serving_support import (
    BrokenBooster,
    a_customer,
    a_zone,
    free_port,
    make_service,
    wait_until,
)

REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL")


@pytest.fixture
def redis_url():
    if not REDIS_URL:
        pytest.skip("Redis tests need MLOPS_TEST_REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:  # configured but down must fail, not skip
        pytest.fail(f"MLOPS_TEST_REDIS_URL={REDIS_URL} is unreachable: {exc}")
    return REDIS_URL


def _delete_row(rt, entity_id):
    with rt.store.begin() as conn:
        conn.execute(delete(feature_values).where(feature_values.c.entity_id == entity_id))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_in_process_cache_expires_with_the_clock(serving_rt, clock):
    svc = make_service(serving_rt, feature_cache_seconds=2)
    try:
        zone = a_zone(serving_rt)
        assert svc.extension.eta(zone, 3.0).source == "model"
        _delete_row(serving_rt, zone)
        assert svc.extension.eta(zone, 3.0).source == "model"  # cached
        clock.advance(timedelta(seconds=2))
        assert svc.extension.eta(zone, 3.0).reason == "features_missing"  # expired, read again
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_redis_is_shared_between_replicas_and_cleared(serving_rt, redis_url):
    settings = {"redis_url": SecretStr(redis_url), "feature_cache_seconds": 0}
    first, second = make_service(serving_rt, **settings), make_service(serving_rt, **settings)
    try:
        first.clear_cache()
        zone = a_zone(serving_rt)
        assert first.extension.eta(zone, 3.0).source == "model"  # read from the store, put in Redis
        assert first.cache.redis_state == "up"
        _delete_row(serving_rt, zone)
        answer = second.extension.eta(zone, 3.0)  # another replica finds it in Redis
        assert answer.source == "model" and answer.computed_at == serving_rt.clock.now()
        assert second.clear_cache() >= 1  # the admin clear reaches Redis
        assert first.extension.eta(zone, 3.0).reason == "features_missing"
    finally:
        first.clear_cache()
        first.close()
        second.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_redis_down_means_direct_reads_not_errors(serving_rt):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    svc = make_service(serving_rt, redis_url=SecretStr(dead), feature_cache_seconds=0)
    try:
        zone = a_zone(serving_rt)
        answer = svc.extension.eta(zone, 3.0)
        assert answer.source == "model"
        assert svc.cache.redis_state == "down" and svc.readiness()["redis"] == "down"
        assert svc.clear_cache() == 0
        assert svc.extension.eta(zone, 3.0).source == "model"
    finally:
        svc.close()


def _from_memory(svc, endpoint):
    value = svc.metrics.registry.get_sample_value(
        "mlops_answers_from_memory_total", {"endpoint": endpoint}
    )
    return value or 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_answer_whose_inputs_are_all_held_is_computed_from_memory(serving_rt):
    svc = make_service(serving_rt)
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        # Reads the warehouse and the store, calls the models.
        first = svc.extension.dossier(customer)
        assert _from_memory(svc, "dossier") == 0
        # From here on a model call or a hop to the pool would fail: neither happens.
        for job in ("churn", "upsell"):
            svc.champions.get(job).model.booster = BrokenBooster()
        svc.paths.close()
        again = svc.extension.dossier(customer)
        assert _from_memory(svc, "dossier") == 1
        assert again == first  # the same answer, provenance included
        assert again.churn.source == again.upsell.source == "model"
        # The dossier's upsell scores serve it too.
        ranked = svc.extension.compose(customer, limit=2)
        assert ranked.source == "model" and _from_memory(svc, "compose") == 1
    finally:
        svc.close()
    svc = make_service(serving_rt)
    try:
        model = svc.champions.get("eta").model
        column = model.feature_columns.index("distance_km")
        cuts = split_keys.split_points(model)[column]
        low, high = float(cuts[len(cuts) // 2]), float(cuts[len(cuts) // 2 + 1])
        inside = [np.nextafter(low, np.inf), (low + high) / 2, high]  # one interval of the trees
        first = svc.extension.eta(zone, inside[0], dispatched_at=NOW)
        assert first.source == "model" and _from_memory(svc, "eta") == 0
        for distance in inside[1:]:  # answered from memory, and exactly what the model says
            answer = svc.extension.eta(zone, distance, dispatched_at=NOW)
            assert answer.model_minutes == first.model_minutes
            x = models.encode_row(
                model,
                {
                    **svc.fresh_features("eta", zone).values(),
                    "zone": zone,
                    "distance_km": distance,
                    "item_count": 1,
                    "hour": NOW.hour,
                    "weekday": NOW.weekday(),
                },
            )[0]
            assert round(models.predict_one(model, x), 2) == answer.model_minutes
        assert _from_memory(svc, "eta") == 2
        svc.extension.eta(zone, low, dispatched_at=NOW)  # on the threshold: the next interval down
        assert _from_memory(svc, "eta") == 2
        svc.set_flag("eta", False, reason="test", actor="test")
        assert svc.extension.eta(zone, 3.0).reason == "flag_off"
        assert _from_memory(svc, "eta") == 3  # rules need nothing read
    finally:
        svc.close()


def _add_order(rt, customer, order_id, at):
    with rt.warehouse.begin() as conn:
        conn.execute(
            wh.orders.insert().values(
                order_id=order_id,
                customer_id=customer,
                placed_at=at,
                status="completed",
                item_count=1,
                total_amount=10,
            )
        )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_profiles_are_kept_for_their_lifetime_then_read_again(serving_rt, clock):
    svc = make_service(serving_rt, profile_cache_seconds=300, feature_cache_seconds=3600)
    try:
        customer = a_customer(serving_rt)
        read = svc.extension.dossier(customer).profile
        orders = read.orders_90d
        _add_order(serving_rt, customer, "O-CACHE-1", clock.now() - timedelta(days=1))
        assert svc.extension.dossier(customer).profile.orders_90d == orders  # held
        clock.advance(timedelta(seconds=400))
        # Past its lifetime, within twice it: the held profile answers, its ages counted to
        # now, while it is read again in the background.
        held = svc.extension.dossier(customer).profile
        assert held.orders_90d == orders
        assert held.tenure_days == pytest.approx(read.tenure_days + 400 / 86400, abs=1e-3)
        wait_until(
            lambda: svc.extension.dossier(customer).profile.orders_90d == orders + 1, timeout=10
        )
        # Unrequested for twice its lifetime: the request reads it.
        _add_order(serving_rt, customer, "O-CACHE-2", clock.now() - timedelta(days=1))
        clock.advance(timedelta(seconds=600))
        assert svc.extension.dossier(customer).profile.orders_90d == orders + 2
        _add_order(serving_rt, customer, "O-CACHE-3", clock.now() - timedelta(days=1))
        svc.clear_cache()
        assert svc.extension.dossier(customer).profile.orders_90d == orders + 3
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failed_background_read_keeps_the_held_profile(serving_rt, clock, caplog):
    caplog.set_level(logging.WARNING)
    svc = make_service(serving_rt, profile_cache_seconds=30)
    try:
        customer = a_customer(serving_rt)
        first = svc.extension.dossier(customer).profile
        clock.advance(timedelta(seconds=40))
        with serving_rt.warehouse.begin() as conn:  # the profile query now fails
            conn.execute(text("ALTER TABLE orders RENAME TO orders_moved"))
        assert svc.extension.dossier(customer).profile.last_order_at == first.last_order_at
        wait_until(lambda: "profile re-read failed" in caplog.text, timeout=10)
        assert svc.extension.dossier(customer).profile.last_order_at == first.last_order_at
        clock.advance(timedelta(seconds=30))  # past the grace: the request reads, and fails
        with pytest.raises(Unavailable):
            svc.extension.dossier(customer)
    finally:
        svc.close()
        with serving_rt.warehouse.begin() as conn:
            conn.execute(text("ALTER TABLE orders_moved RENAME TO orders"))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_refresh_replaces_cached_features_at_the_next_control_poll(serving_rt, clock):
    svc = make_service(serving_rt, feature_cache_seconds=7200)
    try:
        zone = a_zone(serving_rt)
        before = svc.extension.eta(zone, 3.0).computed_at
        clock.advance(timedelta(hours=1))
        ingest.refresh(serving_rt, "eta")
        assert svc.extension.eta(zone, 3.0).computed_at == before  # held until the replica polls
        svc.refresh_controls()
        assert svc.extension.eta(zone, 3.0).computed_at == clock.now()
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_row_read_across_a_refresh_is_not_kept(serving_rt, clock):
    svc = make_service(serving_rt, feature_cache_seconds=3600)
    try:
        zone = a_zone(serving_rt)
        real_rows = svc.online.rows
        reads = []

        def rows_then_refresh_seen(spec, ids):
            found = real_rows(spec, ids)  # the old values...
            if not reads:  # ...and meanwhile the poller sees a refresh
                svc.cache.set_versions({**svc.controls.feature_versions, "eta": -1})
            reads.append(ids)
            return found

        svc.online.rows = rows_then_refresh_seen
        svc.extension.eta(zone, 3.0)
        svc.extension.eta(zone, 3.0)
        assert len(reads) == 2  # the first row was not kept: read again
        svc.extension.eta(zone, 3.0)
        assert len(reads) == 2  # the second was
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_redis_rows_of_an_older_refresh_are_never_served(serving_rt, redis_url, clock):
    settings = {"redis_url": SecretStr(redis_url), "feature_cache_seconds": 0}
    first, second = make_service(serving_rt, **settings), make_service(serving_rt, **settings)
    try:
        first.clear_cache()
        zone = a_zone(serving_rt)
        before = first.extension.eta(zone, 3.0).computed_at  # now in Redis
        clock.advance(timedelta(hours=1))
        ingest.refresh(serving_rt, "eta")
        second.refresh_controls()  # the other replica has seen the refresh
        assert second.extension.eta(zone, 3.0).computed_at == clock.now() != before
    finally:
        first.clear_cache()
        first.close()
        second.close()
