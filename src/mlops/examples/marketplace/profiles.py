"""What serving reads from the warehouse: a customer's profile summary (also the inputs of the
churn and upsell heuristics, computed live, so the fallback needs no feature store) and the
offers that can be ranked. Profiles are kept in the process for ``cache_seconds`` (30 s by
default): the warehouse is loaded in batches, and a read is most of a dossier's cost."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, select

from mlops.db.connections import ThreadConnections
from mlops.db.types import Timestamp
from mlops.errors import brief
from mlops.serving.memo import NotInMemory

from . import warehouse as wh


@dataclass(frozen=True)
class Profile:
    customer_id: str
    plan: str
    region: str
    signup_at: datetime
    tenure_days: float
    orders_30d: int
    orders_90d: int
    spend_90d: float
    last_order_at: datetime | None
    days_since_last_order: float | None
    impressions_90d: int
    accepted_90d: int

    def heuristic_inputs(self) -> dict[str, Any]:
        """The churn and upsell heuristics' inputs, defined as the feature views define them."""
        rate = self.accepted_90d / self.impressions_90d if self.impressions_90d else None
        return {
            "days_since_last_order": self.days_since_last_order,
            "orders_30d": self.orders_30d,
            "orders_90d": self.orders_90d,
            "impressions_90d": self.impressions_90d,
            "acceptance_rate_90d": rate,
        }


@dataclass(frozen=True)
class Offer:
    offer_id: str
    category: str
    discount_pct: float
    price: float

    def model_inputs(self) -> dict[str, Any]:
        """The offer's columns as the upsell model was trained on them."""
        return {
            "offer_category": self.category,
            "discount_pct": self.discount_pct,
            "offer_price": self.price,
        }


def _scalar(*columns_where):
    return select(*columns_where[:1]).where(*columns_where[1:]).scalar_subquery()


def _profile_query():
    o, i, c = wh.orders, wh.offer_impressions, wh.customers
    now, s30, s90 = (bindparam(n, type_=Timestamp) for n in ("now", "since_30d", "since_90d"))
    mine = o.c.customer_id == c.c.customer_id
    done = o.c.status == "completed"
    in_90d = and_(o.c.placed_at >= s90, o.c.placed_at < now)
    shown = and_(i.c.customer_id == c.c.customer_id, i.c.shown_at >= s90, i.c.shown_at < now)
    # Scalar subqueries, each a range read of one covering index, on SQLite and PostgreSQL.
    return select(
        c.c.customer_id,
        c.c.plan,
        c.c.region,
        c.c.signup_at,
        _scalar(func.count(), mine, done, in_90d).label("orders_90d"),
        _scalar(func.count(), mine, done, o.c.placed_at >= s30, o.c.placed_at < now).label(
            "orders_30d"
        ),
        _scalar(func.sum(o.c.total_amount), mine, done, in_90d).label("spend_90d"),
        _scalar(func.max(o.c.placed_at), mine, done, o.c.placed_at < now).label("last_order_at"),
        _scalar(func.count(), shown).label("impressions_90d"),
        _scalar(func.count(), shown, i.c.accepted.is_(True)).label("accepted_90d"),
    ).where(c.c.customer_id == bindparam("customer_id"))


_PROFILE = _profile_query()
_OFFERS = select(
    wh.offers.c.offer_id, wh.offers.c.category, wh.offers.c.discount_pct, wh.offers.c.price
).order_by(wh.offers.c.offer_id)


log = logging.getLogger("mlops.serving")
MAX_CACHED_PROFILES = 200_000


class WarehouseReads:
    """The warehouse queries of serving, on per-thread connections. A profile read less than
    ``cache_seconds`` ago is answered from memory, its ages counted to the request's time. An
    older one, up to twice that, still is when ``memory_only`` asks, while it is read again
    in the background: the customers being served never wait for their expiry."""

    def __init__(self, engine: Engine, *, cache_seconds: float = 0.0) -> None:
        self._conns = ThreadConnections(engine)
        self.cache_ttl = timedelta(seconds=cache_seconds)
        self._cached: dict[str, tuple[datetime, Any]] = {}  # id: (read as of, row or None)
        self._rereading: set[str] = set()
        self._lock = threading.Lock()
        self._rereader: ThreadPoolExecutor | None = None

    def profile(
        self, customer_id: str, now: datetime, *, memory_only: bool = False
    ) -> Profile | None:
        """The customer's summary as of ``now``, or None for a customer the warehouse lacks.
        ``NotInMemory`` when it must be read and ``memory_only`` says not to."""
        hit = self._cached.get(customer_id)
        kept, age = (hit[1], now - hit[0]) if hit is not None else (None, None)
        if age is not None and timedelta(0) <= age < self.cache_ttl:
            row = kept
        elif memory_only and age is not None and timedelta(0) <= age < 2 * self.cache_ttl:
            self._reread_later(customer_id, now)
            row = kept
        elif memory_only:
            raise NotInMemory
        else:
            row = self._read(customer_id, now)
        return None if row is None else _profile(row, now)

    def _read(self, customer_id: str, now: datetime) -> Any:
        params = {
            "customer_id": customer_id,
            "now": now,
            "since_30d": now - timedelta(days=30),
            "since_90d": now - timedelta(days=90),
        }
        rows = self._conns.all(_PROFILE, params)
        row = rows[0] if rows else None
        if self.cache_ttl:
            if len(self._cached) >= MAX_CACHED_PROFILES:
                self._cached.clear()  # bounded; a miss costs one read
            self._cached[customer_id] = (now, row)
        return row

    def _reread_later(self, customer_id: str, now: datetime) -> None:
        with self._lock:
            if customer_id in self._rereading:
                return
            self._rereading.add(customer_id)
            if self._rereader is None:
                self._rereader = ThreadPoolExecutor(1, thread_name_prefix="mlops-profiles")
        self._rereader.submit(self._reread, customer_id, now)

    def _reread(self, customer_id: str, now: datetime) -> None:
        try:
            self._read(customer_id, now)
        except Exception as exc:  # kept as it was: the next request past the grace reads
            log.warning("profile re-read failed", extra={"error": brief(exc)})
        finally:
            with self._lock:
                self._rereading.discard(customer_id)

    def clear(self) -> None:
        """Forget the cached profiles."""
        self._cached.clear()

    def offers(self) -> list[Offer]:
        """Every offer of the warehouse's ``offers`` table: the candidates when a request
        names none."""
        return [
            Offer(r.offer_id, r.category, float(r.discount_pct), float(r.price))
            for r in self._conns.all(_OFFERS)
        ]

    def close(self) -> None:
        if self._rereader is not None:
            self._rereader.shutdown(wait=True, cancel_futures=True)
        self._conns.close()


def _profile(r: Any, now: datetime) -> Profile:
    """The profile of a warehouse row read at or before ``now``, its ages as of ``now``."""
    last = r.last_order_at
    return Profile(
        customer_id=r.customer_id,
        plan=r.plan,
        region=r.region,
        signup_at=r.signup_at,
        tenure_days=round((now - r.signup_at).total_seconds() / 86400.0, 3),
        orders_30d=int(r.orders_30d),
        orders_90d=int(r.orders_90d),
        spend_90d=round(float(r.spend_90d or 0), 2),
        last_order_at=last,
        days_since_last_order=None if last is None else (now - last).total_seconds() / 86400.0,
        impressions_90d=int(r.impressions_90d),
        accepted_90d=int(r.accepted_90d),
    )
