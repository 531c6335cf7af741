"""The operational monitor: ingestion figures, scheduler delay, freshness against TTL and
fallback rates from real runs and logged answers, each checked against a computation of its
own; the stale-features and failed-ingestion alerts raised once and resolved; the figures on
/metrics, cached, and a scrape with the store database down."""

import logging
import random
import sqlite3
import statistics
from collections import Counter
from contextlib import closing
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select

from mlops.db.schema import alerts as alerts_table
from mlops.db.schema import feature_values, ingestion_runs, prediction_log
from mlops.errors import IngestionFailed
from mlops.monitoring import alerts, ops
from mlops.runtime import Runtime
from mlops.serving.app import create_app
from mlops.store import ingest, runs
from tests.cli_support import invoke
from tests.conftest import NOW
from tests.repo_support import JOBS
from tests.serving_support import ServerThread, free_port, make_service
from tests.store_tables import break_one_customer, table_rows

WEEK = timedelta(days=7)
ANSWER_KINDS = [
    ("model", None),
    ("heuristic", "features_stale"),
    ("heuristic", "slo_exceeded"),
    ("heuristic", "flag_off"),
    ("heuristic", None),
]


def _refresh(rt, when, job="churn", *, delay=None):
    """A real refresh started at ``when`` (as_of ``when``), scheduled ``delay`` seconds
    before it when given."""
    rt.clock.set(when)
    scheduled = None if delay is None else when - timedelta(seconds=delay)
    return ingest.refresh(rt, job, scheduled_for=scheduled)


def _failing_refresh(rt, when, *, delay=None):
    """A churn refresh that really fails: one bad row with a reject threshold of zero."""
    rt.settings.reject_threshold = 0.0
    try:
        with pytest.raises(IngestionFailed, match="failed validation"):
            _refresh(rt, when, delay=delay)
    finally:
        rt.settings.reject_threshold = 0.05


def _log_answers(rt, rows):
    with rt.store.begin() as conn:
        conn.execute(insert(prediction_log), rows)


def _answer(job, source, reason, logged_at, i=0):
    return {
        "logged_at": logged_at,
        "request_id": f"r{i}",
        "endpoint": "eta" if job == "eta" else "dossier",
        "job": job,
        "entity_id": f"E{i}",
        "prediction": 0.5,
        "source": source,
        "reason": reason,
        "latency_ms": 1.0,
    }


def _random_answers(seed=5, n=600):
    rng = random.Random(seed)
    rows = [
        _answer(
            rng.choice(["churn", "upsell", "eta"]),
            *rng.choice(ANSWER_KINDS),
            NOW - timedelta(seconds=rng.randint(0, 10 * 86400)),
            i,
        )
        for i in range(n)
    ]
    # The period's edges: its first second counts, the second before it and the future do not.
    rows += [
        _answer("churn", "heuristic", "drift", NOW - WEEK, n),
        _answer("churn", "heuristic", "drift", NOW - WEEK - timedelta(seconds=1), n + 1),
        _answer("churn", "heuristic", "drift", NOW + timedelta(seconds=1), n + 2),
    ]
    return rows


def _expected_runs(rt, job):
    """The period's figures computed here from the runs' rows."""
    rows = sorted(
        (r for r in table_rows(rt.store, ingestion_runs) if r["job"] == job),
        key=lambda r: (r["started_at"], r["run_id"]),
    )
    period = [r for r in rows if NOW - WEEK <= r["started_at"] <= NOW]
    ok = [r for r in period if r["status"] == "succeeded"]
    delays = [
        (r["started_at"] - r["scheduled_for"]).total_seconds() for r in period if r["scheduled_for"]
    ]
    finished = [r for r in rows if r["status"] != "running"]
    return {
        "runs": dict(Counter(r["status"] for r in period)),
        "success": len(ok) / sum(r["status"] in ("succeeded", "failed") for r in period),
        "rows_last": ok[-1]["rows_written"],
        "rows_mean": statistics.fmean(r["rows_written"] for r in ok),
        "duration_last": ok[-1]["duration_seconds"],
        "duration_p50": statistics.median(r["duration_seconds"] for r in ok),
        "duration_max": max(r["duration_seconds"] for r in ok),
        "delays": delays,
        "latest": finished[-1],
    }


