"""Writing validated frames to the warehouse in one transaction, and turning a row the
database still rejects into an input error that says what to fix."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError

from mlops.db.engine import driver
from mlops.errors import InputError
from mlops.warehouse.contract import Contract

if TYPE_CHECKING:
    import pandas as pd


def write_tables(
    engine: Engine,
    contract: Contract,
    frames: dict[str, pd.DataFrame],
    *,
    replace: bool,
    on_progress: Callable[[str, int, int], None] | None,
) -> dict[str, int]:
    """All tables in one transaction (the DDL too); returns rows deleted per table."""
    from mlops.warehouse.bulk import insert_frame

    deleted: dict[str, int] = {}
    current: str | None = None
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite" and not driver(conn).in_transaction:
                # pysqlite only opens its transaction at the first INSERT: begin it here so that
                # the CREATE TABLE and DELETE statements roll back with the rows on failure.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            contract.metadata.create_all(conn)
            if replace:
                for name in frames:
                    deleted[name] = conn.execute(contract.tables[name].delete()).rowcount
            for name, frame in frames.items():
                current = name
                total, done = len(frame), 0
                if on_progress:
                    on_progress(name, 0, total)

                def advance(step: int, name: str = name, total: int = total) -> None:
                    nonlocal done
                    done += step
                    if on_progress:
                        on_progress(name, done, total)

                insert_frame(conn, contract.tables[name], frame.reset_index(drop=True), advance)
    except Exception as exc:
        rejected = _rejected_by_database(exc) if current else None
        if rejected is None:
            raise
        if rejected == "integrity":
            hint = (
                f"a primary key already in the warehouse? rerun with --replace to replace the "
                f"rows of {', '.join(frames)}, or leave the rows already loaded out of the files"
            )
        else:
            hint = f"fix the value the database names in {current}'s file and run again"
        raise InputError(
            f"the warehouse rejected rows of {current} ({_detail(exc)}); nothing was written", hint
        ) from exc
    return deleted


def _rejected_by_database(exc: BaseException) -> str | None:
    """'integrity' or 'data' when the input is at fault, None for anything else."""
    # psycopg errors raised by COPY are not wrapped by SQLAlchemy: go by SQLSTATE class
    # (23 integrity constraint violation, 22 data exception).
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(exc, IntegrityError | sqlite3.IntegrityError) or str(state).startswith("23"):
        return "integrity"
    if isinstance(exc, DataError | sqlite3.DataError) or str(state).startswith("22"):
        return "data"
    return None


def _detail(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        detail = getattr(diag, "message_detail", None)
        return diag.message_primary + (f": {detail}" if detail else "")
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]
