from datetime import timedelta

import pytest

from mlops.store import ingest
from mlops.store.online import get_online_features
from tests.conftest import NOW
from tests.repo_support import JOBS


@pytest.fixture
def ingested(seeded):
    ingest.refresh(seeded, "eta")
    ingest.refresh(seeded, "churn")
    return seeded


def _zones(rt):
    from sqlalchemy import text

    with rt.warehouse.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT DISTINCT zone FROM deliveries"))]


def test_fresh_values_with_computed_at(ingested):
    zone = _zones(ingested)[0]
    got = get_online_features(ingested.store, ingested.clock, JOBS["eta"], [zone])[zone]
    assert got.status == "fresh" and got.computed_at == NOW and got.age_seconds == 0
    assert set(got.features) == set(JOBS["eta"].feature_names)
    assert all(f.status == "fresh" and f.computed_at == NOW for f in got.features.values())
    assert isinstance(got.values()["deliveries_1h"], int)


def test_past_ttl_is_marked_stale_never_fresh(ingested):
    zone = _zones(ingested)[0]
    ingested.clock.advance(timedelta(minutes=15))
    assert (
        get_online_features(ingested.store, ingested.clock, JOBS["eta"], [zone])[zone].status
        == "fresh"
    )
    ingested.clock.advance(timedelta(seconds=1))
    got = get_online_features(ingested.store, ingested.clock, JOBS["eta"], [zone])[zone]
    assert got.status == "stale"
    assert all(not f.usable for f in got.features.values())
    # churn has a 36 h TTL, so it is still fresh at the same moment
    churn = get_online_features(
        ingested.store, ingested.clock, JOBS["churn"], [_customer(ingested)]
    )
    assert [c.status for c in churn.values()] == ["fresh"]


def _customer(rt):
    from sqlalchemy import text

    with rt.store.connect() as conn:
        return conn.execute(
            text("SELECT entity_id FROM ml_feature_values WHERE job = 'churn' LIMIT 1")
        ).scalar()


def test_unknown_entity_is_missing_and_many_at_once(ingested):
    zones = _zones(ingested)
    got = get_online_features(ingested.store, ingested.clock, JOBS["eta"], [*zones, "nowhere"])
    assert got["nowhere"].status == "missing" and got["nowhere"].computed_at is None
    assert all(got[z].status == "fresh" for z in zones)
    assert list(got) == [*zones, "nowhere"]
    assert get_online_features(ingested.store, ingested.clock, JOBS["eta"], []) == {}


def test_online_store_matches_and_survives_a_dropped_connection(ingested, backend):
    from sqlalchemy import text

    from mlops.store.online import OnlineStore

    zones = _zones(ingested)
    store = OnlineStore(ingested.store, ingested.clock)
    expected = get_online_features(ingested.store, ingested.clock, JOBS["eta"], zones)
    assert store.get(JOBS["eta"], zones) == expected
    conn = store._conns._connection()
    if backend == "postgres":
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with ingested.store.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    else:
        conn.connection.driver_connection.close()
    assert store.get(JOBS["eta"], zones[:1]) == {zones[0]: expected[zones[0]]}
    store.close()


def test_connections_of_ended_threads_go_back_to_the_pool(tmp_path):
    """Server thread pools retire idle threads: their connections must not leak."""
    import threading

    from sqlalchemy import text

    from mlops.db.connections import ThreadConnections
    from mlops.db.engine import make_engine

    engine = make_engine(
        f"sqlite:///{tmp_path / 'x.db'}", pool_size=1, max_overflow=0, pool_timeout=2
    )
    conns = ThreadConnections(engine)
    results = []
    for _ in range(3):  # with a leak, the second thread would wait for the only connection
        thread = threading.Thread(target=lambda: results.append(conns.all(text("SELECT 1"))))
        thread.start()
        thread.join()
    assert [r[0][0] for r in results] == [1, 1, 1]
    conns.close()
    engine.dispose()


def test_prepared_reads_equal_sqlalchemy_reads(ingested):
    """The driver-level path returns exactly what SQLAlchemy's own execution returns, types
    included (timestamps, numerics), on both databases."""
    from datetime import timedelta

    from mlops.db.connections import ThreadConnections
    from mlops.examples.marketplace.profiles import _PROFILE
    from mlops.store.online import _ONE

    now = ingested.clock.now()
    cases = [
        (ingested.store, _ONE, {"job": "eta", "entity_id": _zones(ingested)[0]}),
        (
            ingested.warehouse,
            _PROFILE,
            {
                "customer_id": "C0000007",
                "now": now,
                "since_30d": now - timedelta(days=30),
                "since_90d": now - timedelta(days=90),
            },
        ),
    ]
    for engine, statement, params in cases:
        conns = ThreadConnections(engine)
        fast = conns.all(statement, params)
        with engine.connect() as conn:
            slow = conn.execute(statement, params).all()
        assert len(fast) == 1
        assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
        assert [type(v) for v in fast[0]] == [type(v) for v in slow[0]]
        assert fast[0]._fields == tuple(slow[0]._fields)
        conns.close()
