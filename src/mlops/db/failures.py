"""What a database error means to an operator: which database, what happened, what to do.

A driver's message carries the SQL and its parameters and says nothing of the fix; the
faults an operator can act on (a full disk, a read-only file or standby, a lost connection)
are told apart here by their SQLite error name or PostgreSQL SQLSTATE."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

FULL, READ_ONLY, LOST, UNREACHABLE, OTHER = "full", "read-only", "lost", "unreachable", "other"

# SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57P0x the server
# ended the session (administrator command, shutdown, crash).
_PG_LOST = ("08", "57P01", "57P02", "57P03")
_PG_FULL = ("53100",)  # disk_full
_PG_READ_ONLY = ("25006",)  # read_only_sql_transaction: a hot standby


def is_database_error(exc: BaseException, engine: Engine) -> bool:
    """A database error, wrapped by SQLAlchemy or raw from the driver (bulk writes run on the
    driver's cursor)."""
    return isinstance(exc, (DBAPIError, engine.dialect.loaded_dbapi.Error))


def kind(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    name = getattr(orig, "sqlite_errorname", None)
    if name:
        if name.startswith("SQLITE_FULL"):
            return FULL
        if name.startswith("SQLITE_READONLY"):
            return READ_ONLY
        return OTHER
    state = getattr(orig, "sqlstate", None) or ""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return LOST
    if state.startswith(_PG_LOST):
        return LOST
    if state.startswith(_PG_FULL):
        return FULL
    if state.startswith(_PG_READ_ONLY):
        return READ_ONLY
    if getattr(orig, "__module__", "").startswith("psycopg"):
        # No SQLSTATE on these, only the message: a connection closed under us, or none made.
        if "connection is closed" in str(orig):
            return LOST
        if str(orig).startswith(("connection failed", "connection timeout")):
            return UNREACHABLE
    return OTHER


def describe(exc: BaseException, engine: Engine | None, role: str) -> tuple[str, str]:
    """(what happened, what to do) for an error from ``engine``, the ``role`` database
    ("store" or "warehouse"); one line each, without SQL. Without an engine (an error that
    reached the command line) the driver's first line names the server."""
    where = location(engine) if engine is not None else ""
    name = " ".join(part for part in ("the", role, "database", where) if part)
    found = kind(exc)
    if found == FULL:
        return (
            f"{name} is full",
            "free disk space on its volume (or grow the volume), then run again",
        )
    if found == READ_ONLY:
        if engine is not None and engine.dialect.name == "sqlite":
            fix = (
                "make the file, its directory and the volume writable for this user, and drop "
                "mode=ro/immutable from the database URL; then run again"
            )
        else:
            fix = "point the database URL at the primary server, not a standby; then run again"
        return f"{name} is read-only", fix
    if found == UNREACHABLE:
        return (
            f"cannot connect to {name} ({_first_line(exc)})",
            "check that the database server is up and that MLOPS_DATABASE_URL / "
            "MLOPS_WAREHOUSE_URL point at it, then run again",
        )
    if found == LOST:
        return (
            f"lost the connection to {name} ({_first_line(exc)})",
            "check that the database server is up and reachable, then run again",
        )
    return (
        f"{name} failed: {_first_line(exc)}",
        "see the database's own log for the cause, then run again",
    )


def location(engine: Engine) -> str:
    """The database a message should name: the file on SQLite, host:port/name on a server
    (never the password)."""
    url = engine.url
    if engine.dialect.name == "sqlite":
        path = url.database or ":memory:"
        return path.removeprefix("file:").split("?")[0]
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def _first_line(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
