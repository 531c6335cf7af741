"""Fixtures for the serving tests: champions trained once per session (SQLite, MLflow under a
temporary home), and per test a store and warehouse on the backend under test whose features
are fresh at NOW, read by a Service that uses those champions."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from mlops.clock import FrozenClock
from mlops.runtime import Runtime
from tests.conftest import NOW, seed_and_refresh


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory):
    """A home whose MLflow registry has a champion for churn, upsell and ETA (trained on a
    small synthetic warehouse; ~30 s once per session)."""
    from mlops import quickstart
    from mlops.settings import Settings

    home = tmp_path_factory.mktemp("trained") / "home"
    rt = Runtime(settings=Settings(home=home), clock=FrozenClock(NOW))
    # No replayed traffic: the serving tests log their own answers (tests/test_serving_replay.py
    # replays over a copy of this home).
    result = quickstart.run(rt, size=1500, days=100, seed=3, replay=0)
    rt.close()
    assert all(report.promoted for report in result.training), [
        report.promotion for report in result.training
    ]
    # Unchanged data against the new champions' references: no drift.
    assert [r.status for r in result.monitoring.drift] == ["ok"] * len(result.training), [
        [(f.feature, f.status) for f in r.features if f.status != "ok"]
        for r in result.monitoring.drift
    ]
    return home


def mlflow_copy(trained_home, dest) -> str:
    """A private copy of the registry (artifacts stay shared, read-only): for tests that move
    aliases."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained_home / "mlflow.db", dest / "mlflow.db")
    return f"sqlite:///{dest / 'mlflow.db'}"


@pytest.fixture
def serving_rt(settings, clock, trained_home, templates, request):
    """A runtime on the backend under test: migrated store, synced specs, a small warehouse,
    every job refreshed at NOW (``seed_and_refresh`` run once per session, its content copied
    here), and the session's champions in the registry."""
    from mlops.db import migrate

    settings = settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{trained_home / 'mlflow.db'}",
            # A loaded 2-core CI runner can take over the default 100 ms model budget on a
            # cold path; tests that assert a model answer must not depend on machine speed.
            # Tests of overruns set their own short SLO.
            "slo_ms": {"dossier": 2000.0, "compose": 2000.0, "eta": 2000.0},
        }
    )
    rt = Runtime(settings=settings, clock=clock)
    if rt.store.dialect.name != "sqlite":
        # PostgreSQL copies rows into the test's schema, which must be migrated first; on
        # SQLite the template's files (migrated by Alembic) replace the test's whole.
        migrate.upgrade(rt.store)
    templates(request, seed_and_refresh).copy_into(rt)
    yield rt
    rt.close()


def make_service(rt, **overrides):
    """A started Service (no background polling: tests poll by hand) over ``rt`` with some
    settings replaced."""
    from mlops.serving.service import Service

    if overrides:
        rt = Runtime(settings=rt.settings.model_copy(update=overrides), clock=rt.clock)
    service = Service(rt)
    service.start(poll=False)
    return service


@pytest.fixture
def service(serving_rt):
    svc = make_service(serving_rt)
    yield svc
    svc.close()


def an_entity(rt, job: str) -> str:
    """The first entity (by id) with stored features of ``job``."""
    from sqlalchemy import select

    from mlops.db.schema import feature_values as fv

    with rt.store.connect() as conn:
        return conn.execute(
            select(fv.c.entity_id).where(fv.c.job == job).order_by(fv.c.entity_id).limit(1)
        ).scalar_one()


def a_customer(rt) -> str:
    """A customer that has stored churn and upsell features."""
    return an_entity(rt, "upsell")


def a_zone(rt) -> str:
    """A zone that has stored ETA features."""
    return an_entity(rt, "eta")


class SlowBooster:
    """Stands in for LightGBM's booster (not ours) with a delay before each prediction."""

    def __init__(self, booster, seconds: float) -> None:
        self.booster, self.seconds = booster, seconds

    def predict(self, *args, **kwargs):
        time.sleep(self.seconds)
        return self.booster.predict(*args, **kwargs)


class BrokenBooster:
    """Stands in for a booster whose prediction raises."""

    def predict(self, *args, **kwargs):
        raise RuntimeError("booster exploded")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A real uvicorn server for an app, in a thread of the test process (so tests can reach
    the app's service and clock)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
