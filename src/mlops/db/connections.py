"""Connections for a long-lived process: one autocommit connection per thread, so a read is
one query with no pool checkout and no transaction."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError


class ThreadConnections:
    """Reads on a per-thread autocommit connection, reconnecting once if the server dropped it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Connection] = []

    def all(self, statement: Any, params: dict[str, Any] | None = None) -> list[Row]:
        """Every row of one statement."""
        try:
            return self._connection().execute(statement, params or {}).all()
        except DBAPIError:
            # The database restarted or dropped us: one fresh connection, one retry (a genuine
            # error in the statement raises again from the retry).
            self._drop()
            return self._connection().execute(statement, params or {}).all()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            # Closing a connection to a dead server may raise; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            conn.invalidate()
            conn.close()
