"""Ingestion while the service answers: refreshes commit new values while reader threads read
the online store (the service's own read path, in-process cache off) and call the endpoints.
Every row read must be exactly one run's stored row, a read of several entities must see one
run, no reader may go back to an older run, and every answer must come from the model: no
errors and no lock waits (SQLite in WAL mode, PostgreSQL MVCC), on both backends. The caches
(in-process, Redis) must not go back a run either when two readers fill them out of order."""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, event, select

from mlops.db.engine import make_engine
from mlops.db.schema import feature_values
from mlops.examples.marketplace import answers
from mlops.serving.feature_cache import FeatureCache
from mlops.serving.memo import Memo
from mlops.serving.predict import model_path
from mlops.serving.service import Service
from mlops.store import ingest
from mlops.store.codec import unpack_row
from mlops.store.online import OnlineStore, StoredRow, entity
from tests.conftest import NOW
from tests.repo_support import JOBS
from tests.serving_support import a_customer, make_service

RUNS = 6
# Runs minutes apart: each run's days_since_last_order and tenure_days differ, so its values
# are its own, and the rows of the last run stay inside every job's TTL (ETA's is 15 min).
STEP = timedelta(minutes=5)
BATCH = 20  # entities per multi-entity read
REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL")


class Stored:
    """What each run committed, read right after it: job -> computed_at -> entity -> values."""

    def __init__(self, rt) -> None:
        self.rt = rt
        self.values: dict[str, dict[datetime, dict[str, dict]]] = defaultdict(dict)

    def record(self, job: str) -> None:
        fv = feature_values
        with self.rt.store.connect() as conn:
            rows = conn.execute(
                select(fv.c.entity_id, fv.c.computed_at, fv.c.values_json).where(fv.c.job == job)
            ).all()
        at = {r.computed_at for r in rows}
        # Every entity rewritten by every run: then one read of several entities that spans
        # two runs can only be a read that saw a run half-committed.
        assert len(at) == 1, f"{job}: a run left entities on older values: {sorted(at)}"
        self.values[job][at.pop()] = {r.entity_id: unpack_row(r.values_json) for r in rows}

    def ids(self, job: str) -> list[str]:
        return sorted(next(iter(self.values[job].values())))

    def row(self, job: str, entity_id: str, computed_at: datetime) -> dict:
        runs = self.values[job]
        assert computed_at in runs, f"{job} {entity_id}: computed_at {computed_at} is no run's"
        return runs[computed_at][entity_id]


class RunValues:
    """Stands in for the service in the endpoints' model paths, giving them one run's stored
    values: what the service answers when it read that run's row whole."""

    def __init__(self, job: str, entity_id: str, computed_at: datetime, values: dict) -> None:
        self.row = StoredRow(computed_at, values)
        self.scores: Memo = Memo(10)
        self.offer_rows: Memo = Memo(10)
        self.svc = self  # the marketplace's paths reach the service through its extension

    def fresh_features(self, job: str, entity_id: str, memory_only: bool = False):
        return entity(JOBS[job], entity_id, self.row, self.row.computed_at)


def run_concurrently(rt, clock, jobs, stored: Stored, readers: list[Callable[[], None]]) -> int:
    """Refresh ``jobs`` RUNS times (the clock a STEP further each run) while each reader is
    called in a loop on a thread of its own; returns the reads made. Raises the first error
    of any thread."""
    done = threading.Event()
    errors: list[BaseException] = []
    reads = [0] * len(readers)

    def write() -> None:
        try:
            for k in range(1, RUNS + 1):
                clock.set(NOW + k * STEP)
                for job in jobs:
                    report = ingest.refresh(rt, job)
                    assert report.status == "succeeded", report.error
                    stored.record(job)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read(i: int) -> None:
        try:
            while not done.is_set() and not errors:
                readers[i]()
                reads[i] += 1
            readers[i]()  # one read after the last commit
            reads[i] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(readers))]
    threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung (a lock wait?)"
    if errors:
        raise errors[0]
    assert all(reads), reads
    return sum(reads)


def assert_forward_only(seen: list[tuple[str, str, datetime]]) -> None:
    """One reader's (job, entity, computed_at) in read order never goes back to an older run."""
    last: dict[tuple[str, str], datetime] = {}
    for job, eid, at in seen:
        prev = last.get((job, eid))
        assert prev is None or at >= prev, f"{job} {eid}: read {at} after {prev}"
        last[job, eid] = at


def assert_quiet(caplog) -> None:
    """No warning from mlops: a failed read, model path or prediction log write logs one."""
    loud = [
        f"{r.name}: {r.getMessage()} {getattr(r, 'error', '')}"
        for r in caplog.records
        if r.name.startswith("mlops") and r.levelno >= logging.WARNING
    ]
    assert not loud, loud


