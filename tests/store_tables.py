"""Helpers for tests that compare the store before and after an operation."""

from sqlalchemy import func, select

from mlops.db.schema import metadata


def row_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar()
            for name, table in metadata.tables.items()
        }


def table_rows(engine, table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def write_snapshots(rt, job, frame, now) -> None:
    """Append rows (as_of, entity_id, features) as snapshots through the store's own chunk
    writer, as one run and one chunk: for tests that need history with chosen values."""
    from mlops.store import runs, writes

    run_id = runs.start_run(
        rt.store,
        job=job.name,
        mode="backfill",
        started_at=now,
        as_of_start=None,
        as_of_end=None,
        scheduled_for=None,
    )
    points = sorted(frame["as_of"].drop_duplicates().dt.to_pydatetime())
    with rt.store.begin() as conn:
        writes.write_chunk(conn, job, run_id, points, frame, now)


def break_one_customer(warehouse) -> str:
    """A negative order amount makes spend_90d fall below its valid range for one customer
    (a row the next ingestion rejects); returns that customer."""
    from sqlalchemy import text

    with warehouse.begin() as conn:
        cid = conn.execute(
            text(
                "SELECT customer_id FROM orders WHERE status = 'completed' "
                "ORDER BY order_id LIMIT 1"
            )
        ).scalar()
        conn.execute(
            text("UPDATE orders SET total_amount = -100000 WHERE customer_id = :c"), {"c": cid}
        )
    return cid
