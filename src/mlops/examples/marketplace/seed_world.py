"""What every simulated customer shares: the marketplace's places, couriers, traffic, offers
and clock, drawn once per seed so that every block of customers lives in the same world."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = 86_400

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


@dataclass(frozen=True)
class World:
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


def build_world(seed: int, days: int, start: int) -> World:
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

    return World(
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


def offers_frame(world: World) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "offer_id": OFFER_IDS,
            "category": np.array(CATEGORIES, dtype=object)[world.offer_category],
            "discount_pct": world.offer_discount,
            "price": world.offer_price,
        }
    )