def test_report_figures_match_an_independent_computation(seeded):
    rt = seeded
    _refresh(rt, NOW - timedelta(days=10), delay=300)  # before the period
    _refresh(rt, NOW - timedelta(days=3))  # four successful runs: the median of an even count
    _refresh(rt, NOW - timedelta(days=2), delay=40)
    _refresh(rt, NOW - timedelta(days=1), delay=100)
    _refresh(rt, NOW - timedelta(days=1) + timedelta(hours=1))  # by hand: no schedule
    _refresh(rt, NOW - timedelta(hours=3), job="eta")
    break_one_customer(rt.warehouse)
    _failing_refresh(rt, NOW, delay=10)
    # A run in progress when the monitor looks: counted, but neither success nor failure.
    runs.start_run(
        rt.store,
        job="churn",
        mode="refresh",
        started_at=NOW,
        as_of_start=NOW,
        as_of_end=NOW,
        scheduled_for=None,
    )
    answers = _random_answers()
    _log_answers(rt, answers)
    rt.clock.set(NOW)

    found = ops.report(rt)

    assert found.checked_at == NOW and found.since == NOW - WEEK
    churn = found.job("churn")
    want = _expected_runs(rt, "churn")
    ing = churn.ingestion
    assert ing.runs == want["runs"] == {"succeeded": 4, "failed": 1, "running": 1}
    assert ing.success_rate == want["success"] == 0.8
    assert ing.rows_last == want["rows_last"] > 0
    assert ing.rows_mean == pytest.approx(want["rows_mean"])
    assert ing.duration_last == pytest.approx(want["duration_last"])
    assert ing.duration_p50 == pytest.approx(want["duration_p50"])
    assert ing.duration_max == pytest.approx(want["duration_max"])
    latest = want["latest"]
    assert ing.latest.run_id == latest["run_id"] and ing.latest.failed
    assert "failed validation" in ing.latest.error
    sched = churn.scheduler
    assert want["delays"] == [40, 100, 10]
    assert (sched.runs, sched.mean, sched.max, sched.last) == (3, 50.0, 100.0, 10.0)

    with rt.store.connect() as conn:
        newest = {
            job: conn.execute(
                select(func.max(feature_values.c.computed_at)).where(feature_values.c.job == job)
            ).scalar()
            for job in ("churn", "upsell", "eta")
        }
    fresh = churn.freshness
    assert fresh.newest == newest["churn"] == NOW - timedelta(hours=23)
    assert fresh.age_seconds == 23 * 3600 and fresh.ttl_seconds == 36 * 3600
    assert fresh.ratio == pytest.approx(23 / 36) and not fresh.stale
    eta = found.job("eta").freshness
    assert eta.newest == newest["eta"] and eta.ratio == pytest.approx(3 * 60 / 15) and eta.stale
    upsell = found.job("upsell")
    assert upsell.freshness.newest is None and upsell.freshness.stale
    assert upsell.ingestion.runs == {} and upsell.ingestion.success_rate is None
    assert upsell.ingestion.latest is None and upsell.ingestion.rows_last is None
    assert upsell.scheduler.runs == 0 and upsell.scheduler.mean is None
    assert found.job("eta").scheduler.runs == 0  # never scheduled

    for job in ("churn", "upsell", "eta"):
        counted = Counter(
            (a["source"], a["reason"])
            for a in answers
            if a["job"] == job and NOW - WEEK <= a["logged_at"] <= NOW
        )
        got = found.job(job).answers
        assert got.counts == dict(counted) and got.total == counted.total()
        fallbacks = Counter()
        for (source, reason), n in counted.items():
            if source != "model":
                fallbacks[reason or "unspecified"] += n
        assert got.fallback_rates == pytest.approx(
            {reason: n / counted.total() for reason, n in fallbacks.items()}
        )
        assert list(got.fallback_rates) == sorted(got.fallbacks, key=lambda r: -got.fallbacks[r])
    assert found.job("churn").answers.counts[("heuristic", "drift")] == 1  # the first second

    assert table_rows(rt.store, alerts_table) == []  # report only reads


