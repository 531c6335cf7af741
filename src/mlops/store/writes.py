"""Writing an ingested chunk to the store, inside the caller's transaction: its history,
its snapshots and the latest values (upserted, a newer value never overwritten by an older
one), and the rows validation rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, column, insert, select, table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mlops.db.engine import driver, inserted_id
from mlops.db.schema import feature_history, feature_rejects, feature_snapshots, feature_values
from mlops.runtime import Runtime
from mlops.specs.features import JobSpec
from mlops.store import codec
from mlops.warehouse.bulk import insert_frame, sqlite_rows

MAX_REJECTS_STORED = 10_000


def write_chunk(
    conn: Connection,
    job: JobSpec,
    run_id: int,
    points: list[datetime],
    good: pd.DataFrame,
    now: datetime,
) -> None:
    chunk_id = inserted_id(
        conn.execute(
            insert(feature_history).values(
                job=job.name,
                run_id=run_id,
                min_as_of=points[0],
                max_as_of=points[-1],
                row_count=len(good),
                feature_names=",".join(job.feature_names),
                payload=codec.encode_chunk(good),
                created_at=now,
            )
        )
    )
    counts = good.groupby("as_of").size()
    conn.execute(
        insert(feature_snapshots),
        [
            {
                "job": job.name,
                "as_of": p,
                "run_id": run_id,
                "chunk_id": chunk_id,
                "entity_count": int(counts.get(pd.Timestamp(p), 0)),
            }
            for p in points
        ],
    )
    latest = good.sort_values("as_of", kind="stable").drop_duplicates("entity_id", keep="last")
    _upsert_values(conn, job, run_id, latest)


def _upsert_values(conn: Connection, job: JobSpec, run_id: int, latest: pd.DataFrame) -> None:
    rows = pd.DataFrame(
        {
            "job": job.name,
            "entity_id": latest["entity_id"].to_numpy(),
            "computed_at": latest["as_of"].to_numpy(),
            "run_id": run_id,
            "values_json": codec.pack_rows(latest, job.feature_names),
        }
    )
    cols = list(rows.columns)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE tmp_feature_values "
            "(LIKE ml_feature_values INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        insert_frame(conn, "tmp_feature_values", rows)
        source: Any = select(*(column(c) for c in cols)).select_from(table("tmp_feature_values"))
        stmt: Any = pg_insert(feature_values).from_select(cols, source)
    else:  # the two dialects' Insert share on_conflict_do_update, not a base class
        stmt = sqlite_insert(feature_values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["job", "entity_id"],
        set_={c: stmt.excluded[c] for c in ("computed_at", "run_id", "values_json")},
        where=stmt.excluded.computed_at >= feature_values.c.computed_at,
    )
    if conn.dialect.name == "postgresql":
        conn.execute(stmt)
    else:
        # Compiled by SQLAlchemy, executed in bulk by the driver: 200k rows in well under a second.
        sql = str(stmt.compile(dialect=conn.dialect))
        driver(conn).executemany(sql, sqlite_rows(rows))


def insert_rejects(conn: Connection, run_id: int, job: JobSpec, rejects: pd.DataFrame) -> None:
    frame = rejects.assign(run_id=run_id, job=job.name)[
        ["run_id", "job", "entity_id", "as_of", "feature", "reason", "value"]
    ]
    frame = frame.assign(
        value=frame["value"].astype(object).map(lambda v: None if v is None else str(v)[:500])
    )
    insert_frame(conn, feature_rejects, frame)


def store_rejects(rt: Runtime, run_id: int, job: JobSpec, rejects: pd.DataFrame) -> None:
    with rt.store.begin() as conn:
        insert_rejects(conn, run_id, job, rejects.head(MAX_REJECTS_STORED))
