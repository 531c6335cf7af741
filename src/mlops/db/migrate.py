"""Run the store's Alembic migrations programmatically (``mlops db migrate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from mlops.errors import NotReadyError

# Our own version table, so a store sharing a database with another Alembic
# project never collides with its ``alembic_version``.
VERSION_TABLE = "ml_alembic_version"
_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None
    applied: list[str]


def _config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None  # the package ships its revisions
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> MigrationResult:
    """Upgrade the store to ``target``; running it again changes nothing."""
    before = current_revision(engine)
    with engine.begin() as conn:
        command.upgrade(_config(conn), target)
    after = current_revision(engine)
    script = ScriptDirectory.from_config(_config(None))
    applied = []
    if after != before:
        applied = [
            rev.revision for rev in script.iterate_revisions(after, before or "base") if rev
        ][::-1]
    return MigrationResult(before, after, applied)


def downgrade(engine: Engine, target: str) -> None:
    """Downgrade the store to ``target`` (``base`` drops every table)."""
    with engine.begin() as conn:
        command.downgrade(_config(conn), target)


def require_current(engine: Engine) -> None:
    """Raise with the fix when the store is not migrated to head."""
    current = current_revision(engine)
    if current != head_revision():
        raise NotReadyError(
            f"the feature store is at revision {current or 'none'}, expected {head_revision()}",
            "run `mlops db migrate`",
        )
