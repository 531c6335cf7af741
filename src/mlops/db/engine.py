"""Engines for the store and the warehouse, tuned per dialect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url

from mlops.errors import ConfigError, redact

PG_CONNECT_TIMEOUT_SECONDS = 10
LIBPQ_DRIVERS = ("psycopg", "psycopg2")


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so readers never block writers."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigError(
            f"cannot parse database URL {redact(url)!r}",
            "use e.g. sqlite:///path.db or postgresql+psycopg://user@host/db",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        # A URI filename (sqlite:///file:...?mode=ro&uri=true) is SQLite's to resolve: as a
        # path its parent would be a directory "file:" made under the working directory.
        if parsed.database and parsed.database != ":memory:" and "uri" not in parsed.query:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            # The URL object, not its str(): that shows the password as "***".
            parsed = parsed.set(drivername="postgresql+psycopg")
        # A server that accepts the connection and never answers (a dead host behind a
        # firewall, a hung proxy) would hold every caller for good: libpq's own timeout, unless
        # the URL sets one.
        if parsed.get_driver_name() in LIBPQ_DRIVERS and "connect_timeout" not in parsed.query:
            given = kwargs.pop("connect_args", {})
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS, **given}
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # Feature views sort and group hundreds of thousands of rows: keep that in memory.
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def driver(conn: Connection) -> Any:
    """The driver's own connection under ``conn`` (sqlite3 or psycopg), for bulk work that
    SQLAlchemy's execute would slow down."""
    raw = conn.connection.driver_connection
    if raw is None:  # only a connection that was closed or invalidated has none
        raise RuntimeError("the connection has no driver connection: it was closed")
    return raw


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key an INSERT of one row created."""
    key = result.inserted_primary_key
    if key is None:  # not an INSERT of one row
        raise RuntimeError("the statement inserted no row with a primary key")
    return int(key[0])
