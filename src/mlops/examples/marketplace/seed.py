"""The synthetic warehouse: a delivery marketplace whose churn, upsell and ETA labels really
depend on what the feature views compute, so models have something to learn beyond the rules.

Customers are simulated day by day in blocks, vectorized with numpy, and written as they go,
all in one transaction.
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
from mlops.warehouse.bulk import insert_frame
from mlops.warehouse.contract import analyze

from . import warehouse as schema
from .seed_customers import Customers, simulate_day
from .seed_frames import Buffer, Counters
from .seed_world import (
    DAY,
    PLANS,
    REGIONS,
    ZONE_REGION,
    World,
    build_world,
    offers_frame,
)

# Customers simulated (and held in memory) at once; each block has its own random stream.
BLOCK_CUSTOMERS = 50_000
# A block's buffered orders are written out at this size, to bound memory on long histories.
FLUSH_ORDERS = 200_000

EPOCH = datetime(1970, 1, 1)


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
        raise InputError("customers and days must be at least 1", "e.g. --size 5000 --days 120")
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}", "use e.g. --seed 42")
    end = to_utc_naive(end)
    start = end - timedelta(days=days)
    world = build_world(seed, days, int((start - EPOCH).total_seconds()))
    counters = Counters(customer_width=max(7, len(str(customers))))
    rows = dict.fromkeys(schema.TABLES, 0)

    def report(done: int) -> None:
        if on_progress:
            on_progress("customers", done, customers)

    schema.create_tables(engine)
    with engine.begin() as conn:
        _clear(conn, replace)
        rows["offers"] += insert_frame(conn, schema.offers, offers_frame(world))
        report(0)
        for block, first in enumerate(range(0, customers, BLOCK_CUSTOMERS)):
            n = min(BLOCK_CUSTOMERS, customers - first)
            rng = np.random.default_rng([seed, 1, block])
            day_done = partial(_block_done, report, first, n, days)
            frames = _simulate_block(world, rng, first, n, counters, day_done)
            for name, frame in frames:
                rows[name] += insert_frame(conn, name, frame)
            report(first + n)
    analyze(engine, schema.TABLES)
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


def _simulate_block(
    world: World,
    rng: np.random.Generator,
    first: int,
    n: int,
    counters: Counters,
    report: Callable[[int], None],
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield (table, frame) for ``n`` customers numbered from ``first``, day by day."""
    c = Customers(world, rng, n)
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
    buffer = Buffer(world, ids, counters)
    for t in range(days):
        day0 = world.start + t * DAY
        live = c.active & ~c.paused & (c.signup < day0)
        day = simulate_day(world, c, rng, day0, live)
        c.update(rng, day0, live, day)
        buffer.add(day)
        report(t + 1)
        if buffer.orders >= FLUSH_ORDERS:
            yield from buffer.flush()
    yield from buffer.flush()
