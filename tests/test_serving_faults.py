"""Faults during serving, each made to happen for real: the store's PostgreSQL cut and back
(a TCP proxy in between), Redis killed and restarted, the MLflow store unreadable, a corrupt
model artifact, a model that hangs. Every endpoint keeps answering (by rule, saying why),
readiness names what is degraded, and the service recovers by itself when the dependency
returns."""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tests.fault_support import HangingBooster, RedisServer, TcpProxy
from tests.repo_support import JOBS
from tests.serving_support import a_customer, a_zone, make_service, mlflow_copy, wait_until

ENDPOINTS = ("dossier.churn", "dossier.upsell", "compose", "eta")


def provenance(svc, customer: str, zone: str) -> dict[str, tuple[str, str | None]]:
    """(source, reason) of every ML-backed answer of the three endpoints."""
    dossier = svc.extension.dossier(customer)
    compose = svc.extension.compose(customer, limit=2)
    eta = svc.extension.eta(zone, 3.0, 2)
    assert compose.offers and eta.recommended_minutes > 0  # answered, not just labelled
    return {
        "dossier.churn": (dossier.churn.source, dossier.churn.reason),
        "dossier.upsell": (dossier.upsell.source, dossier.upsell.reason),
        "compose": (compose.source, compose.reason),
        "eta": (eta.source, eta.reason),
    }


def everywhere(source: str, reason: str | None) -> dict[str, tuple[str, str | None]]:
    return dict.fromkeys(ENDPOINTS, (source, reason))


MODEL = everywhere("model", None)


# --- (a) the store's PostgreSQL ------------------------------------------------------------


def _proxied(url: str, proxy: TcpProxy, password: str) -> str:
    parsed = make_url(url)
    # A password the trust-authenticated test server ignores: readiness must never show it.
    return parsed.set(host="127.0.0.1", port=proxy.port, password=password).render_as_string(
        hide_password=False
    )


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_store_postgres_cut_mid_service_and_back(serving_rt, clock, caplog):
    """SQLite is opened in-process (a file, no server to lose mid-service): the store
    unreadable from the start on SQLite is test_heuristic_path_with_the_store_database_down."""
    direct = serving_rt.settings.store_url
    parsed = make_url(direct)
    with TcpProxy(parsed.host, parsed.port or 5432) as proxy:
        svc = make_service(
            serving_rt,
            database_url=_proxied(direct, proxy, "hunter2"),
            warehouse_url=direct,  # the warehouse is another server here; only the store goes
            feature_cache_seconds=0,
            circuit_overruns=2,
            circuit_cooldown_seconds=30,
        )
        try:
            customer, zone = a_customer(serving_rt), a_zone(serving_rt)
            assert provenance(svc, customer, zone) == MODEL
            assert svc.readiness()["degraded"] == []

            proxy.cut()
            assert provenance(svc, customer, zone) == everywhere(
                "heuristic", "features_unavailable"
            )
            # The second failure of each job opens its circuit (compose's upsell was its second).
            assert provenance(svc, customer, zone) == {
                "dossier.churn": ("heuristic", "features_unavailable"),
                "dossier.upsell": ("heuristic", "circuit_open"),
                "compose": ("heuristic", "circuit_open"),
                "eta": ("heuristic", "features_unavailable"),
            }
            assert provenance(svc, customer, zone) == everywhere("heuristic", "circuit_open")
            svc.refresh_controls()  # the flags poll fails too: the last flags stay in force
            ready = svc.readiness()
            assert not ready["ready"] and ready["database"] == "unreachable: OperationalError"
            assert "store" in ready["problems"]
            degraded = "\n".join(ready["degraded"])
            assert "database unreachable" in degraded
            assert "churn: circuit open" in degraded and "eta: circuit open" in degraded
            assert "hunter2" not in json.dumps(ready) and "hunter2" not in caplog.text

            proxy.restore()
            ready = svc.readiness()
            assert ready["ready"] and ready["database"] == "ok"
            svc.refresh_controls()
            assert "store" not in svc.readiness()["problems"]
            # Open circuits hold until their cool-down; then the models answer again.
            assert provenance(svc, customer, zone) == everywhere("heuristic", "circuit_open")
            clock.advance(timedelta(seconds=31))
            assert provenance(svc, customer, zone) == MODEL
            assert svc.readiness()["degraded"] == []
        finally:
            svc.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_store_postgres_cut_over_http(serving_rt, clock):
    """The same outage seen by a client: 200s by rule, /readyz 503 with the reasons."""
    from fastapi.testclient import TestClient

    from mlops.runtime import Runtime
    from mlops.serving.app import create_app

    direct = serving_rt.settings.store_url
    parsed = make_url(direct)
    with TcpProxy(parsed.host, parsed.port or 5432) as proxy:
        settings = serving_rt.settings.model_copy(
            update={
                "database_url": _proxied(direct, proxy, "hunter2"),
                "warehouse_url": direct,
                "feature_cache_seconds": 0,
                "log_requests": False,
            }
        )
        app = create_app(Runtime(settings=settings, clock=clock), poll=False)
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        with TestClient(app) as client:
            eta = {"zone": zone, "distance_km": 3.0}
            assert client.post("/v1/deliveries/eta", json=eta).json()["source"] == "model"
            assert client.get("/readyz").status_code == 200
            proxy.cut()
            r = client.get(f"/v1/customers/{customer}/dossier")
            assert r.status_code == 200, r.text
            assert r.json()["churn"]["reason"] == "features_unavailable"
            r = client.post("/v1/orders/compose", json={"customer_id": customer, "limit": 2})
            assert r.status_code == 200 and r.json()["reason"] == "features_unavailable"
            r = client.post("/v1/deliveries/eta", json=eta)
            assert r.status_code == 200 and r.json()["reason"] == "features_unavailable"
            assert client.get("/metrics").status_code == 200
            r = client.get("/readyz")
            assert r.status_code == 503 and "database unreachable" in "".join(r.json()["degraded"])
            assert "hunter2" not in r.text
            proxy.restore()
            assert client.get("/readyz").status_code == 200
            assert client.post("/v1/deliveries/eta", json=eta).json()["source"] == "model"


