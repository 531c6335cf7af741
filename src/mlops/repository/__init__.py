"""Feature repositories: the folder a team owns that declares its jobs (features, view and
label SQL, schedules, heuristics); the engine reads jobs from here only."""

from mlops.repository.loader import RepositoryInvalid, load
from mlops.repository.python import bundled
from mlops.repository.repo import Repository

__all__ = ["Repository", "RepositoryInvalid", "bundled", "load"]
