"""The built-in scheduler on real storage (SQLite, and PostgreSQL when configured): a simulated
day driven by a FrozenClock, leases between schedulers, retries, timeouts, missed windows and
takeover after a crash. Task actions are replaced by recording functions (the library calls
they stand for are tested on their own)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from croniter import croniter
from sqlalchemy import insert, select

from mlops.clock import FrozenClock
from mlops.db.schema import scheduler_leases, scheduler_runs
from mlops.runtime import Runtime
from mlops.scheduling import history, leases
from mlops.scheduling.scheduler import Scheduler
from mlops.scheduling.tasks import Schedule, build
from tests.repo_support import JOBS

DAY = datetime(2026, 6, 1)  # a Monday and the first of a month: every task fires


class Recorder:
    """Stands in for every task action: records calls and how many ran at once per task."""

    def __init__(
        self,
        fail: set[str] | None = None,
        hold: threading.Event | None = None,
        pause: float = 0.001,
    ):
        self.calls: list[tuple[str, datetime, datetime]] = []
        self.fail = fail or set()
        self.hold = hold
        self.pause = pause
        self.active: Counter = Counter()
        self.most_at_once: Counter = Counter()
        self._lock = threading.Lock()

    def action(self, name: str):
        def run(rt, scheduled_for):
            with self._lock:
                self.calls.append((name, scheduled_for, rt.clock.now()))
                self.active[name] += 1
                self.most_at_once[name] = max(self.most_at_once[name], self.active[name])
            try:
                if self.hold is not None:
                    assert self.hold.wait(10), "test never released the held task"
                elif self.pause:
                    time.sleep(self.pause)  # long enough for a racing scheduler to overlap
                if name in self.fail:
                    raise RuntimeError(f"{name} broke")
                return "recorded"
            finally:
                with self._lock:
                    self.active[name] -= 1

        return run


def recorded(schedule: Schedule, recorder: Recorder, **changes) -> Schedule:
    return Schedule(
        tuple(
            dataclasses.replace(t, action=recorder.action(t.name), **changes.get(t.name, {}))
            for t in schedule.tasks
        )
    )


def recorded_chain(rt, recorder: Recorder, root: str, **changes) -> Schedule:
    """The schedule of one root task and its followers, with recorded actions."""
    schedule = recorded(build(rt.settings, rt.repo), recorder, **changes)
    return Schedule(tuple(schedule.chain(schedule.get(root))))


def rows(rt) -> list[dict]:
    with rt.store.connect() as conn:
        found = conn.execute(select(scheduler_runs).order_by(scheduler_runs.c.run_id)).mappings()
        return [dict(r) for r in found]


def lease_rows(rt) -> list[dict]:
    with rt.store.connect() as conn:
        return [dict(r) for r in conn.execute(select(scheduler_leases)).mappings()]


def seed_history(rt, task: str, slot: datetime) -> None:
    with rt.store.begin() as conn:
        conn.execute(
            insert(scheduler_runs).values(
                task=task,
                scheduled_for=slot,
                attempt=1,
                owner="earlier",
                started_at=slot,
                finished_at=slot,
                status=history.SUCCEEDED,
            )
        )


@pytest.fixture
def quick(migrated):
    """The migrated runtime; on PostgreSQL with commits that skip the disk flush (~9 ms each
    on this machine), which long simulations would otherwise spend most of their time on."""
    if migrated.store.dialect.name != "postgresql":
        yield migrated
        return
    url = migrated.settings.store_url.replace("options=", "options=-csynchronous_commit%3Doff%20")
    rt = Runtime(
        settings=migrated.settings.model_copy(update={"database_url": url}), clock=migrated.clock
    )
    yield rt
    rt.close()


def test_a_simulated_day_runs_every_slot_once_and_records_every_delay(quick):
    rt, clock = quick, quick.clock
    schedule = build(rt.settings, rt.repo)
    # Yesterday's last runs, as if the scheduler had been up: start-up catches nothing up.
    for root in schedule.roots:
        last = croniter(root.cron, DAY).get_prev(datetime)
        seed_history(rt, root.name, last)
    # One scheduler, nothing to overlap with: the ~900 actions return at once (each still
    # runs on the scheduler's worker thread, and tick(wait=True) still waits for it).
    recorder = Recorder(fail={"ingest:upsell"}, pause=0)
    schedule = recorded(
        schedule,
        recorder,
        **{"ingest:upsell": {"retries": 1, "retry_delay": timedelta(minutes=5)}},
    )
    scheduler = Scheduler(rt, schedule, owner="sim")
    clock.set(DAY)
    step = timedelta(seconds=97)  # off the minute grid: every run is a little late
    ticks = []
    while clock.now() < DAY + timedelta(days=1):
        ticks.append(clock.now())
        scheduler.tick(wait=True)
        clock.advance(step)

    def first_tick_at_or_after(when: datetime) -> datetime:
        return next(t for t in ticks if t >= when)

    runs = [r for r in rows(rt) if r["owner"] == "sim"]
    by_task = defaultdict(list)
    for r in runs:
        by_task[r["task"]].append(r)
    for root in schedule.roots:
        it = croniter(root.cron, DAY - timedelta(seconds=1))
        slots = []
        while (slot := it.get_next(datetime)) <= ticks[-1]:
            slots.append(slot)
        assert slots, root.name
        attempts = 2 if root.name == "ingest:upsell" else 1
        got = [r for r in by_task[root.name] if r["attempt"] == 1]
        assert [r["scheduled_for"] for r in got] == slots, root.name
        assert len(by_task[root.name]) == len(slots) * attempts
        for r in got:
            # The delay is exactly how long after its slot the first tick came.
            assert r["started_at"] == first_tick_at_or_after(r["scheduled_for"])
            assert r["started_at"] - r["scheduled_for"] < step
        for follower in schedule.chain(root)[1:]:
            assert sorted(r["scheduled_for"] for r in by_task[follower.name]) == slots

    # The failing refresh: retried once after 5 minutes, then given up; drift skipped (it
    # needs a successful refresh), ops still ran (it reports the failed ingestion).
    upsell = by_task["ingest:upsell"]
    assert Counter(r["status"] for r in upsell) == {"failed": 8}
    for first, second in zip(upsell[::2], upsell[1::2], strict=True):
        assert second["attempt"] == 2 and second["scheduled_for"] == first["scheduled_for"]
        assert second["started_at"] == first_tick_at_or_after(
            first["finished_at"] + timedelta(minutes=5)
        )
        assert "upsell broke" in second["error"]
    assert {r["status"] for r in by_task["monitor:drift:upsell"]} == {"skipped"}
    assert {r["status"] for r in by_task["monitor:ops:upsell"]} == {"succeeded"}
    assert {r["status"] for r in by_task["ingest:eta"]} == {"succeeded"}
    assert len(by_task["ingest:eta"]) == 288
    assert len(by_task["train:eta"]) == len(by_task["train:churn"]) == 1  # Monday, the 1st

    # The recorded calls are the runs: each task was called for each slot, in-process.
    calls = Counter((name, slot) for name, slot, _ in recorder.calls)
    ran = Counter((r["task"], r["scheduled_for"]) for r in runs if r["status"] != "skipped")
    assert calls == ran
    assert lease_rows(rt) == []  # every lease given back


def test_first_start_runs_each_tasks_latest_slot_once(migrated):
    rt, clock = migrated, migrated.clock
    recorder = Recorder()
    scheduler = Scheduler(rt, recorded(build(rt.settings, rt.repo), recorder), owner="new")
    clock.set(DAY + timedelta(hours=12, minutes=3))
    did = scheduler.tick(wait=True)
    roots = {a.task: a.scheduled_for for a in did if a.task.split(":")[0] in ("ingest", "train")}
    assert roots == {
        "ingest:churn": datetime(2026, 6, 1, 2, 0),
        "ingest:upsell": datetime(2026, 6, 1, 12, 0),
        "ingest:eta": datetime(2026, 6, 1, 12, 0),
        "train:churn": datetime(2026, 6, 1, 3, 0),
        "train:upsell": datetime(2026, 6, 1, 4, 0),
        "train:eta": datetime(2026, 6, 1, 5, 0),
        "ingest:ticket": datetime(2026, 6, 1, 2, 30),
        "train:ticket": datetime(2026, 6, 1, 3, 30),
    }
    assert len(recorder.calls) == 18  # every task once
    clock.advance(timedelta(minutes=1))
    assert scheduler.tick(wait=True) == []


def test_missed_windows_run_once_on_start_up(migrated):
    rt, clock = migrated, migrated.clock
    seed_history(rt, "ingest:eta", datetime(2026, 6, 1, 0, 0))
    recorder = Recorder()
    only_eta = recorded_chain(rt, recorder, "ingest:eta")
    clock.set(datetime(2026, 6, 1, 2, 3, 20))  # down for two hours: 24 slots missed
    attempts = Scheduler(rt, only_eta, owner="back").tick(wait=True)
    assert [(a.task, a.scheduled_for, a.delay) for a in attempts if a.task == "ingest:eta"] == [
        ("ingest:eta", datetime(2026, 6, 1, 2, 0), timedelta(minutes=3, seconds=20))
    ]
    assert len(recorder.calls) == 3  # ingest, drift, ops: once


def test_run_once_leaves_slots_that_come_while_it_runs_to_the_next_run(migrated):
    rt, clock = migrated, migrated.clock
    seed_history(rt, "ingest:eta", datetime(2026, 6, 1, 1, 55))
    clock.set(datetime(2026, 6, 1, 2, 4, 59))  # the 02:00 slot is due
    recorder = Recorder()
    schedule = recorded_chain(rt, recorder, "ingest:eta")
    action = schedule.get("ingest:eta").action

    def slow_refresh(rt, scheduled_for):
        clock.set(datetime(2026, 6, 1, 2, 5, 1))  # the next slot comes while this one runs
        return action(rt, scheduled_for)

    schedule = Schedule(
        tuple(
            dataclasses.replace(t, action=slow_refresh) if t.name == "ingest:eta" else t
            for t in schedule.tasks
        )
    )
    Scheduler(rt, schedule, owner="once").run(once=True, slice_seconds=0.01, handle_signals=False)
    assert [(n, s) for n, s, _ in recorder.calls if n == "ingest:eta"] == [
        ("ingest:eta", datetime(2026, 6, 1, 2, 0))
    ]


def test_retries_back_off_exponentially_then_give_up(migrated):
    rt, clock = migrated, migrated.clock
    recorder = Recorder(fail={"ingest:churn"})
    schedule = recorded_chain(rt, recorder, "ingest:churn")
    task = schedule.get("ingest:churn")
    assert task.retries == 3 and task.retry_delay == timedelta(minutes=5)
    seed_history(rt, "ingest:churn", datetime(2026, 5, 31, 2, 0))
    scheduler = Scheduler(rt, schedule, owner="r")
    start = datetime(2026, 6, 1, 2, 0)
    clock.set(start)
    assert [a.status for a in scheduler.tick(wait=True)] == ["failed"]
    # 5, 10, then 20 minutes after each failure; nothing in between.
    at = start
    for attempt, wait in ((2, 5), (3, 10), (4, 20)):
        clock.set(at + timedelta(minutes=wait) - timedelta(seconds=1))
        assert scheduler.tick(wait=True) == []
        assert lease_rows(rt)[0]["owner"] == "r"  # held while waiting to retry
        at = at + timedelta(minutes=wait)
        clock.set(at)
        did = scheduler.tick(wait=True)
        assert (did[0].task, did[0].attempt, did[0].status) == ("ingest:churn", attempt, "failed")
    # Given up: the follower that needs success is skipped, ops runs anyway.
    assert [(a.task, a.status) for a in did[1:]] == [
        ("monitor:drift:churn", "skipped"),
        ("monitor:ops:churn", "succeeded"),
    ]
    churn = [r for r in rows(rt) if r["task"] == "ingest:churn" and r["owner"] == "r"]
    assert [r["attempt"] for r in churn] == [1, 2, 3, 4]
    assert [r["started_at"] - start for r in churn] == [
        timedelta(0),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(minutes=35),
    ]
    assert all(r["status"] == "failed" and "churn broke" in r["error"] for r in churn)
    assert lease_rows(rt) == []
    clock.advance(timedelta(hours=1))
    assert scheduler.tick(wait=True) == []  # the slot is done with, failed


def test_a_retry_that_succeeds_lets_the_chain_go_on(migrated):
    rt, clock = migrated, migrated.clock
    attempts = []

    def flaky(rt, slot):
        attempts.append(slot)
        if len(attempts) == 1:
            raise ConnectionError("warehouse away")

    recorder = Recorder()
    schedule = recorded(build(rt.settings, rt.repo), recorder)
    chain = schedule.chain(schedule.get("ingest:eta"))
    schedule = Schedule((dataclasses.replace(chain[0], action=flaky), *chain[1:]))
    clock.set(datetime(2026, 6, 1, 0, 5))
    scheduler = Scheduler(rt, schedule, owner="f")
    assert [a.status for a in scheduler.tick(wait=True)] == ["failed"]
    clock.advance(timedelta(seconds=30))
    did = scheduler.tick(wait=True)
    assert [(a.task, a.attempt, a.status) for a in did] == [
        ("ingest:eta", 2, "succeeded"),
        ("monitor:drift:eta", 1, "succeeded"),
        ("monitor:ops:eta", 1, "succeeded"),
    ]


def test_a_run_past_its_timeout_is_recorded_and_never_overlapped(migrated):
    rt, clock = migrated, migrated.clock
    hold = threading.Event()
    recorder = Recorder(hold=hold)
    schedule = recorded_chain(
        rt, recorder, "ingest:eta", **{"ingest:eta": {"timeout": timedelta(seconds=0.2)}}
    )
    clock.set(datetime(2026, 6, 1, 0, 5))
    scheduler = Scheduler(rt, schedule, owner="t")
    started = scheduler.tick()
    assert [a.status for a in started] == ["running"]
    time.sleep(0.3)
    assert [a.status for a in scheduler.tick()] == ["timed_out"]
    assert rows(rt)[-1]["status"] == "timed_out"
    assert "still running after its timeout of 0.2 s" in rows(rt)[-1]["error"]
    # The next slot comes while it still runs: nothing starts, the lease stays ours.
    clock.advance(timedelta(minutes=5))
    assert scheduler.tick() == []
    other = Scheduler(rt, schedule, owner="other")
    assert other.tick() == []
    assert lease_rows(rt)[0]["owner"] == "t"
    hold.set()  # it ends at last: no retry after a timeout; drift skipped, ops runs
    did = scheduler.tick(wait=True)
    assert [(a.task, a.scheduled_for.minute, a.status) for a in did] == [
        ("ingest:eta", 5, "timed_out"),
        ("monitor:drift:eta", 5, "skipped"),
        ("monitor:ops:eta", 5, "succeeded"),
        # Then the slot that came meanwhile, once.
        ("ingest:eta", 10, "succeeded"),
        ("monitor:drift:eta", 10, "succeeded"),
        ("monitor:ops:eta", 10, "succeeded"),
    ]
    first = next(r for r in rows(rt) if r["task"] == "ingest:eta")
    assert first["status"] == "timed_out" and first["finished_at"] is not None
    assert recorder.most_at_once["ingest:eta"] == 1


def test_two_schedulers_never_run_a_task_twice_or_at_once(quick):
    """Two instances on one database, ticking in turn for hours: each slot runs once."""
    rt, clock = quick, quick.clock
    hold = threading.Event()
    recorder = Recorder(hold=hold)
    schedule = recorded_chain(rt, recorder, "ingest:eta")
    clock.set(datetime(2026, 6, 1, 0, 0))
    a, b = Scheduler(rt, schedule, owner="a"), Scheduler(rt, schedule, owner="b")
    assert [x.task for x in a.tick()] == ["ingest:eta"]
    assert b.tick() == []  # a holds the lease
    assert lease_rows(rt)[0]["owner"] == "a"
    hold.set()
    a.tick(wait=True)
    assert b.tick(wait=True) == []  # the slot is done: not run again
    recorder.hold = None
    for minute in range(5, 8 * 60, 5):
        clock.set(datetime(2026, 6, 1) + timedelta(minutes=minute, seconds=minute % 7))
        first, second = (a, b) if minute % 2 else (b, a)
        first.tick()
        second.tick()
        first.tick(wait=True)
        second.tick(wait=True)
    runs = [r for r in rows(rt) if r["task"] == "ingest:eta"]
    slots = Counter(r["scheduled_for"] for r in runs)
    assert len(slots) == 96 and set(slots.values()) == {1}
    assert {r["owner"] for r in runs} == {"a", "b"}
    assert recorder.most_at_once["ingest:eta"] == 1


def test_racing_schedulers_on_threads_run_each_slot_once(migrated):
    """Eight schedulers with eight owners tick at the same instant from eight threads."""
    rt, clock = migrated, migrated.clock
    recorder = Recorder()
    schedule = recorded(build(rt.settings, rt.repo), recorder)
    schedule = Schedule(
        tuple(t for t in schedule.tasks if t.name in ("ingest:eta", "monitor:guardrails"))
        + tuple(schedule.chain(schedule.get("ingest:eta"))[1:])
    )
    schedulers = [Scheduler(rt, schedule, owner=f"s{i}") for i in range(8)]
    for minute in range(0, 120, 5):
        clock.set(datetime(2026, 6, 1) + timedelta(minutes=minute))
        barrier = threading.Barrier(len(schedulers))
        errors = []

        def race(s, barrier=barrier, errors=errors):
            try:
                barrier.wait(5)
                s.tick(wait=True)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
    runs = rows(rt)
    per_slot = Counter((r["task"], r["scheduled_for"]) for r in runs)
    assert set(per_slot.values()) == {1}
    assert sum(1 for task, _ in per_slot if task == "ingest:eta") == 24
    # The first start catches up yesterday's 23:15, then 00:15 and 01:15.
    assert sum(1 for task, _ in per_slot if task == "monitor:guardrails") == 3
    assert max(recorder.most_at_once.values()) == 1
    assert lease_rows(rt) == []


def test_lease_race_has_exactly_one_winner(migrated):
    rt = migrated
    now = datetime(2026, 6, 1, 12, 0)
    assert leases.acquire(rt.store, "x", "old", now - timedelta(hours=1))  # long expired
    for round_ in range(5):
        barrier = threading.Barrier(8)
        wins = []

        def take(i, barrier=barrier, wins=wins, round_=round_, at=now):
            barrier.wait(5)
            if leases.acquire(rt.store, "x", f"r{round_}-{i}", at):
                wins.append(i)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(wins) == 1, wins
        assert lease_rows(rt)[0]["owner"] == f"r{round_}-{wins[0]}"
        now += timedelta(minutes=3)  # past the lease: next round takes it over


def test_an_expired_lease_is_taken_over(migrated):
    rt = migrated
    t0 = datetime(2026, 6, 1, 12, 0)
    assert leases.acquire(rt.store, "ingest:eta", "a", t0)
    assert leases.acquire(rt.store, "ingest:eta", "a", t0 + timedelta(minutes=1))  # renew
    assert lease_rows(rt)[0]["acquired_at"] == t0
    assert not leases.acquire(rt.store, "ingest:eta", "b", t0 + timedelta(minutes=2))
    assert leases.renew(rt.store, "ingest:eta", "a", t0 + timedelta(minutes=2))
    expiry = t0 + timedelta(minutes=2) + leases.LEASE
    assert not leases.acquire(rt.store, "ingest:eta", "b", expiry - timedelta(seconds=1))
    assert leases.acquire(rt.store, "ingest:eta", "b", expiry)
    row = lease_rows(rt)[0]
    assert (row["owner"], row["acquired_at"]) == ("b", expiry)
    assert not leases.renew(rt.store, "ingest:eta", "a", expiry)  # a learns it lost it
    assert not leases.release(rt.store, "ingest:eta", "a")
    assert leases.release(rt.store, "ingest:eta", "b")
    assert lease_rows(rt) == []


def test_a_dead_schedulers_run_is_abandoned_and_its_slot_run_again(migrated):
    rt, clock = migrated, migrated.clock
    slot = datetime(2026, 6, 1, 2, 0)
    recorder = Recorder()
    schedule = recorded_chain(rt, recorder, "ingest:churn")
    # A scheduler took the 02:00 slot and died mid-run: its row says running, its lease lives.
    history.start(
        rt.store, task="ingest:churn", scheduled_for=slot, attempt=1, owner="dead", started_at=slot
    )
    assert leases.acquire(rt.store, "ingest:churn", "dead", slot)
    clock.set(slot + timedelta(minutes=1))
    scheduler = Scheduler(rt, schedule, owner="alive")
    assert scheduler.tick(wait=True) == []  # its lease is still live: it may be working
    clock.set(slot + leases.LEASE)
    did = scheduler.tick(wait=True)
    assert [(a.task, a.scheduled_for, a.status) for a in did] == [
        ("ingest:churn", slot, "succeeded"),
        ("monitor:drift:churn", slot, "succeeded"),
        ("monitor:ops:churn", slot, "succeeded"),
    ]
    dead = [r for r in rows(rt) if r["owner"] == "dead"]
    assert dead[0]["status"] == "abandoned" and "stopped before it finished" in dead[0]["error"]
    assert lease_rows(rt) == []


def test_stop_lets_the_running_task_finish_and_releases_leases(migrated):
    rt, clock = migrated, migrated.clock
    hold = threading.Event()
    recorder = Recorder(hold=hold)
    schedule = recorded_chain(rt, recorder, "ingest:eta")
    clock.set(datetime(2026, 6, 1, 0, 5))
    scheduler = Scheduler(rt, schedule, owner="s")
    runner = threading.Thread(
        target=scheduler.run, kwargs={"slice_seconds": 0.01, "handle_signals": False}
    )
    runner.start()
    deadline = time.monotonic() + 5
    while not recorder.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    time.sleep(0.05)
    assert runner.is_alive()  # waiting for the running refresh
    hold.set()
    runner.join(5)
    assert not runner.is_alive()
    assert [(r["task"], r["status"]) for r in rows(rt)] == [("ingest:eta", "succeeded")]
    assert lease_rows(rt) == []  # followers not started after the stop; lease given back


def test_run_once_runs_what_is_due_then_returns(migrated):
    rt, clock = migrated, migrated.clock
    recorder = Recorder()
    schedule = recorded(build(rt.settings, rt.repo), recorder)
    clock.set(datetime(2026, 6, 1, 0, 5))
    Scheduler(rt, schedule, owner="o").run(once=True, handle_signals=False)
    assert len(recorder.calls) == len(schedule.tasks)
    assert {r["status"] for r in rows(rt)} == {"succeeded"}


def test_real_ingestion_as_a_scheduled_task(seeded):
    """The real ingest action: it records the slot, so ingestion runs measure the delay."""
    from mlops.db.schema import ingestion_runs

    rt, clock = seeded, seeded.clock
    schedule = build(rt.settings, rt.repo)
    schedule = Schedule((schedule.get("ingest:eta"),))
    slot = datetime(2026, 6, 1, 11, 55)
    clock.set(slot + timedelta(seconds=42))
    did = Scheduler(rt, schedule, owner="real").tick(wait=True)
    assert [(a.task, a.status) for a in did] == [("ingest:eta", "succeeded")], did[0].error
    assert "rows written" in did[0].summary
    with rt.store.connect() as conn:
        run = conn.execute(select(ingestion_runs)).mappings().one()
    assert run["scheduled_for"] == slot
    assert run["started_at"] - run["scheduled_for"] == timedelta(seconds=42)


def test_the_loop_sleeps_until_the_next_slot(migrated):
    rt, clock = migrated, migrated.clock
    schedule = build(rt.settings, rt.repo)
    for root in schedule.roots:
        seed_history(rt, root.name, croniter(root.cron, DAY).get_prev(datetime))
    clock.set(DAY + timedelta(minutes=1, seconds=10))
    scheduler = Scheduler(rt, schedule, owner="w")
    assert scheduler.next_wake() == DAY + timedelta(minutes=5)


@pytest.fixture
def other_runtime(settings):
    """A second runtime (own engines) on the same store, as a second process would have."""
    rt = Runtime(settings=settings, clock=FrozenClock(DAY))
    yield rt
    rt.close()


def test_schedulers_with_separate_engines_share_leases(migrated, other_runtime):
    recorder = Recorder(hold=threading.Event())
    schedule = recorded(build(migrated.settings, migrated.repo), recorder)
    schedule = Schedule((schedule.get("monitor:guardrails"),))
    migrated.clock.set(DAY)
    a = Scheduler(migrated, schedule, owner="a")
    b = Scheduler(other_runtime, schedule, owner="b")
    assert [x.task for x in a.tick()] == ["monitor:guardrails"]
    assert b.tick() == []
    recorder.hold.set()
    a.tick(wait=True)
    assert b.tick(wait=True) == []
    assert len(recorder.calls) == 1


def test_the_monitoring_actions_run_the_monitoring_library(seeded):
    """The in-process callables behind the monitor tasks, on a store with no champion yet."""
    from mlops.db.schema import monitor_results
    from mlops.scheduling import actions

    rt = seeded
    slot = rt.clock.now()
    assert actions.Ingest("eta")(rt, slot).endswith("rejected")
    assert actions.Drift("eta")(rt, slot).startswith("eta not checked (")
    assert actions.Ops()(rt, slot).startswith(f"{len(JOBS)} jobs checked")
    assert actions.Accuracy()(rt, slot).endswith("results written")
    assert [part.split()[0] for part in actions.Guardrails()(rt, slot).split("; ")] == [
        "churn",
        "upsell",
        "eta",
    ]
    with rt.store.connect() as conn:
        assert conn.execute(select(monitor_results)).first() is not None


def test_the_loop_outlives_a_database_error(migrated, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from mlops.scheduling import scheduler as scheduler_module

    rt, clock = migrated, migrated.clock
    real_start, failures = history.start, []

    def flaky_start(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError("INSERT ...", {}, ConnectionError("server closed"))
        return real_start(*args, **kwargs)

    monkeypatch.setattr(scheduler_module.history, "start", flaky_start)
    monkeypatch.setattr(scheduler_module, "DATABASE_RETRY_SECONDS", 0.01)
    recorder = Recorder()
    schedule = recorded_chain(rt, recorder, "ingest:eta")
    clock.set(datetime(2026, 6, 1, 0, 5))
    Scheduler(rt, schedule, owner="d").run(once=True, handle_signals=False)
    assert failures == [1]
    assert [(r["task"], r["status"]) for r in rows(rt)] == [
        ("ingest:eta", "succeeded"),
        ("monitor:drift:eta", "succeeded"),
        ("monitor:ops:eta", "succeeded"),
    ]
    assert lease_rows(rt) == []


def test_the_loop_renews_a_long_runs_lease_between_slots(migrated):
    """A run longer than the lease, with no other slot due meanwhile: the sleeping loop still
    wakes to renew, so a second scheduler never takes the slot over and runs it again."""
    rt, clock = migrated, migrated.clock
    hold = threading.Event()
    recorder = Recorder(hold=hold)
    schedule = recorded(build(rt.settings, rt.repo), recorder)
    schedule = Schedule((schedule.get("monitor:accuracy"),))  # daily: nothing else wakes it
    clock.set(DAY + timedelta(hours=6, minutes=30))
    a = Scheduler(rt, schedule, owner="a")
    runner = threading.Thread(
        target=a.run, kwargs={"slice_seconds": 0.005, "handle_signals": False}
    )
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while not recorder.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        b = Scheduler(rt, schedule, owner="b")
        for _ in range(3 * int(leases.LEASE / timedelta(seconds=10))):
            clock.advance(timedelta(seconds=10))
            time.sleep(0.03)  # the loop's slices notice the new time
        assert b.tick() == []
        assert lease_rows(rt)[0]["owner"] == "a"
        assert lease_rows(rt)[0]["expires_at"] > clock.now()
    finally:
        a.stop()
        hold.set()
        runner.join(10)
    assert len(recorder.calls) == 1


def test_a_chain_whose_lease_was_taken_over_starts_nothing_more(migrated):
    """A scheduler that stalled past its lease learns on renewal that another took the slot
    over (and runs the whole chain): it lets its running step end but starts no follower."""
    rt, clock = migrated, migrated.clock
    hold = threading.Event()
    recorder = Recorder(hold=hold)
    schedule = recorded_chain(rt, recorder, "ingest:churn")
    slot = datetime(2026, 6, 1, 2, 0)
    clock.set(slot)
    a = Scheduler(rt, schedule, owner="a")
    assert [x.task for x in a.tick()] == ["ingest:churn"]
    clock.advance(leases.LEASE)  # a stalled: no renewal since it started
    recorder.hold = None  # b's own attempts do not wait
    b = Scheduler(rt, schedule, owner="b")
    assert [(x.task, x.status) for x in b.tick(wait=True)] == [
        ("ingest:churn", "succeeded"),
        ("monitor:drift:churn", "succeeded"),
        ("monitor:ops:churn", "succeeded"),
    ]
    hold.set()
    assert [(x.task, x.status) for x in a.tick(wait=True)] == [("ingest:churn", "succeeded")]
    ran = Counter(name for name, _, _ in recorder.calls)
    assert ran == {"ingest:churn": 2, "monitor:drift:churn": 1, "monitor:ops:churn": 1}
    assert lease_rows(rt) == []
