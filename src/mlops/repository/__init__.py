"""Feature repositories: the folder a team owns that declares its jobs (features, view and
label SQL, schedules, heuristics); the engine reads jobs from here only."""

from mlops.repository.loader import RepositoryInvalid, bundled, load
from mlops.repository.repo import Repository

__all__ = ["Repository", "RepositoryInvalid", "bundled", "load"]
