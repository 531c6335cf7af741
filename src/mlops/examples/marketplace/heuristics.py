"""The marketplace's rule-based heuristics: the baseline each model must beat in training and
the fallback answer in serving. A job names its function and inputs in ``jobs/<job>.yaml``;
mlops calls it with one keyword argument per input (floats for one row, numpy arrays for a
column; categories as strings or object arrays) plus the job's ``heuristic.params``.

Each rule is one formula written with ``mlops.training.formulas``, which take floats or arrays
alike, so the baseline in training and the fallback in serving are the same numbers. A missing
input (NaN) never gives NaN or an exception: each rule says what it assumes instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlops.training.formulas import clip, isnan, logit, out, sigmoid, values, where

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


def churn_risk(days_since_last_order: Any, orders_30d: Any, orders_90d: Any) -> Any:
    """Churn probability in (0, 1) from recency and the drop in order frequency.

    Never ordered (recency NaN) counts as the longest recency, i.e. high risk; a missing
    order count leaves the frequency term out (no evidence of a drop).
    """
    days, recent, quarter = values(days_since_last_order), values(orders_30d), values(orders_90d)
    recency = where(isnan(days), CHURN_MAX_DAYS, clip(days, 0.0, CHURN_MAX_DAYS))
    # Orders in the last 30 days against the 90-day monthly average: 0 steady or rising, 1 when
    # they stopped. No order in 90 days at all is a full drop; the floor keeps 0/0 silent.
    monthly = where(isnan(quarter), quarter, clip(quarter, 1e-9, math.inf)) / 3.0
    drop = clip(1.0 - clip(recent, 0.0, math.inf) / monthly, 0.0, 1.0)
    drop = where(isnan(drop), 0.0, drop)
    z = CHURN_INTERCEPT + CHURN_PER_DAY * recency + CHURN_PER_DROP * drop
    return out(clip(sigmoid(z), EPS, 1.0 - EPS))


def upsell_propensity(
    acceptance_rate_90d: Any, discount_pct: Any, impressions_90d: Any = math.nan
) -> Any:
    """Acceptance probability in (0, 1) from the customer's past rate and the offer's discount.

    The rate is shrunk toward ``UPSELL_PRIOR_RATE`` by the number of impressions behind it
    (unknown impressions weigh as much as the prior; no rate means the prior alone). A missing
    discount counts as ``UPSELL_REFERENCE_DISCOUNT``; discounts are clipped to [0, 100].
    """
    rate, discount = values(acceptance_rate_90d), values(discount_pct)
    shown = values(impressions_90d)
    k = UPSELL_PRIOR_IMPRESSIONS
    shown = where(isnan(shown), k, clip(shown, 0.0, math.inf))
    shown = where(isnan(rate), 0.0, shown)
    rate = where(isnan(rate), UPSELL_PRIOR_RATE, clip(rate, 0.0, 1.0))
    smoothed = (rate * shown + UPSELL_PRIOR_RATE * k) / (shown + k)
    discount = where(isnan(discount), UPSELL_REFERENCE_DISCOUNT, clip(discount, 0.0, 100.0))
    z = logit(smoothed) + UPSELL_PER_DISCOUNT_POINT * (discount - UPSELL_REFERENCE_DISCOUNT)
    return out(clip(sigmoid(z), EPS, 1.0 - EPS))


def eta_sla_minutes(
    distance_km: Any,
    zone: Any,
    *,
    prep_minutes: float,
    speed_kmh: float,
    zone_speed_kmh: Mapping[str, float],
) -> Any:
    """The deterministic SLA estimate in minutes: prep + distance / zone speed * 60.

    A zone without its own (positive) speed, or no zone, travels at ``speed_kmh``; a missing
    distance counts as ``ETA_DEFAULT_DISTANCE_KM`` and a negative one as 0.
    """
    if speed_kmh <= 0:
        raise ValueError(f"speed_kmh must be positive, got {speed_kmh}")
    distance = values(distance_km)
    distance = where(isnan(distance), ETA_DEFAULT_DISTANCE_KM, clip(distance, 0.0, math.inf))
    if not isinstance(zone, (np.ndarray, list, tuple)) and not hasattr(zone, "to_numpy"):
        speed: Any = _zone_speed(zone, speed_kmh, zone_speed_kmh)
    elif zone_speed_kmh:
        speed = np.fromiter(
            (_zone_speed(z, speed_kmh, zone_speed_kmh) for z in np.asarray(zone, dtype=object)),
            dtype=float,
            count=np.size(zone),
        )
    else:
        speed = speed_kmh
    return out(prep_minutes + distance / speed * 60.0)


def _zone_speed(zone: Any, default: float, speeds: Mapping[str, float]) -> float:
    speed = speeds.get(zone) if isinstance(zone, str) else None
    return float(speed) if speed is not None and speed > 0 else default


def ticket_risk(
    orders_30d: Any,
    late_30d: Any,
    cancelled_30d: Any,
    tickets_90d: Any,
    *,
    base: float,
    per_order: float,
    per_late: float,
    per_cancel: float,
    per_ticket: float,
) -> Any:
    """Probability of a support ticket in the next 14 days: log-odds ``base`` plus a weight
    per order, late delivery and cancellation of the last 30 days (each order is a chance to
    be let down) and per ticket of the last 90 (who complained complains again). A missing
    count counts as none."""
    orders, late, cancelled, tickets = (
        where(isnan(v), 0.0, clip(v, 0.0, 100.0))
        for v in (values(orders_30d), values(late_30d), values(cancelled_30d), values(tickets_90d))
    )
    z = base + per_order * orders + per_late * late + per_cancel * cancelled
    return out(clip(sigmoid(z + per_ticket * tickets), EPS, 1.0 - EPS))
