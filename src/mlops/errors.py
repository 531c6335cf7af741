"""A small error hierarchy. Every message says what to do next."""

from __future__ import annotations

import re


class MlopsError(Exception):
    """Base of every error mlops raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(MlopsError):
    """The caller gave something invalid: fix the input and run again."""

    exit_code = 2


class ValidationFailed(InputError):
    """Data failed validation; ``problems`` lists each one (file, row, column, reason)."""

    def __init__(self, message: str, problems: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems


class ConfigError(MlopsError):
    """A setting is wrong or a database is unreachable."""

    exit_code = 2


class NotReadyError(MlopsError):
    """A prerequisite step has not been run (migrations, warehouse, specs)."""

    exit_code = 2


class IngestionFailed(MlopsError):
    """An ingestion run failed and wrote nothing; the previous values are still served."""


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")
_PASSWORD_FIELD = re.compile(r"(?i)(?P<key>password\s*[=:]\s*)[^\s,;'\"&)]+")


def redact(text: str) -> str:
    """``text`` without credentials: what reaches /readyz and the logs quotes errors whose
    messages may hold a connection URL (user:password@) or a libpq DSN (password=...)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    return _PASSWORD_FIELD.sub(lambda m: f"{m['key']}***", text)
