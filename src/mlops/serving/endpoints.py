"""What each endpoint computes: the dossier, the order composition and the ETA, every
ML-backed value from the champion when ``Service.run_models`` allows it, else from the
heuristic, with its provenance and the prediction log rows to write."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.clock import to_utc_naive
from mlops.errors import InputError, MlopsError
from mlops.serving.arms import eta_unit
from mlops.serving.memo import NotInMemory
from mlops.serving.policy import Reason
from mlops.serving.profiles import Offer
from mlops.serving.schemas import (
    ChurnRisk,
    Composition,
    CustomerProfile,
    Dossier,
    Eta,
    RankedOffer,
    UpsellPropensity,
)
from mlops.store.online import EntityFeatures
from mlops.training import heuristics, models, split_keys
from mlops.training.values import to_float

if TYPE_CHECKING:
    from mlops.serving.champions import Champion
    from mlops.serving.service import Service

log = logging.getLogger("mlops.serving")

CHURN_BANDS = ((0.3, "low"), (0.6, "medium"), (1.01, "high"))
OFFER_COLUMNS = ("offer_category", "discount_pct", "offer_price")
ETA_RULE = "min(SLA, max(model, model p90)); the SLA when the heuristic answers"


class CustomerNotFound(MlopsError):
    """The warehouse has no such customer."""


class Unavailable(MlopsError):
    """A dependency the answer cannot do without is unreachable."""


@dataclass
class Computed:
    """An endpoint's answer, its jobs' outcomes and the prediction log rows to write."""

    answer: Any
    outcomes: dict[str, Outcome]
    records: list[dict[str, Any]]


@dataclass
class Outcome:
    """One job's model path: a value, or the reason the heuristic answers instead."""

    value: Any = None
    reason: Reason | None = None
    version: int | None = None
    features: EntityFeatures | None = None
    arm: str | None = None  # the A/B arm (see ``arms``)

    @property
    def source(self) -> str:
        return "heuristic" if self.reason else "model"

    @property
    def reason_name(self) -> str | None:
        return self.reason.value if self.reason else None

    @property
    def model_version(self) -> int | None:
        """The version that answered (None when the heuristic did)."""
        return None if self.reason else self.version

    @property
    def computed_at(self) -> datetime | None:
        return self.features.computed_at if self.features else None

    def provenance(self) -> dict[str, Any]:
        """The API's provenance fields of this answer."""
        return {
            "source": self.source,
            "reason": self.reason_name,
            "model_version": self.model_version,
            "computed_at": self.computed_at,
            "staleness_seconds": self.features.age_seconds if self.features else None,
        }


def dossier(
    svc: Service, customer_id: str, cut: Reason | None = None, memory_only: bool = False
) -> Computed:
    """The customer's warehouse profile with churn risk and the best offer's propensity."""
    now = svc.clock.now()
    try:
        profile = svc.warehouse.profile(customer_id, now, memory_only=memory_only)
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
    offers, offers_key = svc.controls.offers, (svc.controls.offers_version, None)
    outcomes = svc.run_models(
        {
            "churn": lambda ch: churn_path(svc, ch, customer_id, memory_only),
            "upsell": lambda ch: upsell_path(svc, ch, customer_id, offers, offers_key, memory_only),
        },
        cut,
        customer_id,
    )
    inputs = profile.heuristic_inputs()
    churn, upsell = outcomes["churn"], outcomes["upsell"]
    if churn.reason:
        churn.value = heuristics.of(svc.jobs["churn"]).row(inputs)
    if upsell.reason:
        upsell.value = heuristic_offers(svc, inputs, offers)
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
        _row("dossier", "churn", customer_id, None, probability, churn),
        _row("dossier", "upsell", customer_id, best_id, best, upsell),
    ]
    return Computed(answer, outcomes, records)


def compose(
    svc: Service,
    customer_id: str,
    cart: list[dict[str, Any]] | None,
    offer_ids: list[str] | None,
    limit: int,
    cut: Reason | None = None,
    memory_only: bool = False,
) -> Computed:
    """Candidate offers ranked by upsell propensity (the model's, else the rule's)."""
    offers = candidates(svc, offer_ids)
    key = (svc.controls.offers_version, None if offer_ids is None else tuple(offer_ids))
    outcomes = svc.run_models(
        {"upsell": lambda ch: upsell_path(svc, ch, customer_id, offers, key, memory_only)},
        cut,
        customer_id,
    )
    outcome = outcomes["upsell"]
    if outcome.reason:
        inputs = customer_inputs(svc, customer_id, outcome, memory_only)
        outcome.value = heuristic_offers(svc, inputs, offers)
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
        _row("compose", "upsell", customer_id, o.offer_id, o.propensity, outcome) for o in ranked
    ]
    return Computed(answer, outcomes, records)


