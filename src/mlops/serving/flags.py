"""The kill switch: flags in the store, ``ml`` for every job or one per job. No row means on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from mlops.db.schema import flags as flags_table
from mlops.errors import InputError
from mlops.specs.features import JOBS

GLOBAL = "ml"
NAMES = (GLOBAL, *JOBS)


@dataclass(frozen=True)
class Flag:
    name: str
    enabled: bool
    reason: str = ""
    updated_by: str | None = None
    updated_at: datetime | None = None


def check_name(name: str) -> str:
    """The flag name, or an InputError listing the valid ones."""
    if name not in NAMES:
        raise InputError(f"no flag {name!r}", f"flags are: {', '.join(NAMES)}")
    return name


def read(engine: Engine) -> dict[str, Flag]:
    """Every flag, those never set reported as on."""
    with engine.connect() as conn:
        rows = conn.execute(select(flags_table)).all()
    found = {
        r.name: Flag(r.name, bool(r.enabled), r.reason, r.updated_by, r.updated_at) for r in rows
    }
    return {name: found.get(name, Flag(name, True)) for name in NAMES}


def write(
    engine: Engine, name: str, enabled: bool, *, reason: str, actor: str, at: datetime
) -> Flag:
    """Set a flag (an upsert); replicas see it at their next poll."""
    check_name(name)
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
