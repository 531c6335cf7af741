"""The synthetic warehouse: a delivery marketplace whose churn, upsell and ETA labels really
depend on what the feature views compute, so models have something to learn beyond the rules.

Customers are simulated day by day in blocks, vectorized with numpy. Each has a latent order
rate, engagement and tolerance; late deliveries, cancellations and tickets build up a memory of
bad service, and a customer whose memory passes their tolerance leaves (new customers sooner,
premium and big spenders later). Breaks that end on their own keep recency from telling the
two apart. Delivery minutes depend on distance, zone speed, hour of day, expected courier load,
wandering traffic, the courier and the address. Offer acceptance depends on discount (more for
some customers), the customer's favourite category, plan, basket size and a propensity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from mlops.clock import to_utc_naive
from mlops.errors import InputError
from mlops.warehouse import schema
from mlops.warehouse.bulk import insert_frame

# Customers simulated (and held in memory) at once; each block has its own random stream.
BLOCK_CUSTOMERS = 50_000
# A block's buffered orders are written out at this size, to bound memory on long histories.
FLUSH_ORDERS = 200_000

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
OFFER_IDS = np.array([f"OF{i + 1:03d}" for i in range(N_OFFERS)], dtype=object)
DISCOUNTS = (5, 10, 15, 20, 25, 30, 35, 40)
REASONS = np.array(["late_delivery", "cancelled_order", "billing", "app_issue"], dtype=object)

# Orders placed per hour of day (UTC is the marketplace's clock): lunch and dinner peaks.
HOUR_WEIGHT = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.5, 1.5, 1.8, 3.5,
     6.0, 5.0, 2.5, 2.0, 2.5, 4.5, 6.5, 6.5, 4.5, 2.5, 1.2, 0.6]
)  # fmt: skip
HOUR_P = HOUR_WEIGHT / HOUR_WEIGHT.sum()
# Road traffic by hour of day, on top of the zone's courier load.
RUSH = np.ones(24)
RUSH[[8, 9, 12, 13, 17, 18, 19]] = (1.15, 1.1, 1.15, 1.1, 1.2, 1.25, 1.15)

# Orders per day of an engaged customer, by plan (about 1.4, 1.9 and 2.7 a week).
PLAN_RATE = np.array([0.20, 0.27, 0.38])
CANCEL_BETA = (2.0, 28.0)  # per-customer cancellation probability, mean 6.7%
HANDOFF_MEAN = 1.0  # minutes at the door, exponential per address
BROWSE_P = 0.05  # daily chance of seeing an offer outside an order

# Offer acceptance log-odds.
ACCEPT_BASE = -3.0
PLAN_UPLIFT = np.array([0.0, 0.5, 1.0])
FAVOURITE_UPLIFT = 3.5
BASKET_UPLIFT = 0.3  # per expected extra item
PROPENSITY_SD = 0.3
DISCOUNT_SLOPE = (-0.2, 0.9)  # lognormal: how much each customer cares about the discount

# Churn. Bad experiences are remembered (decaying daily); past a customer's tolerance they
# leave within days. Daily hazard otherwise is tiny, so leaving has visible causes.
PLAN_HAZARD = np.array([0.0002, 0.00015, 0.0001])  # at average engagement; more when it falls
BAD_DECAY = 0.98
BAD_HAZARD = 0.3
LATE_WEIGHT, CANCEL_WEIGHT, TICKET_WEIGHT = 0.7, 1.2, 4.0
GOOD_CREDIT = 0.25  # each on-time delivery wears the memory down by this much
TOLERANCE = (4.0, 9.0)
PLAN_TOLERANCE = np.array([0.0, 0.8, 1.6])
SPEND_TOLERANCE = 0.3  # per unit of price level (7-16): big spenders forgive more
NEW_CUSTOMER_DAYS = 120  # tolerance grows from 40% to full over a customer's first months
COMPLAIN_POWER = 1.5  # the least tolerant open the most tickets
RETURN_P = 0.001  # daily chance that a churned customer comes back
# Breaks (holidays, busy weeks): common, unrelated to service, and they end. Recency alone
# cannot tell them from a customer driven away; the service history can.
PAUSE_P = 0.015
RESUME_P = 1 / 12


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
    """Generate ``days`` of history before ``end`` (UTC) for ``customers`` customers, all or
    nothing; the same arguments give the same rows. Progress: ``("customers", done, total)``."""
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

    def report(done: int) -> None:
        if on_progress:
            on_progress("customers", done, customers)

    schema.create_tables(engine)
    with engine.begin() as conn:
        _clear(conn, replace)
        rows["offers"] += insert_frame(conn, schema.offers, _offers_frame(world))
        report(0)
        for block, first in enumerate(range(0, customers, BLOCK_CUSTOMERS)):
            n = min(BLOCK_CUSTOMERS, customers - first)
            rng = np.random.default_rng([seed, 1, block])
            day_done = partial(_block_done, report, first, n, days)
            frames = _simulate_block(world, rng, first, n, counters, day_done)
            for name, frame in frames:
                rows[name] += insert_frame(conn, name, frame)
            report(first + n)
    schema.analyze(engine)
    return SeedSummary(rows, customers, days, seed, start, end)


def _block_done(report: Callable[[int], None], first: int, n: int, days: int, day: int) -> None:
    report(first + n * day // days)


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
    # TRUNCATE is transactional on PostgreSQL and far faster than DELETE on big tables.
    verb = "TRUNCATE TABLE" if conn.dialect.name == "postgresql" else "DELETE FROM"
    for name in filled:
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
    load_mult: np.ndarray  # (zone, hour of day) slow-down from the expected courier load
    traffic: np.ndarray  # (zone, hours since start) slow-down from traffic and rain
    courier_first: np.ndarray  # index of each zone's first courier
    courier_count: np.ndarray
    courier_factor: np.ndarray  # persistent speed of each courier (a minutes multiplier)
    courier_ids: np.ndarray
    offer_category: np.ndarray
    offer_discount: np.ndarray
    offer_price: np.ndarray


def _world(seed: int, days: int, start: int) -> _World:
    rng = np.random.default_rng([seed, 0])
    nz = len(ZONES)
    zone_share = rng.gamma(4.0, 1.0, nz)
    zone_share /= zone_share.sum()
    zone_mpk = rng.uniform(2.2, 3.8, nz)
    courier_count = rng.integers(8, 16, nz)
    courier_first = np.concatenate([[0], np.cumsum(courier_count)[:-1]])
    courier_factor = rng.lognormal(0.0, 0.12, int(courier_count.sum()))
    courier_ids = np.array(
        [f"{z}-K{j:02d}" for z, k in zip(ZONES, courier_count, strict=True) for j in range(k)],
        dtype=object,
    )
    # Expected orders per courier by zone and hour: computable per block, yet it matches what
    # the ETA view sees as deliveries and courier load.
    per_courier = zone_share / courier_count
    load = np.outer(per_courier / per_courier.mean(), HOUR_P / HOUR_P.mean())
    load_mult = np.clip(0.8 + 0.2 * load, 0.8, 1.8)
    # Traffic wanders (AR(1) by hour, per zone) and rain slows a region for a day, so the
    # recent minutes per km a zone shows say more than its long-run speed.
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
        offer_category=np.arange(N_OFFERS) % len(CATEGORIES),
        offer_discount=rng.choice(np.array(DISCOUNTS, dtype=float), N_OFFERS),
        offer_price=np.round(rng.uniform(1.5, 12.0, N_OFFERS), 2),
    )


def _offers_frame(world: _World) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "offer_id": OFFER_IDS,
            "category": np.array(CATEGORIES, dtype=object)[world.offer_category],
            "discount_pct": world.offer_discount,
            "price": world.offer_price,
        }
    )


class _Customers:
    """One block's customers: latent traits (never stored) and the state that evolves daily."""

    def __init__(self, world: _World, rng: np.random.Generator, n: int) -> None:
        days = (world.end - world.start) // DAY
        self.n = n
        self.home = rng.choice(len(ZONES), n, p=world.zone_share)
        self.plan = rng.choice(len(PLANS), n, p=PLAN_P)
        self.signup = world.start + rng.integers(
            -SIGNUP_LOOKBACK_DAYS * DAY, (days - 1) * DAY + 1, n, dtype=np.int64
        )
        self.rate = rng.gamma(4.0, PLAN_RATE[self.plan] / 4.0)
        self.cancel_p = rng.beta(*CANCEL_BETA, n)
        self.handoff = rng.exponential(HANDOFF_MEAN, n)
        self.distance = np.exp(rng.normal(np.log(3.0), 0.45, n))
        self.basket = rng.gamma(2.0, 0.8, n)
        self.price_level = rng.uniform(7.0, 16.0, n)
        self.favourite = rng.integers(0, len(CATEGORIES), n)
        self.propensity = rng.normal(0.0, PROPENSITY_SD, n)
        self.discount_slope = rng.lognormal(*DISCOUNT_SLOPE, n)
        self.tolerance = (
            rng.uniform(*TOLERANCE, n)
            + PLAN_TOLERANCE[self.plan]
            + SPEND_TOLERANCE * (self.price_level - 11.5)
        )
        self.complain = np.clip((np.mean(TOLERANCE) / self.tolerance) ** COMPLAIN_POWER, 0.2, 2.2)
        # Customers who signed up long ago may already be gone or on a break.
        self.active = ~((self.signup < world.start) & (rng.random(n) < 0.15))
        self.paused = rng.random(n) < PAUSE_P / RESUME_P
        self.engagement = rng.normal(0.0, 0.25, n)
        self.bad = np.zeros(n)

    def update(self, rng: np.random.Generator, day0: int, live: np.ndarray, day: _Day) -> None:
        """Feed the day's experiences back into engagement, breaks and churn."""
        n = self.n
        shock = (
            LATE_WEIGHT * np.bincount(day.delivery_customer[day.late], minlength=n)
            + CANCEL_WEIGHT * np.bincount(day.customer[day.cancelled], minlength=n)
            + TICKET_WEIGHT * np.bincount(day.ticket_customer, minlength=n)
        )
        good = np.bincount(day.delivery_customer[day.arrived & ~day.late], minlength=n)
        self.bad = np.maximum(BAD_DECAY * self.bad + shock - GOOD_CREDIT * good, 0.0)
        self.engagement = (
            0.97 * self.engagement + rng.normal(0.0, 0.05, n) - 0.03 * np.minimum(shock, 5.0)
        )
        seasoning = np.clip(0.4 + 0.6 * (day0 - self.signup) / (NEW_CUSTOMER_DAYS * DAY), 0.4, 1)
        hazard = PLAN_HAZARD[self.plan] * np.exp(-0.6 * self.engagement) + BAD_HAZARD * (
            self.bad > self.tolerance * seasoning
        )
        churn = live & (rng.random(n) < hazard)
        back = ~self.active & (self.signup < day0) & (rng.random(n) < RETURN_P)
        self.active = (self.active & ~churn) | back
        self.bad[back] = 0.0
        self.engagement[back] = rng.normal(-0.2, 0.2, int(back.sum()))
        resume = self.paused & (rng.random(n) < RESUME_P)
        start_break = live & (rng.random(n) < PAUSE_P * np.exp(-0.8 * self.engagement))
        self.paused = (self.paused & ~resume) | start_break


