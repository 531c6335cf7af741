"""Connections for a long-lived process: one autocommit connection per thread, so a read is
one query with no pool checkout and no transaction; each statement is compiled once and run on
the driver's cursor (SQLAlchemy's per-execution work is most of a primary-key read's cost)."""

from __future__ import annotations

import contextlib
import threading
from collections import namedtuple
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select

from mlops.db.engine import driver


class Prepared:
    """A Core SELECT compiled once for a dialect, with its bind and result type processing,
    run on a raw DBAPI cursor. Rows are named tuples with the statement's column keys."""

    def __init__(self, statement: Select, dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("statements with expanding IN parameters cannot be prepared")
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)  # literal values written in the statement
        self.order = list(compiled.positiontup or ()) if compiled.positional else None
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self.dialect = dialect
        self.types = [c.type.dialect_impl(dialect) for c in statement.selected_columns]
        self.results: list | None = None  # from the first cursor's column type codes
        self.row = namedtuple("Row", [str(c.key) for c in statement.selected_columns])  # type: ignore[misc]

    def parameters(self, given: dict[str, Any]) -> Any:
        values = {**self.defaults, **given}
        for name, processor in self.binds.items():
            values[name] = processor(values[name])
        return values if self.order is None else tuple(values[n] for n in self.order)

    def rows(self, raw: list[tuple], description) -> list[Any]:
        if self.results is None:
            self.results = [
                t.result_processor(self.dialect, d[1])
                for t, d in zip(self.types, description, strict=True)
            ]
        procs = self.results
        return [self.row(*(p(v) if p else v for p, v in zip(procs, r, strict=True))) for r in raw]


class ThreadConnections:
    """Reads on a per-thread autocommit connection, reconnecting once if the server dropped it.

    Server thread pools retire idle threads; the connection of a thread that has ended goes
    back to the pool when the next thread opens one, so the pool never runs dry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._errors = engine.dialect.loaded_dbapi.Error
        self._prepared: dict[int, Prepared | None] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._owned: dict[int, tuple[threading.Thread, Connection]] = {}

    def all(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """Every row of one statement (named tuples)."""
        try:
            return self._run(statement, params or {})
        except (DBAPIError, self._errors):
            # The database restarted or dropped us: one fresh connection, one retry (a genuine
            # error in the statement raises again from the retry).
            self._drop()
            return self._run(statement, params or {})

    def _run(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        prepared = self._prepare(statement)
        conn = self._connection()
        if prepared is None:
            return list(conn.execute(statement, params).all())
        cursor = driver(conn).cursor()
        try:
            cursor.execute(prepared.sql, prepared.parameters(params))
            return prepared.rows(cursor.fetchall(), cursor.description)
        finally:
            cursor.close()

    def _prepare(self, statement: Any) -> Prepared | None:
        key = id(statement)  # the statements are module constants, alive for the process
        if key not in self._prepared:
            if not isinstance(statement, Select):
                self._prepared[key] = None
                return None
            try:
                self._prepared[key] = Prepared(statement, self.engine.dialect)
            except ValueError:
                self._prepared[key] = None  # run through SQLAlchemy as is
        return self._prepared[key]

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            owned, self._owned = self._owned, {}
        for _thread, conn in owned.values():
            _close(conn)

    def _connection(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            self._release_dead()
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
            current = threading.current_thread()
            with self._lock:
                self._owned[threading.get_ident()] = (current, conn)
        return conn

    def _release_dead(self) -> None:
        with self._lock:
            dead = [k for k, (thread, _c) in self._owned.items() if not thread.is_alive()]
            conns = [self._owned.pop(k)[1] for k in dead]
        for conn in conns:
            _close(conn)

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._owned.pop(threading.get_ident(), None)
            conn.invalidate()
            conn.close()


def _close(conn: Connection) -> None:
    # Closing a connection to a dead server may raise; it is gone either way.
    with contextlib.suppress(Exception):
        conn.close()
