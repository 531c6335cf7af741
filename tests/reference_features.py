"""A small random warehouse and an independent pandas computation of every feature view.

The reference is written from the feature descriptions in ``mlops.specs.features`` and
the conventions stated in the SQL comments (only rows strictly before ``as_of`` count;
an N-day window starts at ``as_of - N days`` inclusive; outcomes are known only when
they happened strictly before ``as_of``), by filtering frames per as_of point, not by
translating the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

START = datetime(2026, 3, 1)
DATA_DAYS = 40
# A busy evening near the end of the data: enough deliveries for hour-long ETA windows.
RUSH_START = START + timedelta(days=37, hours=16)
RUSH_HOURS = 6
ZONES = ("north", "south", "east", "west")
LATE_ZONE = "harbour"  # first seen in the middle of the rush
CATEGORIES = ("grocery", "pharmacy", "electronics", "flowers", "pets")
PLANS = ("basic", "plus", "premium")

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

TS = "datetime64[s]"


def _ts(base: datetime, seconds) -> pd.Series:
    """Whole-second timestamps ``base + seconds``."""
    secs = np.asarray(seconds, dtype="int64")
    return pd.Series(np.datetime64(base, "s") + secs.astype("timedelta64[s]"))


def make_warehouse(seed: int = 7, n_customers: int = 60, n_couriers: int = 8) -> dict:
    """Raw tables of the warehouse contract as DataFrames, timestamps in whole seconds."""
    rng = np.random.default_rng(seed)
    data_end_s = DATA_DAYS * 86400

    # Customers: most signed up long before the data, some during it.
    n = n_customers
    signup_s = rng.integers(-200 * 86400, 30 * 86400, n)
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n)],
            "signup_at": _ts(START, signup_s),
            "region": rng.choice(["eu", "us", "apac"], n),
            "plan": rng.choice(PLANS, n),
        }
    )

    # Orders: the 40 days of data, plus a thinner history from 100 days before (the
    # 90-day windows then start inside the data), never before the customer signed up.
    rows = []
    for cid, s0 in zip(customers["customer_id"], signup_s, strict=True):
        lo = max(int(s0) + 60, -100 * 86400)
        if lo >= data_end_s:
            continue
        k = int(rng.poisson(12 * (data_end_s - lo) / (140 * 86400))) + int(rng.integers(0, 3))
        for s in np.sort(rng.integers(lo, data_end_s, k)):
            rows.append((cid, int(s)))
    m = len(rows)
    completed = rng.random(m) < 0.85
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i:05d}" for i in range(m)],
            "customer_id": [r[0] for r in rows],
            "placed_at": _ts(START, [r[1] for r in rows]),
            "status": np.where(completed, "completed", "cancelled"),
            "item_count": rng.integers(1, 9, m),
            "total_amount": np.round(rng.uniform(5, 120, m), 2),
        }
    )

    # Deliveries: one per completed order, plus courier runs with no order during the rush
    # (order_id NULL). Durations stay under the 3 hours the ETA view assumes.
    done = orders[orders["status"] == "completed"]
    k = len(done)
    placed_s = ((done["placed_at"] - pd.Timestamp(START)).dt.total_seconds()).astype("int64")
    rush_k = 260
    rush_s = np.sort(
        int((RUSH_START - START).total_seconds()) + rng.integers(0, RUSH_HOURS * 3600, rush_k)
    )
    dispatched = np.concatenate([placed_s + rng.integers(5, 21, k) * 60, rush_s])
    total = k + rush_k
    zone = rng.choice(ZONES, total)
    # The late zone appears only in the second half of the rush.
    late = (np.arange(total) >= k) & (dispatched > np.median(rush_s))
    zone = np.where(late & (rng.random(total) < 0.3), LATE_ZONE, zone)
    promised = dispatched + rng.integers(20, 61, total) * 60
    # Whole minutes: some deliveries land exactly on their promise (on time, not late).
    duration = rng.integers(8, 150, total) * 60
    delivered = dispatched + duration
    # Still in flight: the last deliveries of the data have no outcome yet.
    in_flight = dispatched > int((RUSH_START - START).total_seconds()) + (RUSH_HOURS - 2) * 3600
    in_flight &= rng.random(total) < 0.5
    delivered_at = _ts(START, delivered).where(~in_flight)
    distance = np.round(rng.uniform(0.3, 9.0, total), 2)
    distance[rng.random(total) < 0.05] = 0.05  # below the 0.1 km floor of minutes per km
    deliveries = pd.DataFrame(
        {
            "delivery_id": [f"d{i:05d}" for i in range(total)],
            "order_id": pd.Series(
                [*done["order_id"].tolist(), *([None] * rush_k)], dtype="str"
            ),
            "zone": zone,
            "courier_id": rng.choice([f"k{i}" for i in range(n_couriers)], total),
            "distance_km": distance,
            "dispatched_at": _ts(START, dispatched),
            "promised_at": _ts(START, promised),
            "delivered_at": delivered_at,
        }
    )

    n_offers = 20
    offers = pd.DataFrame(
        {
            "offer_id": [f"f{i:02d}" for i in range(n_offers)],
            "category": rng.choice(CATEGORIES, n_offers),
            # 20 exactly sits on the >= 20% boundary of discount sensitivity.
            "discount_pct": rng.choice([5.0, 10.0, 15.0, 20.0, 25.0, 30.0], n_offers),
            "price": np.round(rng.uniform(2, 50, n_offers), 2),
        }
    )

    n_imp = 1500
    cust_idx = rng.integers(0, n, n_imp)
    imp_lo = np.maximum(signup_s[cust_idx] + 60, -100 * 86400)
    keep = imp_lo < data_end_s
    cust_idx, imp_lo = cust_idx[keep], imp_lo[keep]
    shown = imp_lo + (rng.random(len(imp_lo)) * (data_end_s - imp_lo)).astype("int64")
    n_imp = len(shown)
    accepted = rng.random(n_imp) < 0.3
    impressions = pd.DataFrame(
        {
            "impression_id": [f"i{i:05d}" for i in range(n_imp)],
            "customer_id": customers["customer_id"].to_numpy()[cust_idx],
            "offer_id": rng.choice(offers["offer_id"], n_imp),
            "order_id": pd.Series([None] * n_imp, dtype="str"),
            "shown_at": _ts(START, shown),
            "accepted": accepted,
        }
    )

    n_t = 200
    cust_idx = rng.integers(0, n, n_t)
    t_lo = np.maximum(signup_s[cust_idx] + 60, -100 * 86400)
    keep = t_lo < data_end_s
    cust_idx, t_lo = cust_idx[keep], t_lo[keep]
    opened = t_lo + (rng.random(len(t_lo)) * (data_end_s - t_lo)).astype("int64")
    tickets = pd.DataFrame(
        {
            "ticket_id": [f"t{i:04d}" for i in range(len(opened))],
            "customer_id": customers["customer_id"].to_numpy()[cust_idx],
            "opened_at": _ts(START, opened),
            "reason": rng.choice(["late", "missing_item", "refund", "other"], len(opened)),
        }
    )
    return {
        "customers": customers,
        "offers": offers,
        "orders": orders,
        "deliveries": deliveries,
        "offer_impressions": impressions,
        "support_tickets": tickets,
    }


# --- reference features -------------------------------------------------------------------


def _days(delta: pd.Series | pd.Timedelta):
    if isinstance(delta, pd.Series):
        return delta.dt.total_seconds() / 86400.0
    return delta.total_seconds() / 86400.0


def churn_at(w: dict, as_of: datetime) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    cust = w["customers"][w["customers"]["signup_at"] < t]
    orders = w["orders"][w["orders"]["placed_at"] < t]
    done = orders[orders["status"] == "completed"]
    o90 = orders[orders["placed_at"] >= t - 90 * DAY]
    done90 = o90[o90["status"] == "completed"]
    done30 = done90[done90["placed_at"] >= t - 30 * DAY]
    dl = w["deliveries"]
    dl = dl[dl["delivered_at"].notna() & (dl["delivered_at"] < t)]
    delivered90 = o90.merge(dl[["order_id", "delivered_at", "promised_at"]], on="order_id")
    tk = w["support_tickets"]
    tk = tk[(tk["opened_at"] >= t - 90 * DAY) & (tk["opened_at"] < t)]

    rows = []
    for c in cust.itertuples():
        mine = done[done["customer_id"] == c.customer_id]
        n30 = int((done30["customer_id"] == c.customer_id).sum())
        mine90 = done90[done90["customer_id"] == c.customer_id]
        n90 = len(mine90)
        spend = float(mine90["total_amount"].sum())
        placed = o90[o90["customer_id"] == c.customer_id]
        dlv = delivered90[delivered90["customer_id"] == c.customer_id]
        rows.append(
            {
                "as_of": t,
                "entity_id": c.customer_id,
                "days_since_last_order": _days(t - mine["placed_at"].max()) if len(mine) else None,
                "orders_30d": n30,
                "orders_90d": n90,
                # orders in 30 days over the monthly average of the 90 days
                "order_trend": n30 / (n90 / 3) if n90 else None,
                "spend_90d": spend,
                "avg_order_value_90d": spend / n90 if n90 else None,
                "cancel_rate_90d": (
                    float((placed["status"] == "cancelled").mean()) if len(placed) else None
                ),
                "late_delivery_rate_90d": (
                    float((dlv["delivered_at"] > dlv["promised_at"]).mean()) if len(dlv) else None
                ),
                "support_tickets_90d": int((tk["customer_id"] == c.customer_id).sum()),
                "tenure_days": _days(t - c.signup_at),
                "plan": c.plan,
            }
        )
    return pd.DataFrame(rows)


def upsell_at(w: dict, as_of: datetime) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    cust = w["customers"][w["customers"]["signup_at"] < t]
    imp = w["offer_impressions"]
    imp = imp[(imp["shown_at"] >= t - 90 * DAY) & (imp["shown_at"] < t)]
    imp = imp.merge(w["offers"], on="offer_id")
    orders = w["orders"]
    done90 = orders[
        (orders["status"] == "completed")
        & (orders["placed_at"] >= t - 90 * DAY)
        & (orders["placed_at"] < t)
    ]
    rows = []
    for c in cust.itertuples():
        mine = imp[imp["customer_id"] == c.customer_id]
        acc = mine[mine["accepted"]]
        high = mine[mine["discount_pct"] >= 20]
        low = mine[mine["discount_pct"] < 20]
        baskets = done90.loc[done90["customer_id"] == c.customer_id, "item_count"]
        top = None
        if len(acc):
            counts = acc["category"].value_counts()
            top = min(counts[counts == counts.max()].index)  # most accepted, then by name
        rows.append(
            {
                "as_of": t,
                "entity_id": c.customer_id,
                "impressions_90d": len(mine),
                "acceptance_rate_90d": len(acc) / len(mine) if len(mine) else None,
                "accepted_90d": len(acc),
                "avg_basket_items_90d": float(baskets.mean()) if len(baskets) else None,
                "category_breadth_90d": int(acc["category"].nunique()),
                "avg_accepted_discount_90d": float(acc["discount_pct"].mean()) if len(acc) else None,
                "discount_sensitivity_90d": (
                    float(high["accepted"].mean() - low["accepted"].mean())
                    if len(high) and len(low)
                    else None
                ),
                "top_category_90d": top,
                "plan": c.plan,
            }
        )
    return pd.DataFrame(rows)


def eta_at(w: dict, as_of: datetime) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    d = w["deliveries"][w["deliveries"]["dispatched_at"] < t]
    last1h = d[d["dispatched_at"] >= t - HOUR]
    known = d["delivered_at"].notna() & (d["delivered_at"] < t)
    # Completed in the last 2 hours (the fixture keeps every delivery under the 3 hours
    # the view assumes, so no dispatch bound is needed here).
    done2h = d[known & (d["delivered_at"] >= t - 2 * HOUR)]
    open_now = d[(d["dispatched_at"] >= t - 3 * HOUR) & ~known]
    rows = []
    for zone in sorted(d["zone"].unique()):
        z1 = last1h[last1h["zone"] == zone]
        zc = done2h[done2h["zone"] == zone]
        minutes = (zc["delivered_at"] - zc["dispatched_at"]).dt.total_seconds() / 60.0
        n_open = int((open_now["zone"] == zone).sum())
        couriers = int(z1["courier_id"].nunique())
        rows.append(
            {
                "as_of": t,
                "entity_id": zone,
                "deliveries_1h": len(z1),
                "avg_delivery_minutes_2h": float(minutes.mean()) if len(zc) else None,
                "avg_minutes_per_km_2h": (
                    float((minutes / zc["distance_km"].clip(lower=0.1)).mean()) if len(zc) else None
                ),
                "late_share_2h": (
                    float((zc["delivered_at"] > zc["promised_at"]).mean()) if len(zc) else None
                ),
                "open_deliveries": n_open,
                "active_couriers_1h": couriers,
                "courier_load": n_open / couriers if couriers else float(n_open),
                "avg_distance_km_1h": float(z1["distance_km"].mean()) if len(z1) else None,
            }
        )
    return pd.DataFrame(rows)


REFERENCE = {"churn": churn_at, "upsell": upsell_at, "eta": eta_at}


def reference(job: str, w: dict, as_of_points: Sequence[datetime]) -> pd.DataFrame:
    """The job's features for every point, as ``views.compute`` returns them."""
    frames = [REFERENCE[job](w, p) for p in as_of_points]
    return pd.concat([f for f in frames if len(f)], ignore_index=True)
