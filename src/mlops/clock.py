"""The one source of time. Everything that asks "what time is it" takes a Clock.

Timestamps in mlops are naive datetimes meaning UTC, to second precision, matching
how the warehouse contract stores them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class FrozenClock:
    """A clock that moves only when told: for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        self._now = to_utc_naive(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = to_utc_naive(when)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def to_utc_naive(value: datetime) -> datetime:
    """Normalise an aware or naive datetime to naive UTC at second precision."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)
