"""The bundled marketplace repository, loaded once for tests that name its jobs directly."""

from __future__ import annotations

import sys
from pathlib import Path

from mlops import repository

REPO = repository.load(repository.bundled())
JOBS = REPO.jobs
# The repository's heuristics.py, as the loader imported it.
HEURISTICS = sys.modules[JOBS["churn"].heuristic.function.__module__]


def copy_example(tmp_path: Path) -> Path:
    """A fresh copy of the bundled example (``mlops init``) to edit."""
    from mlops.repository.scaffold import init

    return init(tmp_path / "repo").path


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in the file by ``new``; ``old`` must be there."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
