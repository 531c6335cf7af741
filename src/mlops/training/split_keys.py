"""Exact keys for memoising a tree model's predictions: two rows on the same side of every
split of every tree get the same prediction, so a numeric input only matters by the interval
between the thresholds it falls in (continuous inputs, such as an ETA's distance, repeat)."""

from __future__ import annotations

import bisect

import numpy as np

from mlops.training.models import Model


def split_key(model: Model, x: np.ndarray) -> tuple | None:
    """A key two encoded rows share only when every split of the model's trees (both
    boosters) sends them the same way, so they get the same prediction: a memo of predictions
    can be keyed by it. A numeric value becomes the index of its interval between the split
    thresholds (missing and zero, which LightGBM may route by their own rule, keep keys of
    their own); a categorical code stays as it is. None when the model has no such key
    (linear trees, or a booster that is not LightGBM's)."""
    points = split_points(model)
    if points is None:
        return None
    return tuple(
        "nan"
        if v != v  # NaN: its own key (and NaN != NaN would make every key unequal)
        else v
        if cuts is None
        else "zero"
        if abs(v) <= ZERO_THRESHOLD
        else bisect.bisect_left(cuts, v)
        for v, cuts in zip(x.tolist(), points, strict=True)
    )


# LightGBM counts |x| <= 1e-35 as zero, which a "missing is zero" split routes as missing.
ZERO_THRESHOLD = 1e-35


def split_points(model: Model) -> list[list[float] | None] | None:
    """Per feature column, the sorted thresholds of its numeric splits (None: categorical),
    read from the trees once per booster (~0.1 s for 300 trees: do it when loading)."""
    boosters = (id(model.booster), id(model.booster_p90))
    if model._splits is None or model._splits[0] != boosters:
        model._splits = (boosters, _split_points(model))
    return model._splits[1]


def _split_points(model: Model) -> list[list[float] | None] | None:
    import lightgbm as lgb

    found: list[set[float]] = [set() for _ in model.feature_columns]
    for booster in (model.booster, model.booster_p90):
        if booster is None:
            continue
        if not isinstance(booster, lgb.Booster) or booster.params.get("linear_tree"):
            return None
        for tree in booster.dump_model()["tree_info"]:
            nodes = [tree["tree_structure"]]
            while nodes:
                node = nodes.pop()
                if "split_index" not in node:
                    continue
                if node["decision_type"] == "<=":
                    found[node["split_feature"]].add(float(node["threshold"]))
                nodes += [node["left_child"], node["right_child"]]
    cats = set(model.categorical)
    return [
        None if col in cats else sorted(cuts)
        for col, cuts in zip(model.feature_columns, found, strict=True)
    ]
