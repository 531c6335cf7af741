import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from sqlalchemy import select

from mlops.db.schema import feature_history, feature_rejects, feature_values, ingestion_runs
from mlops.errors import IngestionFailed, InputError, NotReadyError
from mlops.store import ingest, writes
from mlops.store.codec import unpack_row
from mlops.store.historical import load_history
from tests.conftest import NOW
from tests.repo_support import JOBS
from tests.store_tables import break_one_customer, row_counts, table_rows


def _runs(engine):
    return table_rows(engine, ingestion_runs)


def test_refresh_writes_latest_and_history_in_one_run(seeded):
    report = ingest.refresh(seeded, "churn")
    assert report.status == "succeeded" and report.rows_written > 0
    assert report.values_written == report.rows_written * len(JOBS["churn"].features)
    values = table_rows(seeded.store, feature_values)
    assert len(values) == report.rows_written
    assert {v["computed_at"] for v in values} == {NOW}
    assert set(unpack_row(values[0]["values_json"])) == set(JOBS["churn"].feature_names)
    history = load_history(seeded.store, JOBS["churn"])
    assert len(history) == report.rows_written
    (run,) = _runs(seeded.store)
    assert run["status"] == "succeeded" and run["mode"] == "refresh"
    assert run["rows_written"] == report.rows_written and run["finished_at"] == NOW


def test_same_as_of_twice_writes_no_duplicate_history(seeded):
    ingest.refresh(seeded, "eta")
    before = row_counts(seeded.store)
    again = ingest.refresh(seeded, "eta")
    assert again.points_skipped == 1 and again.rows_written == 0
    after = row_counts(seeded.store)
    assert after["ml_feature_history"] == before["ml_feature_history"]
    assert after["ml_feature_snapshots"] == before["ml_feature_snapshots"]


def test_dry_run_writes_nothing_at_all(seeded):
    before = row_counts(seeded.store)
    report = ingest.refresh(seeded, "upsell", dry_run=True)
    backfill = ingest.backfill(
        seeded, "churn", start=NOW - timedelta(days=5), end=NOW, dry_run=True
    )
    assert report.rows_written > 0 and backfill.points == 5 and backfill.rows_written > 0
    assert report.stats["impressions_90d"].rows == report.rows_written
    assert row_counts(seeded.store) == before


@pytest.mark.parametrize("workers", [1, 2])
def test_backfill_in_chunks_is_oldest_first_and_resumable(seeded, workers):
    seeded.settings.ingest_workers = workers
    seeded.settings.backfill_chunk_rows = 200  # several chunks, computed `workers` at once
    start = NOW - timedelta(days=2)
    first = ingest.backfill(seeded, "eta", start=start, end=start + timedelta(hours=6))
    assert first.points == 72 and first.points_skipped == 0
    second = ingest.backfill(seeded, "eta", start=start, end=start + timedelta(hours=12))
    assert second.points == 144 and second.points_skipped == 72
    history = load_history(seeded.store, JOBS["eta"])
    assert history["as_of"].nunique() == 144
    assert history["as_of"].min() == start
    chunks = table_rows(seeded.store, feature_history)
    assert len(chunks) > 2
    assert [c["min_as_of"] for c in chunks] == sorted(c["min_as_of"] for c in chunks)


def test_backfill_argument_errors():
    with pytest.raises(InputError, match="not before"):
        ingest.backfill_points(NOW, NOW, timedelta(days=1), NOW)
    with pytest.raises(InputError, match="future"):
        ingest.backfill_points(NOW, NOW + timedelta(days=5), timedelta(days=1), NOW)
    with pytest.raises(InputError, match="positive"):
        ingest.backfill_points(NOW - timedelta(days=1), NOW, timedelta(0), NOW)
    points = ingest.backfill_points(NOW - timedelta(days=120), NOW, timedelta(minutes=5), NOW)
    assert len(points) == 34_560 and points[-1] == NOW - timedelta(minutes=5)


def test_refresh_in_the_future_is_refused(seeded):
    with pytest.raises(InputError, match="future"):
        ingest.refresh(seeded, "churn", as_of=NOW + timedelta(hours=1))


def test_unmigrated_store_is_refused(rt):
    with pytest.raises(NotReadyError, match="mlops db migrate"):
        ingest.refresh(rt, "churn")


def test_bad_rows_are_rejected_with_reason_and_keep_previous_values(seeded):
    seeded.clock.set(NOW - timedelta(hours=1))
    ingest.refresh(seeded, "churn")
    seeded.clock.set(NOW)
    cid = break_one_customer(seeded.warehouse)
    report = ingest.refresh(seeded, "churn")
    assert report.status == "succeeded" and report.rows_rejected == 1
    rejects = table_rows(seeded.store, feature_rejects)
    assert {(r["entity_id"], r["feature"]) for r in rejects} >= {(cid, "spend_90d")}
    assert any("below the minimum" in r["reason"] for r in rejects)
    with seeded.store.connect() as conn:
        kept = conn.execute(
            select(feature_values.c.computed_at).where(feature_values.c.entity_id == cid)
        ).scalar()
    assert kept == NOW - timedelta(hours=1)  # the previous value is still served


