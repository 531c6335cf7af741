"""Run the feature views inside the warehouse over a grid of as_of points (push-down).

One query computes every point of the grid, so a months-long backfill is a handful of
queries and a refresh is the grid of one point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import Connection, Engine, String, bindparam, text

from mlops.db.engine import driver
from mlops.db.types import SQLITE_TS_FORMAT
from mlops.specs.features import JobSpec

if TYPE_CHECKING:
    from mlops.repository import Repository

# Window starts (the repository's ``windows``, what is subtracted from as_of) are precomputed
# per point: comparisons stay plain column comparisons that use the warehouse indexes, on every
# dialect, with no date arithmetic in the SQL.
Windows = Mapping[str, timedelta]
# Keys bound per query by run_query_for_keys: under SQLite's 32,766 and PostgreSQL's 65,535
# parameters, large enough that a million keys are a hundred queries.
KEY_CHUNK = 10_000

_PG_UNIXEPOCH = """
CREATE OR REPLACE FUNCTION unixepoch(ts timestamp) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT extract(epoch FROM ts)::double precision $$
"""


def compute(
    conn: Connection, repo: Repository, job: JobSpec, as_of_points: Sequence[datetime]
) -> pd.DataFrame:
    """Run the job's view for every point; columns ``as_of``, ``entity_id`` and the features."""
    frame = run_over_grid(conn, repo.sql(job.view), as_of_points, repo.windows)
    frame = frame.rename(columns={job.entity_key: "entity_id"})
    frame["entity_id"] = frame["entity_id"].astype(str)
    return frame


def run_over_grid(
    conn: Connection, sql: str, as_of_points: Sequence[datetime], windows: Windows
) -> pd.DataFrame:
    """Run ``sql`` against a grid of as_of points (with ``windows``) inside the warehouse."""
    _ensure_functions(conn)
    _load_grid(conn, as_of_points, windows)
    if conn.dialect.name == "postgresql":
        # Planner statistics for the fresh grid; no JIT (compiling these queries costs
        # seconds and saves nothing).
        conn.execute(text("ANALYZE as_of_grid"))
        conn.execute(text("SET LOCAL jit = off"))
    try:
        frame = _fetch_frame(conn, sql, {})
    finally:
        conn.execute(text("DROP TABLE IF EXISTS as_of_grid"))
    if "as_of" in frame.columns:
        frame["as_of"] = pd.to_datetime(frame["as_of"], format=SQLITE_TS_FORMAT)
    return frame


def run_query(conn: Connection, sql: str, params: dict) -> pd.DataFrame:
    """Run ``sql`` with the bound parameters it names of ``params`` (timestamps as the dialect
    stores them): a repository's SQL may leave out any of them."""
    named = text(sql).compile().params
    return _fetch_frame(conn, sql, _prepare(conn, {k: v for k, v in params.items() if k in named}))


def run_query_for_keys(
    conn: Connection, sql: str, params: dict, keys: Sequence[str], *, chunk: int = KEY_CHUNK
) -> pd.DataFrame:
    """Run ``sql``, whose ``IN :keys`` list is bound to ``keys`` a chunk at a time, and
    concatenate the results: a join key pushed down without a temporary table."""
    params = _prepare(conn, params)
    # One compilation per chunk size: expanding 10,000 parameters costs tens of milliseconds.
    compiled: dict[int, tuple[str, list[str] | None]] = {}
    frames = []
    # No keys still runs once (an empty IN), so the result has the query's columns.
    for start in range(0, max(len(keys), 1), chunk):
        part = list(keys[start : start + chunk])
        if len(part) not in compiled:
            # Typed as text: an empty list gives the driver no value to infer a type from.
            keys_param = bindparam("keys", value=part, expanding=True, type_=String())
            statement = text(sql).bindparams(keys_param, **params)
            done = statement.compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
            )
            order = list(done.positiontup or ()) if done.positional else None
            compiled[len(part)] = (str(done), order)
        statement_sql, order = compiled[len(part)]
        # SQLAlchemy names the expanded parameters keys_1 .. keys_n.
        values = {**params, **{f"keys_{i}": key for i, key in enumerate(part, 1)}}
        args = values if order is None else tuple(values[n] for n in order)
        frames.append(_cursor_frame(conn, statement_sql, args))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _prepare(conn: Connection, params: dict) -> dict:
    """Make sure the SQL's helper functions exist; timestamps as the dialect stores them."""
    _ensure_functions(conn)
    if conn.dialect.name != "postgresql":
        return {k: _sqlite_value(v) for k, v in params.items()}
    return params


