"""A/B guardrails: the non-inferiority z-test on simulated arms with a known effect (power,
false-positive rate over repeated seeds, minimum sample), its figures against a computation
by hand, the per-arm metrics, and the whole chain on SQLite and PostgreSQL: logged answers
with arms + warehouse outcomes -> ``check`` -> alert and trip -> serving answers with reason
``guardrail``."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sqlalchemy import select

from mlops.db.schema import alerts as alerts_table
from mlops.db.schema import monitor_results
from mlops.errors import InputError
from mlops.examples.marketplace import warehouse as wh
from mlops.monitoring import guardrails
from mlops.monitoring.guardrails import Arm, arm_counts, compare
from mlops.runtime import Runtime
from mlops.serving import arms, trips
from tests.conftest import NOW
from tests.monitoring_support import cli_on, delivery, impression, load, log_predictions, order
from tests.repo_support import JOBS
from tests.serving_support import a_customer, a_zone, make_service

# The example's declared guardrails, by job.
GUARDRAILS = {name: job.guardrail for name, job in JOBS.items()}

ALPHA = 0.05
SEEDS = 400
# Tolerance on a false-positive rate measured over SEEDS runs: the number of trips of a test
# whose true size is ALPHA is Binomial(SEEDS, ALPHA), sd sqrt(ALPHA (1 - ALPHA) / SEEDS) = 1.1
# points; three sd above ALPHA (8.3 %) is exceeded by chance about once in a thousand runs,
# while a test of twice the stated size (10 %) would exceed it almost always.
FP_TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SEEDS)


def simulated(rng, job: str, n: int, control: float, treatment: float) -> pd.DataFrame:
    """``labelling.labelled``-shaped rows for ``n`` units per arm whose outcome ("hit": accepted,
    retained or late) has the given probability per arm."""
    arm = np.repeat([arms.CONTROL, arms.TREATMENT], n)
    hit = rng.random(2 * n) < np.repeat([control, treatment], n)
    ids = [f"u{i}" for i in range(2 * n)]
    frame = pd.DataFrame(
        {
            "prediction_id": np.arange(2 * n),
            "logged_at": pd.Timestamp(NOW) - pd.Timedelta(days=40),
            "entity_id": ids,
            "subject_id": ids if job == "eta" else "OF1",
            "prediction": 0.9,  # churn: every unit flagged high risk
            "reason": np.where(arm == arms.CONTROL, "ab_control", None),
            "arm": arm,
            "model_version": 1,
        }
    )
    if job == "eta":
        return frame.assign(label=30.0, late=hit)
    if job == "churn":
        return frame.assign(label=(~hit).astype(float))  # a hit is a retained customer
    return frame.assign(label=hit.astype(float))


def judge(control: Arm, treatment: Arm, *, margin=0.01, min_sample=500, higher=True):
    """``compare`` at ALPHA."""
    return compare(
        control,
        treatment,
        margin=margin,
        alpha=ALPHA,
        min_sample=min_sample,
        higher_is_better=higher,
    )


def trip_rate(job, n, control, treatment, *, margin, seeds=SEEDS, min_sample=500):
    """The share of ``seeds`` simulated experiments (``n`` units per arm with the given true
    rates) that the test calls a breach, and every decision."""
    higher = GUARDRAILS[job].higher_is_better
    decisions = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        result = judge(
            Arm(int(rng.binomial(n, control)), n),
            Arm(int(rng.binomial(n, treatment)), n),
            margin=margin,
            min_sample=min_sample,
            higher=higher,
        )
        decisions.append(result.decision)
    return sum(d == "breach" for d in decisions) / seeds, decisions


# --- the test on simulated arms -----------------------------------------------------------


def test_detects_a_real_regression():
    # Acceptance 30 % -> 24 % with 2,000 customers per arm, margin 1 point: the standard error
    # of the difference is 0.0140, so the expected power is
    # P(Z > 1.645 - (0.06 - 0.01) / 0.0140) = 0.97.
    power, _ = trip_rate("upsell", 2000, 0.30, 0.24, margin=0.01, seeds=200)
    assert power >= 0.8


def test_lower_is_better_for_late_deliveries():
    # Late share 15 % -> 22 %: a regression (se 0.0122, expected power
    # P(Z > 1.645 - 0.05 / 0.0122) = 0.99); 15 % -> 10 % is an improvement and a one-sided
    # test never calls it a breach.
    power, _ = trip_rate("eta", 2000, 0.15, 0.22, margin=0.02, seeds=200)
    assert power >= 0.8
    better, _ = trip_rate("eta", 2000, 0.15, 0.10, margin=0.02, seeds=200)
    assert better == 0


@pytest.mark.parametrize("job", ["upsell", "churn"])
def test_no_effect_trips_at_most_alpha_of_the_time(job):
    # Margin 0 is the strictest setting: under no effect the test sits exactly at its null,
    # so it should trip in ALPHA of the runs, and not (much) more.
    rate, _ = trip_rate(job, 2000, 0.30, 0.30, margin=0.0)
    assert rate <= ALPHA + FP_TOLERANCE
    # with the agreed margin, no effect is well inside H0: trips are rarer still
    with_margin, _ = trip_rate(job, 2000, 0.30, 0.30, margin=0.02)
    assert with_margin <= rate


def test_a_regression_of_exactly_the_margin_trips_at_most_alpha_of_the_time():
    rate, _ = trip_rate("upsell", 2000, 0.30, 0.28, margin=0.02)
    assert rate <= ALPHA + FP_TOLERANCE


def test_too_few_units_never_trip():
    # A huge regression (50 % -> 10 %) on 100 units per arm: significant, but below the
    # minimum sample of 500, so never a breach.
    rate, decisions = trip_rate("upsell", 100, 0.5, 0.1, margin=0.01, seeds=50)
    assert rate == 0 and set(decisions) == {"insufficient"}
    # with the minimum met, the same data trips every time (the guard is what held it back)
    rate, _ = trip_rate("upsell", 100, 0.5, 0.1, margin=0.01, seeds=50, min_sample=100)
    assert rate == 1
    one_empty = judge(Arm(0, 0), Arm(10, 5000), min_sample=0)
    assert one_empty.decision == "insufficient" and one_empty.p_value is None


def test_figures_equal_a_computation_by_hand():
    control, treatment = Arm(300, 1000), Arm(240, 1000)
    result = judge(control, treatment)
    pc, pt = 0.30, 0.24
    se = math.sqrt(pc * (1 - pc) / 1000 + pt * (1 - pt) / 1000)
    z = ((pc - pt) - 0.01) / se  # how much worse the treatment is, past the margin
    assert result.difference == pytest.approx(pt - pc)
    assert result.z == pytest.approx(z)
    assert result.p_value == pytest.approx(1 - norm.cdf(z), rel=1e-9)
    assert result.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert result.p_value == pytest.approx(0.0058, abs=1e-4)  # z = 2.524
    half = norm.ppf(0.95) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((pt - pc - half, pt - pc + half))
    assert result.confidence == pytest.approx(0.90)
    assert result.decision == "breach"
    # the interval's worse side lies past -margin exactly when the test trips
    assert result.ci_high < -0.01
    # lower is better: the same numbers read as late shares are an improvement
    flipped = judge(control, treatment, higher=False)
    assert flipped.p_value == pytest.approx(1 - norm.cdf((pt - pc - 0.01) / se))
    assert flipped.decision == "ok"


def test_worse_than_the_margin_but_not_significant_is_a_warning():
    result = judge(Arm(150, 500), Arm(140, 500))
    assert result.harm > 0.01 and result.p_value >= ALPHA and result.decision == "warn"


def test_no_spread_in_either_arm():
    worse = judge(Arm(600, 600), Arm(0, 600))
    assert worse.p_value == 0.0 and worse.decision == "breach"
    same = judge(Arm(600, 600), Arm(600, 600), margin=0.0)
    assert same.p_value == 1.0 and same.decision == "ok"


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        compare(Arm(1, 2), Arm(1, 2), margin=-0.1, alpha=ALPHA, min_sample=1, higher_is_better=True)
    with pytest.raises(ValueError):
        compare(Arm(1, 2), Arm(1, 2), margin=0.1, alpha=0.7, min_sample=1, higher_is_better=True)


# --- the per-arm metric -------------------------------------------------------------------


@pytest.mark.parametrize("job", ["churn", "upsell", "eta"])
def test_simulated_units_are_counted_per_arm(job):
    """The repeated-seed tests above draw the arms' counts directly; here the same kind of
    draw goes through the per-arm metric on labelled rows."""
    frame = simulated(np.random.default_rng(1), job, 3000, 0.3, 0.2)
    expected = frame.assign(
        hit=frame["late"] if job == "eta" else frame["label"] == (job != "churn")
    )
    counts = arm_counts(GUARDRAILS[job], frame)
    for arm in (arms.CONTROL, arms.TREATMENT):
        mine = expected[expected["arm"] == arm]
        assert counts[arm] == Arm(int(mine["hit"].sum()), 3000)
        assert abs(counts[arm].rate - (0.3 if arm == arms.CONTROL else 0.2)) < 0.03


def _row(i, entity, arm, label, *, prediction=0.9, reason=None, subject="OF1", days=40):
    return {
        "prediction_id": i,
        "logged_at": pd.Timestamp(NOW) - pd.Timedelta(days=days),
        "entity_id": entity,
        "subject_id": subject,
        "prediction": prediction,
        "reason": reason,
        "arm": arm,
        "model_version": 1,
        "label": label,
    }


def test_units_one_per_entity_with_suspended_and_armless_answers_left_out():
    c, t = arms.CONTROL, arms.TREATMENT
    frame = pd.DataFrame(
        [
            _row(1, "a", c, 1.0, days=5),
            _row(2, "a", c, 0.0, days=4),  # a's second answer: not a new unit
            _row(3, "b", t, 0.0, days=5),
            _row(4, "c", t, 1.0, reason="guardrail"),  # suspended for both arms
            _row(5, "d", t, 1.0, reason="flag_off"),
            _row(6, "e", None, 1.0),  # logged without an arm
            _row(7, "f", t, 1.0, reason="features_stale"),  # the treatment's own fallback
        ]
    )
    counts = arm_counts(GUARDRAILS["upsell"], frame)
    assert counts == {c: Arm(1, 1), t: Arm(1, 2)}


def test_churn_counts_retention_among_high_risk_flags_only():
    c, t = arms.CONTROL, arms.TREATMENT
    floor = GUARDRAILS["churn"].min_prediction
    assert floor == 0.6  # the dossier's bands: low < 0.3 <= medium < 0.6 <= high
    frame = pd.DataFrame(
        [
            _row(1, "a", c, 0.0, prediction=0.6),  # high, retained
            _row(2, "b", c, 1.0, prediction=0.95),  # high, churned
            _row(3, "c", c, 1.0, prediction=0.59),  # medium: not flagged
            _row(4, "d", t, 1.0, prediction=0.2, days=50),  # low first ...
            _row(5, "d", t, 0.0, prediction=0.7, days=45),  # ... flagged later: counted
        ]
    )
    assert arm_counts(GUARDRAILS["churn"], frame) == {c: Arm(1, 2), t: Arm(1, 1)}


def test_eta_counts_late_deliveries_once_each():
    c, t = arms.CONTROL, arms.TREATMENT
    frame = pd.DataFrame(
        [
            _row(1, "Z1", c, 30.0, subject="D1"),
            _row(2, "Z1", c, 30.0, subject="D1", days=39),  # D1 asked twice
            _row(3, "Z1", t, 30.0, subject="D2"),
            _row(4, "Z2", t, 30.0, subject="D3"),
        ]
    ).assign(late=[True, False, True, False])
    assert arm_counts(GUARDRAILS["eta"], frame) == {c: Arm(1, 1), t: Arm(1, 2)}


def test_an_unknown_job_is_refused(migrated):
    with pytest.raises(InputError):
        guardrails.check(migrated, "price")


# --- on real tables -----------------------------------------------------------------------

N = 600  # units per arm: above the default minimum sample of 500
SALT = "guardrail-test"


def units_per_arm(job: str, prefix: str, n: int) -> dict[str, list[str]]:
    """``n`` ids in each arm, as serving would assign them with share 0.5 and SALT."""
    found = {arms.CONTROL: [], arms.TREATMENT: []}
    i = 0
    while min(len(v) for v in found.values()) < n:
        unit = f"{prefix}{i:06d}"
        arm = arms.assign(0.5, SALT, job, unit)
        if len(found[arm]) < n:
            found[arm].append(unit)
        i += 1
    return found


def experiment(rt, *, n: int = N, hits: dict[str, dict[str, int]]) -> None:
    """Logged answers of every job for ``n`` units per arm, and warehouse outcomes such that
    ``hits[job][arm]`` of them accepted / stayed / were late."""
    rows, orders, shown, delivered = [], [], [], []
    t_churn = NOW - timedelta(days=40)  # churn labels are due after 30 days
    t = NOW - timedelta(days=3)
    for job in ("churn", "upsell", "eta"):
        for arm, ids in units_per_arm(job, f"{job[0].upper()}X", n).items():
            answer = {"job": job, "arm": arm, "logged_at": t}
            if arm == arms.CONTROL:
                answer |= {"source": "heuristic", "reason": "ab_control"}
            for k, unit in enumerate(ids):
                hit = k < hits[job][arm]
                if job == "churn":
                    rows.append(
                        answer | {"entity_id": unit, "prediction": 0.8, "logged_at": t_churn}
                    )
                    if hit:  # retained: a completed order within 30 days
                        orders.append(order(f"o-{unit}", unit, t_churn + timedelta(days=5)))
                elif job == "upsell":
                    rows.append(
                        answer | {"entity_id": unit, "subject_id": "OF-AB", "prediction": 0.3}
                    )
                    shown.append(
                        impression(f"i-{unit}", unit, "OF-AB", t + timedelta(minutes=5), hit)
                    )
                else:
                    rows.append(
                        answer | {"entity_id": "ZX", "subject_id": unit, "prediction": 25.0}
                    )
                    minutes = 40 if hit else 20  # promised in 30
                    delivered.append(delivery(unit, t, t + timedelta(minutes=minutes), zone="ZX"))
    # Answers while the experiment was suspended, and answers without an arm: all wins for
    # the treatment, so counting them would hide the regression.
    for k in range(300):
        unit = f"OUT{k}"
        left_out = {"arm": None} if k % 3 == 2 else {"source": "heuristic", "reason": "flag_off"}
        rows.append(
            {"job": "upsell", "entity_id": unit, "arm": arms.TREATMENT, "logged_at": t}
            | {"subject_id": "OF-AB", "prediction": 0.3}
            | left_out
        )
        shown.append(impression(f"i-{unit}", unit, "OF-AB", t + timedelta(minutes=5), True))
    log_predictions(rt, rows, version=1)
    load(rt, wh.orders, orders)
    load(rt, wh.offer_impressions, shown)
    load(rt, wh.deliveries, delivered)


REGRESSION = {
    "churn": {arms.CONTROL: 360, arms.TREATMENT: 270},  # retention 60 % -> 45 %
    "upsell": {arms.CONTROL: 180, arms.TREATMENT: 120},  # acceptance 30 % -> 20 %
    "eta": {arms.CONTROL: 60, arms.TREATMENT: 120},  # late 10 % -> 20 %
}
NO_EFFECT = {job: {arms.CONTROL: 180, arms.TREATMENT: 180} for job in REGRESSION}


@pytest.fixture
def world(migrated):
    wh.create_tables(migrated.warehouse)
    return migrated


def test_check_on_real_tables_trips_and_serving_answers_guardrail(serving_rt):
    rt = serving_rt
    experiment(rt, hits=REGRESSION)
    found = {r.job: r for r in guardrails.check(rt)}
    assert set(found) == {"churn", "upsell", "eta"}
    for job, result in found.items():
        c = result.comparison
        expected = REGRESSION[job]
        assert (c.control.hits, c.control.n) == (expected[arms.CONTROL], N), job
        assert (c.treatment.hits, c.treatment.n) == (expected[arms.TREATMENT], N), job
        assert result.decision == "breach", guardrails.describe(result)
        assert result.trip is not None and result.trip.kind == "guardrail"
        assert [a.subject for a in result.opened] == [result.metric.name]
        assert result.model_version == 1
    with rt.store.connect() as conn:
        stored = (
            conn.execute(select(monitor_results).where(monitor_results.c.monitor == "guardrail"))
            .mappings()
            .all()
        )
    assert len(stored) == 12 and {r["status"] for r in stored} == {"alert"}
    upsell_p = next(r for r in stored if r["job"] == "upsell" and r["statistic"] == "p_value")
    assert upsell_p["value"] == pytest.approx(found["upsell"].comparison.p_value)
    assert json.loads(upsell_p["detail"])["treatment"] == {"hits": 120, "n": N, "rate": 0.2}

    # A second check keeps the incidents and the trips: nothing new is raised.
    again = guardrails.check(rt)
    assert all(r.decision == "breach" and not r.opened and r.trip is None for r in again)
    with rt.store.connect() as conn:
        assert conn.execute(select(alerts_table)).all().__len__() == 3

    svc = make_service(rt)
    try:
        answer = svc.extension.dossier(a_customer(rt))
        assert answer.churn.reason == "guardrail" and answer.upsell.reason == "guardrail"
        assert svc.extension.eta(a_zone(rt), 3.0).reason == "guardrail"
    finally:
        svc.close()

    # An engineer's reset starts a new experiment: the old answers do not trip it again.
    assert trips.clear(rt.store, "upsell", actor="oncall", at=NOW) == 1
    (after,) = guardrails.check(rt, "upsell")
    assert after.decision == "insufficient" and after.since == NOW and after.trip is None
    assert "upsell" not in trips.active(rt.store)


def test_no_effect_on_real_tables_is_ok_and_resolves_the_alert(world):
    experiment(world, hits=NO_EFFECT)
    from mlops.monitoring import alerts

    alerts.check(world, "guardrail", "eta", {"late_share": "an old breach"})
    found = {r.job: r for r in guardrails.check(world)}
    assert {r.decision for r in found.values()} == {"ok"}
    assert all(r.trip is None and not r.opened for r in found.values())
    assert trips.active(world.store) == {}
    assert alerts.open_alerts(world) == []  # the old incident is resolved


def test_too_few_units_on_real_tables_write_insufficient_and_trip_nothing(world):
    experiment(world, n=100, hits={j: {arms.CONTROL: 90, arms.TREATMENT: 0} for j in REGRESSION})
    found = guardrails.check(world, "upsell")
    assert [r.decision for r in found] == ["insufficient"]
    assert trips.active(world.store) == {}
    with world.store.connect() as conn:
        stored = conn.execute(select(monitor_results)).mappings().all()
        assert conn.execute(select(alerts_table)).all() == []
    assert {r["status"] for r in stored} == {"insufficient"} and len(stored) == 4


def test_no_answers_logged_is_insufficient_for_every_job(world):
    found = guardrails.check(world)
    assert [(r.job, r.decision) for r in found] == [
        ("churn", "insufficient"),
        ("upsell", "insufficient"),
        ("eta", "insufficient"),
    ]
    assert all(r.comparison.control == Arm(0, 0) == r.comparison.treatment for r in found)
    assert all(r.model_version is None for r in found)
    assert trips.active(world.store) == {}


def test_a_breach_with_auto_fallback_off_alerts_without_a_trip(world):
    experiment(world, hits=REGRESSION)
    rt = Runtime(
        settings=world.settings.model_copy(
            update={"auto_fallback": {"churn": False, "upsell": False, "eta": False}}
        ),
        clock=world.clock,
    )
    try:
        (result,) = guardrails.check(rt, "eta")
    finally:
        rt.close()
    assert result.decision == "breach" and len(result.opened) == 1 and result.trip is None
    assert trips.active(world.store) == {}


def test_check_without_recording_writes_nothing(world):
    experiment(world, hits=REGRESSION)
    (result,) = guardrails.check(world, "churn", record=False)
    assert result.decision == "breach" and result.trip is None
    with world.store.connect() as conn:
        assert conn.execute(select(monitor_results)).all() == []
    assert trips.active(world.store) == {}


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def cli(world, monkeypatch, capsys):
    return cli_on(world, monkeypatch, capsys)


def test_command_prints_the_arms_and_a_summary(cli, world, monkeypatch):
    from mlops.cli import output

    monkeypatch.setattr(output.console, "width", 160)  # the table's width, not the terminal's
    experiment(world, hits={**NO_EFFECT, "upsell": REGRESSION["upsell"]})
    code, out, err = cli("monitor", "guardrails", "--since", "60d")
    assert code == 0, err
    assert "acceptance_rate" in out and "30.0% (600)" in out and "20.0% (600)" in out
    assert "-10.0% [-14.1%, -5.9%]" in out and "breach (tripped)" in out
    assert "3 job(s) compared: 1 breach, 0 warn, 2 ok, 0 without enough data" in out
    assert "1 alert(s) opened; trips recorded: upsell." in out
    assert "mlops flags clear-trips" in out
    code, out, err = cli("monitor", "guardrails", "eta", "--since", "2026-05-28")
    assert code == 0, err
    assert "late_share" in out and "1 job(s) compared: 0 breach, 0 warn, 1 ok" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "unknown job"),
        (("--since", "yesterday"), "cannot read --since 'yesterday'"),
        (("--since", "2030-01-01"), "not in the past"),
    ],
)
def test_command_rejects_bad_input_with_exit_2(cli, args, message):
    code, out, err = cli("monitor", "guardrails", *args)
    assert code == 2
    assert message in err and "Traceback" not in out + err