def candidates(svc: Service, offer_ids: list[str] | None) -> list[Offer]:
    """The named offers (every known one when None), or an error naming the unknown ones."""
    known = svc.controls.offers
    if offer_ids is None:
        offers = known
    else:
        by_id = {o.offer_id: o for o in known}
        unknown = [o for o in offer_ids if o not in by_id]
        if unknown:
            raise InputError(
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


def eta(
    svc: Service,
    zone: str,
    distance_km: float,
    item_count: int,
    dispatched_at: datetime | None,
    delivery_id: str | None,
    cut: Reason | None = None,
    memory_only: bool = False,
) -> Computed:
    """SLA minutes, the model's minutes and the promise: min(SLA, max(model, model p90))."""
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
        {"eta": lambda ch: eta_path(svc, ch, zone, request, memory_only)},
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
    served = sla if outcome.reason else mean
    return Computed(answer, outcomes, [_row("eta", "eta", zone, delivery_id, served, outcome)])


# A path with ``memory_only`` answers from what the process holds (cached features, memoised
# scores) or raises ``NotInMemory``: it never reads a database or calls a model.


def churn_path(svc: Service, champion: Champion, customer_id: str, memory_only: bool = False):
    """The churn model's probability on the customer's fresh features."""
    features = svc.fresh_features("churn", customer_id, memory_only)
    values = features.values()
    key = ("churn", champion.version, customer_id, tuple(values.values()))
    predict = None if memory_only else lambda: models.predict_row(champion.model, values)
    return svc.scores.get(key, predict), features


def upsell_path(
    svc: Service,
    champion: Champion,
    customer_id: str,
    offers: list[Offer],
    offers_key,
    memory_only: bool = False,
):
    """The upsell model's propensity for each offer, the customer's features shared."""
    features = svc.fresh_features("upsell", customer_id, memory_only)
    values = features.values()
    model = champion.model

    def predict():
        X = np.repeat(models.encode_row(model, values), len(offers), axis=0)
        columns = [model.feature_columns.index(c) for c in OFFER_COLUMNS]
        X[:, columns] = svc.offer_rows.get(
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


def eta_path(
    svc: Service, champion: Champion, zone: str, request: dict[str, Any], memory_only=False
):
    """The ETA model's minutes (and p90) on the zone's fresh features and the request."""
    features = svc.fresh_features("eta", zone, memory_only)
    model = champion.model
    x = models.encode_row(model, {**features.values(), **request})[0]

    def predict():
        mean = models.predict_one(model, x)
        p90 = models.predict_p90_one(model, x) if model.booster_p90 is not None else None
        return mean, p90

    # Distances are continuous, but the trees only ask on which side of each threshold they
    # are: requests between the same thresholds share their minutes exactly.
    split = split_keys.split_key(model, x)
    if split is None:
        if memory_only:
            raise NotInMemory
        return predict(), features
    key = ("eta", champion.version, split)
    return svc.scores.get(key, None if memory_only else predict), features


# --- heuristics ------------------------------------------------------------------------


def heuristic_offers(svc: Service, inputs: dict[str, Any], offers: list[Offer]) -> np.ndarray:
    """The upsell rule's propensity for each offer."""
    if not offers:
        return np.empty(0)
    heuristic = heuristics.of(svc.jobs["upsell"])
    rows = [{**inputs, **o.model_inputs()} for o in offers]
    columns = {
        n: np.array([r.get(n) for r in rows], dtype=object)
        if n in heuristic.categorical
        else np.array([to_float(r.get(n)) for r in rows])
        for n in heuristic.inputs
    }
    return heuristic.columns(**columns)


def customer_inputs(
    svc: Service, customer_id: str, outcome: Outcome, memory_only: bool = False
) -> dict[str, Any]:
    """The upsell heuristic's inputs: live from the warehouse, else the stored features
    whatever their age, else none (the heuristic's prior)."""
    try:
        profile = svc.warehouse.profile(customer_id, svc.clock.now(), memory_only=memory_only)
        if profile is not None:
            return profile.heuristic_inputs()
    except NotInMemory:
        raise
    except Exception as exc:
        log.warning("warehouse unreadable for the heuristic", extra={"error": str(exc)})
    return outcome.features.values() if outcome.features else {}


def _row(
    endpoint: str,
    job: str,
    entity_id: str,
    subject_id: str | None,
    prediction: float,
    outcome: Outcome,
) -> dict[str, Any]:
    """A prediction log row (``_settle`` adds the time, request id and latency)."""
    return {
        "endpoint": endpoint,
        "job": job,
        "entity_id": entity_id,
        "subject_id": subject_id,
        "prediction": float(prediction),
        "source": outcome.source,
        "reason": outcome.reason_name,
        "model_version": outcome.model_version,
        "features_computed_at": outcome.computed_at,
        "arm": outcome.arm,
    }


def _band(probability: float) -> str:
    for upper, band in CHURN_BANDS:
        if probability < upper:
            return band
    return "high"


def _best(offers: list[Offer], scores) -> tuple[str | None, float]:
    if not offers:
        return None, 0.0
    i = int(np.argmax(scores))
    return offers[i].offer_id, float(scores[i])