def _fetch_frame(conn: Connection, sql: str, params: dict) -> pd.DataFrame:
    # Plain DB-API tuples: building Row objects for 200k rows costs more than the query.
    compiled = text(sql).bindparams(**params).compile(dialect=conn.dialect)
    named = compiled.construct_params()
    if compiled.positional:
        return _cursor_frame(
            conn, str(compiled), tuple(named[n] for n in compiled.positiontup or ())
        )
    return _cursor_frame(conn, str(compiled), named)


def _cursor_frame(conn: Connection, sql: str, args) -> pd.DataFrame:
    cursor = driver(conn).cursor()
    try:
        cursor.execute(sql, args)
        columns = [d[0] for d in cursor.description]
        return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
    finally:
        cursor.close()


def install_views(engine: Engine, repo: Repository, jobs: Sequence[JobSpec]) -> list[str]:
    """On PostgreSQL, create each view as a real view computed at now(); elsewhere nothing."""
    if engine.dialect.name != "postgresql":
        return []
    grid = ", ".join(
        [
            "now_utc AS as_of",
            "extract(epoch FROM now_utc)::double precision AS as_of_epoch",
            *(
                f"now_utc - interval '{int(d.total_seconds())} seconds' AS {name}"
                for name, d in repo.windows.items()
            ),
        ]
    )
    installed = []
    with engine.begin() as conn:
        _ensure_functions(conn)
        for job in jobs:
            conn.execute(
                text(
                    f"CREATE OR REPLACE VIEW {job.view} AS "
                    f"WITH as_of_grid AS (SELECT {grid} FROM "
                    f"(SELECT date_trunc('second', now() AT TIME ZONE 'UTC') AS now_utc) n) "
                    f"SELECT * FROM ({repo.sql(job.view)}) AS v"
                )
            )
            installed.append(job.view)
    return installed


def _ensure_functions(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    exists = conn.execute(text("SELECT to_regprocedure('unixepoch(timestamp)')")).scalar()
    if exists is None:
        conn.execute(text(_PG_UNIXEPOCH))


def _load_grid(conn: Connection, as_of_points: Sequence[datetime], windows: Windows) -> None:
    conn.execute(text("DROP TABLE IF EXISTS as_of_grid"))
    ts = "TIMESTAMP" if conn.dialect.name == "postgresql" else "TEXT"
    cols = ", ".join(
        ["as_of " + ts, "as_of_epoch DOUBLE PRECISION", *(f"{w} {ts}" for w in windows)]
    )
    conn.execute(text(f"CREATE TEMPORARY TABLE as_of_grid ({cols})"))
    rows = []
    # The same point twice would double every row's aggregates; seconds keep SQLite and
    # PostgreSQL comparing the same instants.
    for point in sorted({p.replace(microsecond=0) for p in as_of_points}):
        row = {"as_of": point, "as_of_epoch": (point - datetime(1970, 1, 1)).total_seconds()}
        row.update({name: point - delta for name, delta in windows.items()})
        rows.append(row)
    if conn.dialect.name != "postgresql":
        rows = [{k: _sqlite_value(v) for k, v in row.items()} for row in rows]
    placeholders = ", ".join(f":{c}" for c in ["as_of", "as_of_epoch", *windows])
    conn.execute(text(f"INSERT INTO as_of_grid VALUES ({placeholders})"), rows)


def _sqlite_value(value):
    return value.strftime(SQLITE_TS_FORMAT) if isinstance(value, datetime) else value
