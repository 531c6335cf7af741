"""Gradient-boosted trees (LightGBM's native API) for churn, upsell and ETA.

One encoding serves training and serving: numeric features become float64 with NaN for
missing; a categorical becomes the float index of its value among the levels seen in
training, NaN when missing or unseen (LightGBM sends NaN down the trees' missing branch).
``encode`` does it for a DataFrame, ``encode_row`` for one row's mapping without pandas.

Classifiers are calibrated with Platt scaling on the booster's raw margin, fitted on the most
recent slice of the training rows (the slice also used for early stopping and never trained
on), so the validation window stays untouched for the comparison with the heuristic.
A model saves as LightGBM text files plus a JSON metadata file; no pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlops.errors import InputError
from mlops.training import single_row
from mlops.training.values import to_float

if TYPE_CHECKING:
    import lightgbm as lgb
    import pandas as pd

Kind = Literal["classifier", "regressor"]
KINDS = ("classifier", "regressor")
FORMAT = 1
BOOSTER_FILE = "model.txt"
P90_FILE = "model_p90.txt"
META_FILE = "model.json"

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


@dataclass(frozen=True)
class Calibration:
    """Platt scaling on the raw margin: ``p = 1 / (1 + exp(-(slope * margin + intercept)))``.
    ``method="identity"`` (slope 1, intercept 0) is LightGBM's own sigmoid."""

    method: Literal["platt", "identity"] = "identity"
    slope: float = 1.0
    intercept: float = 0.0
    rows: int = 0

    def apply(self, margin: np.ndarray) -> np.ndarray:
        """Probabilities from raw margins."""
        return 1.0 / (1.0 + np.exp(-(self.slope * margin + self.intercept)))


@dataclass
class Model:
    """A trained booster with everything needed to encode its inputs and read its output."""

    kind: Kind
    feature_columns: list[str]
    categorical: list[str]
    category_levels: dict[str, list[str]]
    booster: lgb.Booster
    calibration: Calibration | None = None
    booster_p90: lgb.Booster | None = None
    params: dict[str, Any] = field(default_factory=dict)
    best_iteration: int = 0
    best_iteration_p90: int = 0
    label: str = "label"
    # Row counts and the like from training, kept with the model for the record.
    info: dict[str, Any] = field(default_factory=dict)
    # (column, level -> code or None for numeric) in feature order, for encode_row.
    _row_plan: list[tuple[str, dict[str, float] | None]] = field(
        init=False, repr=False, compare=False
    )
    # Single-row predictors, one per thread and booster (see predict_one).
    _row_predictors: threading.local = field(
        default_factory=threading.local, init=False, repr=False, compare=False
    )
    # (the boosters they were read from, split thresholds per column): see split_keys.
    _splits: tuple[tuple[int, int], list[list[float] | None] | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        cats = set(self.categorical)
        self._row_plan = [
            (
                col,
                {level: float(i) for i, level in enumerate(self.category_levels[col])}
                if col in cats
                else None,
            )
            for col in self.feature_columns
        ]


# --- encoding -------------------------------------------------------------------------


def _levels(values: pd.Series) -> list[str]:
    return sorted(values.dropna().astype("string").unique().tolist())


def encode(model: Model, frame: pd.DataFrame) -> np.ndarray:
    """The float64 matrix the booster reads: columns in ``feature_columns`` order, categoricals
    as level codes, NaN for missing or unseen values."""
    import pandas as pd

    missing = [c for c in model.feature_columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"the frame lacks the model's feature columns: {', '.join(missing)}",
            "build it with the same features the model was trained on",
        )
    out = np.empty((len(frame), len(model.feature_columns)), dtype=np.float64)
    cats = set(model.categorical)
    for j, col in enumerate(model.feature_columns):
        values = frame[col]
        if col in cats:
            text = values.astype("string").to_numpy(dtype=object, na_value=None)
            levels = pd.Index(model.category_levels[col], dtype=object)
            codes = levels.get_indexer(text).astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
            continue
        try:
            out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"feature {col!r} is not numeric ({values.dtype}): {exc}",
                "declare it categorical or convert it to numbers",
            ) from None
    return out


def _code(value: Any, codes: dict[str, float]) -> float:
    if value is None:
        return math.nan
    if not isinstance(value, str):
        try:
            if value != value:  # NaN
                return math.nan
        except TypeError:  # pandas NA refuses to be a bool
            return math.nan
        value = str(value)
    return codes.get(value, math.nan)


def encode_row(model: Model, features: Mapping[str, Any]) -> np.ndarray:
    """One row's features as a 1 x n float64 matrix, the same numbers ``encode`` gives
    (absent keys count as missing). No pandas: a few microseconds."""
    get = features.get
    return np.array(
        [[to_float(get(c)) if m is None else _code(get(c), m) for c, m in model._row_plan]],
        dtype=np.float64,
    )


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
    shell = Model(kind, feature_columns, categorical, levels, booster=None, label=label)
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
            margin = booster.predict(X[cut:], raw_score=True)
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
        # Rows of one timestamp (a churn snapshot) stay together, in the holdout.
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


# --- prediction -----------------------------------------------------------------------


