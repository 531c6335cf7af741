"""The serving library: what one process holds (champions, controls, caches, circuits, the
prediction log) and how a request is answered within its budget. What an endpoint computes
is its ``Endpoint``: the generic ``predict``, and those the repository's serving extension
adds. The HTTP routes only parse, call this and format."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mlops.errors import ConfigError
from mlops.runtime import Runtime
from mlops.serving import arms, extension, health, predict
from mlops.serving import flags as flag_store
from mlops.serving.champions import Champion, Champions
from mlops.serving.controls import Controls, Poller
from mlops.serving.endpoints import Computed, Endpoint, Outcome
from mlops.serving.feature_cache import FeatureCache, RowSource, namespace
from mlops.serving.memo import Memo, NotInMemory
from mlops.serving.metrics import Metrics
from mlops.serving.policy import (
    CircuitBreaker,
    Fallback,
    ModelPaths,
    PathRun,
    Reason,
    StuckPaths,
    features_reason,
    precheck,
)
from mlops.serving.prediction_log import PredictionLog
from mlops.serving.schemas import Prediction
from mlops.store.online import EntityFeatures, OnlineStore, entity

log = logging.getLogger("mlops.serving")

# Failures that count toward opening a job's circuit: each one cost time or signals a broken
# model path. Missing or stale features are data, not a broken path.
CIRCUIT_FAILURES = {Reason.SLO_EXCEEDED, Reason.MODEL_ERROR, Reason.FEATURES_UNAVAILABLE}


class Service:
    """Everything one serving process holds. ``start`` loads and begins polling; ``close``
    stops and writes the pending prediction log."""

    def __init__(self, rt: Runtime, *, online: RowSource | None = None) -> None:
        """``online``: where stored feature rows are read (default the store's online table;
        a replay of past requests passes the rows as they were then)."""
        s = rt.settings
        self.rt, self.settings, self.clock = rt, s, rt.clock
        self.jobs = rt.repo.jobs
        self.champions = Champions(s, rt.clock, rt.repo.names)
        self.online: RowSource = online or OnlineStore(rt.store, rt.clock)
        self.controls = Controls(rt.store, rt.repo.names)
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
            job: CircuitBreaker(s.circuit_overruns, cooldown, rt.clock) for job in self.jobs
        }
        self.stuck = StuckPaths(self.jobs, max(1, s.model_threads // 2))
        self.metrics = Metrics(lambda: health.feature_ages(rt.store, rt.clock), runtime=rt)
        self.log = PredictionLog(
            rt.store,
            batch=s.prediction_log_batch,
            flush_seconds=s.prediction_log_flush_seconds,
            max_pending=s.prediction_log_max_pending,
            on_dropped=lambda n: self.metrics.prediction_log_dropped.inc(n),
            clock=rt.clock,
        )
        self._pollers = [
            Poller("mlops-controls", s.control_poll_seconds, self.refresh_controls),
            Poller("mlops-registry", s.registry_poll_seconds, self.reload_models),
        ]
        # Scores are pure functions of (model version, inputs): memoised exactly, so a hit is
        # what the model would answer. Cleared with the caches anyway.
        self.scores: Memo[Any] = Memo(s.score_cache_entries)
        self.extension = extension.load(self)
        added = self.extension.endpoints() if self.extension else ()
        self.endpoints: dict[str, Endpoint] = {e.name: e for e in [predict.endpoint(self), *added]}
        unknown = sorted(set(s.slo_ms) - set(self.endpoints))
        if unknown:
            raise ConfigError(
                f"MLOPS_SLO_MS names no endpoint: {', '.join(unknown)}",
                f"name some of: {', '.join(self.endpoints)}",
            )
        self.paths = ModelPaths(
            s.model_threads, {n: s.slo_ms.get(n, e.slo_ms) for n, e in self.endpoints.items()}
        )

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, *, poll: bool = True) -> None:
        """Load the champions and the controls, then keep them current in the background."""
        self.reload_models()
        self.refresh_controls()
        self.log.start()
        if poll:
            for poller in self._pollers:
                poller.start()

    def close(self) -> None:
        for poller in self._pollers:
            poller.stop()
        self.log.close()
        self.paths.close()
        self.cache.close()
        self.online.close()
        if self.extension:
            self.extension.close()

    def refresh_controls(self) -> bool:
        """Re-read flags and trips (and what the extension holds); a change clears the caches."""
        changed = self.controls.refresh()
        if self.extension:
            self.controls.watch(self.extension.name, self.extension.refresh)
        if changed:
            self.clear_cache()
            log.info("flags or trips changed; caches cleared")
        if self.cache.set_versions(self.controls.feature_versions):
            log.info("new online feature values; cached rows dropped")
        for job, breaker in self.breakers.items():
            self.metrics.circuit_open.labels(job).set(1 if breaker.is_open else 0)
        return changed

    def reload_models(self) -> list[str]:
        """Ask the registry for the champions now (also what the poller does)."""
        changes = self.champions.refresh()
        if changes:
            self.scores.clear()
        for job, version in self.champions.versions().items():
            self.metrics.model_version.labels(job).set(version or 0)
        return changes

    def set_flag(self, name: str, enabled: bool, *, reason: str, actor: str) -> flag_store.Flag:
        """Write a flag and apply it here at once (other replicas at their next poll)."""
        flag = flag_store.write(
            self.rt.store,
            name,
            enabled,
            reason=reason,
            actor=actor,
            at=self.clock.now(),
            jobs=self.rt.repo.names,
        )
        self.refresh_controls()
        return flag

    def clear_cache(self) -> int:
        """Drop cached scores, the extension's cached reads and feature rows (here and in
        Redis); returns the Redis keys deleted."""
        self.scores.clear()
        if self.extension:
            self.extension.clear()
        return self.cache.clear()

    def readiness(self) -> dict[str, Any]:
        """What /readyz answers (see ``health.readiness``)."""
        return health.readiness(self)

    # --- endpoints -----------------------------------------------------------------------
    # An endpoint's computation first runs where the caller is with ``memory_only``: when the
    # profile, the features and the scores are all held in the process (or rules answer), that
    # is the answer, with no read, no model call and no thread hop. Otherwise the whole
    # computation (warehouse read, features, models, answer) runs on the model pool, and the
    # caller waits at most the endpoint's budget for it: one thread hop. Past the budget the
    # same computation runs again in the caller with the model paths cut, so the heuristic
    # answers (slo_exceeded). A computation returns what to record; only the run whose answer
    # is returned is recorded.

    def predict(
        self,
        job: str,
        entity_id: str,
        inputs: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
        subject_id: str | None = None,
        request_id: str = "",
    ) -> Prediction:
        """The job's value for the entity and the request's inputs (see ``predict``)."""
        return self.answer(
            predict.ENDPOINT,
            request_id,
            job=job,
            entity_id=entity_id,
            inputs=inputs,
            at=at,
            subject_id=subject_id,
        )

    def answer(self, endpoint: str, request_id: str = "", **inputs: Any) -> Any:
        """The endpoint's answer to ``inputs`` (its method's keyword arguments)."""
        started = time.perf_counter()
        compute = self.endpoints[endpoint].compute
        if remembered := self._from_memory(endpoint, compute, inputs):
            return self._settle(endpoint, remembered, started, request_id)
        if self._models_off(endpoint, inputs):
            return self._settle(endpoint, compute(**inputs), started, request_id)
        run = PathRun()
        try:
            done = self.paths.run(endpoint, lambda: self.stuck.running(run, compute, inputs))
        except Fallback as cut:
            self.stuck.abandon(run)
            done = compute(**inputs, cut=cut.reason)
        return self._settle(endpoint, done, started, request_id)

    async def answer_async(self, endpoint: str, request_id: str = "", **inputs: Any) -> Any:
        """``answer`` for an event loop. With ``model_isolation="thread"`` the loop never blocks
        on a database or a model; with ``"inline"`` it computes on the loop and an overrun is
        caught when it ends (see the setting)."""
        import anyio.to_thread

        started = time.perf_counter()
        compute = self.endpoints[endpoint].compute
        if self.settings.model_isolation == "inline":
            done = compute(**inputs)
            if time.perf_counter() - started > self.paths.budget_seconds(endpoint):
                done = compute(**inputs, cut=Reason.SLO_EXCEEDED)
            return self._settle(endpoint, done, started, request_id)
        if remembered := self._from_memory(endpoint, compute, inputs):
            return self._settle(endpoint, remembered, started, request_id)
        if self._models_off(endpoint, inputs):
            done = await anyio.to_thread.run_sync(lambda: compute(**inputs))
            return self._settle(endpoint, done, started, request_id)
        run = PathRun()
        try:
            done = await self.paths.run_async(
                endpoint, lambda: self.stuck.running(run, compute, inputs)
            )
        except Fallback as cut:
            self.stuck.abandon(run)
            reason = cut.reason
            done = await anyio.to_thread.run_sync(lambda: compute(**inputs, cut=reason))
        return self._settle(endpoint, done, started, request_id)

    def _from_memory(
        self, endpoint: str, compute: Callable[..., Computed], inputs: dict
    ) -> Computed | None:
        """The answer when everything it needs is in the process (cached profile and features,
        memoised scores, or rules only), else None: computed where the caller is, with no
        read, no model call and no thread hop; the same computation the pool would run."""
        try:
            done = compute(**inputs, memory_only=True)
        except NotInMemory:
            return None
        self.metrics.from_memory.labels(endpoint).inc()
        return done

    # --- model paths ---------------------------------------------------------------------

    def run_models(
        self,
        paths: dict[str, Callable[[Champion], tuple[Any, EntityFeatures]]],
        cut: Reason | None,
        unit: str,
    ) -> dict[str, Outcome]:
        """Each job's model path, unless the policy (or the budget: ``cut``) says no. ``unit``
        is the id the A/B arm is drawn from (see ``arms``)."""
        outcomes: dict[str, Outcome] = {}
        for job, path in paths.items():
            champion = self.champions.get(job)
            arm = self.arm(job, unit)
            reason = self._precheck(job, arm)
            if cut and reason in (None, Reason.CIRCUIT_OPEN):
                # Cut by the budget: that is why, even when the overrun just opened the circuit.
                reason = cut
            if reason or champion is None:  # None: unloaded by a reload since the precheck
                outcomes[job] = Outcome(reason=reason or Reason.NO_CHAMPION, arm=arm)
                continue
            run = self.stuck.current()
            if run is not None and run.abandoned:  # nobody waits for this answer any more
                outcomes[job] = Outcome(reason=Reason.SLO_EXCEEDED, arm=arm)
                continue
            self.stuck.enter(run, job)
            try:
                value, features = path(champion)
                outcomes[job] = Outcome(value, None, champion.version, features, arm)
            except Fallback as fallback:
                outcomes[job] = Outcome(reason=fallback.reason, features=fallback.features, arm=arm)
            except NotInMemory:
                raise
            except Exception:
                log.exception("model path failed", extra={"job": job})
                outcomes[job] = Outcome(reason=Reason.MODEL_ERROR, arm=arm)
            finally:
                self.stuck.leave(run)
        return outcomes

    def arm(self, job: str, unit: str) -> str:
        """The A/B arm of ``unit`` for the job (``treatment`` when there is no experiment)."""
        s = self.settings
        return arms.assign(
            s.ab_treatment_share.get(job, self.jobs[job].ab_treatment_share), s.ab_salt, job, unit
        )

    def _precheck(self, job: str, arm: str = arms.TREATMENT) -> Reason | None:
        controls = self.controls
        return precheck(
            job,
            flag_off=flag_store.job_enabled(controls.flags, job),
            trip_kinds=[t.kind for t in controls.trips.get(job, ())],
            control=arm == arms.CONTROL,
            loaded=self.champions.get(job) is not None,
            circuit_open=self.breakers[job].is_open or self.stuck.jammed(job),
        )

    def _models_off(self, endpoint: str, inputs: dict[str, Any]) -> bool:
        """True when no job of the endpoint may use its model for these inputs (switched off,
        tripped, or the control arm): the answer is the heuristic's and is computed without
        queueing behind model paths (which may be jammed: that is when the kill switch gets
        flipped)."""
        spec = self.endpoints[endpoint]
        unit = spec.unit(inputs)
        return all(self._precheck(job, self.arm(job, unit)) for job in spec.jobs(inputs))

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
            reason = outcome.reason_name or ""
            self.metrics.answers.labels(endpoint, job, outcome.source, reason).inc()
        latency_ms = (time.perf_counter() - started) * 1000
        now = self.clock.now()
        for record in done.records:
            self.log.add(
                {**record, "logged_at": now, "request_id": request_id, "latency_ms": latency_ms}
            )
        return done.answer

    def fresh_features(self, job: str, entity_id: str, memory_only: bool = False) -> EntityFeatures:
        """Fresh features, or ``Fallback`` saying why not (carrying what was found);
        ``NotInMemory`` when they must be read and ``memory_only``."""
        spec = self.jobs[job]
        row = self.cache.row(spec, entity_id, memory_only=memory_only)
        features = entity(spec, entity_id, row, self.clock.now())
        reason = features_reason(features)
        if reason:
            raise Fallback(reason, features=features)
        return features
