"""The fallback policy, in one place: when an answer must come from the heuristic, and why.

In order: the job's flag (or the global ``ml`` flag) is off; a drift or guardrail trip is
recorded for the job; the entity is in the control arm of the job's A/B experiment
(``ab_control``, by design, not a failure: see ``arms``); no champion is loaded; the job's
circuit is open after repeated overruns or errors; the features are missing, stale (past TTL)
or unreadable; the model path ran past twice the endpoint's SLO (it is cut off there); the
model path raised.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from mlops.clock import Clock
from mlops.store.online import EntityFeatures

log = logging.getLogger("mlops.serving")
T = TypeVar("T")


class Reason(StrEnum):
    FLAG_OFF = "flag_off"
    DRIFT = "drift"
    GUARDRAIL = "guardrail"
    AB_CONTROL = "ab_control"
    NO_CHAMPION = "no_champion"
    CIRCUIT_OPEN = "circuit_open"
    FEATURES_MISSING = "features_missing"
    FEATURES_STALE = "features_stale"
    FEATURES_UNAVAILABLE = "features_unavailable"
    SLO_EXCEEDED = "slo_exceeded"
    MODEL_ERROR = "model_error"


class Fallback(Exception):
    """Raised inside a model path to hand the answer to the heuristic for ``reason``."""

    def __init__(
        self, reason: Reason, detail: str = "", *, features: EntityFeatures | None = None
    ) -> None:
        super().__init__(detail or reason.value)
        self.reason, self.features = reason, features


def features_reason(features: EntityFeatures) -> Reason | None:
    """Missing or stale features send the answer to the heuristic."""
    status = features.status
    if status == "missing":
        return Reason.FEATURES_MISSING
    if status == "stale":
        return Reason.FEATURES_STALE
    return None


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures for ``cooldown``; then lets one attempt
    through (half-open): a success closes it, a failure opens it again."""

    def __init__(self, threshold: int, cooldown: timedelta, clock: Clock) -> None:
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self._failures = 0
        self._open_until: datetime | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None and self.clock.now() < self._open_until

    @property
    def open_until(self) -> datetime | None:
        """When an open circuit lets the next attempt through (None: closed)."""
        with self._lock:
            until = self._open_until
        return until if until is not None and self.clock.now() < until else None

    def allow(self) -> bool:
        return not self.is_open

    def success(self) -> None:
        with self._lock:
            self._failures, self._open_until = 0, None

    def failure(self) -> bool:
        """Count one failure; True when it opened the circuit."""
        with self._lock:
            half_open = self._open_until is not None
            self._failures += 1
            if half_open or self._failures >= self.threshold:
                self._failures = 0
                self._open_until = self.clock.now() + self.cooldown
                return True
            return False


class ModelPaths:
    """Runs model paths on a small thread pool and stops waiting at the endpoint's budget."""

    def __init__(self, threads: int, slo_ms: dict[str, float]) -> None:
        self.slo_ms = dict(slo_ms)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mlops-model")

    def budget_seconds(self, endpoint: str) -> float:
        """Twice the endpoint's SLO (50 ms when the settings name none)."""
        return 2.0 * self.slo_ms.get(endpoint, 50.0) / 1000.0

    def run(self, endpoint: str, fn: Callable[[], T]) -> T:
        """``fn()``, or ``Fallback(SLO_EXCEEDED)`` when it is not done within the budget. A path
        cut off keeps running on its thread; its result is dropped."""
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=self.budget_seconds(endpoint))
        except FutureTimeout:
            future.cancel()
            raise Fallback(Reason.SLO_EXCEEDED, f"over {self.budget_seconds(endpoint)} s") from None

    async def run_async(self, endpoint: str, fn: Callable[[], T]) -> T:
        """``run`` for an event loop: awaits the pool without blocking the loop. One future
        and one timer per call (``wait_for`` over ``wrap_future`` made three futures and
        chained their callbacks across threads: a quarter of the hop's cost)."""
        import asyncio

        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def work() -> None:
            try:
                outcome: tuple = (fn(), None)
            except BaseException as exc:  # delivered to the caller, raised there
                outcome = (None, exc)
            # RuntimeError: the loop closed while the path ran; nobody waits for it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, waiter, *outcome)

        self._pool.submit(work)
        budget = self.budget_seconds(endpoint)
        timer = loop.call_later(budget, _expire, waiter, budget)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _deliver(waiter, result: Any, error: BaseException | None) -> None:
    if not waiter.done():  # else the budget ran out or the request was cancelled first
        if error is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(error)


def _expire(waiter, budget: float) -> None:
    if not waiter.done():
        waiter.set_exception(Fallback(Reason.SLO_EXCEEDED, f"over {budget} s"))


class PathRun:
    """One endpoint computation on the model pool: the job whose path it is in, and whether
    its caller stopped waiting (then that path holds a model thread past the budget)."""

    __slots__ = ("abandoned", "job")

    def __init__(self) -> None:
        self.job: str | None = None
        self.abandoned = False


class StuckPaths:
    """Model paths still running after their caller gave up, counted per job. A hung model
    would otherwise take a model thread per request until the circuit opens, and again at
    every half-open attempt, starving the other jobs: at ``limit`` the job counts as jammed
    (its circuit as open) until one ends."""

    def __init__(self, jobs, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = dict.fromkeys(jobs, 0)
        self._lock = threading.Lock()
        self._current = threading.local()

    def __getitem__(self, job: str) -> int:
        return self._counts[job]

    def jammed(self, job: str) -> bool:
        return self._counts[job] >= self.limit

    def running(self, run: PathRun, fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
        """``fn(**kwargs)`` on this (pool) thread as ``run``: what ``current`` returns
        meanwhile."""
        self._current.run = run
        try:
            return fn(**kwargs)
        finally:
            self._current.run = None

    def current(self) -> PathRun | None:
        """The run this thread computes, None off the model pool."""
        return getattr(self._current, "run", None)

    def enter(self, run: PathRun | None, job: str) -> None:
        if run is not None:
            with self._lock:
                run.job = job

    def leave(self, run: PathRun | None) -> None:
        if run is None:
            return
        with self._lock:
            if run.abandoned and run.job is not None:
                self._counts[run.job] -= 1
                log.info("a stuck model path ended", extra={"job": run.job})
            run.job = None

    def abandon(self, run: PathRun) -> None:
        """The caller stopped waiting for ``run``: the path it is in (if any) is stuck."""
        with self._lock:
            run.abandoned = True
            if run.job is not None:
                self._counts[run.job] += 1


def precheck(
    job: str,
    *,
    flag_off: str | None,
    trip_kinds: list[str],
    loaded: bool,
    circuit_open: bool,
    control: bool = False,
) -> Reason | None:
    """The reasons known before any feature is read or the model is called."""
    if flag_off:
        return Reason.FLAG_OFF
    if trip_kinds:
        return Reason.DRIFT if "drift" in trip_kinds else Reason.GUARDRAIL
    # After the switches, so both arms say the same while the experiment is suspended (the
    # guardrail check leaves those answers out of both arms alike).
    if control:
        return Reason.AB_CONTROL
    if not loaded:
        return Reason.NO_CHAMPION
    if circuit_open:
        return Reason.CIRCUIT_OPEN
    return None