def test_reject_share_over_threshold_fails_and_writes_no_values(seeded):
    seeded.settings.reject_threshold = 0.0
    ingest.refresh(seeded, "churn", as_of=NOW - timedelta(hours=1))
    break_one_customer(seeded.warehouse)
    before = row_counts(seeded.store)
    with pytest.raises(IngestionFailed, match="failed validation"):
        ingest.refresh(seeded, "churn")
    after = row_counts(seeded.store)
    for name in ("ml_feature_values", "ml_feature_history", "ml_feature_snapshots"):
        assert after[name] == before[name]
    assert after["ml_feature_rejects"] > before["ml_feature_rejects"]
    last = _runs(seeded.store)[-1]
    assert last["status"] == "failed" and "threshold" in last["error"]


def test_failure_mid_backfill_keeps_committed_chunks_and_resumes(seeded, monkeypatch):
    seeded.settings.backfill_chunk_rows = 1  # one as_of point per chunk
    real = writes.write_chunk
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(writes, "write_chunk", flaky)
    start = NOW - timedelta(days=5)
    with pytest.raises(IngestionFailed, match="disk on fire"):
        ingest.backfill(seeded, "churn", start=start, end=NOW)
    assert load_history(seeded.store, JOBS["churn"])["as_of"].nunique() == 2
    assert _runs(seeded.store)[-1]["status"] == "failed"
    monkeypatch.setattr(writes, "write_chunk", real)
    resumed = ingest.backfill(seeded, "churn", start=start, end=NOW)
    assert resumed.points_skipped == 2 and resumed.status == "succeeded"
    assert load_history(seeded.store, JOBS["churn"])["as_of"].nunique() == 5


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from mlops.clock import FrozenClock
    from mlops.runtime import Runtime
    from mlops.settings import Settings
    from mlops.store import ingest, writes

    real = writes._upsert_values
    def die_mid_write(*args, **kwargs):
        real(*args, **kwargs)  # values and history written, not yet committed
        os.kill(os.getpid(), signal.SIGKILL)

    writes._upsert_values = die_mid_write
    rt = Runtime(Settings(database_url=sys.argv[1], warehouse_url=sys.argv[2]),
                 FrozenClock(datetime.fromisoformat(sys.argv[3])))
    ingest.refresh(rt, "churn")
    """
)


def test_kill_9_mid_write_leaves_previous_values_and_next_run_succeeds(seeded):
    earlier = NOW - timedelta(hours=2)
    ingest.refresh(seeded, "churn", as_of=earlier)
    before_values = table_rows(seeded.store, feature_values)
    before = row_counts(seeded.store)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            seeded.settings.store_url,
            seeded.settings.warehouse_db_url,
            NOW.isoformat(),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert table_rows(seeded.store, feature_values) == before_values
    after = row_counts(seeded.store)
    assert after["ml_feature_history"] == before["ml_feature_history"]
    assert after["ml_feature_snapshots"] == before["ml_feature_snapshots"]
    assert _runs(seeded.store)[-1]["status"] == "running"  # the dead run, seen as such
    report = ingest.refresh(seeded, "churn")
    assert report.status == "succeeded"
    statuses = [r["status"] for r in _runs(seeded.store)]
    assert statuses == ["succeeded", "failed", "succeeded"]
    assert "abandoned" in _runs(seeded.store)[1]["error"]
    with seeded.store.connect() as conn:
        assert {r[0] for r in conn.execute(select(feature_values.c.computed_at))} == {NOW}
        assert conn.execute(select(feature_history.c.chunk_id)).all()


def test_bulk_insert_keeps_empty_strings_and_nulls_apart(rt):
    import pandas as pd

    from mlops.examples.marketplace.warehouse import create_tables, support_tickets
    from mlops.warehouse.bulk import insert_frame

    create_tables(rt.warehouse)
    frame = pd.DataFrame(
        {
            "ticket_id": ["t1", "t2"],
            "customer_id": ["", "c2"],
            "opened_at": pd.to_datetime(["2026-01-01 10:00:00", "2026-01-02 11:30:05"]),
            "reason": ['a,b "quoted"', "\\N-looking"],
        }
    )
    with rt.warehouse.begin() as conn:
        insert_frame(conn, support_tickets, frame)
    rows = table_rows(rt.warehouse, support_tickets)
    assert [r["customer_id"] for r in rows] == ["", "c2"]
    assert [r["reason"] for r in rows] == ['a,b "quoted"', "\\N-looking"]
    assert str(rows[1]["opened_at"]) == "2026-01-02 11:30:05"