def assert_store_setup(svc: Service, backend: str) -> None:
    """SQLite in WAL (readers never wait for the writer); PostgreSQL reads one statement on
    an autocommit connection, each statement its own snapshot."""
    conn = svc.online._conns._connection()
    if backend == "sqlite":
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    else:
        assert conn.connection.driver_connection.autocommit


def no_wait_store(rt) -> OnlineStore:
    """The online store on connections that may not wait for a lock: on SQLite no busy
    timeout at all (a read that needed the writer's lock fails with "database is locked"), on
    PostgreSQL a 1 s lock_timeout."""
    engine = make_engine(rt.settings.store_url)

    @event.listens_for(engine, "connect")  # after make_engine's own pragmas
    def _no_wait(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA busy_timeout=0")
        else:
            cur.execute("SET lock_timeout = '1s'")
            dbapi_conn.commit()
        cur.close()

    return OnlineStore(engine, rt.clock)


def count_invalidations(*engines: Engine) -> list[str]:
    """The errors that made a connection of ``engines`` be dropped, as they happen."""
    dropped: list[str] = []
    for engine in engines:
        event.listen(engine, "invalidate", lambda _c, _r, exc: dropped.append(repr(exc)))
    return dropped


def test_store_reads_see_whole_runs_while_ingesting(serving_rt, clock, backend, caplog):
    caplog.set_level(logging.WARNING)
    rt, jobs = serving_rt, ("churn", "upsell")
    stored = Stored(rt)
    for job in jobs:
        stored.record(job)
    svc = make_service(rt, feature_cache_seconds=0)
    assert_store_setup(svc, backend)
    strict = no_wait_store(rt)
    retried = count_invalidations(svc.rt.store, strict._conns.engine)
    ids = {job: stored.ids(job) for job in jobs}
    seen: dict[int, list] = defaultdict(list)  # reader -> [(job, {entity: row}, ids asked)]

    def reader(i: int) -> Callable[[], None]:
        rng = random.Random(i)
        store = strict if i >= 2 else svc.online

        def read() -> None:
            job = rng.choice(jobs)
            spec = JOBS[job]
            if i % 2:
                eid = rng.choice(ids[job])
                # Reader 1 reads what Service.fresh_features reads: through the feature cache.
                row = svc.cache.row(spec, eid) if i == 1 else store.rows(spec, [eid]).get(eid)
                seen[i].append((job, {eid: row}, 1))
            else:
                batch = rng.sample(ids[job], BATCH)
                seen[i].append((job, store.rows(spec, batch), BATCH))

        return read

    try:
        reads = run_concurrently(rt, clock, jobs, stored, [reader(i) for i in range(4)])
    finally:
        svc.close()
        strict.close()
        strict._conns.engine.dispose()
    # A read error is retried once on a new connection, unseen by the caller: count those.
    assert retried == [], retried

    runs_seen = set()
    for observations in seen.values():
        for job, rows, asked in observations:
            assert len(rows) == asked, f"{job}: {asked - len(rows)} entities had no row"
            at = {row.computed_at for row in rows.values()}
            assert len(at) == 1, f"{job}: one read saw several runs {sorted(at)}"
            for eid, row in rows.items():
                assert row.values == stored.row(job, eid, row.computed_at), (job, eid)
            runs_seen |= at
        assert_forward_only(
            [(job, eid, r.computed_at) for job, rows, _ in observations for eid, r in rows.items()]
        )
    # The reads overlapped the runs: they saw most of them, not just the first and last.
    assert len(runs_seen) >= RUNS // 2 + 1, (sorted(runs_seen), reads)
    assert_quiet(caplog)


def test_endpoints_answer_from_whole_runs_while_ingesting(serving_rt, clock, backend, caplog):
    caplog.set_level(logging.WARNING)
    rt, jobs = serving_rt, ("churn", "upsell", "eta")
    stored = Stored(rt)
    for job in jobs:
        stored.record(job)
    svc = make_service(rt, feature_cache_seconds=0)
    assert_store_setup(svc, backend)
    retried = count_invalidations(svc.rt.store, svc.rt.warehouse)
    customers, zones = stored.ids("upsell")[:40], stored.ids("eta")
    # (job, entity, computed_at, what the model answered) per reader, in read order.
    seen: dict[int, list] = defaultdict(list)

    def reader(i: int) -> Callable[[], None]:
        rng = random.Random(i)

        def read() -> None:
            kind = rng.choice(("dossier", "compose", "eta"))
            if kind == "dossier":
                cid = rng.choice(customers)
                d = svc.extension.dossier(cid)
                assert (d.churn.source, d.upsell.source) == ("model", "model"), (
                    d.churn.reason,
                    d.upsell.reason,
                )
                best = {d.upsell.offer_id: d.upsell.propensity}
                seen[i].append(("churn", cid, d.churn.computed_at, d.churn.probability))
                seen[i].append(("upsell", cid, d.upsell.computed_at, best))
            elif kind == "compose":
                cid = rng.choice(customers)
                c = svc.extension.compose(cid, limit=3)
                assert c.source == "model", c.reason
                ranked = {o.offer_id: o.propensity for o in c.offers}
                seen[i].append(("upsell", cid, c.computed_at, ranked))
            else:
                zone = rng.choice(zones)
                e = svc.extension.eta(zone, 3.0, dispatched_at=NOW)
                assert e.source == "model", e.reason
                seen[i].append(("eta", zone, e.computed_at, e.model_minutes))

        return read

    try:
        reads = run_concurrently(rt, clock, jobs, stored, [reader(i) for i in range(4)])
        champions = {job: svc.champions.get(job) for job in jobs}
        offers, offers_key = svc.extension.offers, (svc.extension.offers_version, None)
        logged = svc.log
    finally:
        svc.close()

    @functools.cache
    def expected(job: str, eid: str, at: datetime):
        """The model's answer on run ``at``'s values, by the endpoints' own model paths."""
        run = RunValues(job, eid, at, stored.row(job, eid, at))
        if job == "churn":
            return model_path(run, champions[job], job, eid, {})[0]
        if job == "upsell":
            scores = answers.upsell_path(run, champions[job], eid, offers, offers_key)[0]
            return {o.offer_id: float(s) for o, s in zip(offers, scores, strict=True)}
        request = {"zone": eid, "distance_km": 3.0, "item_count": 1}
        request |= {"hour": NOW.hour, "weekday": NOW.weekday()}
        mean, _p90 = model_path(
            run, champions[job], job, eid, request, score=answers.minutes, by_splits=True
        )[0]
        return round(mean, 2)

    runs_seen = set()
    for observations in seen.values():
        assert_forward_only([(job, eid, at) for job, eid, at, _ in observations])
        for job, eid, at, answered in observations:
            want = expected(job, eid, at)
            if job == "upsell":
                assert answered == pytest.approx({o: want[o] for o in answered}, rel=1e-9), eid
            else:
                assert answered == pytest.approx(want, rel=1e-9), (job, eid, at)
            runs_seen.add(at)
    assert len(runs_seen) >= RUNS // 2 + 1, (sorted(runs_seen), reads)
    assert retried == [], retried
    # Every answer's prediction log row was written beside the ingestion's transactions.
    assert logged.pending == 0 and logged.written >= reads
    assert_quiet(caplog)


class ReadsBeforeARefresh(OnlineStore):
    """The online store, where the first read returns only after ``meanwhile`` ran: the
    interleaving of two readers that missed the cache together, the first having read just
    before a refresh committed, the second just after."""

    def __init__(self, engine, clock, meanwhile: Callable[[], None]) -> None:
        super().__init__(engine, clock)
        self.meanwhile: Callable[[], None] | None = meanwhile

    def rows(self, spec, entity_ids):
        found = super().rows(spec, entity_ids)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile:
            meanwhile()
        return found


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("cache", ["local", "redis"])
def test_a_slow_cache_fill_never_replaces_a_newer_row(serving_rt, clock, cache):
    if cache == "redis" and not REDIS_URL:
        pytest.skip("Redis tests need MLOPS_TEST_REDIS_URL")
    rt, spec = serving_rt, JOBS["churn"]
    eid = a_customer(rt)
    newer = NOW + STEP

    def refresh_and_read() -> None:
        clock.set(newer)
        ingest.refresh(rt, "churn")
        assert features.row(spec, eid).computed_at == newer  # the second reader

    online = ReadsBeforeARefresh(rt.store, clock, refresh_and_read)
    features = FeatureCache(
        online,
        clock,
        local_seconds=60 if cache == "local" else 0,
        redis_url=REDIS_URL if cache == "redis" else None,
        namespace=f"test:{uuid.uuid4().hex}",
    )
    try:
        assert features.row(spec, eid).computed_at == NOW  # the first reader, read before
        # Every later read, whoever made it, gets the newer row, not the first reader's.
        assert features.row(spec, eid).computed_at == newer
        assert features.redis_state in ("off", "up")
    finally:
        features.clear()
        features.close()
        online.close()
