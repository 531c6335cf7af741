"""A/B arms: the assignment on its own (deterministic, stable, the share respected, the salt
reshuffles), and serving answering control entities from the heuristic (reason ab_control)
and logging every answer's arm, on SQLite and PostgreSQL."""

import math
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from mlops.db.schema import feature_values, prediction_log
from mlops.examples.marketplace import answers
from mlops.serving import trips
from mlops.serving.arms import CONTROL, TREATMENT, assign, position
from mlops.serving.policy import Reason, precheck
from mlops.training import models
from tests.conftest import NOW
from tests.repo_support import JOBS
from tests.serving_support import a_zone, make_service

IDS = [f"C{i:07d}" for i in range(20_000)]


def test_assignment_is_deterministic_and_pinned():
    assert [assign(0.5, "s", "churn", i) for i in IDS[:200]] == [
        assign(0.5, "s", "churn", i) for i in IDS[:200]
    ]
    # Pinned: BLAKE2b-64 of "salt\x1fjob\x1fid", big-endian, over 2**64. A change here would
    # silently move live customers between arms.
    assert position("mlops-ab-1", "churn", "C0000001") == pytest.approx(
        int.from_bytes(bytes.fromhex(_PINNED_DIGEST), "big") / 2**64, abs=0
    )


_PINNED_DIGEST = "a7392f16a97bf36b"


def test_pinned_digest_matches_blake2b():
    import hashlib

    digest = hashlib.blake2b(b"mlops-ab-1\x1fchurn\x1fC0000001", digest_size=8).hexdigest()
    assert digest == _PINNED_DIGEST


def test_assignment_is_the_same_in_another_process_with_another_hash_seed():
    code = (
        "from mlops.serving.arms import assign;"
        "print(''.join('t' if assign(0.5, 's', 'eta', f'D{i}') == 'treatment' else 'c'"
        " for i in range(300)))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = "".join(
        "t" if assign(0.5, "s", "eta", f"D{i}") == TREATMENT else "c" for i in range(300)
    )
    assert runs == {here}


@pytest.mark.parametrize("share", [0.1, 0.5, 0.8])
def test_share_is_respected(share):
    treated = sum(assign(share, "mlops-ab-1", "upsell", i) == TREATMENT for i in IDS) / len(IDS)
    # Four binomial standard deviations: a correct hash fails this about once in 16,000 runs.
    assert abs(treated - share) <= 4 * math.sqrt(share * (1 - share) / len(IDS))


def test_salt_and_job_reshuffle_the_arms():
    a = [assign(0.5, "salt-a", "churn", i) for i in IDS]
    b = [assign(0.5, "salt-b", "churn", i) for i in IDS]
    other_job = [assign(0.5, "salt-a", "upsell", i) for i in IDS]
    tolerance = 4 * math.sqrt(0.25 / len(IDS))
    # Independent assignments agree half of the time; the same salt would agree always.
    for other in (b, other_job):
        agree = sum(x == y for x, y in zip(a, other, strict=True)) / len(IDS)
        assert abs(agree - 0.5) <= tolerance


def test_share_one_is_everyone_treated_and_zero_everyone_control():
    assert {assign(1.0, "s", "churn", i) for i in IDS} == {TREATMENT}
    assert {assign(0.0, "s", "churn", i) for i in IDS} == {CONTROL}


def test_eta_unit_is_the_delivery_else_the_zone():
    assert answers.eta_unit("Z01", "D9") == "D9"
    assert answers.eta_unit("Z01", None) == "Z01"


def test_control_comes_after_the_switches_and_before_the_model_state():
    common = {"loaded": False, "circuit_open": True, "control": True}
    assert precheck("churn", flag_off="ml", trip_kinds=[], **common) == Reason.FLAG_OFF
    assert precheck("churn", flag_off=None, trip_kinds=["guardrail"], **common) == Reason.GUARDRAIL
    assert precheck("churn", flag_off=None, trip_kinds=[], **common) == Reason.AB_CONTROL


# --- serving -----------------------------------------------------------------------------


def _customers(rt) -> list[str]:
    with rt.store.connect() as conn:
        return list(
            conn.execute(
                select(feature_values.c.entity_id)
                .where(feature_values.c.job == "upsell")
                .order_by(feature_values.c.entity_id)
            ).scalars()
        )


def _split(svc, job, units):
    control = [u for u in units if svc.arm(job, u) == CONTROL]
    treated = [u for u in units if svc.arm(job, u) == TREATMENT]
    return control, treated


