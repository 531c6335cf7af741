"""States that many tests start from, built once per session and backend by the same calls the
fixtures used to make per test, then copied into each test's own databases.

On SQLite every page of the template's store and warehouse files is copied (SQLite's backup
API: the copy is the template, byte for byte, schema included). On PostgreSQL the test's store
is migrated by Alembic itself first (the real schema, not a copy's) and the content copied:
every row of the template schema's tables, the warehouse tables created by the warehouse's
own DDL, sequences set where the template's stand and the planner's statistics refreshed as
seeding does."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, text

from mlops.clock import FrozenClock
from mlops.runtime import Runtime
from mlops.settings import Settings


def _build(settings: Settings, now, steps: Callable[[Runtime], None]) -> None:
    rt = Runtime(settings=settings, clock=FrozenClock(now))
    try:
        steps(rt)
    finally:
        rt.close()


class SqliteTemplate:
    """A store file and a warehouse file."""

    def __init__(self, folder: Path, now, steps: Callable[[Runtime], None]) -> None:
        self.store_file, self.warehouse_file = folder / "store.db", folder / "warehouse.db"
        settings = Settings(
            home=folder / "home",
            database_url=f"sqlite:///{self.store_file}",
            warehouse_url=f"sqlite:///{self.warehouse_file}",
        )
        _build(settings, now, steps)

    def copy_into(self, rt: Runtime) -> None:
        for engine, source in ((rt.store, self.store_file), (rt.warehouse, self.warehouse_file)):
            if source.exists():  # a template that never touched its store has none
                _sqlite_backup(source, engine)

    def drop(self) -> None:
        pass


def _sqlite_backup(source: Path, engine: Engine) -> None:
    src = sqlite3.connect(source)
    try:
        with engine.connect() as conn:
            conn.commit()  # no transaction of ours open on the destination
            src.backup(conn.connection.driver_connection)
    finally:
        src.close()


class PostgresTemplate:
    """A schema of its own on the test database (store and warehouse share it, as in the
    tests' settings)."""

    def __init__(self, admin: Engine, pg_url: str, now, steps: Callable[[Runtime], None]):
        from mlops.examples.marketplace import warehouse as warehouse_schema

        self.admin = admin
        self.schema = f"tmpl_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        sep = "&" if "?" in pg_url else "?"
        url = f"{pg_url}{sep}options={quote(f'-csearch_path={self.schema}')}"
        _build(Settings(home=Path("/nonexistent"), database_url=url, warehouse_url=url), now, steps)
        with admin.connect() as conn:
            tables = conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = :s AND table_type = 'BASE TABLE' ORDER BY table_name"
                ),
                {"s": self.schema},
            ).scalars()
            self.columns = {
                table: conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = :s AND table_name = :t ORDER BY ordinal_position"
                    ),
                    {"s": self.schema, "t": table},
                )
                .scalars()
                .all()
                for table in tables
            }
            self.sequences = conn.execute(
                text(
                    "SELECT sequencename, last_value FROM pg_sequences "
                    "WHERE schemaname = :s AND last_value IS NOT NULL"
                ),
                {"s": self.schema},
            ).all()
        self.warehouse_tables = set(warehouse_schema.TABLES) & set(self.columns)

    def copy_into(self, rt: Runtime) -> None:
        from mlops.db.schema import metadata as store_metadata
        from mlops.examples.marketplace import warehouse as warehouse_schema
        from mlops.warehouse.contract import analyze

        if self.warehouse_tables:
            warehouse_schema.create_tables(rt.warehouse)
        with rt.store.begin() as conn:
            target = conn.exec_driver_sql("SELECT current_schema()").scalar()
            for table, columns in self.columns.items():
                if table == "ml_alembic_version":
                    continue  # written by the test's own migration
                assert table in store_metadata.tables or table in self.warehouse_tables, table
                names = ", ".join(f'"{c}"' for c in columns)
                conn.exec_driver_sql(
                    f'INSERT INTO "{target}"."{table}" ({names}) '
                    f'SELECT {names} FROM "{self.schema}"."{table}"'
                )
            for sequence, last_value in self.sequences:
                conn.execute(
                    text("SELECT setval(:seq, :value)"),
                    {"seq": f'"{target}"."{sequence}"', "value": last_value},
                )
        if self.warehouse_tables:
            analyze(rt.warehouse, warehouse_schema.TABLES)

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
