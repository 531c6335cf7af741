from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from mlops.db import migrate
from mlops.db.schema import metadata
from mlops.errors import NotReadyError


def _diff(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"version_table": migrate.VERSION_TABLE, "compare_type": True}
        )
        return compare_metadata(ctx, metadata)


def test_migrations_create_exactly_the_tables_the_code_expects(rt):
    result = migrate.upgrade(rt.store)
    assert result.applied[0] == "20250918120000"
    assert result.after == migrate.head_revision()
    assert _diff(rt.store) == []
    tables = set(inspect(rt.store).get_table_names())
    assert set(metadata.tables) <= tables


def test_migrate_is_idempotent(rt):
    migrate.upgrade(rt.store)
    again = migrate.upgrade(rt.store)
    assert again.applied == []
    assert again.before == again.after == migrate.head_revision()


def test_downgrade_then_upgrade_round_trips(rt):
    migrate.upgrade(rt.store)
    migrate.downgrade(rt.store, "base")
    assert migrate.current_revision(rt.store) is None
    assert not set(metadata.tables) & set(inspect(rt.store).get_table_names())
    migrate.upgrade(rt.store)
    assert _diff(rt.store) == []


def test_unmigrated_store_says_to_migrate(rt):
    try:
        migrate.require_current(rt.store)
    except NotReadyError as exc:
        assert "mlops db migrate" in str(exc)
    else:
        raise AssertionError("an unmigrated store must be refused")
