"""Column types shared by the store and the warehouse."""

from __future__ import annotations

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

# SQLite has no timestamp type; views compare timestamps as text, so every writer
# must use one format. Seconds precision, no 'T', no zone: what the bulk loaders write.
SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S"

Timestamp = DateTime().with_variant(
    sqlite.DATETIME(
        storage_format="%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d",
        regexp=r"(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)",
    ),
    "sqlite",
)
