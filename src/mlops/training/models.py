"""Gradient-boosted trees (LightGBM's native API) for every job: the model, its
encoding, its predictions and its files. Training it is ``models_fit``.

One encoding serves training and serving: numeric features become float64 with NaN for
missing; a categorical becomes the float index of its value among the levels seen in
training, NaN when missing or unseen (LightGBM sends NaN down the trees' missing branch).
``encode`` does it for a DataFrame, ``encode_row`` for one row's mapping without pandas.

A model saves as LightGBM text files plus a JSON metadata file; no pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

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


@dataclass(frozen=True)
class Calibration:
    """Platt scaling on the raw margin: ``p = 1 / (1 + exp(-(slope * margin + intercept)))``.
    ``method="identity"`` (slope 1, intercept 0) is LightGBM's own sigmoid."""

    method: Literal["platt", "identity"] = "identity"
    slope: float = 1.0
    intercept: float = 0.0
    rows: int = 0

    @overload
    def apply(self, margin: float) -> float: ...
    @overload
    def apply(self, margin: np.ndarray) -> np.ndarray: ...
    def apply(self, margin: np.ndarray | float) -> np.ndarray | float:
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
            # None for a missing level (pandas-stubs know no None na_value).
            text = values.astype("string").to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
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


# --- prediction -----------------------------------------------------------------------


def predict(model: Model, X: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
    """Calibrated probabilities (classifier) or minutes (regressor) for encoded rows, on
    ``num_threads`` OpenMP threads (None: the booster's setting, by default every core)."""
    params: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}
    if model.kind == "classifier":
        margin = np.asarray(model.booster.predict(X, raw_score=True, **params))
        return (model.calibration or Calibration()).apply(margin)
    return np.asarray(model.booster.predict(X, **params))


def predict_p90(model: Model, X: np.ndarray) -> np.ndarray:
    """The regressor's 90th-percentile prediction for encoded rows."""
    if model.booster_p90 is None:
        raise InputError(
            f"this {model.kind} has no p90 booster", "train a regressor with fit(..., p90=True)"
        )
    return np.asarray(model.booster_p90.predict(X))


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
