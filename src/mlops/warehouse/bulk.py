"""Fast bulk writes of a DataFrame into a table: executemany on SQLite, COPY on PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table

from mlops.db.engine import driver
from mlops.db.types import SQLITE_TS_FORMAT

CHUNK_ROWS = 100_000


def insert_frame(
    conn: Connection,
    table: Table | str,
    frame: pd.DataFrame,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Append ``frame`` (columns named as in the table) inside the caller's transaction."""
    name = table if isinstance(table, str) else table.name
    columns = list(frame.columns)
    written = 0
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        if conn.dialect.name == "postgresql":
            _copy_postgres(conn, name, columns, chunk)
        else:
            _executemany(conn, name, columns, chunk)
        written += len(chunk)
        if on_progress:
            on_progress(len(chunk))
    return written


def sqlite_rows(frame: pd.DataFrame) -> list[tuple]:
    """Rows as tuples of plain Python values, timestamps in the one SQLite text format."""
    cols = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            # Format each distinct instant once: snapshots share a handful of as_of values.
            codes, uniques = pd.factorize(series)
            stamps = pd.DatetimeIndex(uniques).strftime(SQLITE_TS_FORMAT)
            text = np.array([*stamps, None], dtype=np.object_)
            cols.append(text[codes].tolist())
            continue
        if pd.api.types.is_bool_dtype(series):
            values = series.astype(object).map(lambda v: None if v is pd.NA else int(v))
        else:
            values = series.astype(object)
        cols.append(values.where(series.notna(), None).tolist())
    return list(zip(*cols, strict=True))


def _executemany(conn: Connection, name: str, columns: list[str], chunk: pd.DataFrame) -> None:
    marks = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES ({marks})'
    driver(conn).executemany(sql, sqlite_rows(chunk))


def _copy_postgres(conn: Connection, name: str, columns: list[str], chunk: pd.DataFrame) -> None:
    out = chunk.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]) and np.isinf(out[col].to_numpy()).any():
            out[col] = out[col].replace([np.inf, -np.inf], np.nan)
    buf = io.StringIO()
    null = _null_marker(out)
    out.to_csv(buf, header=False, index=False, na_rep=null, date_format=SQLITE_TS_FORMAT)
    data = buf.getvalue()
    raw = driver(conn)
    with (
        raw.cursor() as cur,
        cur.copy(
            f"COPY \"{name}\" ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '{null}')"
        ) as copy,
    ):
        copy.write(data)


def _null_marker(frame: pd.DataFrame) -> str:
    """How NULL is spelled in the COPY data: \\N, so that an empty string stays an empty string
    as on SQLite; unless a text value is exactly that (COPY would read it as NULL), then a
    marker no value of this chunk equals."""
    types = pd.api.types
    text = [c for c in frame if types.is_object_dtype(frame[c]) or types.is_string_dtype(frame[c])]
    marker = "\\N"
    while any((frame[c] == marker).any() for c in text):
        marker = f"\\N{uuid.uuid4().hex}"
    return marker
