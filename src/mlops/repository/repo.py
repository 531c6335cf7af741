"""A loaded feature repository: its jobs and the SQL files they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from types import ModuleType

from mlops.errors import ConfigError, InputError
from mlops.repository.python import import_module
from mlops.specs.features import ALL, JobSpec


@dataclass(frozen=True)
class Repository:
    """The jobs a repository declares, in file order, and where its files are."""

    path: Path
    name: str
    jobs: dict[str, JobSpec]
    # The as_of_grid's window columns: name -> what is subtracted from as_of (negative for
    # until_ windows, which look past it).
    windows: dict[str, timedelta]
    description: str = ""
    serving: str | None = None  # module adding the repository's own endpoints
    warehouse: str | None = None  # module with its warehouse contract and generator
    _sql: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def job(self, name: str) -> JobSpec:
        """The job of that name, or an InputError listing the declared ones."""
        try:
            return self.jobs[name]
        except KeyError:
            raise InputError(
                f"unknown job {name!r}",
                f"choose one of: {', '.join(self.jobs)}, {ALL} (declared in {self.path / 'jobs'})",
            ) from None

    def resolve(self, name: str | None) -> list[JobSpec]:
        """``all`` (or None) expands to every job; any other name to that one job."""
        return list(self.jobs.values()) if name in (None, ALL) else [self.job(name)]

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(self.jobs)

    def module(self, name: str) -> ModuleType:
        """The repository's ``<name>.py``, imported (once) with its sibling files."""
        problems: list[str] = []
        module = import_module(self.path, name, problems)
        if module is None:
            raise ConfigError(
                f"the feature repository at {self.path}: {problems[0]}",
                "fix the file, then run the command again",
            )
        return module

    def sql(self, name: str) -> str:
        """The text of ``sql/<name>.sql``, read once."""
        text = self._sql.get(name)
        if text is None:
            path = self.path / "sql" / f"{name}.sql"
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {path}: {exc.strerror or exc}",
                    "restore the file or fix the name that points at it in the repository",
                ) from None
            self._sql[name] = text
        return text
