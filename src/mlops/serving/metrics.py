"""Prometheus metrics of one serving process. Under several uvicorn workers, ``mlops serve``
sets ``PROMETHEUS_MULTIPROC_DIR`` and /metrics aggregates every worker's files."""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, feature_ages: Callable[[], dict[str, float]]) -> None:
        # In multiprocess mode values live in files and the metrics register nowhere; else in
        # a registry of this app's own (no global state shared between apps in one process).
        self._multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry()
        reg = None if self._multiprocess else self.registry
        self.requests = Histogram(
            "mlops_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.answers = Counter(
            "mlops_answers",
            "ML-backed answers by job, source and fallback reason.",
            ["endpoint", "job", "source", "reason"],
            registry=reg,
        )
        self.model_version = Gauge(
            "mlops_model_version",
            "Champion version served per job (0: heuristics only).",
            ["job"],
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self.circuit_open = Gauge(
            "mlops_circuit_open",
            "1 while a job's model circuit is open.",
            ["job"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.prediction_log_dropped = Counter(
            "mlops_prediction_log_dropped",
            "Predictions dropped because the log buffer was full.",
            registry=reg,
        )
        self._feature_ages = feature_ages

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        registry = self.registry
        if self._multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        ages = CollectorRegistry()
        ages.register(_FeatureAge(self._feature_ages))
        return generate_latest(registry) + generate_latest(ages), CONTENT_TYPE_LATEST

    @staticmethod
    def process_exited(pid: int) -> None:
        if multiprocess_dir() is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)


class _FeatureAge:
    """Read at scrape time from the store: the age of each job's newest ingested snapshot."""

    def __init__(self, ages: Callable[[], dict[str, float]]) -> None:
        self._ages = ages

    def collect(self):
        family = GaugeMetricFamily(
            "mlops_feature_age_seconds",
            "Seconds since the newest ingested snapshot of each job.",
            labels=["job"],
        )
        for job, age in self._ages().items():
            family.add_metric([job], age)
        yield family
