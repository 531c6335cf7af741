"""Request and response models of the marketplace's endpoints (dossier, order composer, ETA),
built on the engine's provenance fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops.serving.schemas import (
    Id,
    Integer,
    Number,
    Provenance,
    RequestTime,
    ShortId,
    UtcTime,
)


class ChurnRisk(Provenance):
    probability: float = Field(ge=0, le=1)
    band: Literal["low", "medium", "high"]


class UpsellPropensity(Provenance):
    propensity: float = Field(ge=0, le=1, description="For the best of the active offers.")
    offer_id: str | None = Field(None, description="That offer (null when none is active).")


class CustomerProfile(BaseModel):
    plan: str
    region: str
    signup_at: UtcTime
    tenure_days: float
    orders_30d: int
    orders_90d: int
    spend_90d: float
    last_order_at: UtcTime | None
    days_since_last_order: float | None


class Dossier(BaseModel):
    customer_id: str
    as_of: UtcTime
    profile: CustomerProfile
    churn: ChurnRisk
    upsell: UpsellPropensity

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C000042",
                    "as_of": "2026-06-01T12:00:00Z",
                    "profile": {
                        "plan": "plus",
                        "region": "north",
                        "signup_at": "2025-11-02T09:14:00Z",
                        "tenure_days": 211.1,
                        "orders_30d": 2,
                        "orders_90d": 7,
                        "spend_90d": 164.5,
                        "last_order_at": "2026-05-28T19:02:00Z",
                        "days_since_last_order": 3.7,
                    },
                    "churn": {
                        "probability": 0.08,
                        "band": "low",
                        "source": "model",
                        "reason": None,
                        "model_version": 3,
                        "computed_at": "2026-06-01T02:00:00Z",
                        "staleness_seconds": 36000,
                    },
                    "upsell": {
                        "propensity": 0.31,
                        "offer_id": "OF007",
                        "source": "heuristic",
                        "reason": "features_stale",
                        "model_version": None,
                        "computed_at": "2026-05-31T06:00:00Z",
                        "staleness_seconds": 108000,
                    },
                }
            ]
        }
    )


class CartItem(BaseModel):
    category: str = Field(min_length=1, max_length=64)
    quantity: Integer = Field(1, ge=1, le=1000)
    # Bounded so the cart's value (200 items x 1000 x price) stays a finite number.
    unit_price: Number = Field(0.0, ge=0, le=1_000_000)

    model_config = ConfigDict(extra="forbid")


class ComposeRequest(BaseModel):
    customer_id: Id
    cart: list[CartItem] = Field(default_factory=list, max_length=200)
    offer_ids: list[ShortId] | None = Field(
        None,
        min_length=1,  # an empty list has nothing to rank: a client error, not a 503
        max_length=500,
        description="Candidate offers; omitted: every offer of the warehouse's offers table. "
        "An id the table does not have is answered 404 (it names the unknown ones).",
    )
    limit: Integer = Field(3, ge=1, le=100, description="How many ranked offers to return.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "C000042",
                    "cart": [{"category": "snacks", "quantity": 2, "unit_price": 3.5}],
                    "offer_ids": ["OF001", "OF007", "OF012"],
                    "limit": 2,
                }
            ]
        },
    )


class RankedOffer(BaseModel):
    rank: int
    offer_id: str
    category: str
    discount_pct: float
    price: float
    propensity: float = Field(ge=0, le=1)


class Composition(Provenance):
    customer_id: str
    cart_items: int
    cart_value: float
    offers: list[RankedOffer]


class EtaRequest(BaseModel):
    zone: ShortId
    distance_km: Number = Field(ge=0, le=500)
    item_count: Integer = Field(1, ge=1, le=1000)
    dispatched_at: RequestTime | None = Field(
        None, description="Dispatch time (RFC 3339 with offset, 1970 to 9998); default now."
    )
    delivery_id: Id | None = Field(
        None, description="Logged with the prediction for accuracy monitoring."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"zone": "Z03", "distance_km": 4.2, "item_count": 3, "delivery_id": "D123"}
            ]
        },
    )


class Eta(Provenance):
    zone: str
    dispatched_at: UtcTime
    sla_minutes: float = Field(description="Deterministic estimate: prep + distance / speed.")
    model_minutes: float | None = Field(None, description="The model's expected minutes.")
    model_p90_minutes: float | None = Field(None, description="The model's 90th percentile.")
    recommended_minutes: float = Field(description="What to promise; see 'rule'.")
    promise_at: UtcTime
    at_risk: bool = Field(description="The model expects a delivery later than the SLA.")
    rule: str
