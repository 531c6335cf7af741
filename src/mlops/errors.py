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


class JobBusy(MlopsError):
    """Another run of the job holds its lock: this one did nothing (a scheduler records it as
    skipped, not failed)."""

    exit_code = 2


# A URL's credentials (scheme://user:password@, scheme://token@) and a password given as a
# field (a libpq DSN's password=..., a URL's ?password=...).
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s@:'\"]*)(?P<password>:[^/\s@'\"]*)?@"
)
_PASSWORD_FIELD = re.compile(r"(?i)(?P<key>password\s*[=:]\s*)[^\s,;'\"&)]+")


def redact(text: str) -> str:
    """``text`` without credentials, the user name kept: for anything that reaches a message,
    /readyz or a log and may quote a connection URL or DSN."""

    def userinfo(m: re.Match) -> str:
        if m["password"] is None:  # a bare token before the @
            return f"{m['scheme']}***@"
        return f"{m['scheme']}{m['user']}:***@"

    return _PASSWORD_FIELD.sub(lambda m: f"{m['key']}***", _USERINFO.sub(userinfo, text))


def brief(exc: BaseException) -> str:
    """The error's class and first line, without credentials, at most 300 characters: what
    /readyz and a log line quote (driver and MLflow messages append SQL and run on for pages)."""
    lines = str(exc).strip().splitlines()
    return redact(f"{exc.__class__.__name__}: {lines[0] if lines else ''}")[:300]
