"""``mlops train <job>``: refresh the job's features, build the point-in-time set, train,
evaluate side by side with the heuristic (and the current champion), log to MLflow,
register, and promote when the gate passes. ``dry_run`` does it all in memory."""

from __future__ import annotations

import getpass
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.errors import MlopsError
from mlops.runtime import Runtime
from mlops.specs import JobSpec
from mlops.specs import sync as specs_sync
from mlops.store import ingest
from mlops.training import datasets, heuristics, metrics, models, models_fit
from mlops.training.reference import population, reference_distributions

Stage = Callable[[str], None]


@dataclass
class TrainReport:
    job: str
    dry_run: bool
    rows_train: int = 0
    rows_valid: int = 0
    window: tuple = ()
    model_metrics: dict[str, float] = field(default_factory=dict)
    heuristic_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    calibration: list[dict] = field(default_factory=list)
    version: int | None = None
    promoted: bool = False
    promotion: str = ""
    seconds: float = 0.0


def evaluate(job: JobSpec, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The job's metrics (classification or regression) as a flat dict of floats."""
    if job.kind == "classifier":
        result = metrics.classification(y, predicted)
        return {k: float(v) for k, v in result.items() if not isinstance(v, list)}
    return {k: float(v) for k, v in metrics.regression(y, predicted).items()}


def train(
    rt: Runtime,
    job_name: str,
    *,
    dry_run: bool = False,
    promote: bool = True,
    refresh: bool = True,
    on_stage: Stage | None = None,
) -> TrainReport:
    """Train one job end to end; returns the side-by-side report."""
    job = rt.repo.job(job_name)
    stage = on_stage or (lambda label: None)
    began = time.perf_counter()
    report = TrainReport(job=job.name, dry_run=dry_run)
    if refresh:
        stage("refreshing features")
        ingest.refresh(rt, job.name, dry_run=dry_run)
    stage("building the training set")
    ts = datasets.build(rt, job.name)
    train_rows, valid_rows = ts.split()
    report.rows_train, report.rows_valid = len(train_rows), len(valid_rows)
    report.window = (ts.start, ts.end)
    stage("training")
    model = models_fit.fit(
        job.kind,
        train_rows,
        ts.features,
        ts.categorical,
        datasets.LABEL,
        params=dict(job.model_params) or None,
        time_column="event_time",
    )
    y = valid_rows[datasets.LABEL].to_numpy(dtype=float)
    predicted = models.predict(model, models.encode(model, valid_rows))
    report.model_metrics = evaluate(job, y, predicted)
    report.heuristic_metrics = evaluate(job, y, heuristics.score_frame(job, valid_rows))
    if job.kind == "classifier":
        report.calibration = metrics.calibration_table(y, predicted)
    stage("comparing with the champion")
    report.champion_metrics, champion_version = _champion_metrics(rt, job, valid_rows, y)
    if dry_run:
        report.seconds = time.perf_counter() - began
        return report
    stage("logging to MLflow")
    report.version = _log(rt, job, ts, model, report, valid_rows, champion_version)
    if promote:
        stage("promotion gate")
        from mlops.training import registry

        try:
            result = registry.promote(rt, job.name, version=report.version, actor=actor())
            report.promoted, report.promotion = True, result.reason
        except MlopsError as refused:
            report.promotion = str(refused)
    report.seconds = time.perf_counter() - began
    return report


def _champion_metrics(
    rt: Runtime, job: JobSpec, valid: pd.DataFrame, y: np.ndarray
) -> tuple[dict, int | None]:
    """The current champion re-evaluated on this run's validation rows (none yet: {})."""
    from mlops.training import tracking_artifacts, tracking_versions

    try:
        champion, version = tracking_artifacts.load_native(
            rt.settings, job.name, tracking_versions.CHAMPION
        )
    except MlopsError:
        return {}, None  # no champion yet: the gate compares with the heuristic only
    predicted = models.predict(champion, models.encode(champion, valid))
    return evaluate(job, y, predicted), version


def _log(
    rt, job: JobSpec, ts, model, report: TrainReport, valid: pd.DataFrame, champion: int | None
) -> int:
    from mlops.training import tracking
    from mlops.training.tracking_dataset import TrainingData

    spec_versions = specs_sync.spec_versions(rt.store, job.name)
    metric_values = {
        **report.model_metrics,
        **{f"heuristic_{k}": v for k, v in report.heuristic_metrics.items()},
        **{f"champion_{k}": v for k, v in report.champion_metrics.items()},
        **ts.freshness(),
        "rows_train": report.rows_train,
        "rows_valid": report.rows_valid,
        "rows_dropped_without_features": ts.dropped_without_features,
    }
    fingerprint = ts.fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        models.save(model, model_dir)
        info = tracking.log_training_run(
            rt.settings,
            job.name,
            params={"kind": job.kind, **model.params},
            metrics=metric_values,
            model_dir=model_dir,
            input_example=valid[ts.features].head(5),
            tags={
                "training_window_start": str(ts.start),
                "training_window_end": str(ts.end),
                "validation_start": str(valid["event_time"].min()),
                "training_set_fingerprint": fingerprint,
                "features": ",".join(f"{n}@v{spec_versions.get(n, 0)}" for n in ts.features),
            },
            champion_version=champion,
            run_name=f"{job.name} {ts.start:%Y-%m-%d %H:%M}..{ts.end:%Y-%m-%d %H:%M}",
            training_data=TrainingData(
                frame=ts.frame,
                target=datasets.LABEL,
                digest=fingerprint,
                store_url=rt.settings.store_url,
                label_sql=f"sql/{job.label.sql}.sql" if job.label else "",
                window_start=str(ts.start),
                window_end=str(ts.end),
            ),
            artifacts={
                "reference_distributions.json": reference(rt, job, ts),
                "calibration.json": {"table": report.calibration},
                "feature_importance.json": models.feature_importance(model),
            },
        )
    return int(info.version)


def reference(rt: Runtime, spec: JobSpec, ts: datasets.TrainingSet) -> dict[str, dict]:
    """Stored features described over the population serving saw at the window's end;
    request-time inputs (offer, distance...) over the training rows, the only record of them."""
    stored = [f for f in ts.features if f in spec.feature_names]
    inputs = [f for f in ts.features if f not in stored]
    return {
        **reference_distributions(
            population(rt.store, spec, ts.end), stored, [c for c in ts.categorical if c in stored]
        ),
        **reference_distributions(ts.frame, inputs, [c for c in ts.categorical if c in inputs]),
    }


def actor() -> str:
    """Who is acting, for the promotion history."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "mlops"
