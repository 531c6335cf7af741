"""The fallback policy's parts on their own: precheck order, circuit breaker, budgeted runs."""

import time
from datetime import timedelta

import pytest

from mlops.clock import FrozenClock
from mlops.serving.policy import CircuitBreaker, Fallback, ModelPaths, Reason, precheck
from tests.conftest import NOW


def test_precheck_order_and_reasons():
    assert precheck("churn", flag_off=None, trip_kinds=[], loaded=True, circuit_open=False) is None
    assert (
        precheck("churn", flag_off="ml", trip_kinds=["drift"], loaded=False, circuit_open=True)
        == Reason.FLAG_OFF
    )
    assert (
        precheck("churn", flag_off=None, trip_kinds=["guardrail"], loaded=False, circuit_open=True)
        == Reason.GUARDRAIL
    )
    assert (
        precheck(
            "churn",
            flag_off=None,
            trip_kinds=["guardrail", "drift"],
            loaded=True,
            circuit_open=False,
        )
        == Reason.DRIFT
    )
    assert (
        precheck("churn", flag_off=None, trip_kinds=[], loaded=False, circuit_open=True)
        == Reason.NO_CHAMPION
    )
    assert (
        precheck("churn", flag_off=None, trip_kinds=[], loaded=True, circuit_open=True)
        == Reason.CIRCUIT_OPEN
    )


def test_circuit_opens_after_repeated_failures_and_half_opens_after_cooldown():
    clock = FrozenClock(NOW)
    breaker = CircuitBreaker(3, timedelta(seconds=30), clock)
    assert not breaker.failure() and not breaker.failure()
    breaker.success()  # a success resets the count
    assert not breaker.failure() and not breaker.failure()
    assert breaker.allow()
    assert breaker.failure()  # the third in a row opens it
    assert not breaker.allow()
    clock.advance(timedelta(seconds=29))
    assert not breaker.allow()
    clock.advance(timedelta(seconds=1))
    assert breaker.allow()  # half-open: one attempt goes through
    assert breaker.failure()  # and one failure opens it again at once
    assert not breaker.allow()
    clock.advance(timedelta(seconds=30))
    breaker.success()
    assert breaker.allow() and not breaker.failure()


def test_model_path_is_cut_off_at_twice_the_slo():
    paths = ModelPaths(2, {"eta": 10.0})
    assert paths.budget_seconds("eta") == pytest.approx(0.02)
    assert paths.run("eta", lambda: 42) == 42
    began = time.perf_counter()
    with pytest.raises(Fallback) as cut:
        paths.run("eta", lambda: time.sleep(0.5))
    assert cut.value.reason == Reason.SLO_EXCEEDED
    assert time.perf_counter() - began < 0.3  # it did not wait for the slow path
    paths.close()


def test_pollers_run_on_their_own_threads_so_a_hung_task_delays_no_other():
    import threading

    from mlops.serving.controls import Poller

    release, ticks = threading.Event(), []
    hung = Poller("hung", 0.01, release.wait)  # blocks until released
    fast = Poller("fast", 0.01, lambda: ticks.append(1))
    hung.start()
    fast.start()
    deadline = time.monotonic() + 5
    while len(ticks) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    fast.stop()
    hung.stop()
    assert len(ticks) >= 5  # the fast poll kept going while the other task hung
