"""Prometheus metrics of one serving process. Under several uvicorn workers, ``mlops serve``
sets ``PROMETHEUS_MULTIPROC_DIR`` and /metrics aggregates every worker's files."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from mlops.clock import Clock

if TYPE_CHECKING:
    from mlops.monitoring.ops import OpsReport
    from mlops.runtime import Runtime

log = logging.getLogger("mlops.serving")

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
    def __init__(
        self,
        feature_ages: Callable[[], dict[str, float]],
        runtime: Runtime | None = None,
    ) -> None:
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
        # The operational figures come from the store of ``runtime`` (none without one).
        self.ops = OpsCollector.of(runtime) if runtime is not None else None

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        registry = self.registry
        if self._multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        ages = CollectorRegistry()
        ages.register(_FeatureAge(self._feature_ages))
        if self.ops is not None:
            ages.register(self.ops)
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


class OpsCollector:
    """The operational monitor's figures (``mlops.monitoring.ops``) as gauges, read from the
    store at most once per ``seconds`` of the service clock. A failed read never fails a
    scrape: it is logged and the last figures read are served (none before the first read);
    the store is asked again only after another interval."""

    def __init__(self, read: Callable[[], OpsReport], clock: Clock, seconds: float) -> None:
        self._read, self._clock, self._seconds = read, clock, seconds
        self._lock = threading.Lock()
        self._report: OpsReport | None = None
        self._asked_at: datetime | None = None

    @classmethod
    def of(cls, rt: Runtime) -> OpsCollector:
        """The figures of ``rt``'s store, every ``ops_metrics_seconds`` of its clock."""

        def read() -> OpsReport:
            from mlops.monitoring import ops

            return ops.report(rt)

        return cls(read, rt.clock, rt.settings.ops_metrics_seconds)

    def figures(self) -> OpsReport | None:
        """The figures to serve now, read again when the last read is older than the interval."""
        with self._lock:  # concurrent scrapes share one read
            now = self._clock.now()
            if self._asked_at is None or (now - self._asked_at).total_seconds() >= self._seconds:
                self._asked_at = now
                try:
                    self._report = self._read()
                except Exception as exc:
                    log.warning(
                        "operational figures unreadable; serving the last ones read",
                        extra={"error": str(exc)},
                    )
            return self._report

    def collect(self):
        report = self.figures()
        if report is None:
            return
        yield from _ops_families(report, self._clock.now())


def _ops_families(report: OpsReport, now: datetime):
    def gauge(name: str, doc: str, labels=("job",)) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=list(labels))

    period = f"over the last {_days(report)}"
    success = gauge("mlops_ingestion_success_ratio", f"Succeeded over finished runs, {period}.")
    runs = gauge("mlops_ingestion_runs", f"Ingestion runs started, {period}.", ("job", "status"))
    last_failed = gauge(
        "mlops_ingestion_last_failed", "1 when the job's latest finished ingestion run failed."
    )
    rows = gauge("mlops_ingestion_rows_written", "Rows written by the latest successful run.")
    rows_mean = gauge("mlops_ingestion_rows_written_mean", f"Rows per successful run, {period}.")
    duration = gauge(
        "mlops_ingestion_duration_seconds", "Duration of the latest successful ingestion run."
    )
    duration_p50 = gauge(
        "mlops_ingestion_duration_p50_seconds", f"Median successful run duration, {period}."
    )
    duration_max = gauge(
        "mlops_ingestion_duration_max_seconds", f"Longest successful run duration, {period}."
    )
    delay = gauge(
        "mlops_scheduler_delay_seconds",
        "started_at - scheduled_for of the latest scheduled ingestion run.",
    )
    delay_mean = gauge(
        "mlops_scheduler_delay_mean_seconds", f"Mean scheduler delay of ingestion runs, {period}."
    )
    delay_max = gauge(
        "mlops_scheduler_delay_max_seconds", f"Longest scheduler delay of ingestion runs, {period}."
    )
    freshness = gauge(
        "mlops_feature_freshness_ratio",
        "Age of the newest served feature values over their TTL (past 1: stale).",
    )
    fallback = gauge(
        "mlops_fallback_ratio",
        f"Share of the job's answers given by the heuristic, per reason, {period}.",
        ("job", "reason"),
    )
    for ops in report.jobs:
        job, ing, sched = ops.job, ops.ingestion, ops.scheduler
        for status, n in sorted(ing.runs.items()):
            runs.add_metric([job, status], n)
        if ing.latest is not None:
            last_failed.add_metric([job], 1.0 if ing.latest.failed else 0.0)
        for family, value in (
            (success, ing.success_rate),
            (rows, ing.rows_last),
            (rows_mean, ing.rows_mean),
            (duration, ing.duration_last),
            (duration_p50, ing.duration_p50),
            (duration_max, ing.duration_max),
            (delay, sched.last),
            (delay_mean, sched.mean),
            (delay_max, sched.max),
            (freshness, ops.freshness.ratio),
        ):
            if value is not None:
                family.add_metric([job], value)
        for reason, rate in ops.answers.fallback_rates.items():
            fallback.add_metric([job, reason], rate)
    yield from (success, runs, last_failed, rows, rows_mean, duration, duration_p50)
    yield from (duration_max, delay, delay_mean, delay_max, freshness, fallback)
    yield GaugeMetricFamily(
        "mlops_ops_figures_age_seconds",
        "Seconds since the operational figures above were read from the store.",
        value=(now - report.checked_at).total_seconds(),
    )


def _days(report: OpsReport) -> str:
    days = (report.checked_at - report.since).total_seconds() / 86400
    return f"{days:g} days"
