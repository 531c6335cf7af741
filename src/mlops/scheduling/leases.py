"""Leases in ``ml_scheduler_leases``: at most one scheduler process, on any machine, runs a
task at a time. A lease is one row per task, taken with a single conditional upsert (insert
when free, take over when expired or already ours), so two schedulers racing for it cannot
both win on SQLite or PostgreSQL. Holders renew it while they work; a dead holder's lease
expires and is taken over.

Expiry compares timestamps written by different machines: keep their clocks in sync (NTP)
and the lease a good deal longer than the skew."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mlops.db.schema import scheduler_leases as leases

# Long enough to ride out a slow database round trip or a GC pause of the holder, short
# enough that a crashed scheduler blocks a task for only a couple of minutes.
LEASE = timedelta(minutes=2)


def new_owner() -> str:
    """A name unique to this process: host, pid and a random suffix (``owner_gone`` reads the
    first two back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def owner_gone(owner: str, ours: Collection[str] = ()) -> bool:
    """Whether ``owner`` (of ``new_owner``'s form) was a process of this machine that no longer
    exists, or one of this process's holders not in ``ours`` (those it still holds): its lease
    can be taken over at once instead of at expiry. False when in doubt (another machine,
    another form, or a live process with that pid)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return owner not in ours
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


def acquire(engine: Engine, task: str, owner: str, now: datetime, ttl: timedelta = LEASE) -> bool:
    """Take the task's lease for ``owner`` until ``now + ttl``; False if someone else holds it."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    values = {"task": task, "owner": owner, "acquired_at": now, "expires_at": now + ttl}
    stmt = insert(leases).values(**values)
    # The WHERE of ON CONFLICT DO UPDATE is evaluated on the locked, current row: of two
    # racing takeovers of an expired lease, the second sees the first's new expiry and loses.
    stmt = stmt.on_conflict_do_update(
        index_elements=[leases.c.task],
        set_={
            "owner": stmt.excluded.owner,
            # Renewing our own lease keeps the time we first took it.
            "acquired_at": _keep_if_ours(owner, stmt.excluded.acquired_at),
            "expires_at": stmt.excluded.expires_at,
        },
        where=or_(leases.c.expires_at <= now, leases.c.owner == owner),
    ).returning(leases.c.owner)
    # A row comes back when we inserted or took over; none when the condition kept it.
    with engine.begin() as conn:
        return conn.execute(stmt).first() is not None


def _keep_if_ours(owner: str, new):
    return case((leases.c.owner == owner, leases.c.acquired_at), else_=new)


def take_over(
    engine: Engine, task: str, old: str, owner: str, now: datetime, ttl: timedelta = LEASE
) -> bool:
    """Take the lease from ``old`` (a holder known to be gone) whatever its expiry; False if
    it changed hands meanwhile."""
    with engine.begin() as conn:
        result = conn.execute(
            update(leases)
            .where(leases.c.task == task, leases.c.owner == old)
            .values(owner=owner, acquired_at=now, expires_at=now + ttl)
        )
        return result.rowcount == 1


def renew(engine: Engine, task: str, owner: str, now: datetime, ttl: timedelta = LEASE) -> bool:
    """Push our lease's expiry to ``now + ttl``; False if it is no longer ours."""
    with engine.begin() as conn:
        result = conn.execute(
            update(leases)
            .where(leases.c.task == task, leases.c.owner == owner)
            .values(expires_at=now + ttl)
        )
        return result.rowcount == 1


def release(engine: Engine, task: str, owner: str) -> bool:
    """Give the lease back (only if it is still ours)."""
    with engine.begin() as conn:
        result = conn.execute(delete(leases).where(leases.c.task == task, leases.c.owner == owner))
        return result.rowcount == 1


def holder(engine: Engine, task: str) -> dict | None:
    """The task's lease row (owner, acquired_at, expires_at), or None when nobody holds it."""
    with engine.connect() as conn:
        row = conn.execute(select(leases).where(leases.c.task == task)).mappings().first()
    return dict(row) if row else None
