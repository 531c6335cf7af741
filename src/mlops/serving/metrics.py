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
    from mlops.monitoring.ops import JobOps, OpsReport
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
        self.from_memory = Counter(
            "mlops_answers_from_memory",
            "Answers computed from what the process holds (cached profile and features, "
            "memoised scores): no read, no model call, no thread hop.",
            ["endpoint"],
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

        from mlops.monitoring.answer_counts import AnswerTally

        tally = AnswerTally()  # scrapes re-read the figures every few seconds: hours once

        def read() -> OpsReport:
            from mlops.monitoring import ops

            return ops.report(rt, tally=tally)

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


# One gauge per job each: (name, help text, the figure). "{period}" is the report's period.
_JOB_GAUGES: tuple[tuple[str, str, Callable[[JobOps], float | None]], ...] = (
    (
        "mlops_ingestion_success_ratio",
        "Succeeded over finished runs, {period}.",
        lambda j: j.ingestion.success_rate,
    ),
    (
        "mlops_ingestion_rows_written",
        "Rows written by the latest successful run.",
        lambda j: j.ingestion.rows_last,
    ),
    (
        "mlops_ingestion_rows_written_mean",
        "Rows per successful run, {period}.",
        lambda j: j.ingestion.rows_mean,
    ),
    (
        "mlops_ingestion_duration_seconds",
        "Duration of the latest successful ingestion run.",
        lambda j: j.ingestion.duration_last,
    ),
    (
        "mlops_ingestion_duration_p50_seconds",
        "Median successful run duration, {period}.",
        lambda j: j.ingestion.duration_p50,
    ),
    (
        "mlops_ingestion_duration_max_seconds",
        "Longest successful run duration, {period}.",
        lambda j: j.ingestion.duration_max,
    ),
    (
        "mlops_scheduler_delay_seconds",
        "started_at - scheduled_for of the latest scheduled ingestion run.",
        lambda j: j.scheduler.last,
    ),
    (
        "mlops_scheduler_delay_mean_seconds",
        "Mean scheduler delay of ingestion runs, {period}.",
        lambda j: j.scheduler.mean,
    ),
    (
        "mlops_scheduler_delay_max_seconds",
        "Longest scheduler delay of ingestion runs, {period}.",
        lambda j: j.scheduler.max,
    ),
    (
        "mlops_feature_freshness_ratio",
        "Age of the newest served feature values over their TTL (past 1: stale).",
        lambda j: j.freshness.ratio,
    ),
)


def _ops_families(report: OpsReport, now: datetime):
    """The report as gauge families; a figure the job does not have yet is left out."""
    from mlops.monitoring.ops import describe_period

    period = f"over the last {describe_period(report.checked_at - report.since)}"
    for name, doc, figure in _JOB_GAUGES:
        family = GaugeMetricFamily(name, doc.format(period=period), labels=["job"])
        for ops in report.jobs:
            value = figure(ops)
            if value is not None:
                family.add_metric([ops.job], value)
        yield family
    runs = GaugeMetricFamily(
        "mlops_ingestion_runs", f"Ingestion runs started, {period}.", labels=["job", "status"]
    )
    last_failed = GaugeMetricFamily(
        "mlops_ingestion_last_failed",
        "1 when the job's latest finished ingestion run failed.",
        labels=["job"],
    )
    fallback = GaugeMetricFamily(
        "mlops_fallback_ratio",
        f"Share of the job's answers given by the heuristic, per reason, {period}.",
        labels=["job", "reason"],
    )
    for ops in report.jobs:
        for status, n in sorted(ops.ingestion.runs.items()):
            runs.add_metric([ops.job, status], n)
        if ops.ingestion.latest is not None:
            last_failed.add_metric([ops.job], 1.0 if ops.ingestion.latest.failed else 0.0)
        for reason, rate in ops.answers.fallback_rates.items():
            fallback.add_metric([ops.job, reason], rate)
    yield from (runs, last_failed, fallback)
    yield GaugeMetricFamily(
        "mlops_ops_figures_age_seconds",
        "Seconds since the operational figures above were read from the store.",
        value=(now - report.checked_at).total_seconds(),
    )
