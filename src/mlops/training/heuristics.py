"""The rule-based heuristics, written once: the baseline every model must beat in training and
the fallback answer in serving.

Each rule is one formula that takes floats or whole arrays alike (through small helpers that
use numpy on arrays and plain Python on floats), so the baseline in training and the fallback
in serving are the same numbers. ``*_row`` wrappers take one row's feature mapping and cost
a few microseconds (no pandas); ``*_frame`` wrappers take a DataFrame; ``score_row`` and
``score_frame`` pick the rule by job name. A missing input (None or NaN) never gives NaN or an
exception: each rule says what it assumes instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.errors import InputError
from mlops.training.values import to_float

if TYPE_CHECKING:
    import pandas as pd

CHURN_INPUTS = ("days_since_last_order", "orders_30d", "orders_90d")
UPSELL_INPUTS = ("acceptance_rate_90d", "impressions_90d", "discount_pct")
ETA_INPUTS = ("distance_km", "zone")

# Churn: logit = intercept + per_day * recency + per_drop * frequency drop. A customer seen
# today at a steady order rate scores ~5%; two weeks of silence with half the usual orders
# ~30%; a month of silence (no order in 30 days: a full drop) ~80%, never ordered ~100%.
CHURN_INTERCEPT = -3.0
CHURN_PER_DAY = 0.1
CHURN_PER_DROP = 1.5
# Recency is capped so that "never ordered" and "a year ago" both mean "gone", without
# overflowing the exponential.
CHURN_MAX_DAYS = 90.0

# Upsell: the customer's acceptance rate shrunk toward a prior (a beta prior worth this many
# impressions), then shifted on the log-odds scale by the offer's discount.
UPSELL_PRIOR_RATE = 0.1
UPSELL_PRIOR_IMPRESSIONS = 5.0
UPSELL_PER_DISCOUNT_POINT = 0.04  # log-odds per discount percentage point
UPSELL_REFERENCE_DISCOUNT = 20.0  # the discount at which the rate is taken as is

# ETA: a request without a distance is priced at a typical trip.
ETA_DEFAULT_DISTANCE_KM = 3.0

# Probabilities stay strictly inside (0, 1) so a heuristic's log loss is always finite.
EPS = 1e-4


# The formulas are written once against these helpers, which take floats or arrays: plain
# Python on floats keeps a row at a few microseconds (numpy on 0-d arrays costs ~1 us a call).


def _values(x: Any) -> Any:
    """A float (NaN for None, pandas NA or a non-number) or a float64 array."""
    if isinstance(x, float):
        return x
    if hasattr(x, "to_numpy"):  # a pandas Series or array, maybe with pd.NA
        return x.to_numpy(dtype=float, na_value=math.nan)
    if isinstance(x, (np.ndarray, list, tuple)):
        a = np.asarray(x, dtype=float)
        return float(a) if a.ndim == 0 else a
    return to_float(x)


def _isnan(x):
    return x != x  # NaN is the only value unequal to itself, in Python and in numpy alike


def _where(cond, a, b):
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    return a if cond else b


def _clip(x, lo, hi):
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return lo if x < lo else hi if x > hi else x


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _out(x):
    return x if isinstance(x, np.ndarray) else float(x)


def churn_risk(days_since_last_order, orders_30d, orders_90d):
    """Churn probability in (0, 1) from recency and the drop in order frequency.

    Never ordered (recency NaN) counts as the longest recency, i.e. high risk; a missing
    order count leaves the frequency term out (no evidence of a drop).
    """
    days, recent, quarter = _values(days_since_last_order), _values(orders_30d), _values(orders_90d)
    recency = _where(_isnan(days), CHURN_MAX_DAYS, _clip(days, 0.0, CHURN_MAX_DAYS))
    # Orders in the last 30 days against the 90-day monthly average: 0 steady or rising, 1 when
    # they stopped. No order in 90 days at all is a full drop; the floor keeps 0/0 silent.
    monthly = _where(_isnan(quarter), quarter, _clip(quarter, 1e-9, math.inf)) / 3.0
    drop = _clip(1.0 - _clip(recent, 0.0, math.inf) / monthly, 0.0, 1.0)
    drop = _where(_isnan(drop), 0.0, drop)
    z = CHURN_INTERCEPT + CHURN_PER_DAY * recency + CHURN_PER_DROP * drop
    return _out(_clip(_sigmoid(z), EPS, 1.0 - EPS))


def upsell_propensity(acceptance_rate_90d, discount_pct, impressions_90d=math.nan):
    """Acceptance probability in (0, 1) from the customer's past rate and the offer's discount.

    The rate is shrunk toward ``UPSELL_PRIOR_RATE`` by the number of impressions behind it
    (unknown impressions weigh as much as the prior; no rate means the prior alone). A missing
    discount counts as ``UPSELL_REFERENCE_DISCOUNT``; discounts are clipped to [0, 100].
    """
    rate, discount = _values(acceptance_rate_90d), _values(discount_pct)
    shown = _values(impressions_90d)
    k = UPSELL_PRIOR_IMPRESSIONS
    shown = _where(_isnan(shown), k, _clip(shown, 0.0, math.inf))
    shown = _where(_isnan(rate), 0.0, shown)
    rate = _where(_isnan(rate), UPSELL_PRIOR_RATE, _clip(rate, 0.0, 1.0))
    smoothed = (rate * shown + UPSELL_PRIOR_RATE * k) / (shown + k)
    discount = _where(_isnan(discount), UPSELL_REFERENCE_DISCOUNT, _clip(discount, 0.0, 100.0))
    z = _logit(smoothed) + UPSELL_PER_DISCOUNT_POINT * (discount - UPSELL_REFERENCE_DISCOUNT)
    return _out(_clip(_sigmoid(z), EPS, 1.0 - EPS))


def eta_sla_minutes(
    distance_km,
    zone,
    *,
    prep_minutes: float,
    speed_kmh: float,
    zone_speed_kmh: Mapping[str, float],
):
    """The deterministic SLA estimate in minutes: prep + distance / zone speed * 60.

    A zone without its own (positive) speed, or no zone, travels at ``speed_kmh``; a missing
    distance counts as ``ETA_DEFAULT_DISTANCE_KM`` and a negative one as 0.
    """
    if speed_kmh <= 0:
        raise InputError(f"speed_kmh must be positive, got {speed_kmh}", "fix MLOPS_ETA_SPEED_KMH")
    distance = _values(distance_km)
    distance = _where(_isnan(distance), ETA_DEFAULT_DISTANCE_KM, _clip(distance, 0.0, math.inf))
    if not isinstance(zone, (np.ndarray, list, tuple)) and not hasattr(zone, "to_numpy"):
        speed = _zone_speed(zone, speed_kmh, zone_speed_kmh)
    elif zone_speed_kmh:
        speed = np.fromiter(
            (_zone_speed(z, speed_kmh, zone_speed_kmh) for z in np.asarray(zone, dtype=object)),
            dtype=float,
            count=np.size(zone),
        )
    else:
        speed = speed_kmh
    return _out(prep_minutes + distance / speed * 60.0)


def _zone_speed(zone: Any, default: float, speeds: Mapping[str, float]) -> float:
    speed = speeds.get(zone) if isinstance(zone, str) else None
    return float(speed) if speed is not None and speed > 0 else default


def eta_constants(settings: Any) -> dict[str, Any]:
    """The keyword arguments of ``eta_sla_minutes`` taken from a ``Settings`` object."""
    return {
        "prep_minutes": settings.eta_prep_minutes,
        "speed_kmh": settings.eta_speed_kmh,
        "zone_speed_kmh": dict(settings.eta_zone_speed_kmh),
    }


# --- one row (serving): plain dict lookups, floats out ---------------------------------


def churn_risk_row(features: Mapping[str, Any]) -> float:
    """``churn_risk`` of one row's features (missing keys count as missing values)."""
    get = features.get
    return float(
        churn_risk(
            to_float(get("days_since_last_order")),
            to_float(get("orders_30d")),
            to_float(get("orders_90d")),
        )
    )


