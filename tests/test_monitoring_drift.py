"""The drift monitor on real storage (SQLite and PostgreSQL) and a real MLflow registry: figures
written, alerts raised once, the fallback tripped, and serving answering from the heuristic.

The session's champions were trained on another synthetic warehouse than the one the serving
fixture holds, so their references differ from these live values by construction. Tests that
need a reference matching the live values register, in a private copy of the registry, a
champion whose reference distributions are built by training's own function from the store's
current online values: the check then reads it from MLflow like any champion's."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select

from mlops.db.schema import alerts as alerts_table
from mlops.db.schema import monitor_results
from mlops.errors import InputError
from mlops.monitoring import dashboard, drift, report, stats
from mlops.runtime import Runtime
from mlops.serving import trips
from mlops.store import ingest
from tests.cli_support import invoke
from tests.conftest import NOW
from tests.repo_support import JOBS, REPO
from tests.serving_support import a_customer, make_service, mlflow_copy


def _online_frame(rt, job: str) -> pd.DataFrame:
    from mlops.db.schema import feature_values
    from mlops.store.online import get_online_features

    with rt.store.connect() as conn:
        ids = conn.execute(
            select(feature_values.c.entity_id).where(feature_values.c.job == job)
        ).scalars()
        found = get_online_features(rt.store, rt.clock, rt.repo.job(job), list(ids))
    return pd.DataFrame([e.values() for e in found.values()])


def registry_matching_live_values(
    rt, trained_home, tmp_path, jobs=("churn", "upsell"), edit=lambda job, reference: None
):
    """A runtime on ``rt``'s store and clock whose private registry's champion of each job has
    reference distributions of the store's current online values (then ``edit``-ed)."""
    from mlflow import MlflowClient

    from mlops.training import tracking, tracking_client, tracking_versions
    from mlops.training.reference import reference_distributions

    uri = mlflow_copy(trained_home, tmp_path / "registry")
    settings = rt.settings.model_copy(update={"mlflow_tracking_uri": uri})
    tracking_client.configure(settings)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "drift-tests", artifact_location=(tmp_path / "artifacts").resolve().as_uri()
    )
    for job in jobs:
        spec = REPO.job(job)
        categorical = [f.name for f in spec.features if f.dtype == "category"]
        reference = reference_distributions(_online_frame(rt, job), spec.feature_names, categorical)
        edit(job, reference)
        run = client.create_run(experiment)
        client.log_text(run.info.run_id, json.dumps(reference), tracking.REFERENCE_ARTIFACT)
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(job, run.info.artifact_uri, run.info.run_id)
        client.set_registered_model_alias(job, tracking_versions.CHAMPION, version.version)
    return Runtime(settings=settings, clock=rt.clock)


def shift_order_amounts(rt, factor: float = 10.0) -> None:
    """Every order costs ``factor`` times as much in the warehouse: spend features move."""
    from mlops.examples.marketplace.warehouse import orders

    with rt.warehouse.begin() as conn:
        conn.execute(orders.update().values(total_amount=orders.c.total_amount * factor))


def _rows(rt, **where):
    t = monitor_results
    query = select(t).where(*(t.c[k] == v for k, v in where.items())).order_by(t.c.result_id)
    with rt.store.connect() as conn:
        return conn.execute(query).all()


def _open_alerts(rt, job: str) -> list[str]:
    t = alerts_table
    with rt.store.connect() as conn:
        return list(
            conn.execute(
                select(t.c.subject)
                .where(t.c.job == job, t.c.status == "open")
                .order_by(t.c.subject)
            ).scalars()
        )