def test_a_tally_counts_what_the_report_counts_reading_each_settled_hour_once(migrated, clock):
    from mlops.monitoring.answer_counts import AnswerTally

    rt, tally = migrated, AnswerTally()
    _log_answers(rt, _random_answers(seed=9, n=400))  # 10 days, the period's edges, the future
    for step in range(6):  # reads 50 minutes apart: hours settle and leave the period
        exact, tallied = ops.report(rt), ops.report(rt, tally=tally)
        assert [j.answers for j in tallied.jobs] == [j.answers for j in exact.jobs]
        clock.advance(timedelta(minutes=50))
        now = clock.now()
        _log_answers(rt, [_answer("eta", "heuristic", "slo_exceeded", now, 1000 + step)])
        _log_answers(
            rt, [_answer("churn", "model", None, now - timedelta(minutes=70), 2000 + step)]
        )
    exact, tallied = ops.report(rt), ops.report(rt, tally=tally)
    assert [j.answers for j in tallied.jobs] == [j.answers for j in exact.jobs]
    # A settled hour is not read again: an answer logged into one later is not in the tally.
    _log_answers(rt, [_answer("churn", "model", None, clock.now() - timedelta(days=2), 3000)])
    late = ops.report(rt).job("churn").answers.total
    assert ops.report(rt, tally=tally).job("churn").answers.total == late - 1
    assert tally.hours_held <= len(JOBS) * 7 * 24  # hours before the period are dropped


def test_since_narrows_the_period(seeded):
    rt = seeded
    _refresh(rt, NOW - timedelta(days=2), delay=40)
    _refresh(rt, NOW - timedelta(hours=1), delay=5)
    rt.clock.set(NOW)
    found = ops.report(rt, since=timedelta(hours=2), jobs=["churn"])
    assert [j.job for j in found.jobs] == ["churn"]
    churn = found.job("churn")
    assert churn.ingestion.runs == {"succeeded": 1} and churn.scheduler.mean == 5.0
    assert ops.report(rt, since=NOW - timedelta(days=3)).job("churn").scheduler.mean == 22.5


def _open(rt, kind):
    with rt.store.connect() as conn:
        return conn.execute(
            select(alerts_table).where(alerts_table.c.kind == kind, alerts_table.c.job == "churn")
        ).all()


def test_alerts_are_raised_once_and_resolved_when_the_condition_clears(seeded, caplog):
    rt = seeded
    _refresh(rt, NOW - timedelta(days=1), delay=30)
    break_one_customer(rt.warehouse)
    _failing_refresh(rt, NOW)

    with caplog.at_level(logging.WARNING, logger="mlops.monitoring"):
        first = ops.check(rt, jobs=["churn"])
        second = ops.check(rt, jobs=["churn"])
    assert [(a.kind, a.subject) for a in first.opened] == [("ingestion_failed", "ingestion")]
    assert "failed validation" in first.opened[0].message
    assert second.opened == []
    (failed,) = _open(rt, "ingestion_failed")
    assert failed.status == "open" and failed.occurrences == 2
    assert caplog.text.count(alerts.OPENED) == 1
    assert _open(rt, "stale_features") == []  # 24 h old, TTL 36 h

    rt.clock.set(NOW + timedelta(hours=13))  # 37 h old: past the TTL
    third = ops.check(rt, jobs=["churn"])
    assert [a.kind for a in third.opened] == ["stale_features"]
    assert "past their TTL of 36.0 h" in third.opened[0].message
    assert ops.check(rt, jobs=["churn"]).opened == []

    ingest.refresh(rt, "churn")  # the fix: a fresh run that succeeds (one row rejected)
    assert ops.check(rt, jobs=["churn"]).opened == []
    assert alerts.open_alerts(rt, "churn") == []
    for kind, occurrences in (("ingestion_failed", 4), ("stale_features", 2)):
        (row,) = _open(rt, kind)
        assert row.status == "resolved" and row.resolved_at == NOW + timedelta(hours=13)
        assert row.occurrences == occurrences


