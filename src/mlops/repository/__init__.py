"""Feature repositories: the folder a team owns that declares its jobs (features, view and
label SQL, schedules, heuristics); the engine reads jobs from here only."""

from mlops.repository.loader import JOB_OVERRIDES, RepositoryInvalid, load
from mlops.repository.python import bundled
from mlops.repository.repo import Repository

__all__ = ["JOB_OVERRIDES", "Repository", "RepositoryInvalid", "bundled", "load"]