def test_unchanged_values_raise_no_alert(serving_rt, trained_home, tmp_path, clock):
    rt = registry_matching_live_values(serving_rt, trained_home, tmp_path)
    try:
        # An hour later, the warehouse unchanged: a fresh snapshot of the same customers.
        clock.advance(timedelta(hours=1))
        ingest.refresh(serving_rt, "churn")
        (result,) = drift.check(rt, "churn")
    finally:
        rt.close()
    spec = REPO.job("churn")
    assert result.error is None and result.model_version == 2
    assert [f.feature for f in result.features] == spec.feature_names
    assert {f.status for f in result.features} <= {"ok", "warn"}, [
        (f.feature, f.psi, f.pvalue) for f in result.features
    ]
    assert result.alerting == [] and result.trip is None and result.opened == []
    rows = _rows(serving_rt, job="churn")
    assert len(rows) == 2 * len(spec.feature_names)
    assert {r.statistic for r in rows} == {"psi", "ks_pvalue", "chi2_pvalue"}
    plan = {r.statistic: r for r in rows if r.feature == "plan"}
    assert set(plan) == {"psi", "chi2_pvalue"}
    assert plan["psi"].threshold == 0.25 and plan["chi2_pvalue"].threshold == 0.01
    assert all(r.monitor == "drift" and r.model_version == 2 for r in rows)
    assert all(r.checked_at == NOW + timedelta(hours=1) for r in rows)
    assert {r.sample_size for r in rows if r.statistic == "psi"} == {300}
    days = {r.statistic: r.sample_size for r in rows if r.feature == "days_since_last_order"}
    assert 0 < days["ks_pvalue"] < 300  # KS sees the customers who have ordered
    assert _open_alerts(serving_rt, "churn") == []
    assert trips.active(serving_rt.store) == {}


def test_shifted_values_alert_trip_and_serving_answers_from_the_heuristic(
    serving_rt, trained_home, tmp_path, clock
):
    """The chain the issue asks for: shifted feature values -> drift check -> drift alert ->
    the endpoint answers the job from its heuristic with reason ``drift``."""
    rt = registry_matching_live_values(serving_rt, trained_home, tmp_path)
    service = make_service(serving_rt)  # the session's registry: real champion models
    customer = a_customer(serving_rt)
    try:
        assert service.extension.dossier(customer).churn.source == "model"
        (before,) = drift.check(rt, "churn")
        assert before.alerting == [] and before.trip is None

        shift_order_amounts(serving_rt)
        clock.advance(timedelta(hours=1))
        ingest.refresh(serving_rt, "churn")
        (after,) = drift.check(rt, "churn")

        alerting = {f.feature for f in after.alerting}
        assert {"spend_90d", "avg_order_value_90d"} <= alerting
        assert "plan" not in alerting and "orders_30d" not in alerting  # counts did not move
        spend = next(f for f in after.features if f.feature == "spend_90d")
        assert spend.psi >= 0.25 and spend.pvalue < 0.01
        rows = _rows(serving_rt, job="churn", feature="spend_90d", checked_at=clock.now())
        assert [(r.statistic, r.status) for r in rows] == [("psi", "alert"), ("ks_pvalue", "alert")]
        # The bins the PSI compared are kept, for the dashboard's per-feature view: tenfold
        # amounts move the live values past the reference's deciles, into the top bin.
        bins = json.loads(rows[0].detail)["bins"]
        assert bins["labels"][-1] == "missing" and len(bins["labels"]) == len(bins["live"])
        assert stats.psi(bins["reference"], bins["live"]) == pytest.approx(rows[0].value)
        assert sum(bins["live"]) == pytest.approx(1.0) and bins["live"][-2] > 0.5
        assert bins["reference"][-2] < 0.2  # the top decile, before
        board = dashboard.gather(serving_rt, since=timedelta(days=1))
        (view,) = [p for p in board.panels if p.key == "drift_features"]
        shown = view.frames["bins"]
        spend_bins = shown[(shown["job"] == "churn") & (shown["feature"] == "spend_90d")]
        assert spend_bins["live"].tolist() == bins["live"]
        assert spend_bins["label"].tolist() == bins["labels"]
        fig = report.figure(view, board.window)
        first = fig.layout.updatemenus[0].buttons[0]
        assert first.label.startswith("churn · ") and "PSI" in first.label  # most drifted first
        assert len(fig.layout.updatemenus[0].buttons) == shown.groupby(["job", "feature"]).ngroups
        assert sorted(_open_alerts(serving_rt, "churn")) == sorted(alerting)
        assert {a.subject for a in after.opened} == alerting
        assert after.trip is not None and after.trip.kind == "drift"
        assert "spend_90d" in after.trip.detail
        assert [t.kind for t in trips.active(serving_rt.store)["churn"]] == ["drift"]

        service.refresh_controls()
        dossier = service.extension.dossier(customer)
        assert dossier.churn.source == "heuristic" and dossier.churn.reason == "drift"
        assert dossier.upsell.source == "model"  # only the drifting job falls back

        # Checked again while it lasts: the same incidents, no new alert, no second trip.
        (again,) = drift.check(rt, "churn")
        assert again.opened == [] and again.trip is None
        with serving_rt.store.connect() as conn:
            count = select(func.count()).select_from(alerts_table)
            assert conn.execute(count).scalar() == len(alerting)
    finally:
        service.close()
        rt.close()


