"""What the marketplace's endpoints compute: the dossier, the order composition and the ETA.
Each ML-backed value comes from the engine's model path (``predict.model_path``, run by
``Service.run_models`` under the fallback policy) when it is allowed, else from the job's
heuristic, with its provenance and the prediction log rows to write."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.clock import to_utc_naive
from mlops.serving.endpoints import Computed, NotFound, Outcome, Unavailable, record
from mlops.serving.memo import NotInMemory
from mlops.serving.policy import Reason
from mlops.serving.predict import model_path
from mlops.store.online import EntityFeatures
from mlops.training import heuristics, models
from mlops.training.values import to_float

from .profiles import Offer
from .schemas import (
    ChurnRisk,
    Composition,
    CustomerProfile,
    Dossier,
    Eta,
    RankedOffer,
    UpsellPropensity,
)

if TYPE_CHECKING:
    from mlops.serving.champions import Champion

    from .serving import Marketplace

log = logging.getLogger("mlops.serving")

CHURN_BANDS = ((0.3, "low"), (0.6, "medium"), (1.01, "high"))
OFFER_COLUMNS = ("offer_category", "discount_pct", "offer_price")
ETA_RULE = "min(SLA, max(model, model p90)); the SLA when the heuristic answers"


class CustomerNotFound(NotFound):
    """The warehouse has no such customer."""


class OfferNotFound(NotFound):
    """The warehouse's offers table has no such offer (a 404, like an unknown customer: the
    request is well formed, what it names does not exist)."""


def dossier(
    m: Marketplace, customer_id: str, cut: Reason | None = None, memory_only: bool = False
) -> Computed:
    """The customer's warehouse profile with churn risk and the best offer's propensity."""
    svc = m.svc
    now = svc.clock.now()
    try:
        profile = m.warehouse.profile(customer_id, now, memory_only=memory_only)
    except NotInMemory:
        raise
    except Exception as exc:
        raise Unavailable(
            f"the warehouse cannot be read: {exc.__class__.__name__}",
            "check MLOPS_WAREHOUSE_URL and the warehouse server",
        ) from exc
    if profile is None:
        raise CustomerNotFound(
            f"no customer {customer_id!r} in the warehouse", "check the customer id"
        )
    offers, offers_key = m.offers, (m.offers_version, None)
    outcomes = svc.run_models(
        {
            "churn": lambda ch: model_path(svc, ch, "churn", customer_id, {}, memory_only),
            "upsell": lambda ch: upsell_path(m, ch, customer_id, offers, offers_key, memory_only),
        },
        cut,
        customer_id,
    )
    inputs = profile.heuristic_inputs()
    churn, upsell = outcomes["churn"], outcomes["upsell"]
    if churn.reason:
        churn.value = heuristics.of(svc.jobs["churn"]).row(inputs)
    if upsell.reason:
        upsell.value = heuristic_offers(m, inputs, offers)
    probability = float(churn.value)
    best_id, best = _best(offers, upsell.value)
    answer = Dossier(
        customer_id=customer_id,
        as_of=now,
        profile=CustomerProfile.model_validate(profile, from_attributes=True),
        churn=ChurnRisk(probability=probability, band=_band(probability), **churn.provenance()),
        upsell=UpsellPropensity(propensity=best, offer_id=best_id, **upsell.provenance()),
    )
    records = [
        record("dossier", "churn", customer_id, None, probability, churn),
        record("dossier", "upsell", customer_id, best_id, best, upsell),
    ]
    return Computed(answer, outcomes, records)


def compose(
    m: Marketplace,
    customer_id: str,
    cart: list[dict[str, Any]] | None,
    offer_ids: list[str] | None,
    limit: int,
    cut: Reason | None = None,
    memory_only: bool = False,
) -> Computed:
    """Candidate offers ranked by upsell propensity (the model's, else the rule's)."""
    offers = candidates(m, offer_ids)
    key = (m.offers_version, None if offer_ids is None else tuple(offer_ids))
    outcomes = m.svc.run_models(
        {"upsell": lambda ch: upsell_path(m, ch, customer_id, offers, key, memory_only)},
        cut,
        customer_id,
    )
    outcome = outcomes["upsell"]
    if outcome.reason:
        inputs = customer_inputs(m, customer_id, outcome, memory_only)
        outcome.value = heuristic_offers(m, inputs, offers)
    order = np.argsort(-np.asarray(outcome.value), kind="stable")[:limit]
    ranked = [
        RankedOffer(
            rank=rank + 1,
            offer_id=offers[i].offer_id,
            category=offers[i].category,
            discount_pct=offers[i].discount_pct,
            price=offers[i].price,
            propensity=float(outcome.value[i]),
        )
        for rank, i in enumerate(order)
    ]
    items = cart or []
    answer = Composition(
        customer_id=customer_id,
        cart_items=sum(int(i.get("quantity", 1)) for i in items),
        cart_value=round(
            sum(float(i.get("unit_price", 0)) * int(i.get("quantity", 1)) for i in items), 2
        ),
        offers=ranked,
        **outcome.provenance(),
    )
    records = [
        record("compose", "upsell", customer_id, o.offer_id, o.propensity, outcome) for o in ranked
    ]
    return Computed(answer, outcomes, records)


def candidates(m: Marketplace, offer_ids: list[str] | None) -> list[Offer]:
    """The named offers (every known one when None), or an error naming the unknown ones."""
    known = m.offers
    if offer_ids is None:
        offers = known
    else:
        by_id = {o.offer_id: o for o in known}
        unknown = [o for o in offer_ids if o not in by_id]
        if unknown:
            raise OfferNotFound(
                f"unknown offer ids: {', '.join(unknown[:10])}",
                "pass ids from the warehouse's offers table, or omit offer_ids",
            )
        offers = [by_id[o] for o in dict.fromkeys(offer_ids)]
    if not offers:
        raise Unavailable(
            "no offers to rank: the warehouse's offers table is empty or unreadable",
            "load offers into the warehouse, or check MLOPS_WAREHOUSE_URL",
        )
    return offers


def eta_unit(zone: str, delivery_id: str | None) -> str:
    """The id an ETA answer's A/B arm is drawn from: the delivery when known, else the zone
    (so requests without a delivery id split by zone)."""
    return delivery_id or zone


def eta(
    m: Marketplace,
    zone: str,
    distance_km: float,
    item_count: int,
    dispatched_at: datetime | None,
    delivery_id: str | None,
    cut: Reason | None = None,
    memory_only: bool = False,
) -> Computed:
    """SLA minutes, the model's minutes and the promise: min(SLA, max(model, model p90))."""
    svc = m.svc
    at = to_utc_naive(dispatched_at) if dispatched_at else svc.clock.now()
    request = {
        "zone": zone,
        "distance_km": distance_km,
        "item_count": item_count,
        "hour": at.hour,
        "weekday": at.weekday(),
    }
    sla = heuristics.of(svc.jobs["eta"]).row(request)
    outcomes = svc.run_models(
        {
            "eta": lambda ch: model_path(
                svc, ch, "eta", zone, request, memory_only, score=minutes, by_splits=True
            )
        },
        cut,
        eta_unit(zone, delivery_id),
    )
    outcome = outcomes["eta"]
    mean = p90 = None
    if outcome.reason:
        recommended = sla
    else:
        mean, p90 = outcome.value
        recommended = min(sla, max(mean, p90 if p90 is not None else mean))
    answer = Eta(
        zone=zone,
        dispatched_at=at,
        sla_minutes=round(sla, 2),
        model_minutes=None if mean is None else round(mean, 2),
        model_p90_minutes=None if p90 is None else round(p90, 2),
        recommended_minutes=round(recommended, 2),
        promise_at=to_utc_naive(at + timedelta(minutes=recommended)),
        at_risk=mean is not None and mean > sla,
        rule=ETA_RULE,
        **outcome.provenance(),
    )
    served = sla if outcome.reason or mean is None else mean
    return Computed(answer, outcomes, [record("eta", "eta", zone, delivery_id, served, outcome)])


