"""Training a model: ``fit`` with its LightGBM defaults, the held-out slice for early stopping,
and the Platt calibration fitted on it. Apart from ``models`` because only training needs it;
serving encodes and predicts.

Classifiers are calibrated with Platt scaling on the booster's raw margin, fitted on the most
recent slice of the training rows (the slice also used for early stopping and never trained
on), so the validation window stays untouched for the comparison with the heuristic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.errors import InputError
from mlops.training.models import KINDS, Calibration, Kind, Model, encode

if TYPE_CHECKING:
    import lightgbm as lgb
    import pandas as pd

# LightGBM parameters; anything here can be overridden through ``fit(params=...)``.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "min_data_per_group": 50,
    "max_bin": 255,
    "num_threads": 2,
    # Same rows, seed and thread count give the same trees.
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
OBJECTIVES: dict[str, dict[str, Any]] = {
    "classifier": {"objective": "binary", "metric": "binary_logloss"},
    # Trained on squared error (unbiased mean) but stopped on MAE, the metric ETA is judged by.
    "regressor": {"objective": "regression", "metric": "l1"},
}
P90_OBJECTIVE = {"objective": "quantile", "alpha": 0.9, "metric": "quantile"}
# How training itself runs; also overridable through ``params``, and stored with the model.
FIT_DEFAULTS: dict[str, Any] = {
    "num_boost_round": 1000,
    "early_stopping_rounds": 30,
    # The most recent share of the training rows held out for early stopping and calibration.
    "holdout_fraction": 0.15,
    # Below this many held-out rows (or one class only) there is no early stopping and no
    # calibration: a fixed number of rounds on all rows.
    "min_holdout_rows": 100,
    "rounds_without_holdout": 100,
}


# --- encoding -------------------------------------------------------------------------


def _levels(values: pd.Series) -> list[str]:
    return sorted(values.dropna().astype("string").unique().tolist())


# --- training -------------------------------------------------------------------------


def fit(
    kind: Kind,
    train: pd.DataFrame,
    feature_columns: Sequence[str],
    categorical: Sequence[str],
    label: str,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    time_column: str | None = None,
    p90: bool = True,
) -> Model:
    """Train a LightGBM model on ``train``: early stopping (and, for a classifier, calibration)
    on its most recent rows, by ``time_column`` or else by row order. Deterministic per seed.

    ``p90`` adds a quantile (alpha 0.9) booster to a regressor.
    """
    import lightgbm as lgb

    if kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}", f"choose one of: {', '.join(KINDS)}")
    feature_columns = list(feature_columns)
    categorical = list(categorical)
    _check_columns(train, feature_columns, categorical, label, time_column)
    settings = {**FIT_DEFAULTS, **DEFAULT_PARAMS, **OBJECTIVES[kind], **dict(params or {})}
    settings["seed"] = seed
    lgb_params = {k: v for k, v in settings.items() if k not in FIT_DEFAULTS}

    if time_column is not None:
        train = train.sort_values(time_column, kind="stable")
    y = _labels(kind, train[label], label)
    levels = {col: _levels(train[col]) for col in categorical}
    # Only encode() reads it, and encode needs no booster.
    shell = Model(kind, feature_columns, categorical, levels, booster=None, label=label)  # type: ignore[arg-type]
    X = encode(shell, train)
    cut = _holdout_start(train, time_column, settings)
    holdout = _usable_holdout(kind, y[cut:], settings)
    cat_idx = [feature_columns.index(c) for c in categorical]

    rows = cut if holdout else len(y)
    booster, best = _train(lgb, lgb_params, X, y, rows, feature_columns, cat_idx, settings)
    calibration = None
    if kind == "classifier":
        calibration = Calibration()
        if holdout:
            margin = np.asarray(booster.predict(X[cut:], raw_score=True))
            calibration = _fit_platt(margin, y[cut:])
    booster_p90, best_p90 = None, 0
    if kind == "regressor" and p90:
        p90_params = {**lgb_params, **P90_OBJECTIVE}
        booster_p90, best_p90 = _train(
            lgb, p90_params, X, y, rows, feature_columns, cat_idx, settings
        )
    return Model(
        kind=kind,
        feature_columns=feature_columns,
        categorical=categorical,
        category_levels=levels,
        booster=booster,
        calibration=calibration,
        booster_p90=booster_p90,
        params=settings,
        best_iteration=best,
        best_iteration_p90=best_p90,
        label=label,
        info={
            "train_rows": int(rows),
            "holdout_rows": int(len(y) - cut) if holdout else 0,
            "early_stopped": bool(holdout),
        },
    )


def _check_columns(
    train: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    label: str,
    time_column: str | None,
) -> None:
    needed = [*features, label, *([time_column] if time_column else [])]
    missing = [c for c in needed if c not in train.columns]
    if missing:
        raise InputError(
            f"the training frame lacks columns: {', '.join(missing)}",
            f"it has: {', '.join(map(str, train.columns))}",
        )
    if len(set(features)) != len(features):
        raise InputError("feature_columns has duplicates", "list each feature once")
    stray = [c for c in categorical if c not in features]
    if stray:
        raise InputError(
            f"categorical columns not among the features: {', '.join(stray)}",
            "list them in feature_columns too",
        )
    if train.empty:
        raise InputError("the training frame is empty", "build a training set with rows first")


def _labels(kind: str, values: pd.Series, name: str) -> np.ndarray:
    try:
        y = values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise InputError(f"label {name!r} is not numeric", "use 0/1 or minutes") from None
    if np.isnan(y).any():
        raise InputError(
            f"label {name!r} has {int(np.isnan(y).sum())} missing values",
            "drop unlabelled rows before training",
        )
    if kind == "classifier":
        classes = set(np.unique(y).tolist())
        if not classes <= {0.0, 1.0}:
            raise InputError(f"a classifier's label must be 0/1, got {sorted(classes)[:5]}")
        if len(classes) < 2:
            raise InputError(
                f"label {name!r} has only one class ({classes.pop():g})",
                "train on a longer window so that both outcomes occur",
            )
    return y


def _holdout_start(train: pd.DataFrame, time_column: str | None, settings: dict) -> int:
    n = len(train)
    cut = round(n * (1.0 - float(settings["holdout_fraction"])))
    cut = min(max(cut, 1), n)
    if time_column is not None and cut < n:
        # Rows of one timestamp (a snapshot label) stay together, in the holdout.
        times = train[time_column].to_numpy()
        aligned = int(np.searchsorted(times, times[cut], side="left"))
        if aligned > 0:
            cut = aligned
    return cut


def _usable_holdout(kind: str, y_holdout: np.ndarray, settings: dict) -> bool:
    if len(y_holdout) < int(settings["min_holdout_rows"]):
        return False
    return kind != "classifier" or len(np.unique(y_holdout)) == 2


def _train(lgb, params, X, y, cut, names, cat_idx, settings) -> tuple[lgb.Booster, int]:
    """A booster trained on rows [:cut], early-stopped on rows [cut:] when there are any,
    rebuilt from its text so it holds exactly the best trees (as a saved model will)."""
    dtrain = lgb.Dataset(
        X[:cut], y[:cut], feature_name=names, categorical_feature=cat_idx, free_raw_data=True
    )
    if cut < len(y):
        dvalid = lgb.Dataset(X[cut:], y[cut:], reference=dtrain)
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=int(settings["num_boost_round"]),
            valid_sets=[dvalid],
            callbacks=[lgb.early_stopping(int(settings["early_stopping_rounds"]), verbose=False)],
        )
        best = booster.best_iteration or booster.current_iteration()
    else:
        best = int(settings["rounds_without_holdout"])
        booster = lgb.train(params, dtrain, num_boost_round=best)
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), int(best)


def _fit_platt(margin: np.ndarray, y: np.ndarray) -> Calibration:
    """Logistic regression of the label on the margin (Newton's method, 2 parameters)."""
    w = np.array([1.0, 0.0])  # slope, intercept: start from LightGBM's own sigmoid
    design = np.column_stack([margin, np.ones_like(margin)])

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    current = loss(w)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (p - y) / len(y)
        hess = (design * (p * (1 - p))[:, None]).T @ design / len(y) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2
        w_new = w - scale * step
        new = loss(w_new)
        done = current - new < 1e-12
        if new <= current:
            w, current = w_new, new
        if done:
            break
    slope, intercept = float(w[0]), float(w[1])
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope <= 0:
        # A flat or inverted fit means the held-out slice says nothing reliable.
        return Calibration(rows=len(y))
    return Calibration("platt", slope, intercept, rows=len(y))
