"""What the monitors computed, kept in ``ml_monitor_results``: the history the dashboard charts
and the evidence behind every alert and trip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlops.db.schema import monitor_results
from mlops.runtime import Runtime

COLUMNS = tuple(c.name for c in monitor_results.columns if c.name != "result_id")
STATUSES = ("ok", "warn", "alert", "insufficient")


def write(rt: Runtime, rows: Sequence[Mapping]) -> int:
    """Insert result rows (``ml_monitor_results`` columns; optional ones may be left out)."""
    if not rows:
        return 0
    full = [{name: row.get(name) for name in COLUMNS} for row in rows]
    for row, given in zip(full, rows, strict=True):
        unknown = set(given) - set(COLUMNS)
        if unknown:
            raise ValueError(f"not ml_monitor_results columns: {sorted(unknown)}")
        if row["status"] not in STATUSES:
            raise ValueError(f"status {row['status']!r} is not one of {STATUSES}")
    with rt.store.begin() as conn:
        conn.execute(monitor_results.insert(), full)
    return len(full)
