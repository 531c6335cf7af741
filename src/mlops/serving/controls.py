"""What a replica re-reads on an interval: the flags, the trips, the version of each job's
online values, and what the repository's serving extension holds (see ``watch``). The last
values read stay in force while the database is unreachable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from mlops.errors import brief
from mlops.serving import flags, trips
from mlops.store import online

log = logging.getLogger("mlops.serving")


class Controls:
    def __init__(self, store: Engine, jobs: Sequence[str]) -> None:
        self.store, self.jobs = store, tuple(jobs)
        self.flags: dict[str, flags.Flag] = {n: flags.Flag(n, True) for n in flags.names(jobs)}
        self.trips: dict[str, list[trips.Trip]] = {}
        self.feature_versions: dict[str, int] = {}  # see ``online.versions``
        self.problems: dict[str, str] = {}

    def refresh(self) -> bool:
        """Re-read everything; True when a flag or a trip changed (cached answers must go)."""
        changed = False
        try:
            new_flags, new_trips = flags.read(self.store, self.jobs), trips.active(self.store)
            with self.store.connect() as conn:
                self.feature_versions = online.versions(conn)
            changed = _state(new_flags, new_trips) != _state(self.flags, self.trips)
            self.flags, self.trips = new_flags, new_trips
            self.problems.pop("store", None)
        except Exception as exc:
            self._problem("store", exc)
        return changed

    def watch(self, what: str, refresh: Callable[[], object]) -> None:
        """Run ``refresh``; when it fails, the last values stay and /readyz says why."""
        try:
            refresh()
            self.problems.pop(what, None)
        except Exception as exc:
            self._problem(what, exc)

    def _problem(self, what: str, exc: Exception) -> None:
        problem = brief(exc)  # shown by /readyz
        if what not in self.problems:
            log.warning(
                f"cannot read the {what}; keeping the last values", extra={"error": problem}
            )
        self.problems[what] = problem


def _state(f: dict[str, flags.Flag], t: dict[str, list[trips.Trip]]) -> tuple:
    return (
        {name: flag.enabled for name, flag in f.items()},
        {job: [trip.trip_id for trip in found] for job, found in t.items()},
    )


class Poller:
    """Runs ``task`` every ``interval`` seconds on a daemon thread of its own until stopped (one
    thread per task, so a registry that hangs never delays the kill switch)."""

    def __init__(self, name: str, interval: float, task: Callable[[], object]) -> None:
        self.name, self.interval, self.task = name, interval, task
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.task()
            except Exception:  # a poll must never kill the poller
                log.exception("poll task failed", extra={"poller": self.name})
