"""The drift monitor: live feature values against the champion's reference distributions.

Per feature of the champion: PSI (every feature) and a test of the non-missing values (KS for
numeric features, chi-square for categories), judged on the thresholds of the feature's spec.
Live values are the current online values of every entity (``ml_feature_values``, stale ones
included: they are what the store holds), or with a window every snapshot of that period
(``ml_feature_history``), where an entity counts once per snapshot: a window shows how values
moved over the period, and its tests are as strict as the number of snapshots makes them.
Each check writes its figures to ``ml_monitor_results``, reconciles the job's drift alerts
and, on an alert, trips the job's automatic fallback.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select

from mlops.db.engine import driver
from mlops.db.schema import feature_history, feature_values
from mlops.errors import InputError, MlopsError, NotReadyError
from mlops.monitoring import alerts, fallback, results, stats
from mlops.runtime import Runtime
from mlops.specs.features import FeatureSpec, JobSpec

MONITOR = "drift"
OK, WARN, ALERT, INSUFFICIENT = "ok", "warn", "alert", "insufficient"
# Online rows fetched and parsed at a time.
_READ_BATCH = 100_000
# Worst first: a feature's status is its worst judged statistic.
_SEVERITY = (ALERT, WARN, OK)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's figures and verdicts."""

    feature: str
    kind: str  # numeric | category
    sample_size: int  # live values, missing ones included
    psi: float | None
    psi_status: str
    test: str  # ks | chi2
    statistic: float | None  # KS distance or chi-square statistic
    pvalue: float | None
    tested: int  # non-missing live values the test saw
    test_status: str
    spec: FeatureSpec
    # The bins PSI compared, live against reference (what the dashboard charts).
    distribution: stats.Distribution | None = None

    @property
    def status(self) -> str:
        """The worst judged verdict, or insufficient when neither could be judged."""
        judged = {self.psi_status, self.test_status}
        return next((s for s in _SEVERITY if s in judged), INSUFFICIENT)

    def message(self) -> str:
        """What crossed which line, for the alert."""
        parts = []
        if self.psi_status == ALERT:
            parts.append(f"PSI {self.psi:.3f} >= {self.spec.psi_alert:g}")
        if self.test_status == ALERT:
            parts.append(f"{self.test.upper()} p {self.pvalue:.2g} < {self.spec.ks_pvalue:g}")
        return f"{self.feature}: {', '.join(parts)} (n={self.sample_size})"


@dataclass
class JobDrift:
    """One job's check: its features, or why it could not be checked."""

    job: str
    source: str  # "online" or "history <start> .. <end>"
    model_version: int | None = None
    features: list[FeatureDrift] = field(default_factory=list)
    error: MlopsError | None = None
    opened: list[alerts.Alert] = field(default_factory=list)
    trip: fallback.Trip | None = None
    read_seconds: float = 0.0
    stats_seconds: float = 0.0

    @property
    def alerting(self) -> list[FeatureDrift]:
        """The features in alert."""
        return [f for f in self.features if f.status == ALERT]

    @property
    def status(self) -> str:
        """``not_ready`` without a champion, else the worst feature's status."""
        if self.error is not None:
            return "not_ready"
        found = {f.status for f in self.features}
        return next((s for s in _SEVERITY if s in found), INSUFFICIENT)


def check(
    rt: Runtime, job: str | None = None, *, window: timedelta | None = None
) -> list[JobDrift]:
    """Check one job (or every job for None / ``all``) over its online values, or the history of
    ``window`` (by default the spec's ``drift_window``): figures written, alerts reconciled and,
    on an alert, the fallback tripped. A job without a champion gets a result whose ``error``
    says what to run; the other jobs are still checked."""
    if window is not None and window <= timedelta(0):
        raise InputError(f"window {window} is not positive", "e.g. --window 7d")
    jobs = rt.repo.resolve(job)
    return [check_job(rt, spec, window=window) for spec in jobs]