def test_control_customers_get_the_heuristic_and_every_record_its_arm(serving_rt):
    share = {"churn": 0.5, "upsell": 1.0, "eta": 0.5}
    svc = make_service(serving_rt, ab_treatment_share=share)
    try:
        control, treated = _split(svc, "churn", _customers(serving_rt))
        assert control and treated
        for customer in control[:12]:
            answer = svc.extension.dossier(customer)
            assert answer.churn.source == "heuristic" and answer.churn.reason == "ab_control"
            assert answer.churn.model_version is None
            inputs = svc.extension.warehouse.profile(customer, NOW).heuristic_inputs()
            assert answer.churn.probability == pytest.approx(JOBS["churn"].heuristic.row(inputs))
            # upsell has no experiment: the same customer's upsell comes from the model
            assert (answer.upsell.source, answer.upsell.reason) == ("model", None)
        # control answers are by design, not failures: the circuit stays closed (12 > its
        # threshold of consecutive failures)
        assert svc.settings.circuit_overruns < 12 and not svc.breakers["churn"].is_open
        answer = svc.extension.dossier(treated[0])
        assert answer.churn.source == "model" and answer.churn.reason is None
        text = svc.metrics.render()[0].decode()
        assert 'job="churn",reason="ab_control",source="heuristic"} 12.0' in text

        # ETA: the delivery id decides the arm, the zone when there is none
        zone = a_zone(serving_rt)
        d_control, d_treated = _split(svc, "eta", [f"D{i:06d}" for i in range(100)])
        late = svc.extension.eta(zone, 3.0, delivery_id=d_control[0])
        assert late.source == "heuristic" and late.reason == "ab_control"
        assert svc.extension.eta(zone, 3.0, delivery_id=d_treated[0]).source == "model"
        zone_arm = svc.arm("eta", zone)
        no_id = svc.extension.eta(zone, 3.0)
        assert (no_id.reason == "ab_control") == (zone_arm == CONTROL)
    finally:
        svc.close()  # writes the pending prediction log

    with serving_rt.store.connect() as conn:
        rows = conn.execute(select(prediction_log)).mappings().all()
    assert rows and all(r["arm"] in (TREATMENT, CONTROL) for r in rows)
    churn_rows = [r for r in rows if r["job"] == "churn"]
    for r in churn_rows:
        assert r["arm"] == svc.arm("churn", r["entity_id"])
        assert (r["reason"] == "ab_control") == (r["arm"] == CONTROL)
    assert {r["arm"] for r in rows if r["job"] == "upsell"} == {TREATMENT}
    eta_rows = {r["subject_id"]: r for r in rows if r["job"] == "eta"}
    assert eta_rows[d_control[0]]["arm"] == CONTROL
    assert eta_rows[d_control[0]]["reason"] == "ab_control"
    assert eta_rows[d_treated[0]]["arm"] == TREATMENT
    assert eta_rows[None]["arm"] == zone_arm


def test_control_answers_need_neither_model_nor_feature_store(serving_rt, monkeypatch):
    svc = make_service(serving_rt, ab_treatment_share={"churn": 0.0, "upsell": 0.0, "eta": 0.0})
    try:

        def unreachable(*args, **kwargs):
            raise AssertionError("the control arm must not touch this")

        for name in ("predict", "predict_row", "predict_one", "encode_row"):
            monkeypatch.setattr(models, name, unreachable)
        monkeypatch.setattr(svc.cache, "row", unreachable)
        # every job of each endpoint is control: answered without the model pool at all
        monkeypatch.setattr(svc.paths, "run", unreachable)
        customer = _customers(serving_rt)[0]
        with serving_rt.store.begin() as conn:
            conn.execute(feature_values.delete())
        answer = svc.extension.dossier(customer)
        assert {answer.churn.reason, answer.upsell.reason} == {"ab_control"}
        composed = svc.extension.compose(customer, limit=2)
        assert composed.reason == "ab_control" and len(composed.offers) == 2
        assert svc.extension.eta("Z01", 2.0, delivery_id="D1").reason == "ab_control"
    finally:
        svc.close()


def test_a_trip_outranks_the_control_arm(serving_rt):
    """While a guardrail trip is in force both arms say ``guardrail`` (the check leaves those
    answers out of both arms alike)."""
    svc = make_service(serving_rt, ab_treatment_share={"churn": 0.5, "upsell": 1.0, "eta": 1.0})
    try:
        control, treated = _split(svc, "churn", _customers(serving_rt))
        trips.record(serving_rt.store, "churn", "guardrail", "retention down", at=NOW)
        svc.refresh_controls()
        assert svc.extension.dossier(control[0]).churn.reason == "guardrail"
        assert svc.extension.dossier(treated[0]).churn.reason == "guardrail"
    finally:
        svc.close()