def test_never_ingested_counts_as_stale(migrated):
    opened = ops.check(migrated).opened
    assert sorted((a.kind, a.job) for a in opened) == [("stale_features", j) for j in sorted(JOBS)]
    assert "no feature values ingested yet" in opened[0].message


def test_periods_and_spans_for_people():
    assert ops.describe_period(timedelta(hours=36)) == "36 hours"
    assert ops.describe_period(WEEK) == "7 days"
    assert ops.span(42) == "42 s" and ops.span(3.2 * 3600) == "3.2 h"


# --- /metrics ---------------------------------------------------------------------------


def _samples(body: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _get(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_export_the_figures_and_reread_them_after_the_interval(serving_rt, clock):
    rt = serving_rt
    ingest.refresh(
        rt, "eta", as_of=NOW - timedelta(minutes=5), scheduled_for=NOW - timedelta(seconds=30)
    )
    _log_answers(
        rt,
        [_answer("eta", "model", None, NOW, i) for i in range(3)]
        + [_answer("eta", "heuristic", "features_stale", NOW, 3)],
    )
    app = create_app(
        Runtime(settings=rt.settings.model_copy(update={"log_requests": False}), clock=clock),
        poll=False,
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.get("/metrics")
        assert r.status_code == 200
        got = _samples(r.text)
        found = ops.report(rt)
        for j in found.jobs:
            ing = j.ingestion
            assert _get(got, "mlops_ingestion_success_ratio", job=j.job) == ing.success_rate
            assert _get(got, "mlops_ingestion_rows_written", job=j.job) == ing.rows_last
            assert _get(got, "mlops_ingestion_rows_written_mean", job=j.job) == ing.rows_mean
            assert _get(got, "mlops_ingestion_duration_seconds", job=j.job) == pytest.approx(
                ing.duration_last
            )
            assert _get(got, "mlops_ingestion_duration_p50_seconds", job=j.job) == pytest.approx(
                ing.duration_p50
            )
            assert _get(got, "mlops_ingestion_last_failed", job=j.job) == 0
            assert _get(got, "mlops_feature_freshness_ratio", job=j.job) == 0
        assert _get(got, "mlops_ingestion_runs", job="eta", status="succeeded") == 2
        assert _get(got, "mlops_scheduler_delay_seconds", job="eta") == 30
        assert _get(got, "mlops_scheduler_delay_seconds", job="churn") is None  # never scheduled
        assert _get(got, "mlops_fallback_ratio", job="eta", reason="features_stale") == 0.25
        assert _get(got, "mlops_ops_figures_age_seconds") == 0
        # The existing families are still there, under the same names.
        assert _get(got, "mlops_model_version", job="eta") == 1
        assert _get(got, "mlops_feature_age_seconds", job="eta") == 0

        _log_answers(rt, [_answer("eta", "heuristic", "slo_exceeded", NOW, i) for i in range(4)])
        clock.advance(timedelta(seconds=rt.settings.ops_metrics_seconds - 1))
        cached = _samples(c.get("/metrics").text)
        assert _get(cached, "mlops_fallback_ratio", job="eta", reason="slo_exceeded") is None
        assert _get(cached, "mlops_ops_figures_age_seconds") == rt.settings.ops_metrics_seconds - 1

        clock.advance(timedelta(seconds=1))
        fresh = _samples(c.get("/metrics").text)
        assert _get(fresh, "mlops_fallback_ratio", job="eta", reason="slo_exceeded") == 0.5
        assert _get(fresh, "mlops_fallback_ratio", job="eta", reason="features_stale") == 0.125
        assert _get(fresh, "mlops_feature_freshness_ratio", job="eta") == pytest.approx(15 / 900)
        assert _get(fresh, "mlops_ops_figures_age_seconds") == 0


def test_a_scrape_with_the_store_database_unreachable_still_answers(
    serving_rt, backend, tmp_path, caplog
):
    if backend == "sqlite":
        down = tmp_path / "a-directory-not-a-database"
        down.mkdir()
        url = f"sqlite:///{down}"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=1"
    settings = serving_rt.settings.model_copy(update={"database_url": url, "log_requests": False})
    app = create_app(Runtime(settings=settings, clock=serving_rt.clock), poll=False)
    with (
        caplog.at_level(logging.WARNING, logger="mlops.serving"),
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        r = c.get("/metrics")
    assert r.status_code == 200
    got = _samples(r.text)
    assert _get(got, "mlops_model_version", job="eta") == 1
    assert not any(name.startswith("mlops_ingestion_") for name, _ in got)
    assert "operational figures unreadable" in caplog.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_last_figures_are_served_while_the_database_is_down(serving_rt, tmp_path):
    # A private copy of the store, so it can be taken away from under the service.
    path = tmp_path / "own-store.db"
    source = sqlite3.connect(serving_rt.settings.store_url.removeprefix("sqlite:///"))
    with closing(source), closing(sqlite3.connect(path)) as copy:
        source.backup(copy)  # with what is still in the write-ahead log
    svc = make_service(serving_rt, database_url=f"sqlite:///{path}")
    try:
        up = _samples(svc.metrics.render()[0].decode())
        assert _get(up, "mlops_ingestion_success_ratio", job="churn") == 1.0
        svc.rt.store.dispose()
        path.unlink()
        path.mkdir()  # the database is gone: opening it now fails
        serving_rt.clock.advance(timedelta(seconds=svc.settings.ops_metrics_seconds))
        with pytest.raises(Exception, match="unable to open database file"):
            ops.report(svc.rt)
        down = _samples(svc.metrics.render()[0].decode())
        assert _get(down, "mlops_ingestion_success_ratio", job="churn") == 1.0
        assert _get(down, "mlops_ops_figures_age_seconds") == svc.settings.ops_metrics_seconds
    finally:
        svc.close()


# --- the command ------------------------------------------------------------------------


@pytest.fixture
def cli(settings, monkeypatch, capsys):

    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", settings.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", settings.warehouse_db_url)
    from mlops.cli.output import console

    monkeypatch.setattr(console, "width", 250)  # one line per table row

    def run(*args: str) -> tuple[int, str, str]:
        return invoke(capsys, *args)

    return run


def test_monitor_ops_from_the_command_line(cli, seeded):
    _refresh(seeded, NOW - timedelta(hours=1), delay=42)
    _log_answers(seeded, [_answer("churn", "heuristic", "flag_off", NOW, 0)])
    # The command runs on the system clock: a period from before the runs to today.
    code, out, _ = cli("monitor", "ops", "--since", "2026-05-01")
    assert code == 0, out
    assert "Ingestion since 2026-05-01 00:00 UTC" in out
    runs, serving = (line for line in out.splitlines() if line.strip().startswith("churn"))
    assert "100%" in runs and "1 ok" in runs and "42 / 42 / 42 s" in runs
    assert "flag_off 100.0%" in serving and "STALE" in serving
    assert "never scheduled" in out and "never ingested" in out
    assert f"{len(JOBS)} alert(s) opened" in out and "stale_features churn" in out
    code, out, _ = cli("monitor", "ops", "churn", "--since", "2026-05-01")
    assert code == 0 and "1 job(s) checked; 0 alert(s) opened." in out
    for args, message in (
        (("monitor", "ops", "nope"), "unknown job"),
        (("monitor", "ops", "--since", "last week"), "cannot read --since"),
    ):
        code, _, err = cli(*args)
        assert code == 2 and message in err
