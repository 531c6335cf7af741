"""Accuracy monitoring: the prediction log joined with warehouse outcomes, on real storage.

Predictions go through the real PredictionLog writer, outcomes through the warehouse's own
bulk loader; the FrozenClock moves to make labels fall due. Metrics are checked against
sklearn on the rows the test generated (not against ``labelled()``'s own output)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    roc_auc_score,
)
from sqlalchemy import select, text

from mlops.db.schema import alerts as alerts_table
from mlops.db.schema import monitor_results
from mlops.errors import InputError
from mlops.examples.marketplace import warehouse as wh
from mlops.monitoring import accuracy, labelling
from tests.conftest import NOW
from tests.monitoring_support import cli_on, delivery, impression, load, log_predictions, order

DAY = timedelta(days=1)


@pytest.fixture
def world(migrated):
    wh.create_tables(migrated.warehouse)
    return migrated


def labels(frame: pd.DataFrame, key: str = "entity_id") -> dict:
    return dict(zip(frame[key], frame["label"], strict=True))


# --- label timing -------------------------------------------------------------------------


def test_churn_label_is_no_completed_order_within_30_days_and_waits_until_due(world, clock):
    t = NOW - timedelta(days=40)
    log_predictions(
        world,
        [
            {"job": "churn", "entity_id": "stays", "prediction": 0.2, "logged_at": t},
            {"job": "churn", "entity_id": "leaves", "prediction": 0.8, "logged_at": t},
            {"job": "churn", "entity_id": "edge_in", "prediction": 0.3, "logged_at": t},
            {"job": "churn", "entity_id": "edge_out", "prediction": 0.6, "logged_at": t},
            # Exactly 30 days old: due.
            {
                "job": "churn",
                "entity_id": "just_due",
                "prediction": 0.5,
                "logged_at": NOW - 30 * DAY,
            },
            # Ten days old: not due, even though no order has come (it is no negative yet).
            {"job": "churn", "entity_id": "recent", "prediction": 0.9, "logged_at": NOW - 10 * DAY},
        ],
    )
    load(
        world,
        wh.orders,
        [
            order("o1", "stays", t + 5 * DAY),
            order("o2", "leaves", t - DAY),  # before the prediction: does not count
            order("o3", "leaves", t + 3 * DAY, status="cancelled"),  # not completed
            order("o4", "leaves", t + 31 * DAY),  # after the window
            order("o5", "edge_in", t),  # at the prediction's instant: inside
            order("o6", "edge_out", t + 30 * DAY),  # exactly 30 days later: outside
        ],
    )
    frame = labelling.labelled(world, "churn")
    assert list(frame.columns) == list(labelling.LABELLED_COLUMNS)
    assert labels(frame) == {
        "stays": 0.0,
        "leaves": 1.0,
        "edge_in": 0.0,
        "edge_out": 1.0,
        "just_due": 1.0,
    }
    clock.advance(20 * DAY)  # the recent prediction's window has closed
    assert labels(labelling.labelled(world, "churn"))["recent"] == 1.0
    load(world, wh.orders, [order("o7", "recent", NOW - 5 * DAY)])
    assert labels(labelling.labelled(world, "churn"))["recent"] == 0.0


def test_upsell_label_is_the_shown_offer_accepted_and_unshown_offers_are_left_out(world, clock):
    t = NOW - 3 * DAY
    rows = [
        ("c1", "o1", t),  # shown, accepted
        ("c1", "o2", t),  # shown, declined
        ("c2", "o1", t),  # only shown before the prediction: not shown
        ("c3", "o1", t),  # shown 25 h later: outside the horizon
        ("c4", "o1", t),  # shown twice: the first impression counts
        ("c5", "o9", t),  # another offer shown to c5: this one was not
        ("c6", "o1", NOW - timedelta(hours=2)),  # not due yet
    ]
    log_predictions(
        world,
        [
            {"job": "upsell", "entity_id": c, "subject_id": o, "prediction": 0.4, "logged_at": at}
            for c, o, at in rows
        ]
        # A dossier with no offer to propose logs no offer id.
        + [{"job": "upsell", "entity_id": "c1", "prediction": 0.1, "logged_at": t}],
    )
    hour = timedelta(hours=1)
    load(
        world,
        wh.offer_impressions,
        [
            impression("i1", "c1", "o1", t + hour, True),
            impression("i2", "c1", "o2", t + 2 * hour, False),
            impression("i3", "c2", "o1", t - hour, True),
            impression("i4", "c3", "o1", t + 25 * hour, True),
            impression("i5", "c4", "o1", t + hour, False),
            impression("i6", "c4", "o1", t + 2 * hour, True),
            impression("i7", "c5", "o1", t + hour, True),
            impression("i8", "c6", "o1", NOW - hour, True),
        ],
    )
    frame = labelling.labelled(world, "upsell")
    expected = {("c1", "o1"): 1.0, ("c1", "o2"): 0.0, ("c4", "o1"): 0.0}
    assert upsell_labels(frame) == expected
    clock.advance(DAY)  # c6's day has passed; the rest is unchanged
    assert upsell_labels(labelling.labelled(world, "upsell")) == {**expected, ("c6", "o1"): 1.0}


def upsell_labels(frame: pd.DataFrame) -> dict:
    return {
        (c, o): y for c, o, y in zip(frame.entity_id, frame.subject_id, frame.label, strict=True)
    }


def test_eta_label_is_the_actual_minutes_of_delivered_deliveries(world):
    t = NOW - timedelta(hours=3)
    log_predictions(
        world,
        [
            {
                "job": "eta",
                "entity_id": "z1",
                "subject_id": "d1",
                "prediction": 35.0,
                "logged_at": t,
            },
            {
                "job": "eta",
                "entity_id": "z1",
                "subject_id": "d2",
                "prediction": 30.0,
                "logged_at": t,
            },
            {
                "job": "eta",
                "entity_id": "z1",
                "subject_id": "nope",
                "prediction": 9.0,
                "logged_at": t,
            },
            {"job": "eta", "entity_id": "z1", "prediction": 20.0, "logged_at": t},  # no delivery id
        ],
    )
    load(
        world,
        wh.deliveries,
        [delivery("d1", t, t + timedelta(minutes=41, seconds=30)), delivery("d2", t, None)],
    )
    frame = labelling.labelled(world, "eta")
    assert labels(frame, "subject_id") == {"d1": 41.5}
    assert frame.loc[0, "prediction"] == 35.0
    with world.warehouse.begin() as conn:  # d2 arrives
        conn.execute(
            wh.deliveries.update()
            .where(wh.deliveries.c.delivery_id == "d2")
            .values(delivered_at=t + timedelta(minutes=50))
        )
    assert labels(labelling.labelled(world, "eta"), "subject_id") == {"d1": 41.5, "d2": 50.0}


def test_labelled_columns_since_until_and_provenance(world):
    t = NOW - timedelta(hours=3)
    log_predictions(
        world,
        [
            {
                "job": "eta",
                "entity_id": "z1",
                "subject_id": f"d{i}",
                "prediction": 30.0 + i,
                "logged_at": t + timedelta(minutes=i),
                "source": "heuristic" if i % 2 else "model",
                "reason": "stale_features" if i % 2 else None,
                "arm": "control" if i % 2 else "treatment",
            }
            for i in range(4)
        ],
    )
    load(world, wh.deliveries, [delivery(f"d{i}", t, t + timedelta(minutes=40)) for i in range(4)])
    frame = labelling.labelled(
        world, "eta", since=t + timedelta(minutes=1), until=t + timedelta(minutes=3)
    )
    assert frame["subject_id"].tolist() == ["d1", "d2"]
    first = frame.iloc[0]
    assert (first.job, first.endpoint, first.source, first.reason, first.arm) == (
        "eta",
        "eta",
        "heuristic",
        "stale_features",
        "control",
    )
    assert pd.isna(first.model_version) and frame.iloc[1].model_version == 3
    assert first.logged_at == pd.Timestamp(t + timedelta(minutes=1))
    assert {c: str(frame[c].dtype) for c in ("logged_at", "prediction", "label")} == {
        "logged_at": "datetime64[ns]",
        "prediction": "float64",
        "label": "float64",
    }
    empty = labelling.labelled(world, "churn")
    assert empty.empty and list(empty.columns) == list(labelling.LABELLED_COLUMNS)
    with pytest.raises(InputError, match="unknown job"):
        labelling.labelled(world, "nope")


# --- metrics ------------------------------------------------------------------------------


def simulate(world, days: int = 14, per_day: int = 40, seed: int = 3):
    """Upsell and ETA answers over ``days`` days before NOW - 2 days, model ones informative,
    heuristic ones noise; returns the generated rows with their true labels."""
    rng = np.random.default_rng(seed)
    start = NOW.replace(hour=0) - timedelta(days=days + 2)
    preds, shown, deliveries, truth = [], [], [], []
    for i in range(days * per_day):
        at = start + timedelta(seconds=int(rng.integers(0, days * 86400)))
        source = "model" if i % 3 else "heuristic"
        accepted = bool(rng.random() < 0.3)
        p = float(np.clip((0.6 if accepted else 0.35) + rng.normal(0, 0.2), 0.01, 0.99))
        if source == "heuristic":
            p = float(rng.uniform(0.05, 0.6))
        customer, offer = f"c{i}", f"o{i % 5}"
        preds.append(
            {"job": "upsell", "entity_id": customer, "subject_id": offer, "prediction": p}
            | {"logged_at": at, "source": source}
        )
        shown.append(impression(f"i{i}", customer, offer, at + timedelta(minutes=5), accepted))
        minutes = float(rng.gamma(6, 6))
        guess = minutes + rng.normal(0, 4 if source == "model" else 12)
        preds.append(
            {"job": "eta", "entity_id": "z1", "subject_id": f"d{i}", "prediction": guess}
            | {"logged_at": at, "source": source}
        )
        deliveries.append(delivery(f"d{i}", at, at + timedelta(seconds=round(minutes * 60))))
        truth.append(
            {
                "at": at,
                "source": source,
                "p": p,
                "accepted": float(accepted),
                "guess": guess,
                "minutes": round(minutes * 60) / 60,
            }
        )
    log_predictions(world, preds)
    load(world, wh.offer_impressions, shown)
    load(world, wh.deliveries, deliveries)
    return pd.DataFrame(truth)


@pytest.mark.parametrize("by", ["day", "week"])
def test_metrics_per_period_match_sklearn_for_model_and_heuristic_apart(world, by):
    world.settings.accuracy_min_sample = 1
    truth = simulate(world)
    found = accuracy.report(world, since=NOW - 30 * DAY, by=by, record=False)
    day = truth["at"].dt.normalize()
    truth["period"] = day if by == "day" else day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    expected_groups = 0
    for (period, source), g in truth.groupby(["period", "source"]):
        expected_groups += 1
        for job in ("upsell", "eta"):
            f = found.frame
            row = f[(f.job == job) & (f.period_start == period) & (f.source == source)]
            assert len(row) == 1, (job, period, source)
            row = row.iloc[0]
            assert row.n == len(g)
            if job == "eta":
                assert row.mae == pytest.approx(mean_absolute_error(g.minutes, g.guess))
                assert row.value == row.mae and row.statistic == "mae"
                continue
            if g.accepted.nunique() == 2:
                assert row.roc_auc == pytest.approx(roc_auc_score(g.accepted, g.p))
                assert row.pr_auc == pytest.approx(average_precision_score(g.accepted, g.p))
            else:
                assert np.isnan(row.roc_auc) and row.status == "insufficient"
            assert row.brier == pytest.approx(brier_score_loss(g.accepted, g.p))
            assert row.positive_rate == pytest.approx(g.accepted.mean())
    assert len(found.frame) == 2 * expected_groups  # nothing else: churn has no predictions
    assert set(found.frame.source) == {"model", "heuristic"}
    # The model is the informative one in every week.
    weekly = accuracy.report(world, job="eta", since=NOW - 30 * DAY, by="week", record=False)
    by_source = weekly.frame.groupby("source")["mae"].mean()
    assert by_source["model"] < by_source["heuristic"]
    if by == "week":
        assert found.frame.period.str.fullmatch(r"\d{4}-W\d{2}").all()
        assert (found.frame.period_start.dt.day_of_week == 0).all()


def test_report_rejects_bad_input(world):
    with pytest.raises(InputError, match="--by"):
        accuracy.report(world, by="month")
    with pytest.raises(InputError, match="unknown job"):
        accuracy.report(world, "nope")
    with pytest.raises(InputError, match="not in the past"):
        accuracy.report(world, since=NOW + timedelta(hours=1))


# --- results and alerts -------------------------------------------------------------------


def eta_day(world, day: datetime, error: float, n: int, source: str = "model", tag: str = ""):
    """``n`` delivered ETA predictions on ``day``, each off by ``error`` minutes."""
    preds, rows = [], []
    for i in range(n):
        at = day + timedelta(minutes=10 + i)
        did = f"{tag}{day:%m%d}{source[0]}{i}"
        preds.append(
            {"job": "eta", "entity_id": "z1", "subject_id": did, "prediction": 30.0 + error}
            | {"logged_at": at, "source": source}
        )
        rows.append(delivery(did, at, at + timedelta(minutes=30)))
    log_predictions(world, preds)
    load(world, wh.deliveries, rows)


def open_alerts(world):
    with world.store.connect() as conn:
        return conn.execute(select(alerts_table).where(alerts_table.c.kind == "accuracy")).all()


def test_results_are_written_and_the_alert_opens_once_then_resolves(world, clock):
    world.settings.accuracy_min_sample = 20
    world.settings.accuracy_floor = {**world.settings.accuracy_floor, "eta": 8.0}
    yesterday = NOW.replace(hour=0) - DAY
    eta_day(world, yesterday - DAY, error=3.0, n=25)  # fine the day before
    eta_day(world, yesterday, error=12.0, n=25)  # the latest complete day: past the ceiling
    eta_day(world, yesterday, error=20.0, n=25, source="heuristic")  # the heuristic: no alert
    eta_day(world, NOW.replace(hour=0), error=30.0, n=25, tag="t")  # today: incomplete

    first = accuracy.report(world, "eta", since=NOW - 5 * DAY)
    assert [(a.job, a.subject) for a in first.opened] == [("eta", "model")]
    assert "MAE 12.000 above the ceiling 8" in first.opened[0].message
    assert first.latest("eta")["period"] == f"{yesterday:%Y-%m-%d}"
    with world.store.connect() as conn:
        rows = conn.execute(
            select(monitor_results).where(monitor_results.c.checked_at == NOW)
        ).all()
    assert first.written == len(rows) == 4
    results = {r.feature: r for r in rows}
    bad = results[f"day:{yesterday:%Y-%m-%d}:model"]
    assert (bad.monitor, bad.job, bad.statistic, bad.status) == ("accuracy", "eta", "mae", "alert")
    assert (bad.value, bad.threshold, bad.sample_size, bad.model_version) == (12.0, 8.0, 25, 3)
    assert json.loads(bad.detail)["complete"] is True
    assert results[f"day:{yesterday:%Y-%m-%d}:heuristic"].status == "alert"
    assert results[f"day:{yesterday - DAY:%Y-%m-%d}:model"].status == "ok"
    today = results[f"day:{NOW:%Y-%m-%d}:model"]
    assert json.loads(today.detail)["complete"] is False and today.value == 30.0

    clock.advance(timedelta(minutes=5))
    again = accuracy.report(world, "eta", since=NOW - 5 * DAY)
    assert again.opened == []
    (alert,) = open_alerts(world)
    assert (alert.status, alert.occurrences) == ("open", 2)

    # A good next day resolves it; the incomplete day's bad figures never count.
    clock.set(NOW + 2 * DAY)
    eta_day(world, NOW.replace(hour=0) + DAY, error=1.0, n=30, tag="u")
    assert accuracy.report(world, "eta", since=NOW - 5 * DAY).opened == []
    (alert,) = open_alerts(world)
    assert alert.status == "resolved"


def test_too_few_labels_raise_nothing_and_keep_an_open_alert(world, clock):
    world.settings.accuracy_min_sample = 20
    yesterday = NOW.replace(hour=0) - DAY
    eta_day(world, yesterday - DAY, error=15.0, n=25)
    clock.set(NOW - DAY)
    assert len(accuracy.report(world, "eta", since=NOW - 5 * DAY).opened) == 1
    clock.set(NOW)
    eta_day(world, yesterday, error=1.0, n=5)  # good, but too few to judge
    found = accuracy.report(world, "eta", since=NOW - 5 * DAY)
    assert found.latest("eta")["status"] == "insufficient" and found.opened == []
    (alert,) = open_alerts(world)
    assert alert.status == "open"


def test_churn_alert_below_the_floor(world):
    world.settings.accuracy_min_sample = 10
    t = NOW.replace(hour=0) - 35 * DAY
    rng = np.random.default_rng(0)
    preds, orders = [], []
    for i in range(40):
        churned = i % 2 == 0
        # Scores inverted: the model ranks stayers above leavers (ROC-AUC near 0).
        p = float(0.2 + 0.1 * rng.random()) if churned else float(0.7 + 0.1 * rng.random())
        preds.append(
            {
                "job": "churn",
                "entity_id": f"c{i}",
                "prediction": p,
                "logged_at": t + timedelta(hours=1),
            }
        )
        if not churned:
            orders.append(order(f"o{i}", f"c{i}", t + 3 * DAY))
    log_predictions(world, preds)
    load(world, wh.orders, orders)
    found = accuracy.report(world, "churn", since=NOW - 60 * DAY)
    latest = found.latest("churn")
    assert latest["value"] == 0.0 and latest["status"] == "alert" and latest["n"] == 40
    assert "below the floor 0.7" in found.opened[0].message


# --- the command --------------------------------------------------------------------------


@pytest.fixture
def cli(world, monkeypatch, capsys):
    return cli_on(world, monkeypatch, capsys)


def test_command_prints_a_table_per_job_and_a_summary(cli, world):
    world.settings.accuracy_min_sample = 20
    eta_day(world, NOW.replace(hour=0) - DAY, error=12.0, n=25)
    code, out, err = cli("monitor", "accuracy", "eta", "--since", "7d")
    assert code == 0, err
    assert "eta accuracy by day" in out and "mae" in out and "12.000" in out
    assert "eta mae 12.000" in out and "1 alert(s) opened" in out
    code, out, err = cli("monitor", "accuracy", "--by", "week", "--since", "2026-05-01")
    assert code == 0, err
    for job in ("churn", "upsell", "eta"):
        assert f"{job} accuracy by week since 2026-04-27" in out
    assert "churn no complete period" in out and "0 alert(s) opened" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--by", "month"), "cannot read --by 'month'"),
        (("--since", "yesterday"), "cannot read --since 'yesterday'"),
        (("--since", "2030-01-01"), "not in the past"),
        (("nope",), "unknown job"),
    ],
)
def test_command_rejects_bad_input_with_exit_2(cli, args, message):
    code, out, err = cli("monitor", "accuracy", *args)
    assert code == 2
    assert message in err and "Traceback" not in out + err


def test_sql_files_bind_many_keys_in_chunks(world):
    """The outcome queries, wrapped in the engine's key filter, split long key lists (more keys
    than one chunk)."""
    from mlops.warehouse import views

    t = NOW - DAY
    load(world, wh.orders, [order(f"o{i}", f"c{i}", t) for i in range(25)])
    sql = labelling.keyed(world.repo.sql("outcomes_churn"), "customer_id")
    with world.warehouse.connect() as conn:
        params = {"start": t, "end": NOW}
        keys = [f"c{i}" for i in range(30)]
        frame = views.run_query_for_keys(conn, sql, params, keys, chunk=7)
        assert sorted(frame.customer_id) == sorted(f"c{i}" for i in range(25))
        none = views.run_query_for_keys(conn, sql, params, [])
        assert none.empty and list(none.columns) == ["customer_id", "event_time", "label"]
        count = conn.execute(text("SELECT COUNT(*) FROM orders")).scalar()
    assert count == 25