def predict(model: Model, X: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
    """Calibrated probabilities (classifier) or minutes (regressor) for encoded rows, on
    ``num_threads`` OpenMP threads (None: the booster's setting, by default every core)."""
    params = {} if num_threads is None else {"num_threads": num_threads}
    if model.kind == "classifier":
        margin = model.booster.predict(X, raw_score=True, **params)
        return (model.calibration or Calibration()).apply(margin)
    return model.booster.predict(X, **params)


def predict_p90(model: Model, X: np.ndarray) -> np.ndarray:
    """The regressor's 90th-percentile prediction for encoded rows."""
    if model.booster_p90 is None:
        raise InputError(
            f"this {model.kind} has no p90 booster", "train a regressor with fit(..., p90=True)"
        )
    return model.booster_p90.predict(X)


def predict_frame(model: Model, frame: pd.DataFrame) -> np.ndarray:
    """``predict(model, encode(model, frame))``."""
    return predict(model, encode(model, frame))


def predict_row(model: Model, features: Mapping[str, Any]) -> float:
    """The prediction for one row's feature mapping (the serving path)."""
    return predict_one(model, encode_row(model, features)[0])


def predict_one(model: Model, x: np.ndarray) -> float:
    """``predict`` for one encoded row (a 1-d float64 array), through LightGBM's single-row
    C API: the same number, without the per-call set-up that dominates one-row cost."""
    if model.kind == "classifier":
        margin = single_row.predict(model._row_predictors, model.booster, x, raw=True)
        return float((model.calibration or Calibration()).apply(margin))
    return single_row.predict(model._row_predictors, model.booster, x, raw=False)


def predict_p90_one(model: Model, x: np.ndarray) -> float:
    """``predict_p90`` for one encoded row."""
    if model.booster_p90 is None:
        raise InputError(
            f"this {model.kind} has no p90 booster", "train a regressor with fit(..., p90=True)"
        )
    return single_row.predict(model._row_predictors, model.booster_p90, x, raw=False)


def feature_importance(model: Model) -> dict[str, float]:
    """Total gain per feature, by feature name."""
    gains = model.booster.feature_importance(importance_type="gain")
    return {c: float(g) for c, g in zip(model.feature_columns, gains, strict=True)}


# --- files ----------------------------------------------------------------------------


def save(model: Model, directory: Path) -> Path:
    """Write the booster(s) as LightGBM text and the rest as JSON; the metadata file comes
    last, so a directory without it is an unfinished save."""
    import lightgbm as lgb

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).unlink(missing_ok=True)
    model.booster.save_model(str(directory / BOOSTER_FILE), num_iteration=-1)
    if model.booster_p90 is not None:
        model.booster_p90.save_model(str(directory / P90_FILE), num_iteration=-1)
    calibration = model.calibration
    meta = {
        "format": FORMAT,
        "kind": model.kind,
        "label": model.label,
        "feature_columns": model.feature_columns,
        "categorical": model.categorical,
        "category_levels": model.category_levels,
        "calibration": None if calibration is None else asdict(calibration),
        "p90": model.booster_p90 is not None,
        "params": model.params,
        "best_iteration": model.best_iteration,
        "best_iteration_p90": model.best_iteration_p90,
        "info": model.info,
        "lightgbm_version": lgb.__version__,
        # Checked by ``load`` before LightGBM parses a file: it crashes the process (SIGSEGV)
        # on some damaged model files instead of raising.
        "sha256": {
            name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for name in (BOOSTER_FILE, P90_FILE)
            if name != P90_FILE or model.booster_p90 is not None
        },
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False))
    return directory


def load(directory: Path) -> Model:
    """A model written by ``save``; it predicts exactly what the saved one did. A damaged file
    raises ``InputError`` ("model artifact corrupt")."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise InputError(
            f"no model at {directory} ({META_FILE} is missing)",
            "point at a directory written by mlops.training.models.save",
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, OSError) as exc:
        raise _corrupt(directory, f"{META_FILE} is unreadable ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise InputError(
            f"model format {meta.get('format')!r} at {directory} is not {FORMAT}",
            "retrain the model with this version of mlops",
        )
    calibration = meta["calibration"]
    return Model(
        kind=meta["kind"],
        feature_columns=meta["feature_columns"],
        categorical=meta["categorical"],
        category_levels=meta["category_levels"],
        booster=_booster(directory, BOOSTER_FILE, meta),
        calibration=None if calibration is None else Calibration(**calibration),
        booster_p90=_booster(directory, P90_FILE, meta) if meta["p90"] else None,
        params=meta["params"],
        best_iteration=meta["best_iteration"],
        best_iteration_p90=meta["best_iteration_p90"],
        label=meta["label"],
        info=meta["info"],
    )


def _booster(directory: Path, name: str, meta: dict[str, Any]) -> lgb.Booster:
    """One booster file, checked before LightGBM sees it: LightGBM 4 kills the process
    (SIGSEGV) on a truncated model file rather than raising, so a damaged artifact must be
    refused here. The checksum catches any change; models saved before it had one are checked
    for the end marker of their trees, which catches truncation."""
    import lightgbm as lgb

    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _corrupt(directory, f"{name} is unreadable ({exc})") from exc
    expected = (meta.get("sha256") or {}).get(name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise _corrupt(directory, f"{name} does not match its checksum")
    if b"\nend of trees\n" not in data:
        raise _corrupt(directory, f"{name} is truncated (no end of trees)")
    try:
        return lgb.Booster(model_str=data.decode())
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise _corrupt(directory, f"{name}: {exc}") from exc


def _corrupt(directory: Path, what: str) -> InputError:
    return InputError(
        f"model artifact corrupt at {directory}: {what}",
        "promote a version whose files are intact, or retrain",
    )
