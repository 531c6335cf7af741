"""Turning a block's simulated days into table rows: ids numbered across blocks, orders
linked to their deliveries and offers, buffered so long histories are written in pieces."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .seed_customers import Day
from .seed_world import OFFER_IDS, REASONS, ZONES, World


@dataclass
class Counters:
    """Next id number per table, carried across blocks so ids are unique and sequential."""

    customer_width: int
    orders: int = 1
    deliveries: int = 1
    impressions: int = 1
    tickets: int = 1


class Buffer:
    """Days of a block not yet written; flushing gives them ids and turns them into frames."""

    def __init__(self, world: World, customer_ids: np.ndarray, counters: Counters) -> None:
        self.world, self.customer_ids, self.counters = world, customer_ids, counters
        self.days: list[Day] = []
        self.orders = 0

    def add(self, day: Day) -> None:
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
