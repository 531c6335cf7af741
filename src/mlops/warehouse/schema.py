"""The raw tables of the warehouse contract (DESIGN.md). Extra columns are allowed and ignored."""

from __future__ import annotations

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
    inspect,
)

from mlops.db.types import Timestamp
from mlops.errors import NotReadyError

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


def create_tables(engine: Engine) -> None:
    """Create the raw tables and the indexes the views rely on, where missing."""
    metadata.create_all(engine)


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics after a bulk load (PostgreSQL; SQLite needs none):
    without them the feature views get nested-loop plans that run for minutes."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"ANALYZE {', '.join(TABLES)}")


def require_tables(engine: Engine) -> None:
    """Raise with the fix when the warehouse lacks a raw table."""
    present = set(inspect(engine).get_table_names())
    missing = [name for name in TABLES if name not in present]
    if missing:
        raise NotReadyError(
            f"the warehouse has no table {', '.join(missing)}",
            "run `mlops warehouse seed` or `mlops warehouse load DIR`",
        )
