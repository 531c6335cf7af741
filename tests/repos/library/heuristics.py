"""The library's rule, a crude one: members who borrowed little lately are likelier to stay
away (the model also sees how long they have been idle)."""

from typing import Any

from mlops.training.formulas import clip, isnan, out, values, where


def lapse_rule(loans_30d: Any, *, loans_for_half: float) -> Any:
    """1 / (1 + loans_30d / loans_for_half); no figure: 0.5."""
    recent = values(loans_30d)
    p = 1.0 / (1.0 + clip(recent, 0.0, 1000.0) / loans_for_half)
    return out(clip(where(isnan(recent), 0.5, p), 0.01, 0.99))