def check_job(rt: Runtime, job: JobSpec, *, window: timedelta | None = None) -> JobDrift:
    """One job's check, recorded (see ``check``); ``window`` defaults to the job's spec."""
    now = rt.clock.now()
    window = window or job.drift_window
    source = "online" if window is None else f"history {now - window} .. {now}"
    result = JobDrift(job.name, source)
    try:
        result.model_version, reference = champion_reference(rt, job.name)
    except NotReadyError as exc:
        result.error = exc
        return result
    # The champion's features that are still specified, as the same kind (a feature whose
    # dtype changed since is compared again once a model is trained on it).
    names = [
        f.name
        for f in job.features
        if f.name in reference
        and (reference[f.name].get("kind") == "category") == (f.dtype == "category")
    ]
    began = time.perf_counter()
    live = read_live(rt, job, names, window=window)
    result.read_seconds = time.perf_counter() - began
    began = time.perf_counter()
    result.features = evaluate(job, reference, live, min_sample=rt.settings.drift_min_sample)
    result.stats_seconds = time.perf_counter() - began
    record(rt, result, at=now)
    return result


def champion_reference(rt: Runtime, job: str) -> tuple[int, dict]:
    """The champion's version and reference distributions; NotReadyError without a champion."""
    from mlops.training import tracking_artifacts, tracking_versions

    version = tracking_versions.champion_version(rt.settings, job)
    if version is None:
        raise NotReadyError(
            f"{job} has no champion model to compare live values with",
            f"train and promote one: `mlops train {job}`",
        )
    return version, tracking_artifacts.reference_for(rt.settings, job, version)


def read_live(
    rt: Runtime, job: JobSpec, names: list[str], *, window: timedelta | None = None
) -> dict[str, np.ndarray]:
    """Live values per feature: floats (NaN = missing) for numeric features, objects (None =
    missing) for categories. The current online values, or every snapshot of the last
    ``window``."""
    import pyarrow as pa

    schema = pa.schema(
        [(n, pa.string() if job.feature(n).dtype == "category" else pa.float64()) for n in names]
    )
    if window is None:
        table = _online_table(rt, job, schema)
    else:
        now = rt.clock.now()
        table = _history_table(rt, job, now - window, now)
    rows = 0 if table is None else table.num_rows
    out = {}
    for name, kind in zip(schema.names, schema.types, strict=True):
        if table is None or name not in table.column_names:  # a feature added since
            out[name] = np.full(rows, np.nan) if kind == pa.float64() else np.full(rows, None)
        else:
            out[name] = table[name].cast(kind).to_numpy(zero_copy_only=False)
    return out


def _online_table(rt: Runtime, job: JobSpec, schema):
    import pyarrow as pa
    import pyarrow.json as pa_json

    from mlops.db.connections import Prepared

    stmt = select(feature_values.c.values_json).where(feature_values.c.job == job.name)
    # One JSON object per line, parsed by Arrow in C (several times faster than json.loads per
    # row), in batches so a million entities never sit in memory as Python strings at once.
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    tables = []
    with rt.store.connect() as conn:
        # Run on the driver's cursor: SQLAlchemy's per-row work would be half the read.
        prepared = Prepared(stmt, conn.dialect)
        cursor = driver(conn).cursor()
        try:
            cursor.execute(prepared.sql, prepared.parameters({}))
            while batch := cursor.fetchmany(_READ_BATCH):
                text = "\n".join([row[0] for row in batch]).encode()
                tables.append(pa_json.read_json(io.BytesIO(text), parse_options=options))
        finally:
            cursor.close()
    return pa.concat_tables(tables) if tables else None


def _history_table(rt: Runtime, job: JobSpec, start: datetime, end: datetime):
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlops.store.codec import decode_chunks

    h = feature_history
    stmt = (
        select(h.c.payload)
        .where(h.c.job == job.name, h.c.max_as_of >= start, h.c.min_as_of <= end)
        .order_by(h.c.chunk_id)
    )
    with rt.store.connect() as conn:
        table = decode_chunks(conn.execute(stmt).scalars().all())
    if table is None:
        return None
    as_of = table["as_of"]
    first, last = pa.scalar(start, as_of.type), pa.scalar(end, as_of.type)
    return table.filter(pc.and_(pc.greater_equal(as_of, first), pc.less_equal(as_of, last)))


