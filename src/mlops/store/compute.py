"""Computing a job's view on the warehouse for ingestion: the as_of points cut into chunks
sized by ``backfill_chunk_rows``, several computed at once, and a database error while
computing told apart as the warehouse's (``WarehouseFault``), not the store's."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select

from mlops.db import failures
from mlops.db.schema import feature_values
from mlops.runtime import Runtime
from mlops.specs.features import JobSpec
from mlops.warehouse import views


def computed(rt: Runtime, job: JobSpec, points: list[datetime]):
    """Yield (chunk, view rows) in order, computing up to ``ingest_workers`` chunks at once.

    The database drivers release the GIL while a query runs, so a server warehouse
    computes the next chunks on other cores while this thread validates and writes.
    """
    try:
        yield from _computed_chunks(rt, job, points)
    except Exception as exc:
        if failures.is_database_error(exc, rt.warehouse):
            raise WarehouseFault(exc) from exc
        raise


class WarehouseFault(Exception):
    """A database error while computing a view: the warehouse's, not the store's."""


def _computed_chunks(rt: Runtime, job: JobSpec, points: list[datetime]):
    if not points:
        return
    per_point = max(1, _entity_count(rt, job, points[-1]))
    size = max(1, rt.settings.backfill_chunk_rows // per_point)
    chunks = [points[i : i + size] for i in range(0, len(points), size)]

    def compute(chunk: list[datetime]) -> pd.DataFrame:
        with rt.warehouse.connect() as conn:
            return views.compute(conn, rt.repo, job, chunk)

    default = 1 if rt.warehouse.dialect.name == "sqlite" else 2
    workers = min(rt.settings.ingest_workers or default, len(chunks))
    if workers <= 1:
        for chunk in chunks:
            yield chunk, compute(chunk)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix=f"ingest-{job.name}") as pool:
        pending = deque(pool.submit(compute, c) for c in chunks[:workers])
        for i, chunk in enumerate(chunks):
            frame = pending.popleft().result()
            if i + workers < len(chunks):
                pending.append(pool.submit(compute, chunks[i + workers]))
            yield chunk, frame


def _entity_count(rt: Runtime, job: JobSpec, as_of: datetime) -> int:
    """Rows the view gives per point: the job's online entities, or (before its first
    ingestion) the view's rows at the newest point, counted in the warehouse."""
    t = feature_values
    with rt.store.connect() as conn:
        online = conn.execute(select(func.count()).where(t.c.job == job.name)).scalar()
    if online:
        return int(online)
    with rt.warehouse.connect() as conn:
        sql = f"SELECT COUNT(*) AS n FROM ({rt.repo.sql(job.view)}) AS v"
        counted = views.run_over_grid(conn, sql, [as_of], rt.repo.windows)
    return int(counted["n"].iloc[0])