# --- (b) Redis ------------------------------------------------------------------------------


@pytest.fixture
def own_redis():
    server = RedisServer()
    if server.binary is None:
        pytest.skip("redis-server is not installed")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_redis_killed_and_restarted(serving_rt, clock, own_redis):
    import redis

    from mlops.serving.feature_cache import REDIS_RETRY_SECONDS

    svc = make_service(serving_rt, redis_url=SecretStr(own_redis.url), feature_cache_seconds=0)
    probe = redis.Redis.from_url(own_redis.url)
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        assert provenance(svc, customer, zone) == MODEL
        assert probe.dbsize() > 0 and svc.readiness()["redis"] == "up"

        own_redis.stop()
        # Redis is a cache: without it the store is read directly and the models still answer.
        assert provenance(svc, customer, zone) == MODEL
        ready = svc.readiness()
        assert ready["ready"] and ready["redis"] == "down"
        assert any(d.startswith("redis down") for d in ready["degraded"]), ready["degraded"]

        own_redis.start()  # empty: no persistence
        clock.advance(timedelta(seconds=REDIS_RETRY_SECONDS + 1))
        assert provenance(svc, customer, zone) == MODEL
        assert svc.readiness()["redis"] == "up" and svc.readiness()["degraded"] == []
        assert probe.dbsize() > 0  # the cache is written again: recovered, not bypassed
    finally:
        probe.close()
        svc.close()


# --- (c) the MLflow store -------------------------------------------------------------------


def _registry(trained_home, tmp_path) -> tuple[str, Path, bytes]:
    uri = mlflow_copy(trained_home, tmp_path / "registry")
    path = tmp_path / "registry" / "mlflow.db"
    return uri, path, path.read_bytes()


