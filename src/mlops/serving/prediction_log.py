"""The prediction log: every ML-backed answer, written in batches by a background thread so a
request never waits on it. A clean shutdown writes everything still pending."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from mlops.db.schema import prediction_log

log = logging.getLogger("mlops.serving")

BATCH_PAUSE_SECONDS = 0.002


class PredictionLog:
    def __init__(
        self,
        engine: Engine,
        *,
        batch: int,
        flush_seconds: float,
        max_pending: int,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.batch, self.flush_seconds, self.max_pending = batch, flush_seconds, max_pending
        self.on_dropped = on_dropped or (lambda n: None)
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def add(self, record: dict[str, Any]) -> None:
        """Queue one answer (the ``ml_prediction_log`` columns but ``prediction_id``)."""
        if len(self._pending) >= self.max_pending:
            # The database has been down long enough to fill the buffer: keep the newest.
            self._pending.popleft()
            self.dropped += 1
            self.on_dropped(1)
        self._pending.append(record)
        if len(self._pending) >= self.batch:
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
                    conn.execute(insert(prediction_log), rows)
            except Exception as exc:
                self._pending.extendleft(reversed(rows))  # back in front, in order
                log.warning(
                    "prediction log write failed; will retry",
                    extra={"pending": len(self._pending), "error": str(exc)},
                )
                return 0
        self.written += len(rows)
        return len(rows)

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
            # their p99. close() writes the rest without pausing.
            while self._pending and not self._stop.is_set() and self._write_batch():
                self._stop.wait(BATCH_PAUSE_SECONDS)
