"""Running per-feature statistics over the chunks of a run, for summaries and dry-runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from mlops.specs.features import JobSpec


@dataclass
class FeatureStats:
    name: str
    dtype: str
    rows: int = 0
    nulls: int = 0
    minimum: float | None = None
    maximum: float | None = None
    total: float = 0.0
    categories: Counter = field(default_factory=Counter)

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def mean(self) -> float | None:
        present = self.rows - self.nulls
        return self.total / present if present and self.dtype != "category" else None

    def add(self, column: pd.Series) -> None:
        self.rows += len(column)
        self.nulls += int(column.isna().sum())
        present = column.dropna()
        if present.empty:
            return
        if self.dtype == "category":
            self.categories.update(present.value_counts().to_dict())
            return
        lo, hi = float(present.min()), float(present.max())
        self.minimum = lo if self.minimum is None else min(self.minimum, lo)
        self.maximum = hi if self.maximum is None else max(self.maximum, hi)
        self.total += float(present.sum())


def new_stats(job: JobSpec) -> dict[str, FeatureStats]:
    return {f.name: FeatureStats(f.name, f.dtype) for f in job.features}
