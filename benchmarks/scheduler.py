"""Built-in scheduler: what its own bookkeeping costs, and how late it fires on a real clock.

    python benchmarks/scheduler.py [--database-url URL] [--seconds N]

- idle tick: ``tick()`` with the production schedule (8 cron tasks) and nothing due.
- lease: one acquire plus one release of a free lease (two committed transactions).
- simulated day: the production schedule through 24 h of a FrozenClock, ticking every 97 s,
  with no-op task actions (915 attempts), so the time per attempt is the scheduler's own
  overhead (lease, run rows, a worker thread) on this database.
- firing delay: ``run()`` on the system clock with one task every second for --seconds; the
  delay is measured in the task from its slot to the moment it runs (sub-second).

On PostgreSQL it works in a schema of its own (bench_scheduler), recreated on every run.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from common import parser, percentiles, write
from mlops.clock import FrozenClock, SystemClock
from mlops.db import migrate
from mlops.runtime import Runtime
from mlops.scheduling import leases
from mlops.scheduling.scheduler import Scheduler
from mlops.scheduling.tasks import Schedule, Task, build
from mlops.settings import Settings

SCHEMA = "bench_scheduler"
DAY = datetime(2026, 6, 1)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=int, default=20)
    args = p.parse_args()
    rt = _runtime(args)
    figures = {}

    schedule = build(rt.settings, rt.repo)
    noop = Schedule(tuple(dataclasses.replace(t, action=_noop) for t in schedule.tasks))
    sched = Scheduler(rt, noop, owner="bench-idle")
    rt.clock.set(DAY + timedelta(minutes=1))
    sched.tick(wait=True)  # first start: runs each task's latest slot
    samples = []
    for i in range(500):
        rt.clock.set(DAY + timedelta(minutes=1, seconds=i % 50))  # nothing due in this minute
        began = time.perf_counter()
        assert sched.tick() == []
        samples.append((time.perf_counter() - began) * 1000)
    figures["idle_tick"] = percentiles(samples)

    samples = []
    for i in range(300):
        began = time.perf_counter()
        leases.acquire(rt.store, f"bench-{i}", "bench", DAY)
        leases.release(rt.store, f"bench-{i}", "bench")
        samples.append((time.perf_counter() - began) * 1000)
    figures["lease_acquire_release"] = percentiles(samples)

    _clear(rt)
    sched = Scheduler(rt, noop, owner="bench-day")
    rt.clock.set(DAY)
    attempts = 0
    began = time.perf_counter()
    while rt.clock.now() < DAY + timedelta(days=1):
        attempts += len(sched.tick(wait=True))
        rt.clock.advance(timedelta(seconds=97))
    seconds = time.perf_counter() - began
    figures["simulated_day"] = {
        "attempts": attempts,
        "seconds": round(seconds, 2),
        "ms_per_attempt": round(seconds / attempts * 1000, 2),
    }

    _clear(rt)
    live = Runtime(settings=rt.settings, clock=SystemClock())
    delays: list[float] = []

    def every_second(rt, slot):
        delays.append((datetime.now(UTC).replace(tzinfo=None) - slot).total_seconds() * 1000)

    task = Task("tick", "every second", ("true",), every_second, cron="* * * * * *")
    runner = Scheduler(live, Schedule((task,)), owner="bench-live")
    thread = threading.Thread(target=runner.run, kwargs={"handle_signals": False})
    thread.start()
    time.sleep(args.seconds)
    runner.stop()
    thread.join(30)
    live.close()
    figures["firing_delay"] = {"runs": len(delays), **percentiles(delays)}
    write("scheduler", rt, figures)


def _noop(rt, slot) -> None:
    return None


def _runtime(args) -> Runtime:
    url = args.database_url
    if url:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        admin.dispose()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='mlops-bench-sched-')) / 'store.db'}"
    rt = Runtime(settings=Settings(database_url=url), clock=FrozenClock(DAY))
    migrate.upgrade(rt.store)
    return rt


def _clear(rt: Runtime) -> None:
    from mlops.db.schema import scheduler_leases, scheduler_runs

    with rt.store.begin() as conn:
        conn.execute(scheduler_runs.delete())
        conn.execute(scheduler_leases.delete())


if __name__ == "__main__":
    main()
