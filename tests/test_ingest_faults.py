"""Faults during ingestion, injected by real means: the PostgreSQL backend terminated
mid-write, the SQLite store full or read-only. After each the run is recorded as failed (or
found and marked failed by the next run), the served values and the history are as before,
and the next run succeeds."""

from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from mlops.db.schema import feature_values, ingestion_runs
from mlops.errors import IngestionFailed
from mlops.runtime import Runtime
from mlops.store import ingest, writes
from mlops.store.historical import load_history
from mlops.warehouse import views
from tests.cli_support import invoke
from tests.conftest import NOW, PG_URL
from tests.repo_support import JOBS
from tests.store_tables import row_counts, table_rows

HISTORY_TABLES = ("ml_feature_history", "ml_feature_snapshots")

# Each fault is injected on the backend where it is real: a terminated backend needs a server;
# a full or read-only store is injected through SQLite's own limits and flags.
POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def _runs(engine):
    return table_rows(engine, ingestion_runs)


def _served_earlier(rt):
    """A first successful refresh a month ago, the values any later failure must keep (the
    customers who signed up since are new rows for the next refresh, so it must grow the
    store)."""
    ingest.refresh(rt, "churn", as_of=NOW - timedelta(days=30))
    return table_rows(rt.store, feature_values), row_counts(rt.store)


def _assert_unchanged(rt, values, counts):
    assert table_rows(rt.store, feature_values) == values
    after = row_counts(rt.store)
    for name in HISTORY_TABLES:
        assert after[name] == counts[name], name


