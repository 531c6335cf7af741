"""Durations as people write them in flags and repository files: 30s, 5m, 6h, 1d, 2w."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(-?\d+)\s*(s|m|min|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse(value: str) -> timedelta:
    """'5m', '6h', '1d', '2w', '30s' -> timedelta; ValueError saying how to write one."""
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise ValueError(f"cannot read duration {value!r}: write it like 30s, 5m, 6h, 1d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def text(delta: timedelta) -> str:
    """The shortest of those spellings for ``delta``: ``timedelta(hours=36)`` -> ``36h``."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