def evaluate(
    job: JobSpec, reference: Mapping[str, dict], live: Mapping[str, np.ndarray], *, min_sample: int
) -> list[FeatureDrift]:
    """Each live feature's PSI and test against its reference, judged on its spec's lines;
    fewer than ``min_sample`` values make a statistic ``insufficient``, never an alert."""
    out = []
    for name, values in live.items():
        spec, ref = job.feature(name), reference[name]
        null_share = float(ref.get("null_share") or 0.0)
        if ref.get("kind") == "category":
            shown = stats.categorical_distribution(ref["shares"], values, null_share=null_share)
            # The reference's size, for a two-sample test (see stats.chi2_categorical).
            size = round(ref["rows"] * (1 - null_share)) if ref.get("rows") else None
            test = stats.chi2_categorical(ref["shares"], values, reference_size=size)
            kind = "category"
        else:
            values = stats.canonical(values)
            edges = stats.canonical(ref["edges"])
            shown = stats.numeric_distribution(edges, ref["counts"], values, null_share=null_share)
            test, kind = stats.ks_2samp(stats.canonical(ref["sample"]), values), "numeric"
        psi = None if shown is None else stats.psi(shown.reference, shown.live)
        if psi is None or len(values) < min_sample:
            psi_status = INSUFFICIENT
        else:
            psi_status = ALERT if psi >= spec.psi_alert else WARN if psi >= spec.psi_warn else OK
        if test is None or test.sample_size < min_sample:
            test_status = INSUFFICIENT
        else:
            test_status = ALERT if test.pvalue < spec.ks_pvalue else OK
        out.append(
            FeatureDrift(
                feature=name,
                kind=kind,
                sample_size=len(values),
                psi=psi,
                psi_status=psi_status,
                test="chi2" if kind == "category" else "ks",
                statistic=None if test is None else test.statistic,
                pvalue=None if test is None else test.pvalue,
                tested=0 if test is None else test.sample_size,
                test_status=test_status,
                spec=spec,
                distribution=shown,
            )
        )
    return out


def record(rt: Runtime, result: JobDrift, *, at: datetime) -> None:
    """Write the figures, reconcile the job's drift alerts and trip the fallback on an alert."""
    rows = []
    for f in result.features:
        common = {
            "checked_at": at,
            "monitor": MONITOR,
            "job": result.job,
            "feature": f.feature,
            "model_version": result.model_version,
        }
        rows.append(
            common
            | {
                "statistic": "psi",
                "value": f.psi,
                "threshold": f.spec.psi_alert,
                "status": f.psi_status,
                "sample_size": f.sample_size,
                "detail": _detail(
                    result,
                    warn=f.spec.psi_warn,
                    bins=f.distribution.as_dict() if f.distribution else None,
                ),
            }
        )
        rows.append(
            common
            | {
                "statistic": f"{f.test}_pvalue",
                "value": f.pvalue,
                "threshold": f.spec.ks_pvalue,
                "status": f.test_status,
                "sample_size": f.tested,
                "detail": _detail(result, **{f.test: f.statistic}),
            }
        )
    results.write(rt, rows)
    firing = {f.feature: f.message() for f in result.alerting}
    judged = [f.feature for f in result.features if f.status != INSUFFICIENT]
    result.opened = alerts.check(rt, "drift", result.job, firing, scope=judged)
    if firing:
        detail = (
            f"drift alert on {', '.join(firing)} ({result.source} values vs champion "
            f"v{result.model_version})"
        )
        result.trip = fallback.trip(rt, result.job, "drift", detail)


def _detail(result: JobDrift, **figures) -> str:
    return json.dumps({"source": result.source, **figures})
