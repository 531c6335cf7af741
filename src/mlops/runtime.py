"""What a command or a server holds for its lifetime: settings, clock, the feature repository,
engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from mlops.clock import Clock, SystemClock
from mlops.db.engine import make_engine
from mlops.settings import Settings

if TYPE_CHECKING:
    from mlops.repository import Repository


@dataclass
class Runtime:
    """Built once per process from the settings; the repository is loaded and engines are
    created on first use."""

    settings: Settings = field(default_factory=Settings)
    clock: Clock = field(default_factory=SystemClock)
    # Connections each engine may hold at once (SQLAlchemy's default, 5 + 10 overflow, when
    # unset); a server sizes it to its threads.
    pool_size: int | None = None

    @cached_property
    def repo(self) -> Repository:
        """The feature repository (``MLOPS_REPO``, default the bundled example)."""
        from mlops import repository

        s = self.settings
        overrides = {name: getattr(s, name) for name in repository.JOB_OVERRIDES}
        return repository.load(
            s.repo or repository.bundled(),
            heuristic_params=s.heuristic_params,
            job_overrides=overrides,
        )

    @cached_property
    def store(self) -> Engine:
        return make_engine(self.settings.store_url, **self._pool())

    @cached_property
    def warehouse(self) -> Engine:
        if self.settings.warehouse_db_url == self.settings.store_url:
            return self.store
        return make_engine(self.settings.warehouse_db_url, **self._pool())

    def _pool(self) -> dict:
        return {} if self.pool_size is None else {"pool_size": self.pool_size, "max_overflow": 5}

    def close(self) -> None:
        """Dispose of the engines that were opened."""
        for name in ("store", "warehouse"):
            engine = self.__dict__.pop(name, None)
            if engine is not None:
                engine.dispose()
