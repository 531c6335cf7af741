"""Feature caching: the short in-process cache, Redis shared between replicas (when
MLOPS_TEST_REDIS_URL is set), and Redis down degrading to direct reads."""

import os
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import delete

from mlops.db.schema import feature_values
from tests.serving_support import a_zone, free_port, make_service

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
        assert svc.eta(zone, 3.0).source == "model"
        _delete_row(serving_rt, zone)
        assert svc.eta(zone, 3.0).source == "model"  # cached
        clock.advance(timedelta(seconds=2))
        assert svc.eta(zone, 3.0).reason == "features_missing"  # expired, read again
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_redis_is_shared_between_replicas_and_cleared(serving_rt, redis_url):
    settings = {"redis_url": SecretStr(redis_url), "feature_cache_seconds": 0}
    first, second = make_service(serving_rt, **settings), make_service(serving_rt, **settings)
    try:
        first.clear_cache()
        zone = a_zone(serving_rt)
        assert first.eta(zone, 3.0).source == "model"  # read from the store, put in Redis
        assert first.cache.redis_state == "up"
        _delete_row(serving_rt, zone)
        answer = second.eta(zone, 3.0)  # another replica finds it in Redis
        assert answer.source == "model" and answer.computed_at == serving_rt.clock.now()
        assert second.clear_cache() >= 1  # the admin clear reaches Redis
        assert first.eta(zone, 3.0).reason == "features_missing"
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
        answer = svc.eta(zone, 3.0)
        assert answer.source == "model"
        assert svc.cache.redis_state == "down" and svc.readiness()["redis"] == "down"
        assert svc.clear_cache() == 0
        assert svc.eta(zone, 3.0).source == "model"
    finally:
        svc.close()
