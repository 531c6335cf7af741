"""The bundled marketplace repository, loaded once for tests that name its jobs directly."""

from __future__ import annotations

import sys

from mlops import repository

REPO = repository.load(repository.bundled())
JOBS = REPO.jobs
# The repository's heuristics.py, as the loader imported it.
HEURISTICS = sys.modules[JOBS["churn"].heuristic.function.__module__]
