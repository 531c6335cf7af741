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

    def compute(chunk: list[datetime]) -> pd.DataFrame:
        with rt.warehouse.connect() as conn:
            return views.compute(conn, rt.repo, job, chunk)

    per_point = _online_count(rt, job)
    if not per_point:
        # Before the first ingestion: the first point is computed alone and its rows size the
        # chunks (counting the view's rows first would run it once more, a whole refresh).
        first = compute(points[:1])
        yield points[:1], first
        points, per_point = points[1:], max(1, len(first))
        if not points:
            return
    size = max(1, rt.settings.backfill_chunk_rows // per_point)
    chunks = [points[i : i + size] for i in range(0, len(points), size)]
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


def _online_count(rt: Runtime, job: JobSpec) -> int:
    """The job's online entities: the rows the view gives per point, once it was ingested."""
    t = feature_values
    with rt.store.connect() as conn:
        return int(conn.execute(select(func.count()).where(t.c.job == job.name)).scalar() or 0)
