"""The prediction log: every ML-backed answer, written in batches by a background thread so a
request never waits on it. A clean shutdown writes everything still pending.

While the store refuses the writes (full, read-only, down) the rows wait in memory, the writer
retries once per flush interval (not at every full batch: that retried, and logged, at every
request), the first failure is logged and then one summary per ``FAILURE_LOG_SECONDS`` with
the count, and ``problem`` says so for /readyz until a write goes through again."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert

from mlops.clock import Clock, SystemClock
from mlops.db.schema import prediction_log
from mlops.errors import brief

log = logging.getLogger("mlops.serving")

BATCH_PAUSE_SECONDS = 0.002
# While writes keep failing, one log line per this long (clock time) says how many did.
FAILURE_LOG_SECONDS = 60.0


class PredictionLog:
    def __init__(
        self,
        engine: Engine,
        *,
        batch: int,
        flush_seconds: float,
        max_pending: int,
        on_dropped: Callable[[int], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self._insert = _Insert(engine)
        self.batch, self.flush_seconds, self.max_pending = batch, flush_seconds, max_pending
        self.on_dropped = on_dropped or (lambda n: None)
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        # The outage in progress, if any: since when, how many writes failed, the last error.
        self.failing_since: datetime | None = None
        self.failed_writes = 0
        self.last_error = ""
        self._logged_at: datetime | None = None
        self._unlogged = 0

    def add(self, record: dict[str, Any]) -> None:
        """Queue one answer (the ``ml_prediction_log`` columns but ``prediction_id``)."""
        if len(self._pending) >= self.max_pending:
            # The database has been down long enough to fill the buffer: keep the newest.
            self._pending.popleft()
            self.dropped += 1
            self.on_dropped(1)
        self._pending.append(record)
        # Set once, not on every add past the batch: each set() takes the event's lock, which
        # the woken writer needs too (at full load in one process, a set per answer delayed
        # the writer's start by 0.9 s, against 0.2 s).
        if len(self._pending) >= self.batch and not self._wake.is_set():
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlops-prediction-log", daemon=True)
        self._thread.start()

    def flush(self) -> int:
        """Write everything pending now; returns the rows written. A failed write keeps them."""
        written = 0
        while self._pending:
            done = self._write_batch()
            if not done:
                break
            written += done
        return written

    def _write_batch(self) -> int:
        """Write up to one batch; returns the rows written (0: nothing, or the write failed
        and the rows are back in front)."""
        with self._write_lock:
            rows = [self._pending.popleft() for _ in range(min(self.batch, len(self._pending)))]
            if not rows:
                return 0
            try:
                with self.engine.begin() as conn:
                    self._insert.execute(conn, rows)
            except Exception as exc:
                self._pending.extendleft(reversed(rows))  # back in front, in order
                self._failed(exc)
                return 0
            self.written += len(rows)
            if self.failing_since is not None:
                self._recovered()
        return len(rows)

    @property
    def problem(self) -> str | None:
        """What /readyz says while writes fail (None when the last write went through)."""
        since = self.failing_since
        if since is None:
            return None
        return (
            f"prediction log not written since {since.isoformat()}Z ({self.failed_writes} "
            f"failed writes, last: {self.last_error}): {self.pending} answers kept in memory, "
            f"{self.dropped} dropped (the oldest, past {self.max_pending}); answers unaffected"
        )

    def _failed(self, exc: Exception) -> None:
        """Count a failed write; log the first of an outage, then a summary per interval."""
        now = self.clock.now()
        self.last_error = brief(exc)
        self.failed_writes += 1
        state = {"pending": len(self._pending), "dropped": self.dropped, "error": self.last_error}
        if self.failing_since is None:
            self.failing_since, self._logged_at, self._unlogged = now, now, 0
            log.warning("prediction log write failed; will retry", extra=state)
            return
        self._unlogged += 1
        assert self._logged_at is not None
        if (now - self._logged_at).total_seconds() >= FAILURE_LOG_SECONDS:
            log.warning(
                "prediction log writes still failing",
                extra={
                    "failed_writes": self._unlogged,
                    "seconds": (now - self._logged_at).total_seconds(),
                    "failing_since": self.failing_since.isoformat(),
                    **state,
                },
            )
            self._logged_at, self._unlogged = now, 0

    def _recovered(self) -> None:
        assert self.failing_since is not None
        log.info(
            "prediction log writes resumed",
            extra={
                "failed_writes": self.failed_writes,
                "seconds": (self.clock.now() - self.failing_since).total_seconds(),
                "pending": len(self._pending),
                "dropped": self.dropped,
            },
        )
        self.failing_since, self.failed_writes, self._unlogged = None, 0, 0

    def close(self) -> None:
        """Stop the writer and write what is pending (the clean-shutdown promise)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        if self._pending:
            log.error("prediction log lost rows at shutdown", extra={"lost": len(self._pending)})

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            # A batch at a time with a pause between: a long write holds a core (and the GIL
            # for its Python part) for milliseconds, which requests running meanwhile pay as
            # their p99. close() writes the rest without pausing. After a failed write, the
            # next try is an interval later, whatever wakes the writer meanwhile.
            while self._pending and not self._stop.is_set():
                if self._write_batch():
                    self._stop.wait(BATCH_PAUSE_SECONDS)
                elif self.failing_since is not None:
                    self._stop.wait(self.flush_seconds)


