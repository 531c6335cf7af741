"""The library's rule: the longer a member has been idle, the likelier they stay away."""

from typing import Any

from mlops.training.formulas import clip, isnan, out, values, where


def lapse_rule(idle_days: Any, loans_30d: Any, *, half_life_days: float) -> Any:
    """1 - 2^(-idle / half_life), lowered by recent loans; never borrowed: 0.9."""
    idle, recent = values(idle_days), values(loans_30d)
    p = 1.0 - 2.0 ** (-clip(idle, 0.0, 3650.0) / half_life_days)
    p = where(isnan(recent), p, p / (1.0 + clip(recent, 0.0, 100.0) / 4.0))
    return out(clip(where(isnan(idle), 0.9, p), 0.01, 0.99))
