"""Helpers for writing a heuristic once for one row and for whole columns: each takes floats
or numpy arrays alike, plain Python on floats (a row stays at a few microseconds; numpy on 0-d
arrays costs ~1 us a call) and numpy on arrays. A repository's ``heuristics.py`` uses them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlops.training.values import to_float

__all__ = ["clip", "isnan", "logit", "out", "sigmoid", "values", "where"]


def values(x: Any) -> Any:
    """A float (NaN for None, pandas NA or a non-number) or a float64 array."""
    if isinstance(x, float):
        return x
    if hasattr(x, "to_numpy"):  # a pandas Series or array, maybe with pd.NA
        return x.to_numpy(dtype=float, na_value=math.nan)
    if isinstance(x, (np.ndarray, list, tuple)):
        a = np.asarray(x, dtype=float)
        return float(a) if a.ndim == 0 else a
    return to_float(x)


def isnan(x: Any) -> Any:
    """True where ``x`` is NaN (NaN is the only value unequal to itself)."""
    return x != x


def where(cond: Any, a: Any, b: Any) -> Any:
    """``a`` where ``cond``, else ``b``."""
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    return a if cond else b


def clip(x: Any, lo: float, hi: float) -> Any:
    """``x`` bounded to ``[lo, hi]``."""
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return lo if x < lo else hi if x > hi else x


def sigmoid(x: Any) -> Any:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: Any) -> Any:
    """The log-odds of ``p``."""
    return np.log(p) - np.log1p(-p)


def out(x: Any) -> Any:
    """An array as is, anything else as a plain float."""
    return x if isinstance(x, np.ndarray) else float(x)
