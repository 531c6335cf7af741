"""Bad input against the HTTP API: Schemathesis' engine (what ``schemathesis run`` runs) over
every operation of the OpenAPI schema in-process, with every check it has (server errors,
status codes, content types, response schemas, negative data rejected, positive data
accepted, auth enforced...), in its examples, coverage and fuzzing phases; then explicit
cases the generator is unlikely to hit: SQL injection, control and bidi characters, very
long ids, huge numbers, lax types and an oversized body."""

from __future__ import annotations

import collections
import os
from urllib.parse import quote

import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi

from mlops.serving.app import MAX_BODY_BYTES, create_app
from tests.serving_support import a_customer, a_zone

# Fuzzing does not depend on the store's backend; SQLite only, so it runs once.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

TOKEN = "fuzz-s3cret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
# Per operation in the fuzzing phase (the coverage phase's cases come on top: ~700 cases in
# all, ~12 s here). MLOPS_FUZZ_EXAMPLES raises it for a long run outside the suite.
EXAMPLES = int(os.environ.get("MLOPS_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def app(serving_rt):
    from mlops.runtime import Runtime

    settings = serving_rt.settings.model_copy(
        update={"api_token": SecretStr(TOKEN), "log_requests": False}
    )
    app = create_app(Runtime(settings=settings, clock=serving_rt.clock), poll=False)
    yield app
    # Schemathesis starts the app's lifespan on first use and keeps it for the process.
    asgi.shutdown_lifespans()


def engine_schema(app, examples: int = EXAMPLES):
    """The app's schema loaded by Schemathesis with every check on, a fixed seed and the
    admin token for the bearer scheme the schema declares."""
    # The dashboard draws a page per request (~0.7 s) and has one parameter, a bounded
    # integer: two pages in the suite, fifty in a long run.
    dashboard: dict = {"include-path": "/dashboard", "generation": {"max-examples": 50}}
    if examples <= 10:
        dashboard = {
            "include-path": "/dashboard",
            "generation": {"max-examples": 2},
            "phases": {"coverage": {"enabled": False}},
        }
    config = SchemathesisConfig.from_dict(
        {
            "seed": 7,
            "generation": {"max-examples": examples, "deterministic": True},
            "auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}},
            "operations": [dashboard],
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema.config.checks.update(included_check_names=["all"])
    return schema


def run_engine(schema) -> tuple[int, dict[str, collections.Counter], list[str]]:
    """(cases, status codes per operation, one line per failed check) of a full run."""
    cases = 0
    statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.FatalError | events.NonFatalError):
            failures.append(f"{type(event).__name__}: {event}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        cases += len(recorder.cases)
        for interaction in recorder.interactions.values():
            if interaction.response is not None:
                statuses[recorder.label][interaction.response.status_code] += 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status == Status.FAILURE:
                    failures.append(failure_line(recorder, case_id, check))
    return cases, statuses, failures


def failure_line(recorder, case_id: str, check) -> str:
    title = check.failure_info.failure.title if check.failure_info else ""
    line = f"{recorder.label} {check.name}: {title}"
    if sent := recorder.interactions.get(case_id):
        body = (sent.request.body or b"")[:300]
        line += f"; sent {sent.request.method} {sent.request.uri} {body!r}"
        if sent.response is not None:
            line += f"; got {sent.response.status_code} {sent.response.content[:300]!r}"
    return line


def test_every_check_passes_on_every_operation(app):
    schema = engine_schema(app)
    documented = {op.ok().label for op in schema.get_all_operations()}
    cases, statuses, failures = run_engine(schema)
    print(f"schemathesis: {cases} cases, {len(failures)} failed checks, {EXAMPLES} examples")
    assert not failures, "\n".join(failures[:20])
    assert set(statuses) == documented  # every operation ran
    # Past validation too: each operation answered 2xx at least once (admin with the token),
    # but the dossier, whose random customer ids the warehouse does not have (a 404).
    assert {label for label, got in statuses.items() if not any(200 <= s < 300 for s in got)} <= {
        "GET /v1/customers/{customer_id}/dossier"
    }, statuses
    assert cases >= 10 * len(documented)


def test_schema_lists_every_route(app):
    schema = engine_schema(app)
    labels = {op.ok().label for op in schema.get_all_operations()}
    jobs = app.state.service.jobs
    assert {f"POST /v1/jobs/{job}/predict" for job in jobs} | {
        "GET /v1/customers/{customer_id}/dossier",
        "POST /v1/orders/compose",
        "POST /v1/deliveries/eta",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /dashboard",
        "GET /v1/admin/flags",
        "PUT /v1/admin/flags/{name}",
        "POST /v1/admin/cache/clear",
        "POST /v1/admin/models/reload",
    } == labels
    paths = schema.raw_schema["paths"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert paths["/v1/admin/flags"]["get"]["security"] == [{"HTTPBearer": []}]


def test_each_job_route_states_its_inputs(app):
    components = app.openapi()["components"]["schemas"]
    eta = components["EtaInputs"]
    assert eta["additionalProperties"] is False
    assert set(eta["required"]) == {"distance_km", "item_count"}  # zone, hour, weekday derived
    assert eta["properties"]["item_count"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "title": "Item Count",
    }
    assert eta["properties"]["distance_km"]["type"] == "number"
    assert components["UpsellInputs"]["properties"]["offer_category"]["type"] == "string"
    assert components["ChurnPredictRequest"]["properties"]["inputs"]["default"] == {}


# --- explicit cases -----------------------------------------------------------------------

INJECTION = ["' OR '1'='1", "C1'; DROP TABLE ml_feature_values;--", '" OR ""="', "1 UNION SELECT 1"]
ODD = ["\u202ec\u200f", "çüß", "顧客", "🙂" * 10, "C 1", "..", "\\x00"]
CONTROL = ["C\x001", "\x00", "C1\n", "\x7f", "C\x1b[31m", "\x85"]


@pytest.fixture
def client(app):
    from starlette.testclient import TestClient

    with TestClient(app) as c:
        yield c


def test_injection_and_unicode_ids_are_plain_unknown_ids(client, serving_rt):
    zone = a_zone(serving_rt)
    for value in INJECTION + ODD:
        r = client.get("/v1/customers/" + quote(value, safe="") + "/dossier")
        assert r.status_code == 404, (value, r.text)
        r = client.post("/v1/orders/compose", json={"customer_id": value})
        assert r.status_code == 200, (value, r.text)  # the heuristic answers an unknown customer
        assert r.json()["customer_id"] == value
        r = client.post("/v1/orders/compose", json={"customer_id": "C1", "offer_ids": [value]})
        assert r.status_code == 404 and "unknown offer ids" in r.json()["detail"], value
        r = client.post("/v1/deliveries/eta", json={"zone": value, "distance_km": 1})
        assert r.status_code == 200 and r.json()["zone"] == value, (value, r.text)
        eta = {"zone": zone, "distance_km": 1, "delivery_id": value}
        assert client.post("/v1/deliveries/eta", json=eta).status_code == 200, value
    # Still there: nothing was dropped.
    assert client.get(f"/v1/customers/{a_customer(serving_rt)}/dossier").status_code == 200


def test_control_characters_in_ids_are_refused(client):
    for value in CONTROL:
        quoted = "/v1/customers/" + quote(value, safe="") + "/dossier"
        assert client.get(quoted).status_code == 422, value
        bodies = [
            ("/v1/orders/compose", {"customer_id": value}),
            ("/v1/orders/compose", {"customer_id": "C1", "offer_ids": [value]}),
            ("/v1/deliveries/eta", {"zone": value, "distance_km": 1}),
            ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": 1, "delivery_id": value}),
        ]
        for path, body in bodies:
            r = client.post(path, json=body)
            assert r.status_code == 422, (path, body, r.text)
    for value in ["C\x001", "\x00", "\x7f", "C\x1b[31m"]:
        body = {"enabled": True, "reason": value}
        r = client.put("/v1/admin/flags/eta", json=body, headers=ADMIN)
        assert r.status_code == 422, value
    body = {"enabled": True, "reason": "INC-7\n\tline two"}
    assert client.put("/v1/admin/flags/eta", json=body, headers=ADMIN).status_code == 200


def test_long_ids_and_huge_values_are_refused(client):
    long = "C" * 129
    assert client.get(f"/v1/customers/{long}/dossier").status_code == 422
    assert client.get(f"/v1/customers/{'C' * 10_000}/dossier").status_code == 422
    refused = [
        ("/v1/orders/compose", {"customer_id": long}),
        ("/v1/orders/compose", {"customer_id": "C1", "offer_ids": ["O" * 65]}),
        ("/v1/orders/compose", {"customer_id": "C1", "offer_ids": ["OF001"] * 501}),
        ("/v1/orders/compose", {"customer_id": "C1", "offer_ids": []}),
        ("/v1/orders/compose", {"customer_id": "C1", "cart": [{"category": "x"}] * 201}),
        ("/v1/orders/compose", {"customer_id": "C1", "limit": 10**30}),
        (
            "/v1/orders/compose",
            {"customer_id": "C1", "cart": [{"category": "x", "quantity": 10**30}]},
        ),
        (
            "/v1/orders/compose",
            {"customer_id": "C1", "cart": [{"category": "x", "unit_price": 1e308}]},
        ),
        ("/v1/deliveries/eta", {"zone": "Z" * 65, "distance_km": 1}),
        ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": 1e308}),
        ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": 1, "item_count": 2**63}),
        ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": 1, "delivery_id": "D" * 129}),
    ]
    for path, body in refused:
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, str(body)[:80], r.text[:200])


def test_times_are_rfc3339_text_in_the_stated_years(client):
    refused = [
        0,  # lax pydantic took numbers as Unix seconds: a 1970 dispatch
        1_780_000_000,
        "0",
        "1780000000",
        "2026-06-01T12:00:00",  # no offset: whose local time?
        "2026-06-01",
        "2026-06-01 12:00:00Z",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:00:00-12:00",
        "2026-02-30T12:00:00Z",
        True,
    ]
    for at in refused:
        body = {"zone": "Z01", "distance_km": 1, "dispatched_at": at}
        r = client.post("/v1/deliveries/eta", json=body)
        assert r.status_code == 422, (at, r.text)
        body = {"entity_id": "Z01", "inputs": {"distance_km": 1, "item_count": 1}, "at": at}
        assert client.post("/v1/jobs/eta/predict", json=body).status_code == 422, at
    # The edges the schema states are taken, and answered in UTC.
    for at, utc in [
        ("1970-01-01T00:30:00+01:00", "1969-12-31T23:30:00Z"),
        ("9998-12-31T23:59:59-12:00", "9999-01-01T11:59:59Z"),
    ]:
        body = {"zone": "Z01", "distance_km": 1, "dispatched_at": at}
        r = client.post("/v1/deliveries/eta", json=body)
        assert r.status_code == 200 and r.json()["dispatched_at"] == utc, r.text


def test_booleans_and_text_are_not_numbers(client):
    refused = [
        (
            "/v1/orders/compose",
            {"customer_id": "C1", "cart": [{"category": "x", "unit_price": False}]},
        ),
        (
            "/v1/orders/compose",
            {"customer_id": "C1", "cart": [{"category": "x", "quantity": True}]},
        ),
        ("/v1/orders/compose", {"customer_id": "C1", "cart": [{"category": "x", "quantity": "2"}]}),
        ("/v1/orders/compose", {"customer_id": "C1", "limit": "3"}),
        ("/v1/orders/compose", {"customer_id": "C1", "unknown": 1}),
        ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": "4.2"}),
        ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": True}),
        ("/v1/deliveries/eta", {"zone": "Z01", "distance_km": 1, "item_count": 1.5}),
        (
            "/v1/jobs/eta/predict",
            {"entity_id": "Z01", "inputs": {"distance_km": True, "item_count": 1}},
        ),
        (
            "/v1/jobs/eta/predict",
            {"entity_id": "Z01", "inputs": {"distance_km": 1, "item_count": 1, "x": 1}},
        ),
        ("/v1/jobs/eta/predict", {"entity_id": "Z01", "inputs": {"distance_km": 1}}),
        (
            "/v1/jobs/eta/predict",
            {"entity_id": "Z01", "inputs": {"distance_km": 501, "item_count": 1}},
        ),
    ]
    for path, body in refused:
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, body, r.text)
    # JSON Schema's integer is any number without a fraction: 2.0 is one.
    body = {"customer_id": "C1", "cart": [{"category": "x", "quantity": 2.0, "unit_price": 1}]}
    r = client.post("/v1/orders/compose", json=body)
    assert r.status_code == 200 and r.json()["cart_items"] == 2, r.text
    flag = {"enabled": "yes", "reason": "INC-1"}
    assert client.put("/v1/admin/flags/ml", json=flag, headers=ADMIN).status_code == 422
    flag = {"enabled": 1, "reason": "INC-1"}
    assert client.put("/v1/admin/flags/ml", json=flag, headers=ADMIN).status_code == 422
    r = client.post("/v1/jobs/nope/predict", json={"entity_id": "E1"})
    assert r.status_code == 404 and "no job 'nope'" in r.json()["detail"]


def test_known_entities_answer_as_the_schema_says(app, serving_rt):
    # The generator's random ids are unknown customers: a known one's answers, checked here.
    schema = engine_schema(app)
    customer = a_customer(serving_rt)
    dossier = schema["/v1/customers/{customer_id}/dossier"]["GET"]
    case = dossier.Case(path_parameters={"customer_id": customer})
    assert case.call_and_validate().status_code == 200
    compose = schema["/v1/orders/compose"]["POST"]
    case = compose.Case(body={"customer_id": customer}, media_type="application/json")
    assert case.call_and_validate().status_code == 200


def test_an_oversized_body_is_refused_before_parsing(client):
    big = (
        b'{"customer_id": "C1", "cart": [' + b'{"category": "x"},' * 50_000 + b'{"category": "x"}]}'
    )
    assert len(big) > MAX_BODY_BYTES
    headers = {"content-type": "application/json"}
    r = client.post("/v1/orders/compose", content=big, headers=headers)
    assert r.status_code == 413 and r.text == "Content Too Large"

    def chunks():  # no Content-Length: counted as it streams
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    r = client.post("/v1/orders/compose", content=chunks(), headers=headers)
    assert r.status_code == 413 and r.json() == {"detail": "Content Too Large"}
    small = {"customer_id": "C1", "cart": [{"category": "x"}] * 200}
    assert client.post("/v1/orders/compose", json=small).status_code == 200
