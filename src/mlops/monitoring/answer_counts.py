"""Logged answers counted by (source, reason), and a tally of them for a process that asks
again and again over a sliding period (/metrics): hours that have settled are counted once and
kept, so each read counts only the period's first partial hour and the last hour or two.
Counting 7 days of a busy prediction log at every read took 5.4 s at 4.6 M rows on SQLite."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from mlops.db.schema import prediction_log

HOUR = timedelta(hours=1)

Counts = Counter[tuple[str, str | None]]


def count(conn: Connection, job: str, start: datetime, end: datetime, *, closed: bool) -> Counts:
    """The job's answers logged in [start, end] (``closed``) or [start, end), by (source,
    reason)."""
    p = prediction_log
    until = p.c.logged_at <= end if closed else p.c.logged_at < end
    rows = conn.execute(
        # Served by the index on (job, logged_at).
        select(p.c.source, p.c.reason, func.count())
        .where(p.c.job == job, p.c.logged_at >= start, until)
        .group_by(p.c.source, p.c.reason)
    ).all()
    return Counter({(source, reason): int(n) for source, reason, n in rows})


class AnswerTally:
    """``count`` over [start, now] for ever later ``now``, reading each settled hour once.

    An hour is settled once it ended ``settle`` ago: the prediction log writes every few
    seconds, so its rows are all in by then. A row written into a settled hour after it was
    counted (held back longer than ``settle``, say while the database was down) is not seen
    by this tally; ``mlops monitor ops`` counts everything afresh."""

    def __init__(self, settle: timedelta = HOUR) -> None:
        self.settle = settle
        self._hours: dict[tuple[str, datetime], Counts] = {}

    @property
    def hours_held(self) -> int:
        return len(self._hours)

    def count(self, conn: Connection, job: str, start: datetime, now: datetime) -> Counts:
        """The job's answers logged in [start, now], by (source, reason)."""
        first = _floor(start) + (HOUR if start != _floor(start) else timedelta(0))
        settled = _floor(now - self.settle)
        for key in [k for k in self._hours if k[0] == job and k[1] < first]:
            del self._hours[key]  # left the period
        if settled <= first:
            return count(conn, job, start, now, closed=True)
        total = count(conn, job, start, first, closed=False)
        hour = first
        while hour < settled:
            key = (job, hour)
            if key not in self._hours:
                self._hours[key] = count(conn, job, hour, hour + HOUR, closed=False)
            total.update(self._hours[key])
            hour += HOUR
        total.update(count(conn, job, settled, now, closed=True))
        return total


def _floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)
