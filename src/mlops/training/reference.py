"""Reference distributions saved with every model version: what the drift monitor compares
live feature values against, readable as plain JSON without loading the model."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from mlops.db.schema import feature_snapshots
from mlops.specs.features import JobSpec

QUANTILE_BINS = 10
SAMPLE_SIZE = 2_000
# Rows of stored features a reference describes: the newest snapshots up to the training
# window's end until at least this many (one whole snapshot at least), unless the job's spec
# sets the span the drift monitor compares (its drift_window). Few snapshots on purpose:
# values like days_since_last_order depend on the time of day a snapshot is taken, and a
# mixture of times is a distribution no single refresh ever shows.
POPULATION_ROWS = 1_000


def population(engine: Engine, job: JobSpec, end: datetime) -> pd.DataFrame:
    """The stored features of every entity as serving saw them at the end of the training
    window. Training rows are not that population (a label may cover only part of the
    entities, e.g. those active in the last 90 days), and drift compares what serving
    sees now with what it saw then."""
    from mlops.store.historical import load_snapshots

    if job.drift_window is not None:
        # The same span the drift monitor compares (a day of a seasonal job, not a night).
        return load_snapshots(engine, job, end - job.drift_window, end)
    snap = feature_snapshots
    with engine.connect() as conn:
        newest = conn.execute(
            select(snap.c.as_of, snap.c.entity_count)
            .where(snap.c.job == job.name, snap.c.as_of <= end, snap.c.entity_count > 0)
            .order_by(snap.c.as_of.desc())
        )
        first, rows = None, 0
        for as_of, count in newest:
            first, rows = as_of, rows + count
            if rows >= POPULATION_ROWS:
                break
    if first is None:
        return pd.DataFrame(columns=["as_of", "entity_id", *job.feature_names])
    return load_snapshots(engine, job, first, end)


def reference_distributions(
    frame: pd.DataFrame, features: list[str], categorical: list[str]
) -> dict[str, dict]:
    """Per feature: null share, and quantile bins with counts (numeric) or category shares."""
    out: dict[str, dict] = {}
    for name in features:
        column = frame[name]
        entry: dict = {"rows": len(column), "null_share": float(column.isna().mean() or 0.0)}
        if name in categorical:
            shares = column.dropna().astype(str).value_counts(normalize=True).sort_index()
            entry |= {"kind": "category", "shares": {k: float(v) for k, v in shares.items()}}
        else:
            values = pd.to_numeric(column, errors="coerce").dropna().to_numpy(dtype=float)
            entry |= {"kind": "numeric", **_numeric(values)}
        out[name] = entry
    return out


def _numeric(values: np.ndarray) -> dict:
    if not len(values):
        return {"edges": [], "counts": [], "mean": None, "std": None, "sample": []}
    edges = np.unique(np.quantile(values, np.linspace(0, 1, QUANTILE_BINS + 1)))
    counts = np.histogram(values, bins=edges)[0] if len(edges) > 1 else np.array([len(values)])
    # A fixed sample keeps two-sample tests (KS) possible without the training set.
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(values, min(len(values), SAMPLE_SIZE), replace=False))
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "sample": sample.tolist(),
    }
