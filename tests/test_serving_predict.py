"""The generic endpoint: any job of the repository for one entity and the request's inputs,
with the same fallback policy, provenance and prediction log as the business endpoints."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from mlops.db.schema import prediction_log
from mlops.errors import ConfigError, InputError
from mlops.serving.app import create_app
from mlops.training import heuristics
from tests.conftest import NOW
from tests.serving_support import ServerThread, a_customer, a_zone, an_entity, make_service

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def test_predict_is_the_champion_on_the_same_path_as_the_business_endpoints(service, serving_rt):
    customer, zone = a_customer(serving_rt), a_zone(serving_rt)
    churn = service.predict("churn", customer)
    assert churn.source == "model" and churn.model_version == 1 and churn.reason is None
    assert churn.value == service.extension.dossier(customer).churn.probability
    assert churn.computed_at == NOW and churn.staleness_seconds == 0
    request = {"distance_km": 3.5, "item_count": 2}
    eta = service.predict("eta", zone, request, at=NOW)
    assert eta.source == "model"
    business = service.extension.eta(zone, 3.5, 2, dispatched_at=NOW)
    assert round(eta.value, 2) == business.model_minutes


def test_predict_falls_back_to_the_heuristic_on_the_stored_features(service, serving_rt):
    customer = a_customer(serving_rt)
    service.set_flag("churn", False, reason="INC-7", actor="oncall")
    answer = service.predict("churn", customer)
    assert answer.source == "heuristic" and answer.reason == "flag_off"
    assert answer.model_version is None and answer.computed_at == NOW
    stored = service.online.rows(service.jobs["churn"], [customer])[customer].values
    assert answer.value == pytest.approx(heuristics.of(service.jobs["churn"]).row(stored))
    # No stored features: the heuristic's prior, and the answer says none were found.
    unknown = service.predict("churn", "no-such-customer")
    assert unknown.source == "heuristic" and unknown.computed_at is None
    prior = heuristics.of(service.jobs["churn"]).row({})
    assert unknown.value == pytest.approx(prior)


def test_stale_features_answer_by_rule_with_their_age(serving_rt):
    svc = make_service(serving_rt)
    try:
        serving_rt.clock.set(NOW + timedelta(days=3))  # past churn's TTL
        answer = svc.predict("churn", a_customer(serving_rt))
        assert answer.reason == "features_stale" and answer.source == "heuristic"
        assert answer.staleness_seconds == pytest.approx(3 * 86400)
    finally:
        svc.close()


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({"distance_km": 3.0}, "'item_count' is missing (int)"),
        ({"distance_km": 3.0, "item_count": 2, "speed": 1}, "'speed' is not an input of eta"),
        ({"distance_km": 3.0, "item_count": 2, "hour": 4}, "'hour' is derived from the hour"),
        ({"distance_km": 900.0, "item_count": 2}, "'distance_km' = 900 is outside [0.0, 500.0]"),
        ({"distance_km": "far", "item_count": 2}, "'distance_km' must be a finite number"),
        ({"distance_km": 3.0, "item_count": 2.5}, "'item_count' must be a whole number"),
    ],
)
def test_bad_inputs_are_refused_with_what_to_fix(service, serving_rt, inputs, problem):
    with pytest.raises(InputError) as caught:
        service.predict("eta", a_zone(serving_rt), inputs)
    assert problem in str(caught.value) and "mlops jobs describe eta" in str(caught.value)


def test_an_slo_for_no_endpoint_is_a_config_error(serving_rt):
    with pytest.raises(ConfigError, match="MLOPS_SLO_MS names no endpoint: dosier"):
        make_service(serving_rt, slo_ms={"dosier": 50.0})


def test_predict_over_http_logs_each_answer(serving_rt):
    app = create_app(serving_rt, poll=False)
    customer, zone = a_customer(serving_rt), a_zone(serving_rt)
    with ServerThread(app) as running, httpx.Client(base_url=running.url, timeout=10) as c:
        r = c.post(
            "/v1/jobs/eta/predict",
            json={"entity_id": zone, "inputs": {"distance_km": 2.0, "item_count": 1}},
            headers={"x-request-id": "req-1"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["job"] == "eta" and body["entity_id"] == zone and body["source"] == "model"
        assert body["computed_at"] == "2026-06-01T12:00:00Z" and body["at"].endswith("Z")
        missing = c.post("/v1/jobs/eta/predict", json={"entity_id": zone, "inputs": {}})
        # The job's route states its inputs: FastAPI names the missing one.
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "inputs", "distance_km"]
        r = c.post("/v1/jobs/nope/predict", json={"entity_id": customer})
        assert r.status_code == 404 and "jobs are: churn, upsell, eta" in r.json()["detail"]
        # FastAPI's own validation for a body that is not the request's shape.
        assert c.post("/v1/jobs/churn/predict", json={"inputs": {}}).status_code == 422
        app.state.service.log.flush()
    with serving_rt.store.connect() as conn:
        rows = conn.execute(
            select(prediction_log).where(prediction_log.c.endpoint == "predict")
        ).all()
    assert [(r.job, r.entity_id, r.request_id, r.source) for r in rows] == [
        ("eta", zone, "req-1", "model")
    ]


def test_a_serving_module_without_extend_is_a_config_error(settings, clock, tmp_path):
    from mlops.repository.scaffold import init
    from mlops.runtime import Runtime
    from mlops.serving.service import Service

    root = init(tmp_path / "repo").path
    (root / "serving.py").write_text('"""No extend here."""\n')
    rt = Runtime(settings=settings.model_copy(update={"repo": root}), clock=clock)
    try:
        with pytest.raises(ConfigError, match=r"serving.py defines no extend\(service\)"):
            Service(rt)
    finally:
        rt.close()


def test_the_fourth_job_is_served_and_labelled_with_no_code_of_its_own(serving_rt):
    """``ticket`` is declared in the example only (YAML, SQL, a heuristic): the generic route
    serves its champion, and its logged answers are labelled from its label SQL."""
    from mlops.monitoring import labelling

    svc = make_service(serving_rt)
    try:
        customer = an_entity(serving_rt, "ticket")
        answer = svc.predict("ticket", customer)
        assert answer.source == "model" and answer.model_version == 1 and 0 < answer.value < 1
        svc.log.flush()
    finally:
        svc.close()
    serving_rt.clock.set(NOW + timedelta(days=13))  # the label's 14 days have not passed
    assert labelling.labelled(serving_rt, "ticket").empty
    serving_rt.clock.set(NOW + timedelta(days=15))
    frame = labelling.labelled(serving_rt, "ticket")
    assert list(frame.entity_id) == [customer] and frame.label.iloc[0] in (0, 1)
    assert frame.prediction.iloc[0] == pytest.approx(answer.value)
