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
