"""Champion models in memory: loaded by alias at start as native LightGBM boosters, and
replaced when the registry's ``champion`` alias moves (promotion or rollback)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mlops.clock import Clock
from mlops.errors import brief
from mlops.settings import Settings
from mlops.training import split_keys
from mlops.training.models import Model

log = logging.getLogger("mlops.serving")


@dataclass(frozen=True)
class Champion:
    job: str
    version: int
    model: Model
    loaded_at: datetime


class Champions:
    """The champion of each job, or why there is none."""

    def __init__(self, settings: Settings, clock: Clock, jobs: Sequence[str]) -> None:
        self.settings, self.clock, self.jobs = settings, clock, tuple(jobs)
        self._loaded: dict[str, Champion] = {}
        self.problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, job: str) -> Champion | None:
        return self._loaded.get(job)

    def versions(self) -> dict[str, int | None]:
        """Version served per job (None: heuristics only)."""
        return {job: (c.version if (c := self._loaded.get(job)) else None) for job in self.jobs}

    def refresh(self) -> list[str]:
        """Ask the registry where each job's champion alias points and load what moved.
        Returns one line per change. A registry that cannot be read, or a version that cannot
        be loaded, keeps what is loaded; ``problems`` says which and why."""
        from mlops.training import tracking_artifacts, tracking_client, tracking_versions

        changes: list[str] = []
        with self._lock:  # one refresh at a time: the poller and an admin reload may race
            gone = tracking_client.missing_store(self.settings)
            for job in self.jobs:
                current = self._loaded.get(job)
                serving = f"; serving v{current.version}" if current else ""
                try:
                    if gone is not None:
                        # Readers report a missing SQLite store as "nothing registered": for
                        # a replica that has champions loaded it is a store gone missing.
                        raise FileNotFoundError(f"no MLflow store at {gone}")
                    wanted = tracking_versions.champion_version(self.settings, job)
                except Exception as exc:  # MLflow down or its store unreadable: keep serving
                    self._problem(job, f"registry unreadable: {brief(exc)}{serving}")
                    continue
                if wanted is None:
                    self.problems[job] = f"no {tracking_versions.CHAMPION!r} alias in the registry"
                    if current is not None:
                        del self._loaded[job]
                        changes.append(f"{job}: champion v{current.version} unloaded")
                    continue
                if current is None or current.version != wanted:
                    try:
                        model, version = tracking_artifacts.load_native(self.settings, job, wanted)
                    except Exception as exc:  # a corrupt or missing artifact: keep the last one
                        self._problem(
                            job, f"champion v{wanted} cannot be loaded: {brief(exc)}{serving}"
                        )
                        continue
                    split_keys.split_points(model)  # read here, not by the first request
                    self._loaded[job] = Champion(job, version, model, self.clock.now())
                    before = f"v{current.version}" if current else "none"
                    changes.append(f"{job}: champion {before} -> v{version}")
                self.problems.pop(job, None)
        for change in changes:
            log.info("champion changed", extra={"change": change})
        return changes

    def _problem(self, job: str, problem: str) -> None:
        if self.problems.get(job) != problem:  # once per new problem, not once per poll
            log.warning("champion refresh failed", extra={"job": job, "error": problem})
        self.problems[job] = problem