def test_no_trip_when_automatic_fallback_is_off(serving_rt, trained_home, tmp_path, clock):
    rt = registry_matching_live_values(serving_rt, trained_home, tmp_path, jobs=("churn",))
    off = Runtime(
        settings=rt.settings.model_copy(update={"auto_fallback": {"churn": False}}), clock=clock
    )
    try:
        shift_order_amounts(serving_rt)
        clock.advance(timedelta(hours=1))
        ingest.refresh(serving_rt, "churn")
        (result,) = drift.check(off, "churn")
    finally:
        off.close()
        rt.close()
    assert result.alerting and result.opened and result.trip is None
    assert trips.active(serving_rt.store) == {}


def test_features_the_champion_knew_otherwise_are_left_out(serving_rt, trained_home, tmp_path):
    def edit(job, reference):
        # As if the champion had seen tenure_days as a category, and a feature since removed.
        shares = {"new": 0.5, "old": 0.5}
        reference["tenure_days"] = {"kind": "category", "rows": 300, "shares": shares}
        reference["retired_feature"] = dict(reference["orders_30d"])

    rt = registry_matching_live_values(serving_rt, trained_home, tmp_path, ("churn",), edit)
    try:
        (result,) = drift.check(rt, "churn")
    finally:
        rt.close()
    names = [f.feature for f in result.features]
    assert names == [n for n in REPO.job("churn").feature_names if n != "tenure_days"]
    assert result.alerting == []


def test_window_compares_the_snapshots_of_the_period(serving_rt, trained_home, tmp_path, clock):
    rt = registry_matching_live_values(serving_rt, trained_home, tmp_path, jobs=("churn",))
    try:
        shift_order_amounts(serving_rt)
        clock.advance(timedelta(hours=1))
        ingest.refresh(serving_rt, "churn")  # history: NOW (as referenced) and NOW+1h (shifted)
        # The last 30 minutes hold only the shifted snapshot.
        (recent,) = drift.check(rt, "churn", window=timedelta(minutes=30))
        # Two hours hold both: twice the values, half of them unchanged.
        (both,) = drift.check(rt, "churn", window=timedelta(hours=2))
        # Ten days on, a one-day window holds no snapshot at all.
        clock.advance(timedelta(days=10))
        (none,) = drift.check(rt, "churn", window=timedelta(days=1))
    finally:
        rt.close()
    recent_spend, both_spend = (
        next(f for f in r.features if f.feature == "spend_90d") for r in (recent, both)
    )
    assert recent.source.startswith("history") and recent_spend.sample_size == 300
    assert recent_spend.status == "alert"
    assert both_spend.sample_size == 600
    assert both_spend.psi < recent_spend.psi
    assert {f.status for f in none.features} == {"insufficient"}
    assert {f.sample_size for f in none.features} == {0}
    assert none.trip is None
    with pytest.raises(InputError, match="not positive"):
        drift.check(rt, "churn", window=timedelta(0))


def test_champion_reference_from_the_registry_and_too_few_values(serving_rt):
    from mlops.training import tracking_artifacts, tracking_versions

    # The session's champions: their reference comes from MLflow, their version is recorded.
    strict = Runtime(
        settings=serving_rt.settings.model_copy(update={"drift_min_sample": 301}),
        clock=serving_rt.clock,
    )
    try:
        results = {r.job: r for r in drift.check(strict)}
    finally:
        strict.close()
    assert set(results) == set(JOBS)
    for job, result in results.items():
        assert result.error is None
        assert result.model_version == tracking_versions.champion_version(serving_rt.settings, job)
        reference = tracking_artifacts.reference_for(serving_rt.settings, job, result.model_version)
        assert {f.feature for f in result.features} == set(reference) & set(
            REPO.job(job).feature_names
        )
        # 300 customers and 20 zones are fewer than 301 values: judged on nothing.
        assert {f.status for f in result.features} == {"insufficient"}
        assert result.trip is None and result.opened == []
    assert len(_rows(serving_rt)) == 2 * sum(len(r.features) for r in results.values())
    assert {r.status for r in _rows(serving_rt)} == {"insufficient"}
    assert _open_alerts(serving_rt, "churn") == [] and trips.active(serving_rt.store) == {}


