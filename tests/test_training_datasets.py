from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import text

from mlops.errors import NotReadyError
from mlops.store import ingest
from mlops.training import datasets
from tests.conftest import NOW, seed
from tests.repo_support import JOBS
from tests.store_tables import write_snapshots


def _warehouse(rt, table):
    with rt.warehouse.connect() as conn:
        return pd.read_sql(text(f"SELECT * FROM {table}"), conn)


def with_history(rt) -> None:
    from mlops.examples.marketplace.seed import seed_warehouse

    seed(rt)
    # 110 days: churn rows need 30 days of future for their label, and the split a
    # 30-day gap between training and validation.
    seed_warehouse(rt.warehouse, customers=300, days=110, seed=7, end=NOW, replace=True)
    ingest.backfill(rt, "churn", start=NOW - timedelta(days=100), end=NOW)
    ingest.backfill(rt, "upsell", start=NOW - timedelta(days=20), end=NOW)
    ingest.backfill(rt, "eta", start=NOW - timedelta(days=2), end=NOW)


@pytest.fixture
def history(migrated, templates, request):
    """``with_history`` built once per session and backend, its content copied here."""
    templates(request, with_history).copy_into(migrated)
    return migrated


def test_churn_labels_match_an_independent_computation(history):
    ts = datasets.build(history, "churn")
    orders = _warehouse(history, "orders")
    orders = orders[orders.status == "completed"].assign(
        placed_at=lambda f: pd.to_datetime(f.placed_at)
    )
    customers = _warehouse(history, "customers").assign(
        signup_at=lambda f: pd.to_datetime(f.signup_at)
    )
    expected = {}
    points = ts.frame["event_time"].unique()
    checked = set(points[:: max(1, len(points) // 8)])  # a spread of points keeps this quick
    for as_of in checked:
        before = orders[
            (orders.placed_at >= as_of - pd.Timedelta(days=90)) & (orders.placed_at < as_of)
        ]
        after = orders[
            (orders.placed_at >= as_of) & (orders.placed_at < as_of + pd.Timedelta(days=30))
        ]
        signed = set(customers.customer_id[customers.signup_at < as_of])
        for cid in set(before.customer_id) & signed:
            expected[(as_of, cid)] = int(cid not in set(after.customer_id))
    rows = ts.frame[ts.frame["event_time"].isin(checked)]
    got = {(r.event_time, r.entity_id): r.label for r in rows.itertuples()}
    assert got == expected
    assert ts.frame["event_time"].max() <= NOW - timedelta(days=30)  # labels not yet due are out
    assert 0 < ts.frame["label"].mean() < 1


def test_split_is_by_time_with_a_gap_for_the_label_horizon(history):
    ts = datasets.build(history, "churn")
    train, valid = ts.split(0.25)
    assert train["event_time"].max() + pd.Timedelta(days=30) <= valid["event_time"].min()
    eta = datasets.build(history, "eta")
    train, valid = eta.split(0.2)
    assert train["event_time"].max() <= valid["event_time"].min()
    assert len(valid) == pytest.approx(0.2 * len(eta.frame), rel=0.1)


def test_a_feature_value_dated_after_the_event_never_reaches_the_training_set(history):
    """Plant a snapshot one second after an impression, with impossible values."""
    impressions = _warehouse(history, "offer_impressions")
    impressions["shown_at"] = pd.to_datetime(impressions["shown_at"])
    target = impressions[impressions.shown_at > NOW - timedelta(days=10)].iloc[0]
    planted_at = (target.shown_at + pd.Timedelta(seconds=1)).to_pydatetime()
    job = JOBS["upsell"]
    row = {"as_of": pd.Timestamp(planted_at), "entity_id": target.customer_id, "plan": "basic"}
    row |= {f.name: 9999.0 for f in job.features if f.dtype != "category"}
    row["top_category_90d"] = "planted"
    planted = pd.DataFrame([row])
    write_snapshots(history, job, planted, NOW)
    ts = datasets.build(history, "upsell")
    assert (ts.frame["feature_as_of"] <= ts.frame["event_time"]).all()
    assert not (ts.frame["impressions_90d"] == 9999).any()
    assert "planted" not in set(ts.frame["top_category_90d"].dropna())
    # the planted snapshot is used by a later impression of that customer, if any
    later = ts.frame[
        (ts.frame.entity_id == target.customer_id) & (ts.frame.event_time >= planted_at)
    ]
    if len(later) and (later.event_time - pd.Timestamp(planted_at) <= pd.Timedelta(hours=12)).any():
        assert (later["impressions_90d"] == 9999).any()


def test_eta_rows_carry_request_time_inputs(history):
    ts = datasets.build(history, "eta")
    assert {"zone", "distance_km", "item_count", "hour", "weekday"} <= set(ts.features)
    assert set(ts.categorical) == {"zone"}
    assert (ts.frame["label"] > 0).all()
    assert (ts.frame["event_time"] - ts.frame["feature_as_of"] <= pd.Timedelta(minutes=15)).all()
    assert (
        len(ts.fingerprint()) == 64
        and ts.fingerprint() == datasets.build(history, "eta").fingerprint()
    )


def test_no_history_says_to_backfill(seeded):
    with pytest.raises(NotReadyError, match="--backfill"):
        datasets.build(seeded, "churn")
