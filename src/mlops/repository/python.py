"""The Python files of a feature repository (its heuristics, and whatever else the repository
names), imported as one package so they can import each other relatively."""

from __future__ import annotations

import hashlib
import importlib
import sys
import traceback
from importlib import resources
from pathlib import Path
from types import ModuleType


def bundled(name: str = "marketplace") -> Path:
    """The folder of a repository shipped with mlops (the default: the marketplace example)."""
    return Path(str(resources.files("mlops.examples").joinpath(name)))


def package_name(path: Path) -> str:
    """The name the repository's Python files are imported under: the bundled example's own
    package (so its modules have one identity, imported or loaded), else a name of its own."""
    resolved = path.resolve()
    if resolved.parent == bundled().resolve().parent:
        return f"mlops.examples.{resolved.name}"
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return f"mlops_repository_{digest}"


def import_module(path: Path, module: str, problems: list[str]) -> ModuleType | None:
    """``<module>.py`` of the repository at ``path``, or None with the problem added (the file
    and line where importing it failed). The folder is a package: its files import each other
    relatively (``from .schemas import Answer``)."""
    file = path / f"{module}.py"
    if not file.is_file():
        problems.append(f"{file.name}: missing: add it, or remove what names it")
        return None
    package = package_name(path)
    if package not in sys.modules:
        if package.startswith("mlops.examples."):
            importlib.import_module(package)
        else:
            holder = ModuleType(package, f"The feature repository at {path}.")
            holder.__path__ = [str(path)]
            sys.modules[package] = holder
    try:
        return importlib.import_module(f"{package}.{module}")
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(file)]
        line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
        line = line or (frames[-1].lineno if frames else None)
        problems.append(
            f"{file.name}{at(line)}: importing it failed: "
            f"{exc.__class__.__name__}: {exc} (fix the code there)"
        )
        return None


def forget(path: Path) -> None:
    """Drop the modules imported from a user's repository, so the next load reads its files
    again (the bundled example is installed code: it stays)."""
    package = package_name(path)
    if not package.startswith("mlops.examples."):
        for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
            del sys.modules[name]


def at(line: int | None) -> str:
    return f":{line}" if line else ""