def test_a_job_without_champion_is_reported_and_the_others_still_checked(
    serving_rt, trained_home, tmp_path
):
    from mlops.errors import NotReadyError
    from mlops.training import tracking_versions

    uri = mlflow_copy(trained_home, tmp_path / "registry")
    rt = Runtime(
        settings=serving_rt.settings.model_copy(
            update={"mlflow_tracking_uri": uri, "drift_min_sample": 10_000}
        ),
        clock=serving_rt.clock,
    )
    try:
        tracking_versions.delete_alias(rt.settings, "eta", tracking_versions.CHAMPION)
        results = {r.job: r for r in drift.check(rt, "all")}
    finally:
        rt.close()
    assert isinstance(results["eta"].error, NotReadyError)
    assert "mlops train eta" in results["eta"].error.hint
    assert results["eta"].status == "not_ready" and results["eta"].features == []
    assert results["churn"].error is None and results["churn"].features
    assert results["upsell"].error is None and results["upsell"].features
    assert not _rows(serving_rt, job="eta")

    # No registry at all: every job says what to run, nothing crashes, nothing is created.
    empty = tmp_path / "empty"
    none = Runtime(
        settings=serving_rt.settings.model_copy(
            update={"mlflow_tracking_uri": f"sqlite:///{empty / 'mlflow.db'}"}
        ),
        clock=serving_rt.clock,
    )
    try:
        found = drift.check(none)
    finally:
        none.close()
    assert [r.status for r in found] == ["not_ready"] * len(JOBS)
    assert all("mlops train" in r.error.hint for r in found)
    assert not empty.exists()


@pytest.fixture
def cli(serving_rt, monkeypatch, capsys):
    def run(*args: str, registry: str | None = None) -> tuple[int, str, str]:

        s = serving_rt.settings
        monkeypatch.setenv("MLOPS_HOME", str(s.home))
        monkeypatch.setenv("MLOPS_DATABASE_URL", s.store_url)
        monkeypatch.setenv("MLOPS_WAREHOUSE_URL", s.warehouse_db_url)
        monkeypatch.setenv("MLOPS_MLFLOW_TRACKING_URI", registry or s.mlflow_uri)
        monkeypatch.setenv("COLUMNS", "160")
        return invoke(capsys, *args)

    return run


def test_cli_reports_drift_and_exits_0_even_with_alerts(
    cli, serving_rt, trained_home, tmp_path, clock
):
    rt = registry_matching_live_values(serving_rt, trained_home, tmp_path, jobs=("churn",))
    registry = rt.settings.mlflow_uri
    rt.close()
    # The command runs on the wall clock: a window of ten years holds the snapshot at NOW.
    code, out, err = cli("monitor", "drift", "churn", "--window", "3650d", registry=registry)
    assert code == 0, err
    assert "churn: history" in out and "vs champion v2" in out
    assert "spend_90d" in out and "tenure_days" in out and "plan" in out
    assert "no drift alert in churn" in out

    shift_order_amounts(serving_rt)
    clock.advance(timedelta(hours=1))
    ingest.refresh(serving_rt, "churn")
    code, out, err = cli("monitor", "drift", "churn", registry=registry)
    assert code == 0, err
    assert "churn: online values vs champion v2" in out
    assert "drift alert churn:" in out and "spend_90d" in out
    assert "alerts raised: 2 new" in out and "trips recorded: churn tripped now" in out
    assert "mlops flags clear-trips" in out
    assert [t.kind for t in trips.active(serving_rt.store)["churn"]] == ["drift"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("monitor", "drift", "nope"), "unknown job"),
        (("monitor", "drift", "churn", "--window", "7x"), "cannot read duration"),
        (("monitor", "drift", "churn", "--window", "0d"), "not positive"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2 and message in err
    assert "Traceback" not in out + err


def test_cli_without_champion_says_what_to_run(cli, tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"
    code, _, err = cli("monitor", "drift", "churn", registry=empty)
    assert code == 2 and "mlops train churn" in err
    code, _, err = cli("monitor", "drift", registry=empty)
    assert code == 2 and "no job has a champion" in err and "mlops train" in err
