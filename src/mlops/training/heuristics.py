"""A job's rule-based heuristic: the baseline every model must beat in training and the
fallback answer in serving. The formula is the repository's (a function of its
``heuristics.py``, named in the job's ``heuristic``); this calls it on one row, a frame or
columns, with the job's ``params``. A missing input is passed as a missing value (NaN, or
None for a category): the formula says what it assumes then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.errors import InputError
from mlops.training.values import to_float

if TYPE_CHECKING:
    import pandas as pd

    from mlops.specs.features import JobSpec


@dataclass(frozen=True)
class Heuristic:
    """``function(**inputs, **params)``: floats (strings for categories) in, a float out for
    one row; numpy arrays in and out for columns."""

    name: str
    function: Callable[..., Any]
    inputs: tuple[str, ...]
    categorical: frozenset[str] = frozenset()
    params: Mapping[str, Any] = field(default_factory=dict)

    def row(self, values: Mapping[str, Any]) -> float:
        """The heuristic of one row (missing keys count as missing values)."""
        get, categorical = values.get, self.categorical
        args = {n: get(n) if n in categorical else to_float(get(n)) for n in self.inputs}
        return float(self.function(**args, **self.params))

    def columns(self, **columns: Any) -> np.ndarray:
        """The heuristic of whole columns given by name (numpy arrays or Series)."""
        missing = [n for n in self.inputs if n not in columns]
        if missing:
            raise InputError(
                f"the heuristic {self.name} needs {', '.join(missing)}",
                f"pass every input it declares: {', '.join(self.inputs)}",
            )
        size = max((np.size(c) for c in columns.values()), default=0)
        result = self.function(**{n: columns[n] for n in self.inputs}, **self.params)
        return np.broadcast_to(np.asarray(result, dtype=float), (size,)).copy()

    def frame(self, df: pd.DataFrame) -> np.ndarray:
        """The heuristic of every row of a frame; an absent column counts as missing values."""
        n = len(df)
        columns: dict[str, Any] = {}
        for name in self.inputs:
            if name in self.categorical:
                present = name in df.columns
                columns[name] = df[name].to_numpy(dtype=object) if present else np.full(n, None)
            elif name in df.columns:
                columns[name] = df[name].to_numpy(dtype=float, na_value=np.nan)
            else:
                columns[name] = np.full(n, np.nan)
        return self.columns(**columns)


def of(job: JobSpec) -> Heuristic:
    """The job's heuristic, or an InputError saying how to declare one."""
    if job.heuristic is None:
        raise InputError(
            f"job {job.name!r} declares no heuristic",
            f"add a heuristic (function, inputs) to jobs/{job.name}.yaml in the repository",
        )
    return job.heuristic


def score_frame(job: JobSpec, df: pd.DataFrame) -> np.ndarray:
    """The job's heuristic for every row of ``df``."""
    return of(job).frame(df)


def score_row(job: JobSpec, features: Mapping[str, Any]) -> float:
    """The job's heuristic for one row's features (the serving fallback)."""
    return of(job).row(features)
