"""Connections for a long-lived process: one autocommit connection per thread, so a read is
one query with no pool checkout and no transaction."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError


class ThreadConnections:
    """Reads on a per-thread autocommit connection, reconnecting once if the server dropped it.

    Server thread pools retire idle threads; the connection of a thread that has ended goes
    back to the pool when the next thread opens one, so the pool never runs dry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._owned: dict[int, tuple[threading.Thread, Connection]] = {}

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
                self._owned[current.ident] = (current, conn)
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
