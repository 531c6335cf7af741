"""Emptying the store's data (quickstart, benchmarks); specs and schema stay."""

from __future__ import annotations

from sqlalchemy import Engine, delete

from mlops.db.schema import (
    feature_history,
    feature_rejects,
    feature_snapshots,
    feature_values,
    ingestion_runs,
)

DATA_TABLES = (feature_values, feature_history, feature_snapshots, ingestion_runs, feature_rejects)


def clear_feature_data(engine: Engine) -> None:
    """Delete every ingested value, snapshot, run and reject, in one transaction."""
    with engine.begin() as conn:
        for table in DATA_TABLES:
            conn.execute(delete(table))
