"""Reference distributions saved with every model version: what the drift monitor compares
live feature values against, readable as plain JSON without loading the model."""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILE_BINS = 10
SAMPLE_SIZE = 2_000


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