def upsell_propensity_row(features: Mapping[str, Any]) -> float:
    """``upsell_propensity`` of one row: customer features plus the offer's ``discount_pct``."""
    get = features.get
    return float(
        upsell_propensity(
            to_float(get("acceptance_rate_90d")),
            to_float(get("discount_pct")),
            to_float(get("impressions_90d")),
        )
    )


def eta_sla_minutes_row(
    features: Mapping[str, Any],
    *,
    prep_minutes: float,
    speed_kmh: float,
    zone_speed_kmh: Mapping[str, float],
) -> float:
    """``eta_sla_minutes`` of one request's ``distance_km`` and ``zone``."""
    return float(
        eta_sla_minutes(
            to_float(features.get("distance_km")),
            features.get("zone"),
            prep_minutes=prep_minutes,
            speed_kmh=speed_kmh,
            zone_speed_kmh=zone_speed_kmh,
        )
    )


# --- whole columns (evaluation) ----------------------------------------------------------


def _column(df: pd.DataFrame, name: str, *, optional: bool = False) -> np.ndarray:
    if name not in df.columns:
        if optional:
            return np.full(len(df), np.nan)
        raise InputError(
            f"the heuristic needs a column {name!r}", f"the frame has: {', '.join(df.columns)}"
        )
    return df[name].to_numpy(dtype=float, na_value=np.nan)


