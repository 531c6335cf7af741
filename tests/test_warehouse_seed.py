"""The synthetic warehouse: deterministic, all or nothing, inside [end - days, end), and with
labels that really depend on the features (late deliveries, discounts, distance)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from mlops.errors import InputError
from mlops.examples.marketplace import seed
from mlops.examples.marketplace import warehouse as schema
from mlops.examples.marketplace.seed import seed_warehouse

END = datetime(2026, 3, 1)
DAYS = 60
TIMESTAMPS = {
    "customers": ["signup_at"],
    "orders": ["placed_at"],
    "deliveries": ["dispatched_at", "promised_at", "delivered_at"],
    "offer_impressions": ["shown_at"],
    "support_tickets": ["opened_at"],
}


def _seed(rt, **kwargs):
    args = {"customers": 500, "days": DAYS, "seed": 7, "end": END} | kwargs
    return seed_warehouse(rt.warehouse, **args)


def _read(engine) -> dict[str, pd.DataFrame]:
    """Every raw table, sorted by its key, timestamps parsed, amounts as floats."""
    frames = {}
    with engine.connect() as conn:
        for name, table in schema.TABLES.items():
            key = table.primary_key.columns.values()[0].name
            frame = pd.read_sql(text(f'SELECT * FROM "{name}" ORDER BY {key}'), conn)
            for col in TIMESTAMPS.get(name, []):
                frame[col] = pd.to_datetime(frame[col])
            for col in ("total_amount", "price"):
                if col in frame:
                    frame[col] = frame[col].astype(float)
            if "accepted" in frame:
                frame["accepted"] = frame["accepted"].astype(bool)
            frames[name] = frame
    return frames


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
            for name in schema.TABLES
        }


def test_same_arguments_give_identical_rows_and_replace_regenerates(rt):
    first = _seed(rt)
    before = _read(rt.warehouse)
    again = _seed(rt, replace=True)
    after = _read(rt.warehouse)

    assert first == again
    assert first.rows == _counts(rt.warehouse)
    assert first.start == END - timedelta(days=DAYS) and first.end == END
    for name in schema.TABLES:
        pd.testing.assert_frame_equal(before[name], after[name], check_exact=True)

    other = _seed(rt, seed=8, replace=True)
    assert other.rows != first.rows
    assert not _read(rt.warehouse)["orders"].equals(before["orders"])


def test_history_stays_inside_the_window_and_follows_the_contract(rt):
    summary = _seed(rt)
    t = _read(rt.warehouse)
    start = END - timedelta(days=DAYS)

    for name, cols in TIMESTAMPS.items():
        for col in cols:
            if col != "promised_at":  # a promise to an in-flight delivery may lie ahead
                assert (t[name][col].dropna() < END).all(), (name, col)
    assert t["customers"].signup_at.min() >= start - timedelta(days=365)
    assert (t["orders"].placed_at >= start).all()
    assert summary.rows["customers"] == 500 and summary.rows["offers"] == 40

    orders, deliveries = t["orders"], t["deliveries"]
    assert set(orders.status) == {"completed", "cancelled"}
    assert (orders.item_count >= 1).all() and (orders.total_amount > 0).all()
    assert (orders.total_amount.round(2) == orders.total_amount).all()
    placed_after_signup = orders.merge(t["customers"], on="customer_id")
    assert (placed_after_signup.placed_at > placed_after_signup.signup_at).all()

    # One delivery per completed order (unless not yet dispatched), none for cancellations.
    assert deliveries.order_id.is_unique
    status = deliveries.merge(orders, on="order_id").status
    assert len(status) == len(deliveries) and (status == "completed").all()
    minutes = (deliveries.delivered_at - deliveries.dispatched_at).dt.total_seconds() / 60
    assert minutes.dropna().between(0, 180).all()
    in_flight = deliveries[deliveries.delivered_at.isna()]
    assert (in_flight.dispatched_at >= END - timedelta(hours=3)).all()
    assert deliveries.distance_km.between(0.3, 15).all()
    assert (deliveries.promised_at > deliveries.dispatched_at).all()
    assert deliveries.zone.str.fullmatch(r"Z\d\d").all()
    assert (deliveries.courier_id.str[:3] == deliveries.zone).all()

    impressions = t["offer_impressions"]
    assert set(impressions.offer_id) <= set(t["offers"].offer_id)
    with_order = impressions.dropna(subset=["order_id"]).merge(orders, on="order_id")
    assert (with_order.shown_at == with_order.placed_at).all()
    assert (with_order.status == "completed").all()
    assert impressions.order_id.isna().any()
    assert t["offers"].discount_pct.between(5, 40).all()
    assert set(t["support_tickets"].reason) <= {
        "late_delivery",
        "cancelled_order",
        "billing",
        "app_issue",
    }
    assert t["customers"].customer_id.is_unique and t["orders"].order_id.is_unique


def test_refuses_to_overwrite_without_replace(rt):
    _seed(rt)
    before = _read(rt.warehouse)
    with pytest.raises(InputError) as err:
        _seed(rt, seed=99)
    assert "--replace" in str(err.value)
    after = _read(rt.warehouse)
    for name in schema.TABLES:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_a_failure_midway_leaves_the_warehouse_as_it_was(rt, monkeypatch):
    monkeypatch.setattr(seed, "BLOCK_CUSTOMERS", 150)

    def fail_in_second_block(stage: str, done: int, total: int) -> None:
        if done > 150:  # the first block is written by now
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        _seed(rt, customers=400, on_progress=fail_in_second_block)
    assert set(_counts(rt.warehouse).values()) == {0}

    _seed(rt, customers=200)
    before = _read(rt.warehouse)
    with pytest.raises(RuntimeError):
        _seed(rt, customers=400, seed=8, replace=True, on_progress=fail_in_second_block)
    after = _read(rt.warehouse)
    for name in schema.TABLES:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_progress_counts_customers_up_to_the_total(rt, monkeypatch):
    monkeypatch.setattr(seed, "BLOCK_CUSTOMERS", 120)
    calls = []
    _seed(rt, customers=300, days=10, on_progress=lambda *a: calls.append(a))
    assert {stage for stage, _, _ in calls} == {"customers"}
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 300
    assert {total for _, _, total in calls} == {300}


@pytest.mark.parametrize("bad", [{"customers": 0}, {"days": 0}, {"seed": -1}])
def test_rejects_impossible_arguments(rt, bad):
    with pytest.raises(InputError):
        _seed(rt, **bad)


def test_labels_depend_on_the_features(rt):
    _seed(rt, customers=800)
    t = _read(rt.warehouse)
    orders, deliveries = t["orders"], t["deliveries"]

    # Rates in the ranges the models and the heuristics are designed around.
    late = (deliveries.delivered_at > deliveries.promised_at)[deliveries.delivered_at.notna()]
    assert 0.10 <= late.mean() <= 0.25
    assert 0.03 <= (orders.status == "cancelled").mean() <= 0.10
    assert 0.10 <= t["offer_impressions"].accepted.mean() <= 0.30

    # Churn: among customers active in the first 30 days, those with many late deliveries
    # or support tickets stop ordering in the last 30 days more often.
    as_of = END - timedelta(days=30)
    done = orders[orders.status == "completed"].merge(deliveries, on="order_id", how="left")
    before, after = done[done.placed_at < as_of], done[done.placed_at >= as_of]
    arrived = before[before.delivered_at < as_of]
    per = pd.DataFrame(index=pd.Index(before.customer_id.unique(), name="customer_id"))
    per["churned"] = ~per.index.isin(after.customer_id)
    per["late_share"] = (
        (arrived.delivered_at > arrived.promised_at).groupby(arrived.customer_id).mean()
    )
    per = per.dropna()
    high, low = per[per.late_share >= 0.3], per[per.late_share == 0]
    assert len(high) >= 30 and len(low) >= 30
    assert high.churned.mean() > low.churned.mean() + 0.1
    tickets = t["support_tickets"]
    ticketed = tickets[tickets.opened_at < as_of].customer_id.unique()
    per["ticket"] = per.index.isin(ticketed)
    assert per[per.ticket].churned.mean() > per[~per.ticket].churned.mean() + 0.05

    # Upsell: bigger discounts are accepted more often.
    shown = t["offer_impressions"].merge(t["offers"], on="offer_id")
    assert (
        shown[shown.discount_pct >= 30].accepted.mean()
        > shown[shown.discount_pct <= 10].accepted.mean() + 0.1
    )

    # ETA: minutes grow with distance and are slower per km at the dinner rush than at night.
    d = deliveries.dropna(subset=["delivered_at"])
    minutes = (d.delivered_at - d.dispatched_at).dt.total_seconds() / 60
    assert np.corrcoef(minutes, d.distance_km)[0, 1] > 0.6
    per_km = minutes / d.distance_km
    hour = d.dispatched_at.dt.hour
    assert per_km[hour.between(18, 19)].median() > 1.1 * per_km[hour.between(1, 6)].median()
