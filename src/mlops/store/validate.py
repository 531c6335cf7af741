"""Check every row a view produced against the specs, with vectorised masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops.errors import IngestionFailed
from mlops.specs.features import FeatureSpec, JobSpec

REJECT_COLUMNS = ["entity_id", "as_of", "feature", "reason", "value"]


@dataclass
class Validated:
    good: pd.DataFrame
    rejects: pd.DataFrame  # one row per (row, feature, reason)
    rows_rejected: int


def validate(job: JobSpec, frame: pd.DataFrame) -> Validated:
    """Split the view's rows into typed good rows and reasons for every rejected row."""
    missing = [c for c in ["as_of", "entity_id", *job.feature_names] if c not in frame.columns]
    if missing:
        raise IngestionFailed(
            f"view {job.view} does not return {', '.join(missing)}",
            f"make the view's columns match the features of jobs/{job.name}.yaml",
        )
    frame = frame.reset_index(drop=True)
    bad = np.zeros(len(frame), dtype=bool)
    problems: list[pd.DataFrame] = []

    def reject(mask: np.ndarray, feature: str | None, reason: str, values: pd.Series | None):
        nonlocal bad
        if not mask.any():
            return
        bad |= mask
        rows = frame.loc[mask, ["entity_id", "as_of"]].copy()
        rows["feature"] = feature
        rows["reason"] = reason
        rows["value"] = None if values is None else values[mask].astype(str).to_numpy()
        problems.append(rows)

    entity = frame["entity_id"]
    reject(entity.isna().to_numpy(), None, "missing entity id", None)
    dup = (
        frame.duplicated(["as_of", "entity_id"], keep=False).to_numpy() & entity.notna().to_numpy()
    )
    reject(dup, None, "duplicate entity for this as_of", None)

    typed = {"as_of": frame["as_of"], "entity_id": entity.astype(str)}
    for spec in job.features:
        typed[spec.name] = _check_feature(spec, frame[spec.name], reject)

    good = pd.DataFrame(typed)[~bad].reset_index(drop=True)
    for spec in job.features:
        if spec.dtype == "int":
            col = good[spec.name]
            good[spec.name] = col.astype("Int64") if spec.nullable else col.astype("int64")
    rejects = (
        pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(columns=REJECT_COLUMNS)
    )
    return Validated(good, rejects, int(bad.sum()))


def _check_feature(spec: FeatureSpec, raw: pd.Series, reject) -> pd.Series:
    name = spec.name
    present = raw.notna().to_numpy()
    if spec.dtype == "category":
        values = raw.astype(object).where(raw.notna(), None)
        values = values.map(lambda v: v if v is None else str(v))
        if spec.allowed_values:
            outside = present & ~values.isin(spec.allowed_values).to_numpy()
            reject(outside, name, f"not one of {', '.join(spec.allowed_values)}", raw)
    else:
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        numeric = values.notna().to_numpy()
        reject(present & ~numeric, name, "not a number", raw)
        finite = np.isfinite(values.to_numpy(na_value=np.nan))
        reject(numeric & ~finite, name, "not finite", raw)
        if spec.dtype == "int":
            fractional = numeric & finite & (values.to_numpy() % 1 != 0)
            reject(fractional, name, "not an integer", raw)
        if spec.min_value is not None:
            reject(
                numeric & (values.to_numpy() < spec.min_value),
                name,
                f"below the minimum {spec.min_value:g}",
                raw,
            )
        if spec.max_value is not None:
            reject(
                numeric & (values.to_numpy() > spec.max_value),
                name,
                f"above the maximum {spec.max_value:g}",
                raw,
            )
        present = numeric
    if not spec.nullable:
        reject(~present, name, "null where the spec forbids it", None)
    return values