class _Insert:
    """The log's INSERT as multi-row statements compiled once per size (powers of two up to
    ``ROWS``) for the engine's dialect, with SQLAlchemy's own bind processing of each column
    applied once per distinct value in a batch (its times repeat).

    Why not ``execute(insert(...), rows)``: SQLite's executemany releases and retakes the GIL
    around every row, and a thread doing that beside a busy event loop waits for the GIL each
    time (5,000 rows took 620 ms beside a busy thread, 27 ms as ten 500-row statements); and
    its per-row processing cost 8.5 us a row against 3.5 here, paid by the serving process."""

    ROWS = 512  # x 13 columns: under SQLite's 32,766 and PostgreSQL's 65,535 parameters

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect
        self.columns = [c for c in prediction_log.columns if not c.primary_key]
        self._names = [c.name for c in self.columns]
        processors = [
            c.type.dialect_impl(self.dialect).bind_processor(self.dialect) for c in self.columns
        ]
        self._processed = [(i, p) for i, p in enumerate(processors) if p is not None]
        self._statements: dict[int, tuple[str, Callable[[list[Any]], Any]]] = {}

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` in as few statements as their count's binary digits."""
        values = self._values(rows)
        at, size = 0, self.ROWS
        while at < len(values):
            while size > len(values) - at:
                size //= 2
            sql, parameters = self._statement(size)
            conn.exec_driver_sql(
                sql, parameters([v for row in values[at : at + size] for v in row])
            )
            at += size

    def _values(self, rows: list[dict[str, Any]]) -> list[list[Any]]:
        seen: dict[tuple[int, Any], Any] = {}
        out = []
        for row in rows:
            values = [row.get(name) for name in self._names]  # a key left out: NULL
            for i, process in self._processed:
                value = values[i]
                if value is not None:
                    done = seen.get((i, value))
                    if done is None:
                        done = seen[(i, value)] = process(value)
                    values[i] = done
            out.append(values)
        return out

    def _statement(self, size: int) -> tuple[str, Callable[[list[Any]], Any]]:
        """The SQL for ``size`` rows, and what makes its parameters of the rows' values in
        one row-major list."""
        if size not in self._statements:
            names = [f"{c.name}_{i}" for i in range(size) for c in self.columns]
            stmt = insert(prediction_log).values(
                [{c.name: bindparam(f"{c.name}_{i}") for c in self.columns} for i in range(size)]
            )
            compiled = stmt.compile(dialect=self.dialect)
            parameters: Callable[[list[Any]], Any]
            if compiled.positional:  # SQLite's qmark: a multi-row INSERT binds row by row
                assert list(compiled.positiontup) == names
                parameters = tuple
            else:  # by name (psycopg's pyformat)
                parameters = lambda flat: dict(zip(names, flat, strict=True))  # noqa: E731
            self._statements[size] = (str(compiled), parameters)
        return self._statements[size]
