"""The built-in scheduler for one machine (``mlops scheduler run``), safe to run on several.

The core is a step function driven by the runtime's clock: ``tick()`` looks at
``rt.clock.now()``, collects the attempts that ended, starts what is due, and returns what it
did. ``run()`` only repeats ticks and sleeps until the next due time in short slices, so tests
drive a whole simulated day with a FrozenClock and no real waiting.

Rules, per root task (a task with a cron) and the chain that follows it:
- Due when its latest cron slot at or before now is later than the latest slot any scheduler
  started it for. After downtime that is the latest missed slot only: a missed window runs
  once. A task never run before counts its latest slot as missed (like Airflow with
  ``catchup=False`` when a DAG is switched on).
- It runs only while holding its lease in the database, renewed as it works, so two scheduler
  processes, on one machine or two, never run the same task at once nor the same slot twice.
- Each attempt runs on a worker thread and is recorded in ``ml_scheduler_runs``; a failure is
  retried after an exponential backoff up to the task's limit. A follower runs after the task
  before it succeeded (or, with ``when="done"``, whatever happened), else it is recorded as
  skipped.
- An ingestion whose job another run holds (a long backfill, started by hand) is recorded
  ``skipped`` ("skipped: job ... is busy: a backfill (run N, ...) holds it"): not a failure,
  not retried, and its followers that need success are skipped too; the next slot runs.
- An attempt past its timeout is recorded ``timed_out``; a thread cannot be killed, so it keeps
  the lease and nothing overlaps it until it ends.
- SIGTERM/SIGINT: start nothing more, let running attempts finish, release the leases.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from mlops.runtime import Runtime
from mlops.scheduling import history, leases
from mlops.scheduling.attempts import Attempt, ChainRun, Worker, log_extra, work
from mlops.scheduling.tasks import Schedule, Task, human, latest_slot, next_slots

log = logging.getLogger("mlops.scheduler")

# How often the holder pushes its leases' expiry forward while it works (clock time, the same
# clock expiry is judged by).
RENEW_EVERY = leases.LEASE / 4
# After finding a task's lease held by another scheduler, look again this much later.
BUSY_RECHECK = timedelta(seconds=10)
# The loop outlives a database that is briefly away: it logs, waits this long, tries again.
DATABASE_RETRY_SECONDS = 5.0


def default_owner() -> str:
    """A name unique to this scheduler process: host, pid and a random suffix."""
    return leases.new_owner()


class Scheduler:
    """Runs a Schedule's tasks on their crons; see the module docstring for the rules."""

    def __init__(
        self,
        rt: Runtime,
        schedule: Schedule,
        *,
        owner: str | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        self.rt = rt
        self.schedule = schedule
        self.owner = owner or default_owner()
        self.on_attempt = on_attempt or (lambda attempt: None)
        self._chains: dict[str, ChainRun] = {}
        self._last: dict[str, datetime | None] = {}
        self._busy_until: dict[str, datetime] = {}
        self._watch: set[str] = set()
        # ``run(once=True)``: slots after this instant are left to the next run (a minute
        # turning while the due work runs must not start another slot).
        self._slots_until: datetime | None = None
        self._slots: dict[str, tuple[datetime, datetime]] = {}
        self._stop = threading.Event()
        self._wakeup = threading.Event()

    # --- the step function -------------------------------------------------------------

    def tick(self, *, wait: bool = False) -> list[Attempt]:
        """Do what is due at ``rt.clock.now()``: collect ended attempts, start due ones.

        With ``wait``, keep going until nothing more can happen at this instant (attempts
        ended; retries wait for a later time). Returns the attempts started or ended.
        """
        did: list[Attempt] = []
        while True:
            now = self.rt.clock.now()
            self._collect(now, did)
            self._renew_leases(now)
            if not self._stop.is_set():
                self._advance(now, did)
                self._start_due(now, did)
            working = any(c.worker for c in self._chains.values())
            if not wait or (not working and not self._startable(self.rt.clock.now())):
                return _unique(did)
            self._wakeup.wait(0.05)
            self._wakeup.clear()

    def _collect(self, now: datetime, did: list[Attempt]) -> None:
        for name, chain in list(self._chains.items()):
            worker = chain.worker
            if worker is None:
                continue
            if not worker.done:
                limit = chain.step.timeout.total_seconds()
                if not worker.timed_out and time.monotonic() - worker.began > limit:
                    worker.timed_out = True
                    message = f"still running after its timeout of {human(chain.step.timeout)}"
                    history.mark_timed_out(self.rt.store, worker.attempt.run_id, message)
                    worker.attempt.status, worker.attempt.error = history.TIMED_OUT, message
                    log.warning("%s timed out", chain.step.name, extra=log_extra(worker.attempt))
                    did.append(worker.attempt)
                    self.on_attempt(worker.attempt)
                continue
            chain.worker = None
            attempt = worker.attempt
            did.append(attempt)
            self.on_attempt(attempt)
            if attempt.status == history.SUCCEEDED:
                self._next_step(chain, ok=True, now=now, did=did)
            elif attempt.status == history.SKIPPED:  # another run holds the job: no retry
                self._next_step(chain, ok=False, now=now, did=did)
            elif not worker.timed_out and chain.attempt <= chain.step.retries:
                chain.not_before = now + chain.step.backoff(chain.attempt)
                chain.attempt += 1
            else:
                self._next_step(chain, ok=False, now=now, did=did)
            if chain.index >= len(chain.steps):
                self._finish_chain(name, chain)

    def _next_step(self, chain: ChainRun, *, ok: bool, now: datetime, did: list) -> None:
        """Move past the current step; record followers that may not run as skipped."""
        chain.index += 1
        chain.attempt, chain.not_before = 1, now
        while chain.index < len(chain.steps) and not ok and chain.step.when == "success":
            before = chain.steps[chain.index - 1].name
            skipped = self._record_now(chain, history.SKIPPED, f"{before} did not succeed")
            did.append(skipped)
            self.on_attempt(skipped)
            chain.index += 1

    def _advance(self, now: datetime, did: list[Attempt]) -> None:
        for name, chain in list(self._chains.items()):
            if not chain.ready(now):
                continue
            if chain.lease_lost:
                # Another scheduler took the slot over and runs the whole chain: a step or
                # retry started here would run twice.
                log.error("%s: %s not run (lease lost)", name, chain.step.name)
                self._finish_chain(name, chain)
                continue
            did.append(self._launch(chain, now))

    def _startable(self, now: datetime) -> bool:
        """Whether a chain's next step could start at ``now`` (roots are looked at anyway)."""
        return not self._stop.is_set() and any(c.ready(now) for c in self._chains.values())

    def _start_due(self, now: datetime, did: list[Attempt]) -> None:
        for root in self.schedule.roots:
            if root.name in self._chains or now < self._busy_until.get(root.name, now):
                continue
            slot = self._slot(root, now)
            if self._slots_until is not None and slot > self._slots_until:
                continue
            if not self._due(root, slot, now):
                continue
            if not leases.acquire(self.rt.store, root.name, self.owner, now):
                self._busy_until[root.name] = now + BUSY_RECHECK
                continue
            # Someone may have finished this slot between our look and our lease: look again.
            # A run still marked running while we hold the lease belongs to a dead scheduler.
            last, status = history.last_slot(self.rt.store, root.name)
            if last is not None and last >= slot and status != history.RUNNING:
                self._last[root.name] = last
                leases.release(self.rt.store, root.name, self.owner)
                continue
            steps = self.schedule.chain(root)
            history.abandon(self.rt.store, [t.name for t in steps], now)
            self._last[root.name] = slot
            chain = ChainRun(steps=steps, scheduled_for=slot, renewed=now)
            self._chains[root.name] = chain
            did.append(self._launch(chain, now))

    def _slot(self, root: Task, now: datetime) -> datetime:
        """The root's latest slot at ``now``; croniter (~1 ms a call) only when it changed."""
        cached = self._slots.get(root.name)
        if cached is None or not cached[0] <= now < cached[1]:
            assert root.cron is not None  # a root is a task with a schedule
            slot = latest_slot(root.cron, now)
            cached = self._slots[root.name] = (slot, next_slots(root.cron, slot, 1)[0])
        return cached[0]

    def _due(self, root: Task, slot: datetime, now: datetime) -> bool:
        """Whether ``slot`` is still to run; asks the database only when memory says maybe."""
        known = self._last.get(root.name)
        if known is not None and known >= slot and root.name not in self._watch:
            return False
        last, status = history.last_slot(self.rt.store, root.name)
        self._last[root.name] = last
        self._watch.discard(root.name)
        if last is None or last < slot:
            return True
        if status != history.RUNNING:
            return False
        holder = leases.holder(self.rt.store, root.name)
        if holder is not None and holder["expires_at"] > now:
            # Another scheduler is on it; keep an eye on it in case it dies mid-run.
            self._watch.add(root.name)
            self._busy_until[root.name] = now + BUSY_RECHECK
            return False
        return True  # its scheduler died mid-run: the slot is still to do

    def _launch(self, chain: ChainRun, now: datetime) -> Attempt:
        task = chain.step
        run_id = history.start(
            self.rt.store,
            task=task.name,
            scheduled_for=chain.scheduled_for,
            attempt=chain.attempt,
            owner=self.owner,
            started_at=now,
        )
        attempt = Attempt(task.name, chain.scheduled_for, chain.attempt, now, run_id)
        worker = Worker(attempt, time.monotonic())
        chain.worker = worker
        log.info("%s started", task.name, extra=log_extra(attempt))
        self.on_attempt(attempt)
        threading.Thread(
            target=work,
            args=(self.rt, task, worker, self._wakeup),
            name=f"mlops-{task.slug}",
            daemon=True,
        ).start()
        return attempt

    def _record_now(self, chain: ChainRun, status: str, error: str) -> Attempt:
        now = self.rt.clock.now()
        run_id = history.start(
            self.rt.store,
            task=chain.step.name,
            scheduled_for=chain.scheduled_for,
            attempt=1,
            owner=self.owner,
            started_at=now,
            status=status,
            error=error,
        )
        return Attempt(
            chain.step.name, chain.scheduled_for, 1, now, run_id, status, now, error=error
        )

    def _renew_leases(self, now: datetime) -> None:
        for chain in self._chains.values():
            if now - chain.renewed < RENEW_EVERY:
                continue
            chain.renewed = now
            if not leases.renew(self.rt.store, chain.root.name, self.owner, now):
                if not chain.lease_lost:
                    log.error("lease of %s lost while running it", chain.root.name)
                chain.lease_lost = True

    def _finish_chain(self, name: str, chain: ChainRun) -> None:
        del self._chains[name]
        leases.release(self.rt.store, name, self.owner)

    # --- the loop ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a chain is in progress (running, or waiting to retry)."""
        return bool(self._chains)

    def stop(self) -> None:
        """Start nothing more; ``run`` returns once running attempts end."""
        self._stop.set()
        self._wakeup.set()

    def next_wake(self) -> datetime:
        """The next time something may be due: a root's next slot, a retry, a busy lease, or
        the renewal of a lease we hold (a long run must not let it lapse between slots)."""
        now = self.rt.clock.now()
        times = []
        for root in self.schedule.roots:
            self._slot(root, now)
            times.append(self._slots[root.name][1])
        times += [c.not_before for c in self._chains.values() if c.worker is None and c.not_before]
        times += [c.renewed + RENEW_EVERY for c in self._chains.values()]
        times += [t for t in self._busy_until.values() if t > now]
        return min(times)

    def run(
        self,
        *,
        once: bool = False,
        slice_seconds: float = 0.1,
        handle_signals: bool = True,
    ) -> None:
        """Tick until stopped (SIGTERM/SIGINT or ``stop()``); ``once``: until idle.

        On stop, running attempts finish and are recorded, retries still waiting are
        dropped, and every lease is released.
        """
        previous = self._install_signals() if handle_signals else {}
        if once:
            self._slots_until = self.rt.clock.now()
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except DBAPIError as exc:
                    # Every step is recorded before it is acted on, so the next tick picks up
                    # where this one stopped; a lease taken meanwhile lapses if we stay away.
                    log.error("database error, retrying: %s", exc.orig or exc)
                    self._stop.wait(DATABASE_RETRY_SECONDS)
                    continue
                if once and not self.busy:
                    break
                self._sleep_until(self.next_wake(), slice_seconds)
        finally:
            try:
                self._drain(slice_seconds)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _sleep_until(self, wake: datetime, slice_seconds: float) -> None:
        while not self._stop.is_set() and self.rt.clock.now() < wake:
            if self._wakeup.wait(slice_seconds):
                self._wakeup.clear()
                if any(c.worker and c.worker.done for c in self._chains.values()):
                    return

    def _drain(self, slice_seconds: float) -> None:
        """Let running attempts end (renewing their leases), then release every lease."""
        self._stop.set()
        while any(c.worker for c in self._chains.values()):
            self.tick()
            self._wakeup.wait(slice_seconds)
            self._wakeup.clear()
        for name, chain in list(self._chains.items()):
            log.info("%s: %s not run (stopping)", name, chain.step.name)
            self._finish_chain(name, chain)

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _on_signal(self, signum, frame) -> None:
        if self._stop.is_set():  # a second signal: stop waiting for the running attempts
            raise KeyboardInterrupt
        log.info("signal %s: finishing the running tasks, then stopping", signum)
        self.stop()


def _unique(attempts: list[Attempt]) -> list[Attempt]:
    """An attempt that started and ended within one ``tick`` is listed once, where it began."""
    seen, out = set(), []
    for attempt in attempts:
        if id(attempt) not in seen:
            seen.add(id(attempt))
            out.append(attempt)
    return out