def _garble(path: Path) -> None:
    # In place (same inode), as a bad disk or a half-copied restore would leave it.
    with path.open("r+b") as f:
        f.write(b"this is not an SQLite database\0" * 512)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_registry_unreadable_at_start_then_readable(serving_rt, trained_home, tmp_path):
    uri, path, good = _registry(trained_home, tmp_path)
    _garble(path)
    svc = make_service(serving_rt, mlflow_tracking_uri=uri)
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        assert provenance(svc, customer, zone) == everywhere("heuristic", "no_champion")
        ready = svc.readiness()
        assert ready["ready"] and ready["mode"] == "heuristics only"
        assert all(
            ready["problems"][job].startswith("registry unreadable") for job in ready["champions"]
        )
        assert any(d.startswith("eta: registry unreadable") for d in ready["degraded"])

        path.write_bytes(good)
        assert len(svc.reload_models()) == len(JOBS)  # the next poll loads every champion
        assert provenance(svc, customer, zone) == MODEL
        assert svc.readiness()["problems"] == {} and svc.readiness()["degraded"] == []
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fault", ["garbled", "removed"])
def test_registry_unreadable_during_a_poll_keeps_the_champions(
    serving_rt, trained_home, tmp_path, fault
):
    uri, path, good = _registry(trained_home, tmp_path)
    svc = make_service(serving_rt, mlflow_tracking_uri=uri)
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        assert provenance(svc, customer, zone) == MODEL
        if fault == "garbled":
            _garble(path)
        else:
            path.unlink()
        assert svc.reload_models() == []  # nothing unloaded
        assert provenance(svc, customer, zone) == MODEL
        ready = svc.readiness()
        assert ready["ready"] and ready["champions"] == dict.fromkeys(JOBS, 1)
        assert ready["problems"]["eta"].startswith("registry unreadable")
        assert any(
            d.startswith("eta: registry unreadable") and "serving v1" in d
            for d in ready["degraded"]
        ), ready["degraded"]

        path.write_bytes(good)
        assert svc.reload_models() == []
        assert svc.readiness()["problems"] == {} and svc.readiness()["degraded"] == []
    finally:
        svc.close()


# --- (d) a corrupt model artifact -----------------------------------------------------------


