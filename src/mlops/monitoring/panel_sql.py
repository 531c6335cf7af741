"""SQL shared by the dashboard's panel readers: time buckets truncated in the database (one
expression per dialect) and query results taken as frames straight from the driver, because
the panels aggregate millions of rows and per-row processing in Python was the cost."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from mlops.monitoring.panel import Window

# --- time buckets, truncated in the database -------------------------------------------------


class _truncated(FunctionElement):
    """A timestamp truncated to the hour or day, as 'YYYY-MM-DD HH:00:00' text."""

    type = String()
    inherit_cache = True


class hour_of(_truncated):
    name = "hour_of"
    inherit_cache = True


class day_of(_truncated):
    name = "day_of"
    inherit_cache = True


@compiles(_truncated, "sqlite")
def _sqlite_truncated(element, compiler, **kw):
    # SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS' text (mlops.db.types): cutting the text
    # is several times cheaper than strftime over a million rows.
    column = compiler.process(element.clauses, **kw)
    if element.name == "hour_of":
        return f"substr({column}, 1, 13) || ':00:00'"
    return f"substr({column}, 1, 10) || ' 00:00:00'"


@compiles(_truncated, "postgresql")
def _pg_truncated(element, compiler, **kw):
    fmt = "YYYY-MM-DD HH24:00:00" if element.name == "hour_of" else "YYYY-MM-DD 00:00:00"
    return f"to_char({compiler.process(element.clauses, **kw)}, '{fmt}')"


def bucket_of(column, window: Window):
    """``column`` truncated to the window's bucket, computed by the database."""
    return hour_of(column) if window.bucket == "hour" else day_of(column)


def read_frame(engine: Engine, stmt, *, times: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a Core SELECT as a frame, taken from the driver's cursor as they are
    (SQLAlchemy's per-row processing was most of the time on a month of predictions); the
    ``times`` columns are parsed here instead."""
    with engine.connect() as conn:
        result = conn.execute(stmt)
        rows = result.cursor.fetchall()
        result.close()
    frame = pd.DataFrame.from_records(rows, columns=[c.key for c in stmt.selected_columns])
    for name in times:
        # SQLite gives text, PostgreSQL datetimes: both parse.
        frame[name] = pd.to_datetime(frame[name]).astype("datetime64[ns]")
    return frame
