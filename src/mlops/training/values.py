"""Reading one request's raw values, shared by the heuristics and the models' row path."""

from __future__ import annotations

import math
from typing import Any


def to_float(value: Any) -> float:
    """A float, NaN for None, pandas NA or anything that is not a number."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
