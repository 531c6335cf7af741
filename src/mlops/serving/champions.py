"""Champion models in memory: loaded by alias at start as native LightGBM boosters, and
replaced when the registry's ``champion`` alias moves (promotion or rollback)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from mlops.clock import Clock
from mlops.settings import Settings
from mlops.specs.features import JOBS
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

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self._loaded: dict[str, Champion] = {}
        self.problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, job: str) -> Champion | None:
        return self._loaded.get(job)

    def versions(self) -> dict[str, int | None]:
        """Version served per job (None: heuristics only)."""
        return {job: (c.version if (c := self._loaded.get(job)) else None) for job in JOBS}

    def refresh(self) -> list[str]:
        """Ask the registry where each job's champion alias points and load what moved.
        Returns one line per change. A registry that cannot be read keeps what is loaded."""
        from mlops.training import tracking

        changes: list[str] = []
        with self._lock:  # one refresh at a time: the poller and an admin reload may race
            for job in JOBS:
                current = self._loaded.get(job)
                try:
                    wanted = tracking.champion_version(self.settings, job)
                    if wanted is None:
                        self.problems[job] = f"no {tracking.CHAMPION!r} alias in the registry"
                        if current is not None:
                            del self._loaded[job]
                            changes.append(f"{job}: champion v{current.version} unloaded")
                        continue
                    if current is None or current.version != wanted:
                        model, version = tracking.load_native(self.settings, job, wanted)
                        self._loaded[job] = Champion(job, version, model, self.clock.now())
                        before = f"v{current.version}" if current else "none"
                        changes.append(f"{job}: champion {before} -> v{version}")
                    self.problems.pop(job, None)
                except Exception as exc:  # MLflow down or a broken artifact: keep serving
                    self.problems[job] = f"registry unreadable: {exc}"
                    log.warning("champion refresh failed", extra={"job": job, "error": str(exc)})
        for change in changes:
            log.info("champion changed", extra={"change": change})
        return changes