def minutes(model: models.Model, x: np.ndarray) -> tuple[float, float | None]:
    """The ETA model's minutes and, when it has the booster, their 90th percentile."""
    p90 = models.predict_p90_one(model, x) if model.booster_p90 is not None else None
    return models.predict_one(model, x), p90


# A path with ``memory_only`` answers from what the process holds (cached features, memoised
# scores) or raises ``NotInMemory``: it never reads a database or calls a model.


def upsell_path(
    m: Marketplace,
    champion: Champion,
    customer_id: str,
    offers: list[Offer],
    offers_key: Any,
    memory_only: bool = False,
) -> tuple[np.ndarray, EntityFeatures]:
    """The upsell model's propensity for each offer, the customer's features shared: the
    engine's model path over many rows at once."""
    svc = m.svc
    features = svc.fresh_features("upsell", customer_id, memory_only)
    values = features.values()
    model = champion.model

    def predict() -> np.ndarray:
        X = np.repeat(models.encode_row(model, values), len(offers), axis=0)
        columns = [model.feature_columns.index(c) for c in OFFER_COLUMNS]
        X[:, columns] = m.offer_rows.get(
            (champion.version, offers_key),
            lambda: np.vstack([models.encode_row(model, o.model_inputs()) for o in offers])[
                :, columns
            ],
        )
        # One thread: a few dozen rows are done before OpenMP's team would start, and a
        # server's parallelism is its requests (the default team cost 3-13 ms a call here
        # under load, one thread 0.4 ms).
        return models.predict(model, X, num_threads=1)

    key = ("upsell", champion.version, customer_id, tuple(values.values()), offers_key)
    return svc.scores.get(key, None if memory_only else predict), features


# --- heuristics ------------------------------------------------------------------------


def heuristic_offers(m: Marketplace, inputs: dict[str, Any], offers: list[Offer]) -> np.ndarray:
    """The upsell rule's propensity for each offer."""
    if not offers:
        return np.empty(0)
    heuristic = heuristics.of(m.svc.jobs["upsell"])
    rows = [{**inputs, **o.model_inputs()} for o in offers]
    columns = {
        n: np.array([r.get(n) for r in rows], dtype=object)
        if n in heuristic.categorical
        else np.array([to_float(r.get(n)) for r in rows])
        for n in heuristic.inputs
    }
    return heuristic.columns(**columns)


def customer_inputs(
    m: Marketplace, customer_id: str, outcome: Outcome, memory_only: bool = False
) -> dict[str, Any]:
    """The upsell heuristic's inputs: live from the warehouse, else the stored features
    whatever their age, else none (the heuristic's prior)."""
    try:
        profile = m.warehouse.profile(customer_id, m.svc.clock.now(), memory_only=memory_only)
        if profile is not None:
            return profile.heuristic_inputs()
    except NotInMemory:
        raise
    except Exception as exc:
        log.warning("warehouse unreadable for the heuristic", extra={"error": str(exc)})
    return outcome.features.values() if outcome.features else {}


def _band(probability: float) -> str:
    for upper, band in CHURN_BANDS:
        if probability < upper:
            return band
    return "high"


def _best(offers: list[Offer], scores: Any) -> tuple[str | None, float]:
    if not offers:
        return None, 0.0
    i = int(np.argmax(scores))
    return offers[i].offer_id, float(scores[i])
