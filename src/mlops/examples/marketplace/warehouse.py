"""The marketplace's warehouse contract (the module ``repository.yaml`` names as ``warehouse``):
its raw tables, the values a loaded file may hold and what they mean, the synthetic
generator and the requests quickstart suggests. The protocol is in
``mlops.warehouse.contract``. Extra columns of a loaded file are allowed and ignored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    select,
)

from mlops.db.types import Timestamp
from mlops.warehouse.contract import Request, Samples

if TYPE_CHECKING:
    from .seed import SeedSummary

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("signup_at", Timestamp, nullable=False),
    Column("region", String(64), nullable=False),
    Column("plan", String(32), nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("placed_at", Timestamp, nullable=False),
    Column("status", String(16), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("total_amount", Numeric(12, 2), nullable=False),
    # Covering: the churn and upsell views read a customer's orders from the index alone.
    Index(
        "ix_orders_customer_placed",
        "customer_id",
        "placed_at",
        "status",
        "total_amount",
        "item_count",
        "order_id",
    ),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(128), primary_key=True),
    Column("order_id", String(128)),
    Column("zone", String(64), nullable=False),
    Column("courier_id", String(128), nullable=False),
    Column("distance_km", Float, nullable=False),
    Column("dispatched_at", Timestamp, nullable=False),
    Column("promised_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp),
    Index("ix_deliveries_zone_dispatched", "zone", "dispatched_at"),
    Index("ix_deliveries_order", "order_id", "delivered_at", "promised_at"),
)

offers = Table(
    "offers",
    metadata,
    Column("offer_id", String(128), primary_key=True),
    Column("category", String(64), nullable=False),
    Column("discount_pct", Float, nullable=False),
    Column("price", Numeric(12, 2), nullable=False),
)

offer_impressions = Table(
    "offer_impressions",
    metadata,
    Column("impression_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("offer_id", String(128), nullable=False),
    Column("order_id", String(128)),
    Column("shown_at", Timestamp, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Index("ix_impressions_customer_shown", "customer_id", "shown_at", "offer_id", "accepted"),
)

support_tickets = Table(
    "support_tickets",
    metadata,
    Column("ticket_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("opened_at", Timestamp, nullable=False),
    Column("reason", String(64), nullable=False),
    Index("ix_tickets_customer_opened", "customer_id", "opened_at"),
)

# Load order: parents before children (no foreign keys are enforced: the user's ETL
# may deliver tables in any order, but seeding and loading go in this order).
TABLES: dict[str, Table] = {
    t.name: t for t in (customers, offers, orders, deliveries, offer_impressions, support_tickets)
}
load_order = tuple(TABLES)

# What a loaded file may hold beyond its column types.
allowed_values = {"orders": {"status": ("completed", "cancelled")}}

# What the values mean (the protocol's column_rules): ids and categories lose surrounding
# whitespace, so "  C1 " and "C1" are one customer; counts, amounts and distances stay
# within what the jobs' requests accept (eta.yaml, upsell.yaml); events are not in the
# future, give or take an hour of clocks that disagree; a delivery is not delivered, or
# promised, before it was dispatched. Free text (a ticket's reason) is kept as written.
KEY = {"whitespace": "strip"}
PAST = {"future_slack": timedelta(hours=1)}
AMOUNT = {"min": 0, "max": 1_000_000}
column_rules = {
    "customers": {"customer_id": KEY, "region": KEY, "plan": KEY, "signup_at": PAST},
    "offers": {
        "offer_id": KEY,
        "category": KEY,
        "discount_pct": {"min": 0, "max": 100},
        "price": AMOUNT,
    },
    "orders": {
        "order_id": KEY,
        "customer_id": KEY,
        "status": KEY,
        "placed_at": PAST,
        "item_count": {"min": 1, "max": 1000},
        "total_amount": AMOUNT,
    },
    "deliveries": {
        "delivery_id": KEY,
        "order_id": KEY,
        "zone": KEY,
        "courier_id": KEY,
        "distance_km": {"min": 0, "max": 500},
        "dispatched_at": PAST,
        "promised_at": {"not_before": "dispatched_at"},
        "delivered_at": {**PAST, "not_before": "dispatched_at"},
    },
    "offer_impressions": {
        "impression_id": KEY,
        "customer_id": KEY,
        "offer_id": KEY,
        "order_id": KEY,
        "shown_at": PAST,
    },
    "support_tickets": {"ticket_id": KEY, "customer_id": KEY, "opened_at": PAST},
}


def create_tables(engine: Engine) -> None:
    """Create the raw tables and the indexes the views rely on, where missing."""
    metadata.create_all(engine)


def seed(
    engine: Engine,
    *,
    size: int,
    days: int,
    seed: int,
    end: datetime,
    replace: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> SeedSummary:
    """The synthetic marketplace: ``size`` customers over ``days`` before ``end`` (see
    ``seed.seed_warehouse``)."""
    from .seed import seed_warehouse

    return seed_warehouse(
        engine,
        customers=size,
        days=days,
        seed=seed,
        end=end,
        replace=replace,
        on_progress=on_progress,
    )


def samples(engine: Engine) -> Samples:
    """The first customer and zone, in the marketplace's endpoints and the jobs' inputs."""
    with engine.connect() as conn:
        customer = conn.execute(select(func.min(customers.c.customer_id))).scalar_one()
        zone = conn.execute(select(func.min(deliveries.c.zone))).scalar_one()
    cart = [{"category": "grocery", "quantity": 2, "unit_price": 4.5}]
    return Samples(
        requests=(
            Request("GET", f"/v1/customers/{customer}/dossier"),
            Request("POST", "/v1/orders/compose", {"customer_id": customer, "cart": cart}),
            Request(
                "POST", "/v1/deliveries/eta", {"zone": zone, "distance_km": 3.2, "item_count": 2}
            ),
        ),
        entities={"churn": customer, "upsell": customer, "eta": zone},
        inputs={
            "upsell": {"offer_category": "grocery", "discount_pct": 20.0, "offer_price": 4.5},
            "eta": {"distance_km": 3.2, "item_count": 2},
        },
    )