@dataclass
class _Day:
    """One simulated day of a block; indices are into the block's customers and the day's
    orders (``-1`` for none)."""

    customer: np.ndarray  # per order
    placed: np.ndarray
    cancelled: np.ndarray
    items: np.ndarray
    amount: np.ndarray
    delivery_order: np.ndarray  # per completed order
    delivery_customer: np.ndarray
    zone: np.ndarray
    courier: np.ndarray
    distance: np.ndarray
    dispatched: np.ndarray
    promised: np.ndarray
    delivered: np.ndarray
    sent: np.ndarray  # dispatched before the end: has a delivery row
    arrived: np.ndarray  # delivered before the end
    late: np.ndarray
    impression_customer: np.ndarray
    impression_offer: np.ndarray
    impression_order: np.ndarray
    shown: np.ndarray
    accepted: np.ndarray
    ticket_customer: np.ndarray
    opened: np.ndarray
    reason: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _in_day(rng: np.random.Generator, day0: int, hour: np.ndarray) -> np.ndarray:
    """Epoch seconds in [day0, day0 + 1 day) whose clock hour is ``hour``."""
    midnight = day0 - day0 % DAY
    t = midnight + hour * 3600 + rng.integers(0, 3600, hour.size)
    return np.where(t < day0, t + DAY, t)


