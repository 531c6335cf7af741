"""A training set as an MLflow dataset: the run's "Datasets used" names where its rows came from
(the feature store, the job's label SQL, the window) and the digest of the exact rows.

Imported by ``tracking`` only while logging a run: it imports MLflow at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.data.dataset_source import DatasetSource

from mlops.errors import redact

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.data.pandas_dataset import PandasDataset

# MLflow keeps a dataset digest in a 36-character column.
DIGEST_LENGTH = 36


@dataclass(frozen=True)
class TrainingData:
    """What ``log_training_run`` logs as the run's training dataset."""

    frame: pd.DataFrame
    target: str
    digest: str  # the training set's fingerprint (a SHA-256 of its rows and columns)
    store_url: str
    label_sql: str
    window_start: str
    window_end: str


class FeatureStoreSource(DatasetSource):
    """Point-in-time rows read from an mlops feature store, labelled by a job's label SQL."""

    def __init__(
        self, *, job: str, store: str, label_sql: str, window_start: str, window_end: str
    ) -> None:
        self.job, self.store, self.label_sql = job, store, label_sql
        self.window_start, self.window_end = window_start, window_end

    @staticmethod
    def _get_source_type() -> str:
        return "mlops_feature_store"

    def load(self, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"rebuild the set with mlops.training.datasets.build(runtime, {self.job!r})"
        )

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> FeatureStoreSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "store": self.store,
            "label_sql": self.label_sql,
            "window_start": self.window_start,
            "window_end": self.window_end,
        }

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> FeatureStoreSource:
        return cls(**{str(key): str(value) for key, value in source_dict.items()})


def dataset(job: str, data: TrainingData) -> PandasDataset:
    """The MLflow dataset of ``data``: its schema, row count, digest and source (the store's
    URL without its password)."""
    from mlflow.data.pandas_dataset import from_pandas

    source = FeatureStoreSource(
        job=job,
        store=redact(data.store_url),
        label_sql=data.label_sql,
        window_start=data.window_start,
        window_end=data.window_end,
    )
    return from_pandas(
        data.frame,
        source=source,
        targets=data.target,
        name=f"{job}-training-set",
        digest=data.digest[:DIGEST_LENGTH],
    )
