"""The synthetic warehouse: a delivery marketplace whose churn, upsell and ETA labels really
depend on what the feature views compute, so models have something to learn beyond the rules.

Customers are simulated day by day, in blocks, vectorized with numpy: each has a latent order
rate and an engagement that late deliveries, cancellations and support tickets wear down; a
churn hazard rises with those bad experiences and with falling engagement. Delivery minutes
depend on distance, zone speed, hour of day, expected zone load, live traffic and the courier.
Offer acceptance depends on discount, the customer's favourite category, plan and propensity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from mlops.clock import to_utc_naive
from mlops.errors import InputError
from mlops.warehouse import schema
from mlops.warehouse.bulk import insert_frame

# Customers simulated (and held in memory) at once; each block has its own random stream.
BLOCK_CUSTOMERS = 50_000
# Buffered orders of a block written out before simulating further, to bound memory.
FLUSH_ORDERS = 500_000

DAY = 86_400
EPOCH = datetime(1970, 1, 1)
SIGNUP_LOOKBACK_DAYS = 365

REGIONS = ("north", "south", "east", "west", "central")
ZONES = tuple(f"Z{i:02d}" for i in range(1, 21))
ZONE_REGION = np.arange(len(ZONES)) // 4  # four zones per region
PLANS = ("basic", "plus", "premium")
PLAN_P = (0.6, 0.3, 0.1)
CATEGORIES = ("grocery", "dessert", "drinks", "snacks", "household", "pet")
N_OFFERS = 40
DISCOUNTS = (5, 10, 15, 20, 25, 30, 35, 40)
REASONS = ("late_delivery", "cancelled_order", "billing", "app_issue")

# Orders placed per hour of day (UTC is the marketplace's clock): lunch and dinner peaks.
HOUR_WEIGHT = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.5, 1.5, 1.8, 3.5]
    + [6.0, 5.0, 2.5, 2.0, 2.5, 4.5, 6.5, 6.5, 4.5, 2.5, 1.2, 0.6]
)
HOUR_P = HOUR_WEIGHT / HOUR_WEIGHT.sum()
# Road traffic by hour of day, on top of the zone's courier load.
RUSH = np.ones(24)
RUSH[[8, 9, 12, 13, 17, 18, 19]] = (1.15, 1.1, 1.15, 1.1, 1.2, 1.25, 1.15)

# Orders per day of an engaged customer, by plan (about 1.1, 1.5 and 2.2 a week).
PLAN_RATE = np.array([0.16, 0.22, 0.31])
# Daily churn hazard of a customer with no bad experience and average engagement.
PLAN_HAZARD = np.array([0.0002, 0.00015, 0.0001])
PLAN_UPLIFT = np.array([0.0, 0.35, 0.8])  # offer acceptance log-odds by plan
RETURN_P = 0.001  # daily chance that a churned customer comes back
# Breaks (holidays, busy weeks): common, unrelated to service quality, and they end. They keep
# recency alone from telling a break from a customer driven away by bad service.
PAUSE_P = 0.01
RESUME_P = 1 / 15
# Memory of bad experiences (daily decay) and the hazard they add: convex, so that repeated
# trouble, not one late order, is what makes customers leave.
BAD_DECAY = 0.98
BAD_HAZARD = 0.3
TOLERANCE = (2.5, 6.0)
PLAN_TOLERANCE = np.array([0.0, 0.8, 1.6])
GOOD_CREDIT = 0.25  # an on-time delivery makes up for a quarter of a late one
NEW_CUSTOMER_DAYS = 120  # tolerance grows from 40% to full over a customer's first months


@dataclass(frozen=True)
class SeedSummary:
    """What ``seed_warehouse`` wrote: rows per table and the arguments that define the data."""

    rows: dict[str, int]
    customers: int
    days: int
    seed: int
    start: datetime
    end: datetime


def seed_warehouse(
    engine: Engine,
    *,
    customers: int,
    days: int,
    seed: int,
    end: datetime,
    replace: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> SeedSummary:
    """Generate ``days`` of history ending before ``end`` (UTC) for ``customers`` customers.

    All or nothing in one transaction; the same arguments always give the same rows.
    ``on_progress("customers", done, total)`` reports simulated customers.
    """
    if customers < 1 or days < 1:
        raise InputError(
            "customers and days must be at least 1", "e.g. --customers 5000 --days 120"
        )
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}", "use e.g. --seed 42")
    end = to_utc_naive(end)
    start = end - timedelta(days=days)
    world = _world(seed, days, int((start - EPOCH).total_seconds()))
    counters = _Counters(customer_width=max(7, len(str(customers))))
    rows = dict.fromkeys(schema.TABLES, 0)

    schema.create_tables(engine)
    with engine.begin() as conn:
        _clear(conn, replace)
        rows["offers"] += insert_frame(conn, schema.offers, _offers_frame(world))
        if on_progress:
            on_progress("customers", 0, customers)
        for block, first in enumerate(range(0, customers, BLOCK_CUSTOMERS)):
            n = min(BLOCK_CUSTOMERS, customers - first)
            rng = np.random.default_rng([seed, 1, block])

            def report(day: int, first: int = first, n: int = n) -> None:
                if on_progress:
                    on_progress("customers", first + n * day // days, customers)

            for name, frame in _simulate_block(world, rng, first, n, counters, report):
                rows[name] += insert_frame(conn, name, frame)
            if on_progress:
                on_progress("customers", first + n, customers)
    return SeedSummary(rows, customers, days, seed, start, end)


def _clear(conn: Connection, replace: bool) -> None:
    filled = [
        name
        for name in schema.TABLES
        if conn.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1')).first() is not None
    ]
    if filled and not replace:
        raise InputError(
            f"the warehouse already has rows in {', '.join(filled)}",
            "use --replace to regenerate",
        )
    for name in filled:
        # TRUNCATE is transactional on PostgreSQL and far faster than DELETE on big tables.
        verb = "TRUNCATE TABLE" if conn.dialect.name == "postgresql" else "DELETE FROM"
        conn.execute(text(f'{verb} "{name}"'))


@dataclass
class _Counters:
    """Next id number per table, carried across blocks so ids are unique and sequential."""

    customer_width: int
    orders: int = 1
    deliveries: int = 1
    impressions: int = 1
    tickets: int = 1


@dataclass(frozen=True)
class _World:
    """Everything shared by all customers: zones, couriers, traffic, offers."""

    start: int  # epoch seconds
    end: int
    zone_share: np.ndarray  # share of customers living in each zone
    zone_mpk: np.ndarray  # minutes per km at free flow
    load_mult: np.ndarray  # (zone, hour of day) slow-down from expected courier load
    traffic: np.ndarray  # (zone, hour since start) slow-down from traffic and weather
    courier_first: np.ndarray  # index of each zone's first courier
    courier_count: np.ndarray
    courier_factor: np.ndarray  # persistent speed of each courier (minutes multiplier)
    courier_ids: np.ndarray
    offer_category: np.ndarray
    offer_discount: np.ndarray
    offer_price: np.ndarray


def _world(seed: int, days: int, start: int) -> _World:
    rng = np.random.default_rng([seed, 0])
    nz = len(ZONES)
    zone_share = rng.gamma(4.0, 1.0, nz)
    zone_share /= zone_share.sum()
    zone_mpk = rng.uniform(2.3, 4.0, nz)
    courier_count = rng.integers(8, 16, nz)
    courier_first = np.concatenate([[0], np.cumsum(courier_count)[:-1]])
    courier_factor = rng.lognormal(0.0, 0.12, int(courier_count.sum()))
    courier_ids = np.array(
        [
            f"{zone}-K{j:02d}"
            for zone, k in zip(ZONES, courier_count, strict=True)
            for j in range(k)
        ],
        dtype=object,
    )
    # Expected orders per courier by zone and hour: computable per block, yet it matches
    # what the ETA view sees as deliveries and courier load.
    per_courier = zone_share / courier_count
    load = np.outer(per_courier / per_courier.mean(), HOUR_P / HOUR_P.mean())
    load_mult = np.clip(0.8 + 0.2 * load, 0.8, 1.8)
    # Traffic: a slowly wandering log factor per zone (AR(1) by hour), plus rainy days per region.
    hours = days * 24 + 24
    shocks = rng.normal(0.0, 0.07, (nz, hours))
    log_traffic = np.empty((nz, hours))
    level = rng.normal(0.0, 0.15, nz)
    for h in range(hours):
        level = 0.95 * level + shocks[:, h]
        log_traffic[:, h] = level
    rain = rng.random((len(REGIONS), days + 1)) < 0.12
    rain_hourly = np.repeat(np.where(rain, np.log(1.25), 0.0), 24, axis=1)[:, :hours]
    traffic = np.exp(log_traffic + rain_hourly[ZONE_REGION])

    offer_category = np.arange(N_OFFERS) % len(CATEGORIES)
    offer_discount = rng.choice(np.array(DISCOUNTS, dtype=float), N_OFFERS)
    offer_price = np.round(rng.uniform(1.5, 12.0, N_OFFERS), 2)
    return _World(
        start=start,
        end=start + days * DAY,
        zone_share=zone_share,
        zone_mpk=zone_mpk,
        load_mult=load_mult,
        traffic=traffic,
        courier_first=courier_first,
        courier_count=courier_count,
        courier_factor=courier_factor,
        courier_ids=courier_ids,
        offer_category=offer_category,
        offer_discount=offer_discount,
        offer_price=offer_price,
    )


def _offers_frame(world: _World) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "offer_id": [f"OF{i + 1:03d}" for i in range(N_OFFERS)],
            "category": np.array(CATEGORIES, dtype=object)[world.offer_category],
            "discount_pct": world.offer_discount,
            "price": world.offer_price,
        }
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _in_day(rng: np.random.Generator, day0: int, hour: np.ndarray) -> np.ndarray:
    """Epoch seconds in [day0, day0 + 1 day) whose clock hour is ``hour``."""
    midnight = day0 - day0 % DAY
    t = midnight + hour * 3600 + rng.integers(0, 3600, hour.size)
    return np.where(t < day0, t + DAY, t)


def _simulate_block(
    world: _World,
    rng: np.random.Generator,
    first: int,
    n: int,
    counters: _Counters,
    report: Callable[[int], None],
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield (table, frame) for ``n`` customers numbered from ``first``, day by day."""
    start, end = world.start, world.end
    days = (end - start) // DAY
    home = rng.choice(len(ZONES), n, p=world.zone_share)
    plan = rng.choice(len(PLANS), n, p=PLAN_P)
    signup = start + rng.integers(
        -SIGNUP_LOOKBACK_DAYS * DAY, (days - 1) * DAY + 1, n, dtype=np.int64
    )
    width = counters.customer_width
    cust_ids = np.array([f"C{i:0{width}d}" for i in range(first + 1, first + n + 1)], dtype=object)
    yield (
        "customers",
        pd.DataFrame(
            {
                "customer_id": cust_ids,
                "signup_at": signup.astype("datetime64[s]"),
                "region": np.array(REGIONS, dtype=object)[ZONE_REGION[home]],
                "plan": np.array(PLANS, dtype=object)[plan],
            }
        ),
    )

    # Latent traits: none of these is stored, the views only see their consequences.
    lam = rng.gamma(4.0, PLAN_RATE[plan] / 4.0)
    eng = rng.normal(0.0, 0.25, n)
    cancel_p = rng.beta(2.0, 28.0, n)
    dist_mu = np.exp(rng.normal(np.log(3.0), 0.45, n))
    basket = rng.gamma(2.0, 0.8, n)
    price_level = rng.uniform(7.0, 16.0, n)
    favourite = rng.integers(0, len(CATEGORIES), n)
    propensity = rng.normal(0.0, 0.6, n)
    discount_slope = rng.lognormal(0.0, 0.6, n)
    fragility = rng.lognormal(0.0, 0.3, n)
    tolerance = rng.uniform(*TOLERANCE, n) + PLAN_TOLERANCE[plan]
    active = ~((signup < start) & (rng.random(n) < 0.15))
    paused = rng.random(n) < PAUSE_P / RESUME_P
    bad = np.zeros(n)

    buf = _Buffer()
    for t in range(days):
        day0 = start + t * DAY
        live = active & ~paused & (signup < day0)

        # Orders.
        k = rng.poisson(np.where(live, lam * np.exp(eng), 0.0))
        cust = np.repeat(np.arange(n), k)
        m = cust.size
        hour = rng.choice(24, m, p=HOUR_P)
        placed = _in_day(rng, day0, hour)
        busy = world.load_mult[home[cust], hour]
        cancelled = rng.random(m) < np.minimum(cancel_p[cust] * (0.6 + 0.4 * busy), 0.9)
        items = 1 + rng.poisson(basket[cust])
        amount = items * price_level[cust] * rng.lognormal(0.0, 0.15, m)

        # Deliveries of completed orders.
        done = np.flatnonzero(~cancelled)
        dc = cust[done]
        zone = home[dc]
        dist = np.round(np.clip(dist_mu[dc] * rng.gamma(4.0, 0.25, done.size), 0.3, 15.0), 2)
        dispatched = placed[done] + 240 + np.round(rng.gamma(2.0, 180.0, done.size)).astype(int)
        promised = dispatched + np.round(10 + 3.5 * dist).astype(int) * 60
        courier = world.courier_first[zone] + (
            rng.random(done.size) * world.courier_count[zone]
        ).astype(int)
        since = np.minimum((dispatched - start) // 3600, world.traffic.shape[1] - 1)
        dhour = (dispatched % DAY) // 3600
        minutes = (
            4.0
            + dist
            * world.zone_mpk[zone]
            * RUSH[dhour]
            * world.load_mult[zone, dhour]
            * world.traffic[zone, since]
            * world.courier_factor[courier]
        ) * rng.lognormal(0.0, 0.12, done.size)
        delivered = dispatched + np.round(np.clip(minutes, 2.0, 170.0) * 60).astype(int)
        sent = dispatched < end  # not yet dispatched at the end: no delivery row yet
        arrived = sent & (delivered < end)
        late = arrived & (delivered > promised)

        # Offers shown with completed orders (0-3, no repeats) and while browsing.
        shown_n = rng.choice(4, done.size, p=(0.3, 0.35, 0.25, 0.1))
        picks = rng.integers(0, N_OFFERS, (done.size, 3))
        ok = np.arange(3) < shown_n[:, None]
        ok[:, 1] &= picks[:, 1] != picks[:, 0]
        ok[:, 2] &= (picks[:, 2] != picks[:, 0]) & (picks[:, 2] != picks[:, 1])
        row, col = np.nonzero(ok)
        browsing = np.flatnonzero(live & (rng.random(n) < 0.05))
        imp_order = np.concatenate([done[row], np.full(browsing.size, -1)])
        imp_cust = np.concatenate([cust[done[row]], browsing])
        imp_offer = np.concatenate([picks[row, col], rng.integers(0, N_OFFERS, browsing.size)])
        browse_hour = rng.choice(24, browsing.size, p=HOUR_P)
        shown = np.concatenate([placed[done[row]], _in_day(rng, day0, browse_hour)])
        logit = (
            -2.6
            + 0.09 * discount_slope[imp_cust] * (world.offer_discount[imp_offer] - 20.0)
            + 2.5 * (world.offer_category[imp_offer] == favourite[imp_cust])
            + PLAN_UPLIFT[plan[imp_cust]]
            + propensity[imp_cust]
            - 0.4 * (imp_order < 0)
        )
        accepted = rng.random(imp_cust.size) < _sigmoid(logit)
        # An accepted offer joins the basket.
        took = imp_order[accepted & (imp_order >= 0)]
        np.add.at(items, took, 1)
        np.add.at(
            amount,
            took,
            world.offer_price[imp_offer[accepted & (imp_order >= 0)]]
            * (1 - world.offer_discount[imp_offer[accepted & (imp_order >= 0)]] / 100),
        )

        # Support tickets: after late deliveries, cancellations, and a small baseline.
        late_t = np.flatnonzero(late & (rng.random(done.size) < 0.3))
        cancel_t = np.flatnonzero(cancelled & (rng.random(m) < 0.4))
        base_t = np.flatnonzero(live & (rng.random(n) < 0.0015))
        t_cust = np.concatenate([dc[late_t], cust[cancel_t], base_t])
        opened = np.concatenate(
            [
                delivered[late_t] + rng.integers(300, 3 * 3600, late_t.size),
                placed[cancel_t] + rng.integers(120, 3600, cancel_t.size),
                _in_day(rng, day0, rng.choice(24, base_t.size, p=HOUR_P)),
            ]
        )
        reason = np.concatenate(
            [
                np.zeros(late_t.size, dtype=int),
                np.ones(cancel_t.size, dtype=int),
                2 + rng.integers(0, 2, base_t.size),
            ]
        )

        # Experiences feed back: bad ones wear engagement down and raise the churn hazard.
        shock = (
            np.bincount(dc[late], minlength=n)
            + 1.2 * np.bincount(cust[cancelled], minlength=n)
            + 2.0 * np.bincount(t_cust, minlength=n)
        )
        good = np.bincount(dc[arrived & ~late], minlength=n)
        bad = np.maximum(BAD_DECAY * bad + shock - GOOD_CREDIT * good, 0.0)
        eng = 0.97 * eng + rng.normal(0.0, 0.05, n) - 0.03 * fragility * shock
        hazard = np.minimum(
            PLAN_HAZARD[plan] * np.exp(-0.6 * eng)
            + BAD_HAZARD
            * (
                bad
                > tolerance
                * np.clip(0.4 + 0.6 * (day0 - signup) / (NEW_CUSTOMER_DAYS * DAY), 0.4, 1.0)
            ),
            0.5,
        )
        churn = live & (rng.random(n) < hazard)
        back = ~active & (signup < day0) & (rng.random(n) < RETURN_P)
        active = (active & ~churn) | back
        bad[back] = 0.0
        eng[back] = rng.normal(-0.2, 0.2, int(back.sum()))
        resume = paused & (rng.random(n) < RESUME_P)
        paused = (paused & ~resume) | (live & (rng.random(n) < PAUSE_P * np.exp(-0.8 * eng)))

        base = buf.orders
        buf.add(
            orders=(cust, placed, cancelled, items, np.round(amount, 2)),
            deliveries=(
                base + done[sent],
                zone[sent],
                courier[sent],
                dist[sent],
                dispatched[sent],
                promised[sent],
                np.where(arrived, delivered, -1)[sent],
            ),
            impressions=(
                imp_cust,
                imp_offer,
                np.where(imp_order >= 0, imp_order + base, -1),
                shown,
                accepted,
            ),
            tickets=(t_cust[opened < end], opened[opened < end], reason[opened < end]),
        )
        report(t + 1)
        if buf.orders >= FLUSH_ORDERS or t == days - 1:
            yield from buf.frames(world, cust_ids, counters)
            buf = _Buffer()


class _Buffer:
    """Per-day arrays of a block, turned into frames (with ids) when flushed."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[np.ndarray, ...]]] = {
            "orders": [],
            "deliveries": [],
            "impressions": [],
            "tickets": [],
        }
        self.orders = 0

    def add(self, **parts: tuple[np.ndarray, ...]) -> None:
        for name, arrays in parts.items():
            self.parts[name].append(arrays)
        self.orders += parts["orders"][0].size

    def _cat(self, name: str, width: int) -> list[np.ndarray]:
        parts = self.parts[name]
        if not parts:
            return [np.empty(0, dtype=np.int64) for _ in range(width)]
        return [np.concatenate([p[i] for p in parts]) for i in range(width)]

    def frames(
        self, world: _World, cust_ids: np.ndarray, counters: _Counters
    ) -> Iterator[tuple[str, pd.DataFrame]]:
        cust, placed, cancelled, items, amount = self._cat("orders", 5)
        order_ids = _ids("O", counters.orders, cust.size)
        counters.orders += cust.size
        yield (
            "orders",
            pd.DataFrame(
                {
                    "order_id": order_ids,
                    "customer_id": cust_ids[cust],
                    "placed_at": placed.astype("datetime64[s]"),
                    "status": np.where(cancelled.astype(bool), "cancelled", "completed").astype(
                        object
                    ),
                    "item_count": items.astype(np.int64),
                    "total_amount": amount.astype(float),
                }
            ),
        )

        order, zone, courier, dist, dispatched, promised, delivered = self._cat("deliveries", 7)
        delivered_at = delivered.astype("datetime64[s]")
        delivered_at[delivered < 0] = np.datetime64("NaT")
        yield (
            "deliveries",
            pd.DataFrame(
                {
                    "delivery_id": _ids("D", counters.deliveries, order.size),
                    "order_id": order_ids[order],
                    "zone": np.array(ZONES, dtype=object)[zone],
                    "courier_id": world.courier_ids[courier],
                    "distance_km": dist.astype(float),
                    "dispatched_at": dispatched.astype("datetime64[s]"),
                    "promised_at": promised.astype("datetime64[s]"),
                    "delivered_at": delivered_at,
                }
            ),
        )
        counters.deliveries += order.size

        icust, offer, iorder, shown, accepted = self._cat("impressions", 5)
        offer_ids = np.array([f"OF{i + 1:03d}" for i in range(N_OFFERS)], dtype=object)
        yield (
            "offer_impressions",
            pd.DataFrame(
                {
                    "impression_id": _ids("I", counters.impressions, icust.size),
                    "customer_id": cust_ids[icust],
                    "offer_id": offer_ids[offer],
                    "order_id": np.where(iorder >= 0, order_ids[np.maximum(iorder, 0)], None)
                    if order_ids.size
                    else np.full(iorder.size, None, dtype=object),
                    "shown_at": shown.astype("datetime64[s]"),
                    "accepted": accepted.astype(bool),
                }
            ),
        )
        counters.impressions += icust.size

        tcust, opened, reason = self._cat("tickets", 3)
        yield (
            "support_tickets",
            pd.DataFrame(
                {
                    "ticket_id": _ids("T", counters.tickets, tcust.size),
                    "customer_id": cust_ids[tcust],
                    "opened_at": opened.astype("datetime64[s]"),
                    "reason": np.array(REASONS, dtype=object)[reason],
                }
            ),
        )
        counters.tickets += tcust.size


def _ids(prefix: str, first: int, count: int) -> np.ndarray:
    return np.array([f"{prefix}{i:010d}" for i in range(first, first + count)], dtype=object)
