"""The ``MLOPS_*`` settings an exported schedule carries to its workers.

An Airflow task runs its command in a fresh temporary folder and cron in the user's home, with
neither the exporting shell's variables nor its ``.env``: a relative ``MLOPS_HOME`` (the
default ``.mlops``) would point each run at an empty store of its own. The exports therefore
write the settings in force at export time, paths made absolute. Secrets (tokens, URLs with a
password) are never written into a file: the workers' own environment must supply them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from mlops.errors import redact
from mlops.settings import URL_FIELDS, Settings

PREFIX = "MLOPS_"


@dataclass(frozen=True)
class WorkerEnvironment:
    """``values``: variables written into the export; ``secrets``: names of variables that are
    set here but must come from the workers' environment."""

    values: dict[str, str]
    secrets: tuple[str, ...]


def variable(field: str) -> str:
    """The environment variable of a settings field: ``home`` -> ``MLOPS_HOME``."""
    return PREFIX + field.upper()


def for_workers(settings: Settings) -> WorkerEnvironment:
    """Every setting given explicitly (environment, ``.env`` or arguments), plus ``home``,
    as the workers' environment variables."""
    values: dict[str, str] = {}
    secrets: list[str] = []
    for field in sorted({"home", *settings.model_fields_set}):
        value = getattr(settings, field)
        name = variable(field)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            secrets.append(name)
            continue
        if field in URL_FIELDS and redact(str(value)) != str(value):
            secrets.append(name)
            continue
        values[name] = _text(field, value)
    return WorkerEnvironment(values, tuple(secrets))


def _text(field: str, value: object) -> str:
    if isinstance(value, Path):
        return str(value.resolve())
    if field in URL_FIELDS and isinstance(value, str):
        return absolute_sqlite(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def absolute_sqlite(url: str) -> str:
    """A SQLite URL with a relative file made absolute (``sqlite:///x.db`` would be opened
    relative to the worker's working folder); any other URL unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    rest = url[len(prefix) :]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:":
        return url
    return f"{prefix}{Path(path).resolve()}{sep}{query}"
