"""Evaluation metrics, the same for a model and for the heuristic on the same rows.

Every function returns plain floats (ready for MLflow's ``log_metrics``) except
``calibration_table``, a list of dicts. Empty, misaligned or NaN input raises ``InputError``;
a metric that needs both classes (ROC-AUC, PR-AUC) is NaN when only one class is present.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mlops.errors import InputError

WITHIN_MINUTES = 10.0


def _arrays(a: Any, b: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise InputError(
            f"{names[0]} has {x.size} values but {names[1]} has {y.size}",
            "pass one prediction per labelled row",
        )
    if x.size == 0:
        raise InputError("no rows to evaluate", "check the validation window has labelled rows")
    for name, values in zip(names, (x, y), strict=True):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise InputError(
                f"{name} has {bad} missing or infinite values", "drop or fill them first"
            )
    return x, y


def _binary(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = _arrays(y, p, ("y", "p"))
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError("y must hold only 0 and 1", "pass the binary label")
    if ((p < 0) | (p > 1)).any():
        raise InputError("p must be probabilities in [0, 1]", "pass calibrated probabilities")
    return y, p


def classification(y: Any, p: Any) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), log loss, Brier score, rows, positive rate and mean
    prediction; ROC-AUC and PR-AUC are NaN when ``y`` holds one class only."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    y, p = _binary(y, p)
    both = 0 < y.sum() < y.size
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p, pos_label=1)),
        "rows": float(y.size),
        "positive_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
    }


def calibration_table(
    y: Any, p: Any, bins: int = 10, strategy: Literal["quantile", "uniform"] = "quantile"
) -> list[dict[str, float]]:
    """Mean prediction against observed rate per bin of ``p``: equal-count bins (``quantile``,
    the default, since rare-event scores crowd near 0) or equal-width ones; empty bins
    are left out. Each row: bin, lower, upper, mean_predicted, observed_rate, count."""
    y, p = _binary(y, p)
    if bins < 1:
        raise InputError(f"bins must be at least 1, got {bins}")
    if strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        raise InputError(f"unknown strategy {strategy!r}", "use 'quantile' or 'uniform'")
    # Inner edges only, right-closed like numpy.histogram's last bin: every p lands in a bin.
    which = np.searchsorted(edges[1:-1], p, side="right")
    table = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count == 0:
            continue
        table.append(
            {
                "bin": b,
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "mean_predicted": float(p[mask].mean()),
                "observed_rate": float(y[mask].mean()),
                "count": count,
            }
        )
    return table


def regression(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MAE, median and 90th-percentile absolute error, share within 10 minutes, bias
    (mean of prediction minus truth: positive means estimates run long), and rows."""
    from sklearn.metrics import mean_absolute_error, median_absolute_error

    y, pred = _arrays(y_true, y_pred, ("y_true", "y_pred"))
    error = np.abs(pred - y)
    return {
        "mae": float(mean_absolute_error(y, pred)),
        "median_abs_error": float(median_absolute_error(y, pred)),
        "p90_abs_error": float(np.quantile(error, 0.9)),
        "within_10min": float(np.mean(error <= WITHIN_MINUTES)),
        "bias": float(np.mean(pred - y)),
        "rows": float(y.size),
    }
