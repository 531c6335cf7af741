"""The kill switch: flags in the store, ``ml`` for every job or one per job. No row means on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from mlops.db.schema import flags as flags_table
from mlops.errors import InputError

GLOBAL = "ml"


@dataclass(frozen=True)
class Flag:
    name: str
    enabled: bool
    reason: str = ""
    updated_by: str | None = None
    updated_at: datetime | None = None


def names(jobs: Sequence[str]) -> tuple[str, ...]:
    """The flags there are for these jobs: ``ml`` and one per job."""
    return (GLOBAL, *jobs)


def check_name(name: str, jobs: Sequence[str]) -> str:
    """The flag name, or an InputError listing the valid ones."""
    if name not in names(jobs):
        raise InputError(f"no flag {name!r}", f"flags are: {', '.join(names(jobs))}")
    return name


def read(engine: Engine, jobs: Sequence[str] = ()) -> dict[str, Flag]:
    """Every flag stored, and those of ``jobs`` never set, reported as on."""
    with engine.connect() as conn:
        rows = conn.execute(select(flags_table)).all()
    found = {
        r.name: Flag(r.name, bool(r.enabled), r.reason, r.updated_by, r.updated_at) for r in rows
    }
    return {name: found.get(name, Flag(name, True)) for name in names(jobs)} | found


def write(
    engine: Engine,
    name: str,
    enabled: bool,
    *,
    reason: str,
    actor: str,
    at: datetime,
    jobs: Sequence[str] | None = None,
) -> Flag:
    """Set a flag (an upsert); replicas see it at their next poll. With ``jobs``, a name that
    is not one of their flags is an InputError."""
    if jobs is not None:
        check_name(name, jobs)
    if not reason.strip():
        raise InputError(
            f"setting flag {name!r} needs a reason", "say why, e.g. --reason 'INC-123'"
        )
    values = {"enabled": enabled, "reason": reason, "updated_by": actor, "updated_at": at}
    with engine.begin() as conn:
        updated = conn.execute(
            flags_table.update().where(flags_table.c.name == name).values(**values)
        ).rowcount
        if not updated:
            conn.execute(flags_table.insert().values(name=name, **values))
    return Flag(name, enabled, reason, actor, at)


def job_enabled(flags: dict[str, Flag], job: str) -> str | None:
    """None when the job may use its model, else the name of the flag that is off."""
    for name in (GLOBAL, job):
        flag = flags.get(name)
        if flag is not None and not flag.enabled:
            return name
    return None
