"""How customers behave, day by day: the model that makes churn, upsell and ETA labels depend
on what the feature views compute.

Each customer has a latent order rate, engagement and tolerance; late deliveries, cancellations
and tickets build up a memory of bad service, and a customer whose memory passes their tolerance
leaves (new customers sooner, premium and big spenders later). Breaks that end on their own keep
recency from telling the two apart. Delivery minutes depend on distance, zone speed, hour of
day, expected courier load, wandering traffic, the courier and the address. Offer acceptance
depends on discount (more for some customers), the customer's favourite category, plan, basket
size and a propensity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seed_world import (
    CATEGORIES,
    DAY,
    HOUR_P,
    N_OFFERS,
    PLAN_P,
    PLANS,
    RUSH,
    ZONES,
    World,
)

SIGNUP_LOOKBACK_DAYS = 365

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


class Customers:
    """One block's customers: latent traits (never stored) and the state that evolves daily."""

    def __init__(self, world: World, rng: np.random.Generator, n: int) -> None:
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

    def update(self, rng: np.random.Generator, day0: int, live: np.ndarray, day: Day) -> None:
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
class Day:
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


def simulate_day(
    world: World, c: Customers, rng: np.random.Generator, day0: int, live: np.ndarray
) -> Day:
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

    return Day(
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