def _simulate_day(
    world: _World, c: _Customers, rng: np.random.Generator, day0: int, live: np.ndarray
) -> _Day:
    n, end = c.n, world.end

    # Orders: Poisson per customer, at lunch and dinner peaks; busy zones cancel more.
    k = rng.poisson(np.where(live, c.rate * np.exp(c.engagement), 0.0))
    cust = np.repeat(np.arange(n), k)
    m = cust.size
    hour = rng.choice(24, m, p=HOUR_P)
    placed = _in_day(rng, day0, hour)
    busy = world.load_mult[c.home[cust], hour]
    cancelled = rng.random(m) < np.minimum(c.cancel_p[cust] * (0.6 + 0.4 * busy), 0.9)
    items = 1 + rng.poisson(c.basket[cust])
    amount = items * c.price_level[cust] * rng.lognormal(0.0, 0.15, m)

    # Deliveries of completed orders, from the customer's home zone.
    done = np.flatnonzero(~cancelled)
    dc = cust[done]
    zone = c.home[dc]
    dist = np.round(np.clip(c.distance[dc] * rng.gamma(4.0, 0.25, done.size), 0.3, 15.0), 2)
    dispatched = placed[done] + 240 + np.round(rng.gamma(2.0, 180.0, done.size)).astype(np.int64)
    promised = dispatched + np.round(10 + 3.5 * dist).astype(np.int64) * 60
    pick = rng.random(done.size) * world.courier_count[zone]
    courier = world.courier_first[zone] + pick.astype(np.int64)
    since = np.minimum((dispatched - world.start) // 3600, world.traffic.shape[1] - 1)
    dhour = (dispatched % DAY) // 3600
    minutes = (
        3.0
        + c.handoff[dc]
        + dist
        * world.zone_mpk[zone]
        * RUSH[dhour]
        * world.load_mult[zone, dhour]
        * world.traffic[zone, since]
        * world.courier_factor[courier]
    ) * rng.lognormal(0.0, 0.12, done.size)
    # The ETA view assumes deliveries finish within 3 hours of dispatch.
    delivered = dispatched + np.round(np.clip(minutes, 2.0, 170.0) * 60).astype(np.int64)
    sent = dispatched < end
    arrived = sent & (delivered < end)
    late = arrived & (delivered > promised)

    # Offers: 0-3 distinct ones with each completed order, one now and then while browsing.
    shown_n = rng.choice(4, done.size, p=(0.3, 0.35, 0.25, 0.1))
    picks = rng.integers(0, N_OFFERS, (done.size, 3))
    ok = np.arange(3) < shown_n[:, None]
    ok[:, 1] &= picks[:, 1] != picks[:, 0]
    ok[:, 2] &= (picks[:, 2] != picks[:, 0]) & (picks[:, 2] != picks[:, 1])
    row, col = np.nonzero(ok)
    browsing = np.flatnonzero(live & (rng.random(n) < BROWSE_P))
    imp_order = np.concatenate([done[row], np.full(browsing.size, -1)])
    imp_cust = np.concatenate([cust[done[row]], browsing])
    imp_offer = np.concatenate([picks[row, col], rng.integers(0, N_OFFERS, browsing.size)])
    browse_at = _in_day(rng, day0, rng.choice(24, browsing.size, p=HOUR_P))
    shown = np.concatenate([placed[done[row]], browse_at])
    discount = world.offer_discount[imp_offer]
    logit = (
        ACCEPT_BASE
        + 0.09 * c.discount_slope[imp_cust] * (discount - 20.0)
        + FAVOURITE_UPLIFT * (world.offer_category[imp_offer] == c.favourite[imp_cust])
        + PLAN_UPLIFT[c.plan[imp_cust]]
        + BASKET_UPLIFT * (c.basket[imp_cust] - 1.6)
        + c.propensity[imp_cust]
        - 0.4 * (imp_order < 0)
    )
    accepted = rng.random(imp_cust.size) < _sigmoid(logit)
    # An accepted offer joins the order's basket.
    took = accepted & (imp_order >= 0)
    np.add.at(items, imp_order[took], 1)
    extra = world.offer_price[imp_offer[took]] * (1 - discount[took] / 100)
    np.add.at(amount, imp_order[took], extra)

    # Support tickets: after late deliveries (~30%), cancellations (~40%), and a small baseline.
    late_t = np.flatnonzero(late & (rng.random(done.size) < 0.3 * c.complain[dc]))
    cancel_t = np.flatnonzero(cancelled & (rng.random(m) < 0.4 * c.complain[cust]))
    base_t = np.flatnonzero(live & (rng.random(n) < 0.0015))
    ticket_customer = np.concatenate([dc[late_t], cust[cancel_t], base_t])
    opened = np.concatenate(
        [
            delivered[late_t] + rng.integers(300, 3 * 3600, late_t.size),
            placed[cancel_t] + rng.integers(120, 3600, cancel_t.size),
            _in_day(rng, day0, rng.choice(24, base_t.size, p=HOUR_P)),
        ]
    )
    reason = np.concatenate(
        [
            np.zeros(late_t.size, dtype=np.int64),
            np.ones(cancel_t.size, dtype=np.int64),
            2 + rng.integers(0, 2, base_t.size),
        ]
    )

    return _Day(
        customer=cust,
        placed=placed,
        cancelled=cancelled,
        items=items,
        amount=np.round(amount, 2),
        delivery_order=done,
        delivery_customer=dc,
        zone=zone,
        courier=courier,
        distance=dist,
        dispatched=dispatched,
        promised=promised,
        delivered=delivered,
        sent=sent,
        arrived=arrived,
        late=late,
        impression_customer=imp_cust,
        impression_offer=imp_offer,
        impression_order=imp_order,
        shown=shown,
        accepted=accepted,
        ticket_customer=ticket_customer,
        opened=opened,
        reason=reason,
    )


def _simulate_block(
    world: _World,
    rng: np.random.Generator,
    first: int,
    n: int,
    counters: _Counters,
    report: Callable[[int], None],
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield (table, frame) for ``n`` customers numbered from ``first``, day by day."""
    c = _Customers(world, rng, n)
    width = counters.customer_width
    ids = np.array([f"C{i:0{width}d}" for i in range(first + 1, first + n + 1)], dtype=object)
    yield (
        "customers",
        pd.DataFrame(
            {
                "customer_id": ids,
                "signup_at": c.signup.astype("datetime64[s]"),
                "region": np.array(REGIONS, dtype=object)[ZONE_REGION[c.home]],
                "plan": np.array(PLANS, dtype=object)[c.plan],
            }
        ),
    )
    days = (world.end - world.start) // DAY
    buffer = _Buffer(world, ids, counters)
    for t in range(days):
        day0 = world.start + t * DAY
        live = c.active & ~c.paused & (c.signup < day0)
        day = _simulate_day(world, c, rng, day0, live)
        c.update(rng, day0, live, day)
        buffer.add(day)
        report(t + 1)
        if buffer.orders >= FLUSH_ORDERS:
            yield from buffer.flush()
    yield from buffer.flush()


class _Buffer:
    """Days of a block not yet written; flushing gives them ids and turns them into frames."""

    def __init__(self, world: _World, customer_ids: np.ndarray, counters: _Counters) -> None:
        self.world, self.customer_ids, self.counters = world, customer_ids, counters
        self.days: list[_Day] = []
        self.orders = 0

    def add(self, day: _Day) -> None:
        self.days.append(day)
        self.orders += day.customer.size

    def flush(self) -> Iterator[tuple[str, pd.DataFrame]]:
        days, self.days, self.orders = self.days, [], 0
        if not days:
            return
        world, cids, counters = self.world, self.customer_ids, self.counters
        offsets = np.cumsum([0] + [d.customer.size for d in days[:-1]])

        def cat(field: str, mask: str | None = None, orders: bool = False) -> np.ndarray:
            parts = []
            for d, offset in zip(days, offsets, strict=True):
                values = getattr(d, field)
                if mask is not None:
                    values = values[getattr(d, mask)]
                if orders:  # day-local order index -> index into this flush, -1 stays -1
                    values = np.where(values >= 0, values + offset, -1)
                parts.append(values)
            return np.concatenate(parts)

        customer = cat("customer")
        order_ids = _ids("O", counters.orders, customer.size)
        counters.orders += customer.size
        yield (
            "orders",
            pd.DataFrame(
                {
                    "order_id": order_ids,
                    "customer_id": cids[customer],
                    "placed_at": cat("placed").astype("datetime64[s]"),
                    "status": np.where(cat("cancelled"), "cancelled", "completed").astype(object),
                    "item_count": cat("items").astype(np.int64),
                    "total_amount": cat("amount").astype(float),
                }
            ),
        )

        order = cat("delivery_order", "sent", orders=True)
        delivered = cat("delivered", "sent")
        delivered_at = delivered.astype("datetime64[s]")
        delivered_at[~cat("arrived", "sent")] = np.datetime64("NaT")  # still in flight
        yield (
            "deliveries",
            pd.DataFrame(
                {
                    "delivery_id": _ids("D", counters.deliveries, order.size),
                    "order_id": order_ids[order],
                    "zone": np.array(ZONES, dtype=object)[cat("zone", "sent")],
                    "courier_id": world.courier_ids[cat("courier", "sent")],
                    "distance_km": cat("distance", "sent").astype(float),
                    "dispatched_at": cat("dispatched", "sent").astype("datetime64[s]"),
                    "promised_at": cat("promised", "sent").astype("datetime64[s]"),
                    "delivered_at": delivered_at,
                }
            ),
        )
        counters.deliveries += order.size

        customer = cat("impression_customer")
        order = cat("impression_order", orders=True)
        order_id = np.full(order.size, None, dtype=object)
        order_id[order >= 0] = order_ids[order[order >= 0]]
        yield (
            "offer_impressions",
            pd.DataFrame(
                {
                    "impression_id": _ids("I", counters.impressions, customer.size),
                    "customer_id": cids[customer],
                    "offer_id": OFFER_IDS[cat("impression_offer")],
                    "order_id": order_id,
                    "shown_at": cat("shown").astype("datetime64[s]"),
                    "accepted": cat("accepted").astype(bool),
                }
            ),
        )
        counters.impressions += customer.size

        opened = cat("opened")
        keep = opened < world.end  # a ticket about the last hours may come after the end
        customer = cat("ticket_customer")[keep]
        yield (
            "support_tickets",
            pd.DataFrame(
                {
                    "ticket_id": _ids("T", counters.tickets, customer.size),
                    "customer_id": cids[customer],
                    "opened_at": opened[keep].astype("datetime64[s]"),
                    "reason": REASONS[cat("reason")[keep]],
                }
            ),
        )
        counters.tickets += customer.size


def _ids(prefix: str, first: int, count: int) -> np.ndarray:
    return np.array([f"{prefix}{i:010d}" for i in range(first, first + count)], dtype=object)