def _corrupt_version(settings, job: str, tmp_path: Path, how: str) -> int:
    """Register a new version of ``job`` whose files are a copy of the champion's, corrupted
    (the shared artifacts are left alone), and make it the champion."""
    from mlops.training import tracking_artifacts, tracking_client, tracking_versions

    client = tracking_client.client(settings, write=True)
    source = tracking_artifacts.download_model(
        settings, job, tracking_versions.CHAMPION
    ).parent.parent
    copy = tmp_path / f"{job}-corrupt"
    shutil.copytree(source, copy)
    booster = copy / "artifacts" / "model" / "model.txt"
    text = booster.read_bytes()
    if how == "truncated":
        booster.write_bytes(text[: len(text) // 3])
    else:
        flipped = bytearray(text)
        middle = len(flipped) // 2
        flipped[middle : middle + 64] = b"#" * 64
        booster.write_bytes(bytes(flipped))
    run_id = client.get_model_version(job, "1").run_id
    version = int(client.create_model_version(job, copy.as_uri(), run_id=run_id).version)
    tracking_versions.set_alias(settings, job, tracking_versions.CHAMPION, version)
    return version


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_corrupt_artifact_at_start_and_a_good_one_repromoted(
    serving_rt, trained_home, tmp_path, how
):
    from mlops.training import tracking_versions

    uri = mlflow_copy(trained_home, tmp_path / "registry")
    settings = serving_rt.settings.model_copy(update={"mlflow_tracking_uri": uri})
    bad = _corrupt_version(settings, "eta", tmp_path, how)
    svc = make_service(serving_rt, mlflow_tracking_uri=uri)
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        assert provenance(svc, customer, zone) == {
            **MODEL,
            "eta": ("heuristic", "no_champion"),
        }
        ready = svc.readiness()
        assert ready["mode"] == "mixed" and ready["champions"]["eta"] is None
        assert ready["problems"]["eta"].startswith(f"champion v{bad} cannot be loaded")
        assert "artifact corrupt" in ready["problems"]["eta"]
        assert set(ready["problems"]) == {"eta"}

        tracking_versions.set_alias(
            settings, "eta", tracking_versions.CHAMPION, 1
        )  # the good one re-promoted
        assert svc.reload_models() == ["eta: champion none -> v1"]
        assert provenance(svc, customer, zone) == MODEL
        assert svc.readiness()["problems"] == {}
    finally:
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_corrupt_artifact_promoted_mid_service_keeps_the_loaded_champion(
    serving_rt, trained_home, tmp_path
):
    uri = mlflow_copy(trained_home, tmp_path / "registry")
    settings = serving_rt.settings.model_copy(update={"mlflow_tracking_uri": uri})
    svc = make_service(serving_rt, mlflow_tracking_uri=uri)
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        bad = _corrupt_version(settings, "eta", tmp_path, "truncated")
        assert svc.reload_models() == []
        # The last champion that loaded keeps answering; readiness says the new one is broken.
        assert provenance(svc, customer, zone) == MODEL
        ready = svc.readiness()
        assert ready["champions"]["eta"] == 1
        assert "artifact corrupt" in ready["problems"]["eta"]
        assert any(
            d.startswith(f"eta: champion v{bad} cannot be loaded") and "serving v1" in d
            for d in ready["degraded"]
        ), ready["degraded"]
    finally:
        svc.close()


# --- (e) a model that hangs ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_hanging_model_is_cut_off_and_does_not_starve_the_others(serving_rt, clock):
    svc = make_service(
        serving_rt,
        model_threads=2,
        slo_ms={"dossier": 2000.0, "compose": 2000.0, "eta": 100.0},
        circuit_overruns=3,
        circuit_cooldown_seconds=30,
    )
    model = svc.champions.get("eta").model
    hang = HangingBooster(model.booster)
    model.booster = hang
    try:
        customer, zone = a_customer(serving_rt), a_zone(serving_rt)
        began = time.perf_counter()
        answer = svc.extension.eta(zone, 3.0, 2)
        assert time.perf_counter() - began < 1.0  # cut at the 200 ms budget
        assert (answer.source, answer.reason) == ("heuristic", "slo_exceeded")
        # More ETA requests than model threads: the hung path holds one thread, no more.
        for _ in range(6):
            assert svc.extension.eta(zone, 3.0, 2).reason in ("slo_exceeded", "circuit_open")
        assert hang.entered == 1
        assert svc.extension.eta(zone, 3.0, 2).reason == "circuit_open"
        # The other jobs still get their models, within their own budget.
        began = time.perf_counter()
        assert provenance(svc, customer, zone) == {**MODEL, "eta": ("heuristic", "circuit_open")}
        assert time.perf_counter() - began < 2.0
        ready = svc.readiness()
        assert any(d.startswith("eta: circuit open") for d in ready["degraded"]), ready
        assert any("stuck" in d for d in ready["degraded"]), ready["degraded"]

        # Cooled down but still hung: no second thread is thrown at it.
        clock.advance(timedelta(seconds=31))
        assert svc.extension.eta(zone, 3.0, 2).reason == "circuit_open" and hang.entered == 1

        hang.release()
        wait_until(lambda: not svc.stuck["eta"], timeout=10)
        model.booster = hang.booster
        clock.advance(timedelta(seconds=31))
        assert provenance(svc, customer, zone) == MODEL
        assert svc.readiness()["degraded"] == []
    finally:
        hang.release()
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_hanging_model_over_http(serving_rt, clock):
    """The async route: a hang is cut at the budget there too, and /readyz says so."""
    from fastapi.testclient import TestClient

    from mlops.runtime import Runtime
    from mlops.serving.app import create_app

    settings = serving_rt.settings.model_copy(
        update={
            "slo_ms": {"dossier": 2000.0, "compose": 2000.0, "eta": 100.0},
            "circuit_overruns": 1,
            "log_requests": False,
        }
    )
    app = create_app(Runtime(settings=settings, clock=clock), poll=False)
    zone = a_zone(serving_rt)
    eta = {"zone": zone, "distance_km": 3.0}
    with TestClient(app) as client:
        model = app.state.service.champions.get("eta").model
        hang = HangingBooster(model.booster)
        model.booster = hang
        try:
            r = client.post("/v1/deliveries/eta", json=eta)
            assert r.status_code == 200 and r.json()["reason"] == "slo_exceeded"
            r = client.post("/v1/deliveries/eta", json=eta)
            assert r.status_code == 200 and r.json()["reason"] == "circuit_open"
            body = client.get("/readyz").json()
            assert any(d.startswith("eta: circuit open") for d in body["degraded"]), body
        finally:
            hang.release()
        model.booster = hang.booster
        wait_until(lambda: not app.state.service.stuck["eta"], timeout=10)
        clock.advance(timedelta(seconds=61))
        assert client.post("/v1/deliveries/eta", json=eta).json()["source"] == "model"


# --- (f) the store full under the prediction log -------------------------------------------


class FullStore:
    """The store's "disk" full while ``on``: every new connection is capped at the pages the
    database has (the next page SQLite needs fails with SQLITE_FULL, as on a full disk)."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.engine, self.on = engine, False

        @event.listens_for(engine, "connect")
        def cap(dbapi_conn, _record) -> None:
            if self.on:
                pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
                dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    def fill(self) -> None:
        self.on = True
        self.engine.dispose()  # the pooled connections are uncapped

    def free(self) -> None:
        self.on = False
        self.engine.dispose()


def _log_records(caplog, start: str) -> list:
    return [r for r in caplog.records if r.getMessage().startswith(start)]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_full_store_is_logged_once_then_summarised_and_readiness_says_so(
    serving_rt, clock, caplog
):
    """The probe's store full while serving: 140 failed writes in 20 s gave 140 warnings and
    a /readyz with nothing degraded. Now: one warning, a summary a minute with the count, the
    answers unchanged, readiness ready but naming the prediction log, until it catches up."""
    import logging

    from sqlalchemy import func, select

    from mlops.db.schema import prediction_log
    from tests.test_serving_service import LOG_RECORD

    caplog.set_level(logging.INFO, logger="mlops.serving")
    svc = make_service(serving_rt, prediction_log_flush_seconds=60)
    full = FullStore(svc.rt.store)
    try:
        zone = a_zone(serving_rt)
        for i in range(300):  # enough rows that their batch needs new pages
            svc.log.add({**LOG_RECORD, "request_id": f"f{i}"})
        full.fill()
        caplog.clear()
        for i in range(70):  # the probe's rate: 7 failed writes a second, for 10 s
            assert svc.extension.eta(zone, 3.0).source == "model"  # answers unaffected
            assert svc.log.flush() == 0
            if i % 7 == 6:
                clock.advance(timedelta(seconds=1))
        assert len(_log_records(caplog, "prediction log write")) == 1
        ready = svc.readiness()
        assert ready["ready"] and ready["database"] == "ok"
        assert ready["prediction_log"] == {"state": "failing", "pending": 370, "dropped": 0}
        [degraded] = ready["degraded"]
        assert degraded.startswith("prediction log not written since 2026-06-01T12:00:00Z")
        assert "70 failed writes" in degraded and "370 answers kept in memory" in degraded
        assert "full" in degraded  # the store's own words, by class and first line

        clock.advance(timedelta(seconds=50))  # a minute after the first failure
        svc.log.flush()
        [summary] = _log_records(caplog, "prediction log writes still failing")
        assert summary.failed_writes == 70 and summary.seconds == 60
        svc.log.flush()  # within the next minute: silent
        assert len(_log_records(caplog, "prediction log writes still failing")) == 1

        full.free()  # space again: everything pending is written, readiness clears
        assert svc.log.flush() == 370
        assert _log_records(caplog, "prediction log writes resumed")[0].failed_writes == 72
        ready = svc.readiness()
        assert ready["degraded"] == [] and ready["prediction_log"]["state"] == "ok"
        with svc.rt.store.connect() as conn:
            logged = conn.execute(select(func.count()).select_from(prediction_log)).scalar()
        assert logged == 370
    finally:
        full.free()
        svc.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_writer_retries_a_failing_store_once_per_interval(serving_rt):
    """Full batches wake the writer; after a failed write it retries an interval later, not
    at every wake-up (that retried, and logged, at every request while the store was full)."""
    from mlops.serving.prediction_log import PredictionLog
    from tests.test_serving_service import LOG_RECORD

    full = FullStore(serving_rt.store)
    writer = PredictionLog(serving_rt.store, batch=1, flush_seconds=0.5, max_pending=10_000)
    for i in range(300):
        writer.add({**LOG_RECORD, "request_id": f"w{i}"})
    full.fill()
    writer.start()
    try:
        began = time.monotonic()
        while time.monotonic() - began < 1.2:
            writer.add(LOG_RECORD)  # a full batch each time: wakes the writer
            time.sleep(0.005)
        assert writer.failing_since is not None
        assert 1 <= writer.failed_writes <= 4, writer.failed_writes
    finally:
        full.free()
        writer.close()
    assert writer.pending == 0 and writer.failing_since is None