def churn_risk_frame(df: pd.DataFrame) -> np.ndarray:
    """``churn_risk`` of every row of a frame with the ``CHURN_INPUTS`` columns."""
    return churn_risk(*(_column(df, name) for name in CHURN_INPUTS))


def upsell_propensity_frame(df: pd.DataFrame) -> np.ndarray:
    """``upsell_propensity`` of every row (``impressions_90d`` may be absent)."""
    return upsell_propensity(
        _column(df, "acceptance_rate_90d"),
        _column(df, "discount_pct"),
        _column(df, "impressions_90d", optional=True),
    )


def eta_sla_minutes_frame(
    df: pd.DataFrame,
    *,
    prep_minutes: float,
    speed_kmh: float,
    zone_speed_kmh: Mapping[str, float],
) -> np.ndarray:
    """``eta_sla_minutes`` of every row (``zone`` may be absent: default speed)."""
    zone = df["zone"].to_numpy(dtype=object) if "zone" in df.columns else np.full(len(df), None)
    return np.asarray(
        eta_sla_minutes(
            _column(df, "distance_km"),
            zone,
            prep_minutes=prep_minutes,
            speed_kmh=speed_kmh,
            zone_speed_kmh=zone_speed_kmh,
        ),
        dtype=float,
    )


# --- by job name ----------------------------------------------------------------------------

JOB_INPUTS = {"churn": CHURN_INPUTS, "upsell": UPSELL_INPUTS, "eta": ETA_INPUTS}


def _eta_kwargs(job: str, eta: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if eta is None:
        raise InputError(
            f"the {job} heuristic needs the ETA constants", "pass eta=eta_constants(settings)"
        )
    return eta


def score_frame(job: str, df: pd.DataFrame, *, eta: Mapping[str, Any] | None = None) -> np.ndarray:
    """The job's heuristic for every row (churn risk, upsell propensity or SLA minutes);
    ``eta`` is ``eta_constants(settings)``, needed by the eta job only."""
    if job == "churn":
        return churn_risk_frame(df)
    if job == "upsell":
        return upsell_propensity_frame(df)
    if job == "eta":
        return eta_sla_minutes_frame(df, **_eta_kwargs(job, eta))
    raise InputError(f"no heuristic for job {job!r}", f"choose one of: {', '.join(JOB_INPUTS)}")


def score_row(
    job: str, features: Mapping[str, Any], *, eta: Mapping[str, Any] | None = None
) -> float:
    """The job's heuristic for one row's features (the serving fallback)."""
    if job == "churn":
        return churn_risk_row(features)
    if job == "upsell":
        return upsell_propensity_row(features)
    if job == "eta":
        return eta_sla_minutes_row(features, **_eta_kwargs(job, eta))
    raise InputError(f"no heuristic for job {job!r}", f"choose one of: {', '.join(JOB_INPUTS)}")
