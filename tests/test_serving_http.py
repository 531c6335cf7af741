"""The HTTP API under a real uvicorn server: status codes, provenance fields, request ids,
admin auth, the kill switch over HTTP, /metrics, and the OpenAPI examples."""

import httpx
import pytest
from pydantic import SecretStr

from mlops.serving.app import create_app
from tests.repo_support import JOBS
from tests.serving_support import ServerThread, a_customer, a_zone


@pytest.fixture
def server(serving_rt):
    from mlops.runtime import Runtime

    settings = serving_rt.settings.model_copy(
        update={"api_token": SecretStr("s3cret"), "log_requests": False}
    )
    app = create_app(Runtime(settings=settings, clock=serving_rt.clock), poll=False)
    with ServerThread(app) as running:
        running.service = app.state.service
        with httpx.Client(base_url=running.url, timeout=10) as client:
            running.client = client
            yield running


ADMIN = {"Authorization": "Bearer s3cret"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_endpoints_answer_with_provenance(server, serving_rt):
    c = server.client
    customer, zone = a_customer(serving_rt), a_zone(serving_rt)
    r = c.get(f"/v1/customers/{customer}/dossier", headers={"x-request-id": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    body = r.json()
    for field in ("churn", "upsell"):
        assert body[field]["source"] == "model" and body[field]["model_version"] == 1
        assert body[field]["computed_at"] == "2026-06-01T12:00:00Z"
        assert "reason" in body[field] and "staleness_seconds" in body[field]
    generated = {c.get("/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(generated) == 20 and all(len(r) == 32 for r in generated)  # when not sent
    r = c.post("/v1/orders/compose", json={"customer_id": customer, "limit": 2, "cart": []})
    assert r.status_code == 200 and len(r.json()["offers"]) == 2
    r = c.post("/v1/deliveries/eta", json={"zone": zone, "distance_km": 3.5, "item_count": 2})
    assert r.status_code == 200 and r.json()["source"] == "model"
    assert r.json()["recommended_minutes"] <= r.json()["sla_minutes"]
    # Times go out as RFC 3339 UTC whatever offset they came in with.
    at = {"zone": zone, "distance_km": 1.0, "dispatched_at": "2026-06-01T14:00:00+02:00"}
    eta = c.post("/v1/deliveries/eta", json=at).json()
    assert eta["dispatched_at"] == "2026-06-01T12:00:00Z"
    assert eta["promise_at"].endswith("Z") and eta["promise_at"] > eta["dispatched_at"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_lean_common_case_answers_what_fastapis_handler_answers(server, serving_rt):
    # application/json takes the lean path (serving/lean.py); a +json type, which FastAPI
    # reads as JSON too, goes through FastAPI's handler: the answers must not differ.
    c = server.client
    customer, zone = a_customer(serving_rt), a_zone(serving_rt)
    bodies = {
        "/v1/orders/compose": {"customer_id": customer, "limit": 2, "cart": [{"category": "x"}]},
        "/v1/deliveries/eta": {"zone": zone, "distance_km": 2.5, "delivery_id": "D1"},
    }
    for path, body in bodies.items():
        lean, full = (
            c.post(path, json=body, headers={"content-type": kind}).json()
            for kind in ("application/json", "application/vnd.mlops+json")
        )
        assert lean == full and lean["source"] == "model"
    answer = server.service.extension.dossier(customer).model_dump(mode="json")
    assert c.get(f"/v1/customers/{customer}/dossier").json() == answer


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bad_requests_get_clear_errors(server):
    c = server.client
    r = c.get("/v1/customers/NOPE/dossier")
    assert r.status_code == 404 and "no customer 'NOPE'" in r.json()["detail"]
    r = c.post("/v1/deliveries/eta", json={"zone": "Z01", "distance_km": -1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "distance_km"]
    r = c.post("/v1/orders/compose", json={"customer_id": "C1", "offer_ids": ["NOPE"]})
    # Well formed, naming an offer the warehouse does not have: like an unknown customer.
    assert r.status_code == 404 and "unknown offer ids: NOPE" in r.json()["detail"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_admin_routes_need_the_token(server, serving_rt):
    c = server.client
    body = {"enabled": False, "reason": "INC-7"}
    assert c.put("/v1/admin/flags/eta", json=body).status_code == 401
    r = c.put("/v1/admin/flags/eta", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.post("/v1/admin/cache/clear", headers={"Authorization": "s3cret"}).status_code == 401
    assert c.put("/v1/admin/flags/nope", json=body, headers=ADMIN).status_code == 404
    zone = a_zone(serving_rt)
    eta = {"zone": zone, "distance_km": 3.5}
    assert c.post("/v1/deliveries/eta", json=eta).json()["source"] == "model"
    r = c.put("/v1/admin/flags/eta", json=body, headers={**ADMIN, "x-actor": "alice"})
    assert r.status_code == 200 and r.json()["updated_by"] == "alice"
    assert r.json()["updated_at"] == "2026-06-01T12:00:00Z"
    assert c.post("/v1/deliveries/eta", json=eta).json()["reason"] == "flag_off"  # at once
    assert c.get("/v1/admin/flags", headers=ADMIN).json()["flags"]["eta"]["enabled"] is False
    assert c.post("/v1/admin/cache/clear", headers=ADMIN).json() == {"redis_keys_deleted": 0}
    r = c.post("/v1/admin/models/reload", headers=ADMIN)
    assert r.json() == {
        "changes": [],
        "champions": dict.fromkeys(JOBS, 1),
    }


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_admin_routes_are_disabled_without_a_token(serving_rt):
    app = create_app(serving_rt, poll=False)
    with ServerThread(app) as running, httpx.Client(base_url=running.url) as c:
        r = c.put("/v1/admin/flags/ml", json={"enabled": False, "reason": "x"}, headers=ADMIN)
        assert r.status_code == 403 and "MLOPS_API_TOKEN" in r.json()["detail"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_health_readiness_metrics_and_openapi(server, serving_rt):
    c = server.client
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["mode"] == "models"
    c.get(f"/v1/customers/{a_customer(serving_rt)}/dossier")
    text = c.get("/metrics").text
    assert (
        'mlops_http_request_duration_seconds_count{method="GET",'
        'route="/v1/customers/{customer_id}/dossier",status="200"} 1.0' in text
    )
    assert 'mlops_answers_total{endpoint="dossier",job="churn",reason="",source="model"}' in text
    assert 'mlops_model_version{job="eta"} 1.0' in text
    assert "mlops_feature_age_seconds" in text
    spec = c.get("/openapi.json").json()
    eta = spec["components"]["schemas"]["EtaRequest"]
    assert eta["examples"][0]["zone"] == "Z03"
    assert "/v1/admin/flags/{name}" in spec["paths"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_slow_model_is_cut_off_over_http(serving_rt):
    import time

    from mlops.runtime import Runtime
    from tests.serving_support import SlowBooster

    settings = serving_rt.settings.model_copy(update={"slo_ms": {"dossier": 15.0}})
    app = create_app(Runtime(settings=settings, clock=serving_rt.clock), poll=False)
    with ServerThread(app) as running, httpx.Client(base_url=running.url) as c:
        model = app.state.service.champions.get("churn").model
        model.booster = SlowBooster(model.booster, 1.0)
        began = time.perf_counter()
        body = c.get(f"/v1/customers/{a_customer(serving_rt)}/dossier").json()
        assert time.perf_counter() - began < 0.5  # the 30 ms budget, not the 1 s model
        assert body["churn"]["reason"] == body["upsell"]["reason"] == "slo_exceeded"
        assert body["churn"]["source"] == "heuristic" and 0 < body["churn"]["probability"] < 1