def _terminate_before(monkeypatch, pg_admin, target: str, call: int = 1) -> None:
    """On the ``call``-th chunk, once history and snapshots are written, terminate the
    ingestion's own backend from another connection, then let the real ``target`` run into
    the dead connection: the upsert through SQLAlchemy, or the COPY on the driver's cursor."""
    real = getattr(writes, target)
    calls = {"n": 0}

    def terminated(conn, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with pg_admin.connect() as admin:
                # With a timeout it returns once the backend has really gone.
                gone = admin.execute(
                    text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
                ).scalar()
            assert gone
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(writes, target, terminated)


def _assert_connection_lost(message: str) -> None:
    url = make_url(PG_URL)
    where = f"{url.host}:{url.port or 5432}/{url.database}"
    # The driver's reason follows in parentheses: the server's "terminating connection due
    # to administrator command", or "the connection is lost" when the rollback met it first.
    assert f"lost the connection to the store database {where} (" in message
    assert "server is up" in message
    assert "[SQL" not in message and "\n" not in message


@pytest.mark.parametrize("target", ["_upsert_values", "insert_frame"])
@POSTGRES_ONLY
def test_connection_terminated_mid_refresh(seeded, backend, request, monkeypatch, target):
    values, counts = _served_earlier(seeded)
    _terminate_before(monkeypatch, request.getfixturevalue("pg_admin"), target)
    with pytest.raises(IngestionFailed) as failed:
        ingest.refresh(seeded, "churn")
    _assert_connection_lost(str(failed.value))
    assert "previous values are still served" in str(failed.value)
    _assert_unchanged(seeded, values, counts)
    last = _runs(seeded.store)[-1]
    assert last["status"] == "failed" and "lost the connection" in last["error"]
    monkeypatch.undo()
    assert ingest.refresh(seeded, "churn").status == "succeeded"
    assert {v["computed_at"] for v in table_rows(seeded.store, feature_values)} == {NOW}


@POSTGRES_ONLY
def test_connection_terminated_mid_backfill_keeps_committed_chunks(
    seeded, backend, request, monkeypatch
):
    seeded.settings.backfill_chunk_rows = 1  # one as_of point per chunk
    _terminate_before(monkeypatch, request.getfixturevalue("pg_admin"), "_upsert_values", 3)
    start = NOW - timedelta(days=5)
    with pytest.raises(IngestionFailed) as failed:
        ingest.backfill(seeded, "churn", start=start, end=NOW)
    _assert_connection_lost(str(failed.value))
    assert "resumes after them" in str(failed.value)
    assert load_history(seeded.store, JOBS["churn"])["as_of"].nunique() == 2
    assert _runs(seeded.store)[-1]["status"] == "failed"
    monkeypatch.undo()
    resumed = ingest.backfill(seeded, "churn", start=start, end=NOW)
    assert resumed.points_skipped == 2 and resumed.status == "succeeded"
    assert load_history(seeded.store, JOBS["churn"])["as_of"].nunique() == 5


@POSTGRES_ONLY
def test_warehouse_connection_terminated_mid_view_names_the_warehouse(
    seeded, backend, request, monkeypatch
):
    values, counts = _served_earlier(seeded)
    pg_admin = request.getfixturevalue("pg_admin")
    real = views.compute

    def terminated(conn, *args, **kwargs):
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with pg_admin.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(views, "compute", terminated)
    with pytest.raises(IngestionFailed, match="lost the connection to the warehouse database"):
        ingest.refresh(seeded, "churn")
    _assert_unchanged(seeded, values, counts)
    assert _runs(seeded.store)[-1]["status"] == "failed"
    monkeypatch.undo()
    assert ingest.refresh(seeded, "churn").status == "succeeded"


def _fill_disk_before(monkeypatch, target: str, call: int = 1) -> None:
    """Fill the store's "disk" on the ``call``-th chunk, at the moment ``target`` (the chunk
    write, or the upsert of latest values once history went in) starts writing."""
    real = getattr(writes, target)
    calls = {"n": 0}

    def full(conn, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            # Capped at the pages it has now, the database can grow no more: the next page
            # SQLite needs fails with SQLITE_FULL, the error (and the rollback) of a disk with
            # no space left. The cap holds for this connection, as long as it lives.
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(writes, target, full)


@pytest.mark.parametrize("target", ["write_chunk", "_upsert_values"])
@SQLITE_ONLY
def test_store_disk_full_mid_refresh(seeded, backend, monkeypatch, target):
    values, counts = _served_earlier(seeded)
    _fill_disk_before(monkeypatch, target)
    with pytest.raises(IngestionFailed) as failed:
        ingest.refresh(seeded, "churn")
    message = str(failed.value)
    assert "store database" in message and "is full" in message
    assert seeded.settings.store_url.removeprefix("sqlite:///") in message
    assert "free disk space" in message and "previous values are still served" in message
    assert "[SQL" not in message and "INSERT" not in message
    _assert_unchanged(seeded, values, counts)
    last = _runs(seeded.store)[-1]
    assert last["status"] == "failed" and "is full" in last["error"]
    monkeypatch.undo()
    seeded.store.dispose()  # space freed: connections without the cap
    assert ingest.refresh(seeded, "churn").status == "succeeded"
    assert {v["computed_at"] for v in table_rows(seeded.store, feature_values)} == {NOW}


@SQLITE_ONLY
def test_store_disk_full_mid_backfill_keeps_committed_chunks(seeded, backend, monkeypatch):
    seeded.settings.backfill_chunk_rows = 1  # one as_of point per chunk
    _fill_disk_before(monkeypatch, "write_chunk", call=3)
    start = NOW - timedelta(days=5)
    with pytest.raises(IngestionFailed, match=r"is full.*resumes after them"):
        ingest.backfill(seeded, "churn", start=start, end=NOW)
    assert load_history(seeded.store, JOBS["churn"])["as_of"].nunique() == 2
    assert _runs(seeded.store)[-1]["status"] == "failed"
    monkeypatch.undo()
    seeded.store.dispose()
    resumed = ingest.backfill(seeded, "churn", start=start, end=NOW)
    assert resumed.points_skipped == 2 and resumed.status == "succeeded"
    assert load_history(seeded.store, JOBS["churn"])["as_of"].nunique() == 5


@SQLITE_ONLY
def test_store_turned_read_only_mid_run_is_marked_failed_by_the_next_run(
    seeded, backend, monkeypatch
):
    """The store refuses even the record of the failure: the run stays 'running' until the
    next run of the job finds it and marks it failed."""
    values, counts = _served_earlier(seeded)
    read_only = {"on": False}

    # A volume remounted read-only under a running process (ext4's errors=remount-ro)
    # refuses every later write, on open connections and new ones. As root we can neither
    # remount nor chmod our way there; query_only makes SQLite refuse writes the same way.
    @event.listens_for(seeded.store, "connect")
    def refuse_writes(dbapi_conn, _record):
        if read_only["on"]:
            dbapi_conn.execute("PRAGMA query_only = ON")

    real = writes.write_chunk

    def remounted(conn, *args, **kwargs):
        read_only["on"] = True
        seeded.store.dispose()  # every later connection is a new one, and refuses writes
        conn.exec_driver_sql("PRAGMA query_only = ON")
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(writes, "write_chunk", remounted)
    with pytest.raises(IngestionFailed, match="is read-only"):
        ingest.refresh(seeded, "churn")
    monkeypatch.undo()
    read_only["on"] = False
    seeded.store.dispose()  # remounted read-write
    _assert_unchanged(seeded, values, counts)
    assert [r["status"] for r in _runs(seeded.store)] == ["succeeded", "running"]
    assert ingest.refresh(seeded, "churn").status == "succeeded"
    runs = _runs(seeded.store)
    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded"]
    assert "abandoned" in runs[1]["error"]


def _read_only_settings(settings):
    # As root, chmod does not stop writes. A file SQLite may not write (owned by another
    # user, or on a read-only mount) is opened read-only, as mode=ro opens it: writes fail
    # with SQLITE_READONLY either way, and an operator can point the URL at one directly.
    path = settings.store_url.removeprefix("sqlite:///")
    return settings.model_copy(update={"database_url": f"sqlite:///file:{path}?mode=ro&uri=true"})


@SQLITE_ONLY
def test_read_only_store_refuses_a_refresh_and_writes_nothing(seeded, backend):
    values, counts = _served_earlier(seeded)
    read_only = Runtime(settings=_read_only_settings(seeded.settings), clock=seeded.clock)
    try:
        assert ingest.refresh(read_only, "churn", dry_run=True).rows_written > 0
        with pytest.raises(IngestionFailed) as failed:
            ingest.refresh(read_only, "churn")
    finally:
        read_only.close()
    message = str(failed.value)
    path = seeded.settings.store_url.removeprefix("sqlite:///")
    assert f"the store database {path} is read-only" in message
    assert "writable" in message and "[SQL" not in message
    _assert_unchanged(seeded, values, counts)
    assert row_counts(seeded.store)["ml_ingestion_runs"] == counts["ml_ingestion_runs"]
    assert ingest.refresh(seeded, "churn").status == "succeeded"


@SQLITE_ONLY
def test_cli_ingest_on_a_read_only_store_says_so_in_one_line(seeded, backend, monkeypatch, capsys):
    read_only = _read_only_settings(seeded.settings)
    monkeypatch.setenv("MLOPS_HOME", str(read_only.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", read_only.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", read_only.warehouse_db_url)
    code, _out, err = invoke(capsys, "ingest", "churn", flat=True)
    path = seeded.settings.store_url.removeprefix("sqlite:///")
    assert code == 1
    assert err.startswith(f"error: ingestion of churn failed: the store database {path}")
    assert "is read-only" in err and "fix: make the file" in err and "writable" in err
    assert "Traceback" not in err and "[SQL" not in err and err.count("failed:") == 1
