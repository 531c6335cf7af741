"""Online feature rows behind two caches: one in the process, and Redis (when
``MLOPS_REDIS_URL`` is set) shared between replicas. Caches hold rows as stored; their age is
judged at read time, so a cached row can never make stale features look fresh. Both are keyed
by the job's online version (``online.versions``, re-read with the controls): a refresh's new
values are served within a control poll, however long the lifetimes. Redis down means direct
reads, never errors."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Protocol

from mlops.clock import Clock
from mlops.errors import redact
from mlops.serving.memo import NotInMemory
from mlops.serving.policy import Fallback, Reason
from mlops.specs.features import JobSpec
from mlops.store.online import StoredRow

log = logging.getLogger("mlops.serving")

# How long Redis is left alone after it failed, so that an outage costs one timeout per
# interval instead of one per request.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.05
MAX_LOCAL_ENTRIES = 200_000
_NONE = "-"  # cached "this entity has no row"
# Readers that missed together fill the key in any order; one that read before a refresh
# committed must not replace the newer row another stored (its later readers would go back
# a run). Computed_at is ISO text of one format, first in the value: its order is the time
# order. A value of another format is replaced.
_SET_UNLESS_NEWER = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[3] then
    local at = string.match(held, '^{"c": "([^"]*)"')
    if at and (ARGV[2] == '' or at > ARGV[2]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1
"""


class RowSource(Protocol):
    """Where the cache reads stored rows from: the online table (``OnlineStore``), or rows
    as they were at a past time (``replay.RowsAsOf``)."""

    def rows(self, spec: JobSpec, entity_ids: list[str]) -> dict[str, StoredRow]: ...

    def close(self) -> None: ...


class FeatureCache:
    def __init__(
        self,
        online: RowSource,
        clock: Clock,
        *,
        local_seconds: float,
        redis_url: str | None = None,
        redis_seconds: float = 30.0,
        namespace: str = "mlops",
    ) -> None:
        self.online, self.clock = online, clock
        self.local_ttl = timedelta(seconds=local_seconds)
        self.redis_seconds = redis_seconds
        self.prefix = f"{namespace}:fv:"
        self._local: dict[tuple[str, str], tuple[datetime, StoredRow | None]] = {}
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._redis = None
        self._redis_down_until = datetime.min
        self.redis_error = ""  # the last failure while Redis is failing, for readiness
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry_on_timeout=False,
            )
            self._set_unless_newer = self._redis.register_script(_SET_UNLESS_NEWER)

    @property
    def redis_state(self) -> str:
        """'off' (not configured), 'up', or 'down' (the last attempt failed: until one succeeds,
        not only while Redis is left alone, so readiness does not flap between retries)."""
        if self._redis is None:
            return "off"
        return "down" if self.redis_error else "up"

    def _redis_skipped(self) -> bool:
        return self._redis is None or self.clock.now() < self._redis_down_until

    def row(self, spec: JobSpec, entity_id: str, *, memory_only: bool = False) -> StoredRow | None:
        """The entity's stored row (None: no row). ``Fallback(FEATURES_UNAVAILABLE)`` when the
        store cannot be read; ``NotInMemory`` when it is not in the process and
        ``memory_only``."""
        key = (spec.name, entity_id)
        if self.local_ttl:
            hit = self._local.get(key)
            if hit is not None and hit[0] > self.clock.now():
                return hit[1]
        if memory_only:
            raise NotInMemory
        version = self._versions.get(spec.name, 0)
        rkey = f"{self.prefix}{spec.name}:{version}:{entity_id}"
        found, row = self._from_redis(rkey)
        if not found:
            try:
                row = self.online.rows(spec, [entity_id]).get(entity_id)
            except Exception as exc:
                raise Fallback(Reason.FEATURES_UNAVAILABLE, str(exc)) from exc
            self._to_redis(rkey, row)
        if self.local_ttl:
            with self._lock:
                if version != self._versions.get(spec.name, 0):
                    return row  # read before a refresh that has since been seen: not kept
                if len(self._local) >= MAX_LOCAL_ENTRIES:
                    self._local.clear()
                now, held = self.clock.now(), self._local.get(key)
                # As in Redis: a slower reader's older row must not replace a newer one.
                if held is None or held[0] <= now or not _older(row, held[1]):
                    self._local[key] = (now + self.local_ttl, row)
        return row

    def set_versions(self, versions: dict[str, int]) -> bool:
        """The jobs' online versions as just read; a change drops the rows held here (Redis
        keys carry the version). True when they changed."""
        with self._lock:
            if versions == self._versions:
                return False
            self._versions = dict(versions)
            self._local.clear()
        return True

    def clear(self) -> int:
        """Drop every cached row, here and in Redis; returns the Redis keys deleted."""
        with self._lock:
            self._local.clear()
        if self._redis is None:
            return 0
        deleted = 0
        try:
            batch = []
            for key in self._redis.scan_iter(match=f"{self.prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += self._redis.unlink(*batch)
                    batch = []
            if batch:
                deleted += self._redis.unlink(*batch)
        except Exception as exc:
            self._redis_failed(exc)
        return deleted

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def _from_redis(self, key: str) -> tuple[bool, StoredRow | None]:
        redis = self._redis
        if redis is None or self._redis_skipped():
            return False, None
        try:
            raw = redis.get(key)
        except Exception as exc:
            self._redis_failed(exc)
            return False, None
        self._redis_ok()
        if raw is None:
            return False, None
        if raw == _NONE.encode():
            return True, None
        data = json.loads(raw)
        return True, StoredRow(datetime.fromisoformat(data["c"]), data["v"])

    def _to_redis(self, key: str, row: StoredRow | None) -> None:
        if self._redis_skipped():
            return
        at = "" if row is None else row.computed_at.isoformat()
        value = _NONE if row is None else json.dumps({"c": at, "v": row.values}, allow_nan=True)
        try:
            self._set_unless_newer(
                keys=[key],
                args=[value, at, _NONE, int(self.redis_seconds * 1000)],
            )
        except Exception as exc:
            self._redis_failed(exc)
            return
        self._redis_ok()

    def _redis_failed(self, exc: Exception) -> None:
        error = redact(f"{exc.__class__.__name__}: {exc}")[:300]
        if not self.redis_error:
            log.warning("redis unavailable, reading the store directly", extra={"error": error})
        self.redis_error = error
        self._redis_down_until = self.clock.now() + timedelta(seconds=REDIS_RETRY_SECONDS)

    def _redis_ok(self) -> None:
        if self.redis_error:
            log.info("redis is back", extra={"after": self.redis_error})
            self.redis_error = ""


def _older(row: StoredRow | None, than: StoredRow | None) -> bool:
    """True when ``row`` was read before ``than`` was stored (no row counts as oldest)."""
    return than is not None and (row is None or row.computed_at < than.computed_at)


def namespace(environment: str, store_url: str) -> str:
    """A Redis key prefix unique to one store, so deployments sharing a Redis never mix."""
    digest = hashlib.sha256(store_url.encode()).hexdigest()[:10]
    return f"mlops:{environment}:{digest}"
