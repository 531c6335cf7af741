"""Every production ML feature, grouped per job. This module is the source of truth;
``mlops specs sync`` copies it into ``ml_feature_specs``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Literal

from mlops.errors import InputError

DType = Literal["float", "int", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: DType
    description: str
    owner: str
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed_values: tuple[str, ...] | None = None
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_pvalue: float = 0.01
    # Filled from the job when the spec is placed in JOBS.
    job: str = ""
    entity: str = ""
    source_view: str = ""
    ttl: timedelta = timedelta(0)

    def fingerprint(self) -> str:
        """A stable hash of everything that defines the feature."""
        data = asdict(self)
        data["ttl"] = self.ttl.total_seconds()
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class JobSpec:
    name: str
    view: str
    entity: str
    entity_key: str
    refresh_cron: str
    ttl: timedelta
    retrain_cron: str
    # How far apart backfill snapshots are by default.
    default_every: timedelta
    features: tuple[FeatureSpec, ...] = field(default_factory=tuple)
    # What the drift monitor compares by default: the online values (None), or every snapshot
    # of this last period, for jobs with too few entities to test (20 zones). A whole day, as
    # the values follow the hour of the day: two hours of night are not a day's reference.
    drift_window: timedelta | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise InputError(
            f"job {self.name!r} has no feature {name!r}",
            f"known features: {', '.join(self.feature_names)}",
        )


def _job(
    name, view, entity, key, refresh, ttl, retrain, every, features, drift_window=None
) -> JobSpec:
    placed = tuple(
        replace(f, job=name, entity=entity, source_view=view, ttl=f.ttl or ttl) for f in features
    )
    return JobSpec(name, view, entity, key, refresh, ttl, retrain, every, placed, drift_window)


CHURN_OWNER = "retention-ml"
UPSELL_OWNER = "growth-ml"
ETA_OWNER = "logistics-ml"
DAYS = 3650.0

CHURN = _job(
    "churn",
    "ml_churn_features",
    "customer",
    "customer_id",
    refresh="0 2 * * *",
    ttl=timedelta(hours=36),
    retrain="0 3 1 * *",
    every=timedelta(days=1),
    features=[
        FeatureSpec(
            "days_since_last_order",
            "float",
            "Days since the last completed order; null if none.",
            CHURN_OWNER,
            nullable=True,
            min_value=0,
            max_value=DAYS,
        ),
        FeatureSpec(
            "orders_30d",
            "int",
            "Completed orders in the 30 days before as_of.",
            CHURN_OWNER,
            min_value=0,
            max_value=10_000,
        ),
        FeatureSpec(
            "orders_90d",
            "int",
            "Completed orders in the 90 days before as_of.",
            CHURN_OWNER,
            min_value=0,
            max_value=30_000,
        ),
        FeatureSpec(
            "order_trend",
            "float",
            "Orders in 30 days over the 90-day monthly average; null if no orders in 90 days.",
            CHURN_OWNER,
            nullable=True,
            min_value=0,
            max_value=3,
        ),
        FeatureSpec(
            "spend_90d",
            "float",
            "Total amount of completed orders in 90 days.",
            CHURN_OWNER,
            min_value=0,
            max_value=1e7,
        ),
        FeatureSpec(
            "avg_order_value_90d",
            "float",
            "Mean amount of completed orders in 90 days; null if none.",
            CHURN_OWNER,
            nullable=True,
            min_value=0,
            max_value=1e6,
        ),
        FeatureSpec(
            "cancel_rate_90d",
            "float",
            "Share of orders cancelled in 90 days; null if no orders.",
            CHURN_OWNER,
            nullable=True,
            min_value=0,
            max_value=1,
        ),
        FeatureSpec(
            "late_delivery_rate_90d",
            "float",
            "Share of delivered orders in 90 days that arrived after the promise; null if none.",
            CHURN_OWNER,
            nullable=True,
            min_value=0,
            max_value=1,
        ),
        FeatureSpec(
            "support_tickets_90d",
            "int",
            "Support tickets opened in 90 days.",
            CHURN_OWNER,
            min_value=0,
            max_value=10_000,
        ),
        FeatureSpec(
            "tenure_days",
            "float",
            "Days since signup.",
            CHURN_OWNER,
            min_value=0,
            max_value=DAYS * 3,
        ),
        FeatureSpec(
            "plan",
            "category",
            "Subscription plan.",
            CHURN_OWNER,
            allowed_values=("basic", "plus", "premium"),
        ),
    ],
)

UPSELL = _job(
    "upsell",
    "ml_upsell_features",
    "customer",
    "customer_id",
    refresh="0 */6 * * *",
    ttl=timedelta(hours=12),
    retrain="0 4 1 * *",
    every=timedelta(hours=12),
    features=[
        FeatureSpec(
            "impressions_90d",
            "int",
            "Offers shown in 90 days.",
            UPSELL_OWNER,
            min_value=0,
            max_value=100_000,
        ),
        FeatureSpec(
            "acceptance_rate_90d",
            "float",
            "Share of offers accepted in 90 days; null if none shown.",
            UPSELL_OWNER,
            nullable=True,
            min_value=0,
            max_value=1,
        ),
        FeatureSpec(
            "accepted_90d",
            "int",
            "Offers accepted in 90 days.",
            UPSELL_OWNER,
            min_value=0,
            max_value=100_000,
        ),
        FeatureSpec(
            "avg_basket_items_90d",
            "float",
            "Mean item count of completed orders in 90 days; null if none.",
            UPSELL_OWNER,
            nullable=True,
            min_value=0,
            max_value=1_000,
        ),
        FeatureSpec(
            "category_breadth_90d",
            "int",
            "Distinct offer categories accepted in 90 days.",
            UPSELL_OWNER,
            min_value=0,
            max_value=1_000,
        ),
        FeatureSpec(
            "avg_accepted_discount_90d",
            "float",
            "Mean discount percent of accepted offers in 90 days; null if none.",
            UPSELL_OWNER,
            nullable=True,
            min_value=0,
            max_value=100,
        ),
        FeatureSpec(
            "discount_sensitivity_90d",
            "float",
            "Acceptance rate at >= 20% off minus the rate below 20%; null unless both were shown.",
            UPSELL_OWNER,
            nullable=True,
            min_value=-1,
            max_value=1,
        ),
        FeatureSpec(
            "top_category_90d",
            "category",
            "Category accepted most in 90 days; null if none.",
            UPSELL_OWNER,
            nullable=True,
        ),
        FeatureSpec(
            "plan",
            "category",
            "Subscription plan.",
            UPSELL_OWNER,
            allowed_values=("basic", "plus", "premium"),
        ),
    ],
)

ETA = _job(
    "eta",
    "ml_eta_features",
    "zone",
    "zone",
    refresh="*/5 * * * *",
    ttl=timedelta(minutes=15),
    retrain="0 5 * * 1",
    every=timedelta(minutes=5),
    drift_window=timedelta(days=1),
    features=[
        FeatureSpec(
            "deliveries_1h",
            "int",
            "Deliveries dispatched in the zone in the last hour.",
            ETA_OWNER,
            min_value=0,
            max_value=100_000,
        ),
        FeatureSpec(
            "avg_delivery_minutes_2h",
            "float",
            "Mean minutes from dispatch to delivery, completed in the last 2 h; null if none.",
            ETA_OWNER,
            nullable=True,
            min_value=0,
            max_value=600,
        ),
        FeatureSpec(
            "avg_minutes_per_km_2h",
            "float",
            "Mean delivery minutes per km over the last 2 hours; null if none.",
            ETA_OWNER,
            nullable=True,
            min_value=0,
            max_value=600,
        ),
        FeatureSpec(
            "late_share_2h",
            "float",
            "Share of deliveries completed in the last 2 hours after their promise; null if none.",
            ETA_OWNER,
            nullable=True,
            min_value=0,
            max_value=1,
        ),
        FeatureSpec(
            "open_deliveries",
            "int",
            "Deliveries dispatched in the last 3 hours and not yet delivered at as_of.",
            ETA_OWNER,
            min_value=0,
            max_value=100_000,
        ),
        FeatureSpec(
            "active_couriers_1h",
            "int",
            "Distinct couriers dispatched in the zone in the last hour.",
            ETA_OWNER,
            min_value=0,
            max_value=100_000,
        ),
        FeatureSpec(
            "courier_load",
            "float",
            "Open deliveries per active courier (open deliveries when no courier is active).",
            ETA_OWNER,
            min_value=0,
            max_value=100_000,
        ),
        FeatureSpec(
            "avg_distance_km_1h",
            "float",
            "Mean distance of deliveries dispatched in the last hour; null if none.",
            ETA_OWNER,
            nullable=True,
            min_value=0,
            max_value=500,
        ),
    ],
)

JOBS: dict[str, JobSpec] = {job.name: job for job in (CHURN, UPSELL, ETA)}
ALL = "all"


def get_job(name: str) -> JobSpec:
    """The job of that name, or an InputError listing the known ones."""
    try:
        return JOBS[name]
    except KeyError:
        raise InputError(
            f"unknown job {name!r}", f"choose one of: {', '.join(JOBS)}, {ALL}"
        ) from None


def resolve_jobs(name: str) -> list[JobSpec]:
    """``all`` expands to every job; any other name to that one job."""
    return list(JOBS.values()) if name == ALL else [get_job(name)]
