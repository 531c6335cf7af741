"""The serving library: dossier, order composition and ETA, each ML-backed value from the
champion model when the fallback policy allows it, else from the heuristic, with its provenance.
The HTTP routes only parse, call this and format; it is usable from Python as is."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from mlops.clock import to_utc_naive
from mlops.errors import InputError, MlopsError
from mlops.runtime import Runtime
from mlops.serving import flags as flag_store
from mlops.serving.champions import Champion, Champions
from mlops.serving.controls import Controls, Poller
from mlops.serving.feature_cache import FeatureCache, namespace
from mlops.serving.memo import Memo
from mlops.serving.metrics import Metrics
from mlops.serving.policy import (
    CircuitBreaker,
    Fallback,
    ModelPaths,
    Reason,
    features_reason,
    precheck,
)
from mlops.serving.prediction_log import PredictionLog
from mlops.serving.profiles import Offer, WarehouseReads
from mlops.serving.schemas import (
    ChurnRisk,
    Composition,
    CustomerProfile,
    Dossier,
    Eta,
    RankedOffer,
    UpsellPropensity,
)
from mlops.specs.features import JOBS
from mlops.store.online import EntityFeatures, OnlineStore, entity
from mlops.training import heuristics, models
from mlops.training.values import to_float

log = logging.getLogger("mlops.serving")

CHURN_BANDS = ((0.3, "low"), (0.6, "medium"), (1.01, "high"))
OFFER_COLUMNS = ("offer_category", "discount_pct", "offer_price")
ETA_RULE = "min(SLA, max(model, model p90)); the SLA when the heuristic answers"
# Failures that count toward opening a job's circuit: each one cost time or signals a broken
# model path. Missing or stale features are data, not a broken path.
CIRCUIT_FAILURES = {Reason.SLO_EXCEEDED, Reason.MODEL_ERROR, Reason.FEATURES_UNAVAILABLE}


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

    def provenance(self) -> dict[str, Any]:
        f = self.features
        return {
            "source": "heuristic" if self.reason else "model",
            "reason": self.reason.value if self.reason else None,
            "model_version": None if self.reason else self.version,
            "computed_at": f.computed_at if f else None,
            "staleness_seconds": f.age_seconds if f else None,
        }


class Service:
    """Everything one serving process holds. ``start`` loads and begins polling; ``close``
    stops and writes the pending prediction log."""

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings
        self.rt, self.settings, self.clock = rt, s, rt.clock
        self.champions = Champions(s, rt.clock)
        self.warehouse = WarehouseReads(rt.warehouse)
        self.online = OnlineStore(rt.store, rt.clock)
        self.controls = Controls(rt.store, self.warehouse)
        redis_url = s.redis_url.get_secret_value() if s.redis_url else None
        self.cache = FeatureCache(
            self.online,
            rt.clock,
            local_seconds=s.feature_cache_seconds,
            redis_url=redis_url,
            redis_seconds=s.redis_cache_seconds,
            namespace=namespace(s.environment, s.store_url),
        )
        cooldown = timedelta(seconds=s.circuit_cooldown_seconds)
        self.breakers = {
            job: CircuitBreaker(s.circuit_overruns, cooldown, rt.clock) for job in JOBS
        }
        self.paths = ModelPaths(s.model_threads, s.slo_ms)
        self.metrics = Metrics(self.feature_ages)
        self.log = PredictionLog(
            rt.store,
            batch=s.prediction_log_batch,
            flush_seconds=s.prediction_log_flush_seconds,
            max_pending=s.prediction_log_max_pending,
            on_dropped=lambda n: self.metrics.prediction_log_dropped.inc(n),
        )
        self._poller = Poller(
            [
                (s.control_poll_seconds, self.refresh_controls),
                (s.registry_poll_seconds, self.reload_models),
            ]
        )
        # Scores are pure functions of (model version, feature values, offers): memoised
        # exactly, so a hit is what the model would answer. Cleared with the caches anyway.
        self.scores: Memo[Any] = Memo(s.score_cache_entries)
        self._offer_rows: Memo[np.ndarray] = Memo(1_000)
        self._compute = {"dossier": self._dossier, "compose": self._compose, "eta": self._eta}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, *, poll: bool = True) -> None:
        """Load the champions and the controls, then keep them current in the background."""
        self.reload_models()
        self.refresh_controls()
        self.log.start()
        if poll:
            self._poller.start()

    def close(self) -> None:
        self._poller.stop()
        self.log.close()
        self.paths.close()
        self.cache.close()
        self.online.close()
        self.warehouse.close()

    def refresh_controls(self) -> bool:
        """Re-read flags, trips and offers; a change clears the caches."""
        changed = self.controls.refresh()
        if changed:
            self.clear_cache()
            log.info("flags or trips changed; caches cleared")
        for job, breaker in self.breakers.items():
            self.metrics.circuit_open.labels(job).set(1 if breaker.is_open else 0)
        return changed

    def reload_models(self) -> list[str]:
        """Ask the registry for the champions now (also what the poller does)."""
        changes = self.champions.refresh()
        if changes:
            self.scores.clear()
            self._offer_rows.clear()
        for job, version in self.champions.versions().items():
            self.metrics.model_version.labels(job).set(version or 0)
        return changes

    def set_flag(self, name: str, enabled: bool, *, reason: str, actor: str) -> flag_store.Flag:
        """Write a flag and apply it here at once (other replicas at their next poll)."""
        flag = flag_store.write(
            self.rt.store, name, enabled, reason=reason, actor=actor, at=self.clock.now()
        )
        self.refresh_controls()
        return flag

    def clear_cache(self) -> int:
        """Drop cached scores and feature rows (here and in Redis); returns Redis keys deleted."""
        self.scores.clear()
        return self.cache.clear()

    def feature_ages(self) -> dict[str, float]:
        """Seconds since each job's newest snapshot (for /metrics)."""
        from sqlalchemy import func, select

        from mlops.db.schema import feature_snapshots as snap

        now = self.clock.now()
        try:
            with self.rt.store.connect() as conn:
                rows = conn.execute(
                    select(snap.c.job, func.max(snap.c.as_of)).group_by(snap.c.job)
                ).all()
        except Exception as exc:  # a scrape must not fail because the store is down
            log.warning("feature ages unreadable", extra={"error": str(exc)})
            return {}
        return {job: (now - newest).total_seconds() for job, newest in rows if newest}

    def readiness(self) -> dict[str, Any]:
        """Database reachable, and which jobs have a champion (the rest answer by heuristic)."""
        from sqlalchemy import text

        try:
            with self.rt.store.connect() as conn:
                conn.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:
            database = f"unreachable: {exc.__class__.__name__}"
        versions = self.champions.versions()
        mode = (
            "models"
            if all(versions.values())
            else "heuristics only"
            if not any(versions.values())
            else "mixed"
        )
        return {
            "ready": database == "ok",
            "database": database,
            "mode": mode,
            "champions": versions,
            "problems": {**self.champions.problems, **self.controls.problems},
            "redis": self.cache.redis_state,
        }

    # --- endpoints -----------------------------------------------------------------------
    # An endpoint's whole computation (warehouse read, features, models, answer) runs on the
    # model pool, and the caller waits at most the endpoint's budget for it: one thread hop
    # per request. Past the budget the same computation runs again in the caller with the
    # model paths cut, so the heuristic answers (slo_exceeded). A computation returns what to
    # record; only the run whose answer is returned is recorded.

    def dossier(self, customer_id: str, *, request_id: str = "") -> Dossier:
        """The customer's profile with churn risk and upsell propensity."""
        return self.answer("dossier", request_id, customer_id=customer_id)

    def compose(
        self,
        customer_id: str,
        *,
        cart: list[dict[str, Any]] | None = None,
        offer_ids: list[str] | None = None,
        limit: int = 3,
        request_id: str = "",
    ) -> Composition:
        """Candidate offers ranked by upsell propensity (the model's, else the rule's)."""
        return self.answer(
            "compose",
            request_id,
            customer_id=customer_id,
            cart=cart,
            offer_ids=offer_ids,
            limit=limit,
        )

    def eta(
        self,
        zone: str,
        distance_km: float,
        item_count: int = 1,
        *,
        dispatched_at: datetime | None = None,
        delivery_id: str | None = None,
        request_id: str = "",
    ) -> Eta:
        """The SLA estimate, the model's minutes and what to promise, with the promise time."""
        return self.answer(
            "eta",
            request_id,
            zone=zone,
            distance_km=distance_km,
            item_count=item_count,
            dispatched_at=dispatched_at,
            delivery_id=delivery_id,
        )

    def answer(self, endpoint: str, request_id: str = "", **inputs: Any) -> Any:
        """The endpoint's answer to ``inputs`` (its method's keyword arguments)."""
        started = time.perf_counter()
        compute = self._compute[endpoint]
        try:
            done = self.paths.run(endpoint, lambda: compute(**inputs))
        except Fallback as cut:
            done = compute(**inputs, cut=cut.reason)
        return self._settle(endpoint, done, started, request_id)

    async def answer_async(self, endpoint: str, request_id: str = "", **inputs: Any) -> Any:
        """``answer`` for an event loop, which never blocks on a database or a model."""
        import anyio.to_thread

        started = time.perf_counter()
        compute = self._compute[endpoint]
        try:
            done = await self.paths.run_async(endpoint, lambda: compute(**inputs))
        except Fallback as cut:
            reason = cut.reason
            done = await anyio.to_thread.run_sync(lambda: compute(**inputs, cut=reason))
        return self._settle(endpoint, done, started, request_id)

    def _dossier(self, customer_id: str, cut: Reason | None = None) -> Computed:
        now = self.clock.now()
        try:
            profile = self.warehouse.profile(customer_id, now)
        except Exception as exc:
            raise Unavailable(
                f"the warehouse cannot be read: {exc.__class__.__name__}",
                "check MLOPS_WAREHOUSE_URL and the warehouse server",
            ) from exc
        if profile is None:
            raise CustomerNotFound(
                f"no customer {customer_id!r} in the warehouse", "check the customer id"
            )
        offers, offers_key = self.controls.offers, (self.controls.offers_version, None)
        outcomes = self._models(
            {
                "churn": lambda ch: self._churn(ch, customer_id),
                "upsell": lambda ch: self._upsell(ch, customer_id, offers, offers_key),
            },
            cut,
        )
        inputs = profile.heuristic_inputs()
        churn, upsell = outcomes["churn"], outcomes["upsell"]
        if churn.reason:
            churn.value = heuristics.churn_risk_row(inputs)
        if upsell.reason:
            upsell.value = self._heuristic_offers(inputs, offers)
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

    def _compose(
        self,
        customer_id: str,
        cart: list[dict[str, Any]] | None,
        offer_ids: list[str] | None,
        limit: int,
        cut: Reason | None = None,
    ) -> Computed:
        offers = self._candidates(offer_ids)
        key = (self.controls.offers_version, None if offer_ids is None else tuple(offer_ids))
        outcomes = self._models(
            {"upsell": lambda ch: self._upsell(ch, customer_id, offers, key)}, cut
        )
        outcome = outcomes["upsell"]
        if outcome.reason:
            inputs = self._customer_inputs(customer_id, outcome)
            outcome.value = self._heuristic_offers(inputs, offers)
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
            _row("compose", "upsell", customer_id, o.offer_id, o.propensity, outcome)
            for o in ranked
        ]
        return Computed(answer, outcomes, records)

    def _candidates(self, offer_ids: list[str] | None) -> list[Offer]:
        known = self.controls.offers
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

    def _eta(
        self,
        zone: str,
        distance_km: float,
        item_count: int,
        dispatched_at: datetime | None,
        delivery_id: str | None,
        cut: Reason | None = None,
    ) -> Computed:
        at = to_utc_naive(dispatched_at) if dispatched_at else self.clock.now()
        request = {
            "zone": zone,
            "distance_km": distance_km,
            "item_count": item_count,
            "hour": at.hour,
            "weekday": at.weekday(),
        }
        sla = heuristics.eta_sla_minutes_row(request, **heuristics.eta_constants(self.settings))
        outcomes = self._models({"eta": lambda ch: self._eta_model(ch, zone, request)}, cut)
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

    # --- model paths ---------------------------------------------------------------------

    def _models(
        self,
        paths: dict[str, Callable[[Champion], tuple[Any, EntityFeatures]]],
        cut: Reason | None,
    ) -> dict[str, Outcome]:
        """Each job's model path, unless the policy (or the budget: ``cut``) says no."""
        outcomes: dict[str, Outcome] = {}
        controls = self.controls
        for job, path in paths.items():
            champion = self.champions.get(job)
            reason = precheck(
                job,
                flag_off=flag_store.job_enabled(controls.flags, job),
                trip_kinds=[t.kind for t in controls.trips.get(job, ())],
                loaded=champion is not None,
                circuit_open=self.breakers[job].is_open,
            )
            if reason or cut:
                outcomes[job] = Outcome(reason=reason or cut)
                continue
            try:
                value, features = path(champion)
                outcomes[job] = Outcome(value, None, champion.version, features)
            except Fallback as fallback:
                outcomes[job] = Outcome(reason=fallback.reason, features=fallback.features)
            except Exception:
                log.exception("model path failed", extra={"job": job})
                outcomes[job] = Outcome(reason=Reason.MODEL_ERROR)
        return outcomes

    def _settle(self, endpoint: str, done: Computed, started: float, request_id: str) -> Any:
        """Count the outcomes toward the circuits and the metrics; queue the records."""
        for job, outcome in done.outcomes.items():
            breaker = self.breakers[job]
            if outcome.reason in CIRCUIT_FAILURES:
                if breaker.failure():
                    self.metrics.circuit_open.labels(job).set(1)
                    log.warning("circuit opened", extra={"job": job, "reason": outcome.reason})
            elif outcome.reason is None:
                breaker.success()
            source = "heuristic" if outcome.reason else "model"
            reason = outcome.reason.value if outcome.reason else ""
            self.metrics.answers.labels(endpoint, job, source, reason).inc()
        latency_ms = (time.perf_counter() - started) * 1000
        now = self.clock.now()
        for record in done.records:
            self.log.add(
                {**record, "logged_at": now, "request_id": request_id, "latency_ms": latency_ms}
            )
        return done.answer

    def _features(self, job: str, entity_id: str) -> EntityFeatures:
        """Fresh features, or ``Fallback`` saying why not (carrying what was found)."""
        spec = JOBS[job]
        features = entity(spec, entity_id, self.cache.row(spec, entity_id), self.clock.now())
        reason = features_reason(features)
        if reason:
            raise Fallback(reason, features=features)
        return features

    def _churn(self, champion: Champion, customer_id: str):
        features = self._features("churn", customer_id)
        values = features.values()
        key = ("churn", champion.version, customer_id, tuple(values.values()))
        return self.scores.get(key, lambda: models.predict_row(champion.model, values)), features

    def _upsell(self, champion: Champion, customer_id: str, offers: list[Offer], offers_key):
        features = self._features("upsell", customer_id)
        values = features.values()
        model = champion.model

        def predict():
            X = np.repeat(models.encode_row(model, values), len(offers), axis=0)
            columns = [model.feature_columns.index(c) for c in OFFER_COLUMNS]
            X[:, columns] = self._offer_rows.get(
                (champion.version, offers_key),
                lambda: np.vstack([models.encode_row(model, o.model_inputs()) for o in offers])[
                    :, columns
                ],
            )
            return models.predict(model, X)

        key = ("upsell", champion.version, customer_id, tuple(values.values()), offers_key)
        return self.scores.get(key, predict), features

    def _eta_model(self, champion: Champion, zone: str, request: dict[str, Any]):
        features = self._features("eta", zone)
        model = champion.model
        X = models.encode_row(model, {**features.values(), **request})
        mean = float(models.predict(model, X)[0])
        p90 = float(models.predict_p90(model, X)[0]) if model.booster_p90 is not None else None
        return (mean, p90), features

    # --- heuristics ------------------------------------------------------------------------

    def _heuristic_offers(self, inputs: dict[str, Any], offers: list[Offer]) -> np.ndarray:
        if not offers:
            return np.empty(0)
        return np.asarray(
            heuristics.upsell_propensity(
                np.full(len(offers), to_float(inputs.get("acceptance_rate_90d"))),
                np.array([o.discount_pct for o in offers], dtype=float),
                np.full(len(offers), to_float(inputs.get("impressions_90d"))),
            ),
            dtype=float,
        )

    def _customer_inputs(self, customer_id: str, outcome: Outcome) -> dict[str, Any]:
        """The upsell heuristic's inputs: live from the warehouse, else the stored features
        whatever their age, else none (the heuristic's prior)."""
        try:
            profile = self.warehouse.profile(customer_id, self.clock.now())
            if profile is not None:
                return profile.heuristic_inputs()
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
        "source": "heuristic" if outcome.reason else "model",
        "reason": outcome.reason.value if outcome.reason else None,
        "model_version": None if outcome.reason else outcome.version,
        "features_computed_at": outcome.features.computed_at if outcome.features else None,
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
