"""``mlops init DIR``: a new feature repository, a copy of the bundled example to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops.errors import InputError
from mlops.repository.loader import load
from mlops.repository.python import bundled
from mlops.repository.repo import Repository


def init(target: Path, *, example: str = "marketplace") -> Repository:
    """Copy the bundled ``example`` repository to ``target`` (absent or empty) and load it."""
    target = Path(target).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(
            f"{target} already exists and is not an empty folder",
            "choose a new folder, or edit the repository that is there",
        )
    source = bundled(example)
    shutil.copytree(
        source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    return load(target)
