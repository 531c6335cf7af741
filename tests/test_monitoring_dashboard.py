"""The monitoring dashboard: each panel's data from real rows (ingestion runs, logged answers,
monitor results) checked against a computation of its own, on SQLite and PostgreSQL; empty and
broken panels; the self-contained report file written atomically; and the page opened in
headless Chromium, from the service and from the file."""

import json
import math
import random
import shutil
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select

from mlops.db.schema import ingestion_runs, prediction_log
from mlops.errors import IngestionFailed, InputError
from mlops.examples.marketplace.warehouse import customers, deliveries
from mlops.monitoring import (
    chart_operations,
    chart_style,
    dashboard,
    panel_distributions,
    panel_monitors,
    report,
    results,
)
from mlops.monitoring.panel import Panel, Window
from mlops.store import ingest
from mlops.store.historical import load_history
from mlops.store.runs import start_run
from tests.cli_support import invoke
from tests.conftest import NOW, seed
from tests.repo_support import JOBS
from tests.store_tables import break_one_customer, table_rows

MONTH = timedelta(days=30)
ANSWER_KINDS = [
    ("model", None),
    ("model", None),
    ("model", None),
    ("heuristic", "features_stale"),
    ("heuristic", "slo_exceeded"),
    ("heuristic", "flag_off"),
    ("heuristic", None),
]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# --- rows the panels read -------------------------------------------------------------------


def _refreshes(rt) -> None:
    """Real runs: churn refreshed on three days (one of them failing), upsell and ETA now."""
    for days in (2, 1):
        rt.clock.set(NOW - timedelta(days=days))
        ingest.refresh(rt, "churn")
    break_one_customer(rt.warehouse)
    rt.clock.set(NOW - timedelta(hours=12))
    rt.settings.reject_threshold = 0.0
    try:
        with pytest.raises(IngestionFailed):
            ingest.refresh(rt, "churn")
    finally:
        rt.settings.reject_threshold = 0.05
    rt.clock.set(NOW)
    for job in JOBS:
        ingest.refresh(rt, job)


def _seed_and_refresh(rt) -> None:
    seed(rt)
    _refreshes(rt)


@pytest.fixture
def refreshed(migrated, templates, request):
    """The ``seeded`` state after ``_refreshes``: built once per session and backend (the same
    calls at the same frozen times), its content copied here."""
    templates(request, _seed_and_refresh).copy_into(migrated)
    return migrated


def _customers(rt) -> dict[str, tuple[str, str]]:
    with rt.warehouse.connect() as conn:
        rows = conn.execute(select(customers.c.customer_id, customers.c.plan, customers.c.region))
        return {cid: (plan, region) for cid, plan, region in rows}


def _answers(rt, n: int = 600, *, seed: int = 1) -> list[dict]:
    """Logged answers over the last five days (and a few older than the window), churn scores
    for known customers and one the warehouse does not know."""
    rng = random.Random(seed)
    ids = [*sorted(_customers(rt))[:60], "C-NOT-IN-WAREHOUSE"]
    rows = []
    for i in range(n):
        job = rng.choice(list(JOBS))
        source, reason = rng.choice(ANSWER_KINDS)
        age = timedelta(minutes=rng.randrange(0, 5 * 24 * 60))
        if i % 50 == 0:
            age = timedelta(days=40)  # outside a 30-day window
        rows.append(
            {
                "logged_at": NOW - age,
                "request_id": f"r{i}",
                "endpoint": "eta" if job == "eta" else "dossier",
                "job": job,
                "entity_id": "Z01" if job == "eta" else rng.choice(ids),
                "subject_id": None,
                "prediction": round(rng.random(), 4),
                "source": source,
                "reason": reason,
                "model_version": 1 if source == "model" else None,
                "features_computed_at": NOW - age,
                "latency_ms": 2.0,
                "arm": None,
            }
        )
    _log(rt, rows)
    return rows


def _log(rt, rows) -> None:
    with rt.store.begin() as conn:
        conn.execute(insert(prediction_log), rows)


def _eta_answers(rt, n: int = 80, *, seed: int = 2) -> dict[str, tuple[float, float, str]]:
    """ETA answers for deliveries already delivered: delivery -> (prediction, actual, source)."""
    rng = random.Random(seed)
    with rt.warehouse.connect() as conn:
        done = conn.execute(
            select(deliveries.c.delivery_id, deliveries.c.dispatched_at, deliveries.c.delivered_at)
            .where(
                deliveries.c.delivered_at.is_not(None),
                deliveries.c.dispatched_at >= NOW - timedelta(days=4),
                deliveries.c.delivered_at <= NOW,
            )
            .order_by(deliveries.c.delivery_id)
            .limit(n)
        ).all()
    assert len(done) == n
    truth, rows = {}, []
    for i, (delivery, dispatched, delivered) in enumerate(done):
        actual = (delivered - dispatched).total_seconds() / 60
        source = "model" if i % 3 else "heuristic"
        predicted = round(actual + rng.gauss(2 if source == "model" else 6, 4), 3)
        truth[delivery] = (predicted, actual, source)
        rows.append(
            {
                "logged_at": dispatched,
                "request_id": f"e{i}",
                "endpoint": "eta",
                "job": "eta",
                "entity_id": "Z01",
                "subject_id": delivery,
                "prediction": predicted,
                "source": source,
                "reason": None if source == "model" else "features_stale",
                "model_version": 1 if source == "model" else None,
                "features_computed_at": dispatched,
                "latency_ms": 2.0,
                "arm": None,
            }
        )
    _log(rt, rows)
    return truth


def _drift(at, job, feature, psi, psi_status, ks_status="ok", bins=None):
    common = {"checked_at": at, "monitor": "drift", "job": job, "feature": feature}
    detail = json.dumps({"source": "online", "bins": bins})
    return [
        common
        | {"statistic": "psi", "value": psi, "threshold": 0.25, "status": psi_status}
        | {"sample_size": 300, "detail": detail},
        common
        | {"statistic": "ks_pvalue", "value": 0.4, "threshold": 0.01}
        | {"status": ks_status, "sample_size": 300},
    ]


def _accuracy(at, job, day, source, value, *, complete=True, by="day", status="ok"):
    statistic = "mae" if job == "eta" else "roc_auc"
    return {
        "checked_at": at,
        "monitor": "accuracy",
        "job": job,
        "feature": f"{by}:{day}:{source}",
        "statistic": statistic,
        "value": value,
        "threshold": 8.0 if job == "eta" else 0.7,
        "status": status,
        "sample_size": 250,
        "detail": json.dumps({"complete": complete}),
    }


def _monitor_results(rt) -> None:
    day1 = NOW - timedelta(days=1)
    rows = [
        *_drift(NOW - timedelta(days=40), "churn", "orders_30d", 0.9, "alert"),  # too old
        *_drift(day1, "churn", "orders_30d", 0.05, "ok"),
        *_drift(day1, "churn", "spend_90d", 0.31, "alert"),
        *_drift(NOW, "churn", "orders_30d", 0.15, "warn", "insufficient", ORDERS_BINS),
        *_drift(NOW, "churn", "spend_90d", 0.02, "ok", ks_status="alert", bins=SPEND_BINS),
        *_drift(NOW, "eta", "courier_load", 0.01, "insufficient", ks_status="insufficient"),
        _accuracy(day1, "churn", "2026-05-28", "model", 0.70),
        _accuracy(NOW, "churn", "2026-05-28", "model", 0.75),  # the later check wins
        _accuracy(NOW, "churn", "2026-05-29", "model", 0.76, complete=False),
        _accuracy(NOW, "churn", "2026-05-28", "heuristic", 0.66),
        _accuracy(day1, "eta", "2026-05-18", "model", 6.5, by="week"),
        _accuracy(NOW, "eta", "2026-05-28", "model", 5.5),  # the latest check is per day
    ]
    results.write(rt, rows)
    _guardrail(rt, day1, "churn", control=(30, 100), treatment=(60, 100))  # an older check
    _guardrail(rt, NOW, "churn", control=(300, 1000), treatment=(200, 1000))
    _guardrail(rt, NOW, "upsell", control=(0, 0), treatment=(40, 200))


ORDERS_BINS = {
    "labels": ["[0, 2)", "[2, 5]", "missing"],
    "reference": [0.5, 0.4, 0.1],
    "live": [0.3, 0.6, 0.1],
}
SPEND_BINS = {"labels": ["[0, 50)", "[50, 90]", "missing"], "reference": [0.5, 0.5, 0.0]}
SPEND_BINS["live"] = [0.45, 0.55, 0.0]


def _guardrail(rt, at, job, *, control, treatment) -> None:
    """A guardrail check's results, written by the guardrail monitor's own writer."""
    from mlops.monitoring import guardrails

    spec = rt.repo.job(job).guardrail
    comparison = guardrails.compare(
        guardrails.Arm(*control),
        guardrails.Arm(*treatment),
        margin=spec.margin,
        alpha=0.05,
        min_sample=500,
        higher_is_better=spec.higher_is_better,
    )
    result = guardrails.Guardrail(job, guardrails.metric_of(spec), None, comparison, 1)
    clock, before = rt.clock, rt.clock.now()
    clock.set(at)
    try:
        guardrails._record(rt, result)
    finally:
        clock.set(before)


# --- the data layer ----------------------------------------------------------------------------


def _panel(board, key) -> Panel:
    (panel,) = [p for p in board.panels if p.key == key]
    assert panel.error is None, panel.error
    return panel


def test_ingestion_runs_match_the_table(refreshed):
    board = dashboard.gather(refreshed, since=MONTH)
    runs = _panel(board, "ingestion").frames["runs"]
    want = sorted(
        (
            r["run_id"],
            r["job"],
            r["status"],
            r["started_at"],
            r["duration_seconds"],
            r["rows_written"],
        )
        for r in table_rows(refreshed.store, ingestion_runs)
        if r["started_at"] >= NOW - MONTH
    )
    got = sorted(
        zip(
            runs["run_id"],
            runs["job"],
            runs["status"],
            runs["started_at"].dt.to_pydatetime(),
            runs["duration_seconds"],
            runs["rows_written"],
            strict=True,
        )
    )
    assert got == want and len(want) == 3 + len(JOBS)  # churn's three runs, then each job
    assert {s for _, _, s, *_ in want} == {"succeeded", "failed"}
    # The chart: one marker per run in the duration row and in the rows-written row, in the
    # job's column and the status's colour.
    fig = report.figure(_panel(board, "ingestion"), board.window)
    jobs = list(JOBS)
    plotted = defaultdict(list)
    for trace in fig.data:
        n = int(trace.xaxis[1:] or 1) - 1
        row, job = n // len(jobs) + 1, jobs[n % len(jobs)]
        xs = [pd.Timestamp(x).to_pydatetime() for x in trace.x]
        plotted[(row, job, trace.name)].extend(zip(xs, trace.y, strict=True))
        assert trace.marker.color == chart_operations.RUN_COLOURS[trace.name]
    expected = defaultdict(list)
    for _, job, status, started, duration, written in want:
        expected[(1, job, status)].append((started, duration))
        expected[(2, job, status)].append((started, written))
    assert {k: sorted(v) for k, v in plotted.items()} == {k: sorted(v) for k, v in expected.items()}


def _expected_rates(rows, start, bucket):
    totals, fallbacks = defaultdict(int), defaultdict(int)
    for r in rows:
        at = r["logged_at"]
        if at < start or at > NOW:
            continue
        b = (
            at.replace(minute=0, second=0)
            if bucket == "hour"
            else datetime(at.year, at.month, at.day)
        )
        totals[(r["job"], b)] += 1
        if r["source"] != "model":
            fallbacks[(r["job"], b, r["reason"] or "unspecified")] += 1
    return {key: (n, totals[key[:2]], n / totals[key[:2]]) for key, n in fallbacks.items()}


@pytest.mark.parametrize(("since", "bucket"), [(MONTH, "day"), (timedelta(days=2), "hour")])
def test_fallback_rates_match_the_log(seeded, since, bucket):
    rows = _answers(seeded)
    board = dashboard.gather(seeded, since=since)
    assert board.window.bucket == bucket
    rates = _panel(board, "fallbacks").frames["rates"]
    want = _expected_rates(rows, NOW - since, bucket)
    got = {
        (r.job, r.bucket.to_pydatetime(), r.reason): (r.fallbacks, r.answers, r.rate)
        for r in rates.itertuples()
    }
    assert got.keys() == want.keys() and len(want) > 20
    for key, (n, total, rate) in want.items():
        assert got[key][:2] == (n, total) and math.isclose(got[key][2], rate)
    # The chart: stacked bars per job and reason, each at its bucket's middle.
    fig = report.figure(_panel(board, "fallbacks"), board.window)
    half = pd.Timedelta(hours=0.5 if bucket == "hour" else 12)
    jobs = list(JOBS)
    drawn = {}
    for trace in fig.data:
        job = jobs[0 if trace.xaxis == "x" else int(trace.xaxis[1:]) - 1]
        for x, y in zip(trace.x, trace.y, strict=True):
            drawn[(job, (pd.Timestamp(x) - half).to_pydatetime(), trace.name)] = y
    assert drawn.keys() == want.keys()
    assert all(math.isclose(drawn[k], v[2]) for k, v in want.items())


def test_churn_score_by_cohort_joins_the_warehouse(seeded):
    rows = _answers(seeded)
    cohorts = _customers(seeded)
    board = dashboard.gather(seeded, since=MONTH)
    scores = _panel(board, "cohorts").frames["scores"]
    for kind, index in (("plan", 0), ("region", 1)):
        sums = defaultdict(lambda: [0.0, 0])
        for r in rows:
            if r["job"] != "churn" or r["logged_at"] < NOW - MONTH:
                continue
            cohort = cohorts[r["entity_id"]][index] if r["entity_id"] in cohorts else "unknown"
            at = r["logged_at"]
            key = (cohort, datetime(at.year, at.month, at.day))
            sums[key][0] += r["prediction"]
            sums[key][1] += 1
        part = scores[scores["cohort_kind"] == kind]
        got = {
            (r.cohort, r.bucket.to_pydatetime()): (r.mean_score, r.predictions)
            for r in part.itertuples()
        }
        assert got.keys() == sums.keys()
        for key, (total, n) in sums.items():
            assert math.isclose(got[key][0], total / n) and got[key][1] == n
        assert "unknown" in set(part["cohort"])


def test_churn_scores_are_sampled_past_a_limit(seeded, monkeypatch):
    rows = _answers(seeded)
    in_window = [r for r in rows if r["job"] == "churn" and r["logged_at"] >= NOW - MONTH]
    monkeypatch.setattr(panel_distributions, "COHORT_SAMPLE", 40)
    panel = _panel(dashboard.gather(seeded, since=MONTH), "cohorts")
    step = -(-len(in_window) // 40)
    with seeded.store.connect() as conn:
        ids = conn.execute(
            select(prediction_log.c.prediction_id).where(
                prediction_log.c.job == "churn", prediction_log.c.logged_at >= NOW - MONTH
            )
        ).scalars()
        sampled = sum(1 for i in ids if i % step == 0)
    assert f"a 1-in-{step} sample of {len(in_window):,} churn predictions" in panel.notes
    for kind in ("plan", "region"):  # the columns of the example's sql/cohorts_churn.sql
        scores = panel.frames["scores"]
        assert scores.loc[scores["cohort_kind"] == kind, "predictions"].sum() == sampled


def test_feature_snapshots_against_the_history(refreshed):
    board = dashboard.gather(refreshed, since=MONTH)
    panel = _panel(board, "features")
    live = panel.frames["snapshots"]
    history = load_history(refreshed.store, JOBS["churn"])
    for name in JOBS["churn"].dashboard_features:
        part = live[(live["job"] == "churn") & (live["feature"] == name)]
        assert len(part) == 3  # the failed run stored nothing
        for row in part.itertuples():
            values = history.loc[history["as_of"] == row.as_of, name].dropna().astype(float)
            assert math.isclose(row.mean, values.mean())
            assert math.isclose(row.p90, float(np.quantile(values, 0.9)))
            assert row.count == len(values)
    # No registry here: the chart goes without the reference, and says so.
    assert panel.frames["reference"].empty
    assert any("churn: no champion reference" in n for n in panel.notes)


def test_many_snapshots_are_spread_over_the_window(refreshed, monkeypatch):
    # ``refreshed`` holds churn snapshots two days ago, yesterday and now.
    monkeypatch.setattr(panel_distributions, "MAX_SNAPSHOTS", 2)
    live = _panel(dashboard.gather(refreshed), "features").frames["snapshots"]
    churn = live[live["job"] == "churn"]
    assert set(churn["as_of"]) == {pd.Timestamp(NOW - timedelta(days=2)), pd.Timestamp(NOW)}
    assert panel_distributions.spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert panel_distributions.spread([1, 2], 5) == [1, 2] and panel_distributions.spread(
        [1, 2, 3], 1
    ) == [3]


def test_history_chunks_are_read_once_per_process(refreshed, monkeypatch):
    first = _panel(dashboard.gather(refreshed), "features").frames["snapshots"]
    read = []
    real = panel_distributions._payload
    monkeypatch.setattr(
        panel_distributions, "_payload", lambda conn, c: read.append(c) or real(conn, c)
    )
    again = _panel(dashboard.gather(refreshed), "features").frames["snapshots"]
    pd.testing.assert_frame_equal(again, first)
    assert read == []  # every chunk's statistics were memoised
    refreshed.clock.set(NOW + timedelta(hours=1))
    ingest.refresh(refreshed, "eta")
    later = _panel(dashboard.gather(refreshed), "features").frames["snapshots"]
    assert len(read) == 1  # only the new snapshot's chunk
    assert pd.Timestamp(NOW + timedelta(hours=1)) in set(later["as_of"])


def test_chunk_statistics_skip_categories_and_features_added_later():
    from mlops.store.codec import encode_chunk

    day1, day2 = NOW - timedelta(days=1), NOW
    chunk = pd.DataFrame(
        {
            "as_of": [day1] * 3 + [day2] * 2,
            "entity_id": ["a", "b", "c", "a", "b"],
            "orders_90d": pd.array([1, 2, None, 4, 6], dtype="Int64"),
            "plan": ["basic"] * 5,
        }
    )
    rows = panel_distributions.chunk_stats(
        encode_chunk(chunk), [day1, day2], ["orders_90d", "plan", "spend_90d"]
    )
    assert [(r["as_of"], r["feature"], r["mean"], r["count"]) for r in rows] == [
        (pd.Timestamp(day1), "orders_90d", 1.5, 2),
        (pd.Timestamp(day2), "orders_90d", 5.0, 2),
    ]


def test_reference_band_from_the_saved_distribution():
    sample = list(np.linspace(0, 100, 2001))
    ref = {
        "orders_30d": {"kind": "numeric", "mean": 50.0, "sample": sample},
        "plan": {"kind": "category", "shares": {"basic": 1.0}},
    }
    frame = panel_distributions.reference_stats(ref, ["orders_30d", "plan", "missing"])
    assert frame[["feature", "mean", "p10", "p50", "p90"]].to_dict("records") == [
        {"feature": "orders_30d", "mean": 50.0, "p10": 10.0, "p50": 50.0, "p90": 90.0}
    ]


def test_drift_heatmap_shows_the_worst_status_per_check(seeded):
    _monitor_results(seeded)
    board = dashboard.gather(seeded, since=MONTH)
    status = _panel(board, "drift").frames["status"]
    got = {
        (r.job, r.feature, r.checked_at.to_pydatetime()): (r.status, r.psi)
        for r in status.itertuples()
    }
    day1 = NOW - timedelta(days=1)
    assert got == {
        ("churn", "orders_30d", day1): ("ok", 0.05),
        ("churn", "spend_90d", day1): ("alert", 0.31),
        ("churn", "orders_30d", NOW): ("warn", 0.15),
        ("churn", "spend_90d", NOW): ("alert", 0.02),  # KS alerted though PSI was fine
        ("eta", "courier_load", NOW): ("insufficient", 0.01),
    }
    fig = report.figure(_panel(board, "drift"), board.window)
    (heat,) = fig.data
    z = dict(zip(heat.y, np.asarray(heat.z).tolist(), strict=True))
    rank = panel_monitors.STATUS_RANK
    assert list(heat.x) == [f"{day1:%m-%d %H:%M}", f"{NOW:%m-%d %H:%M}"]
    assert z["churn · orders_30d"] == [rank["ok"], rank["warn"]]
    assert z["churn · spend_90d"] == [rank["alert"], rank["alert"]]
    assert math.isnan(z["eta · courier_load"][0])  # not checked then
    assert heat.y[-1] == "churn · orders_30d"  # the first job at the top


def test_drift_distributions_of_each_jobs_latest_check(seeded):
    _monitor_results(seeded)
    board = dashboard.gather(seeded, since=MONTH)
    view = _panel(board, "drift_features")
    bins = view.frames["bins"]
    # The latest check's rows with bins: the older checks and a row without bins left out.
    assert set(zip(bins["job"], bins["feature"], strict=True)) == {
        ("churn", "orders_30d"),
        ("churn", "spend_90d"),
    }
    orders = bins[bins["feature"] == "orders_30d"].sort_values("bin")
    assert orders["label"].tolist() == ORDERS_BINS["labels"]
    assert orders["live"].tolist() == ORDERS_BINS["live"]
    assert (orders["checked_at"] == NOW).all() and (orders["psi"] == 0.15).all()
    fig = report.figure(view, board.window)
    menu = fig.layout.updatemenus[0]
    # The most drifted feature first, shown: its two bars (reference, now) and its bins' labels.
    assert [b.label for b in menu.buttons] == [
        "churn · orders_30d (PSI 0.150)",
        "churn · spend_90d (PSI 0.020)",
    ]
    assert [t.visible for t in fig.data] == [True, True, False, False]
    assert list(fig.layout.xaxis.ticktext) == ["[0, 2)", "[2, 5]", "missing"]
    assert list(fig.data[1].y) == ORDERS_BINS["live"]
    assert menu.buttons[1].args[0]["visible"] == [False, False, True, True]


def test_guardrails_panel_keeps_each_jobs_latest_check(seeded):
    _monitor_results(seeded)
    board = dashboard.gather(seeded, since=MONTH)
    panel = _panel(board, "guardrails")
    latest = panel.frames["latest"].set_index("job")
    assert list(latest.index) == ["churn", "upsell"]
    churn = latest.loc["churn"]
    assert (churn.control_n, churn.treatment_n) == (1000, 1000)  # not the older check's 100s
    assert churn.control_rate == 0.3 and churn.treatment_rate == 0.2
    assert churn.difference == pytest.approx(-0.1) and churn.ci_low < -0.1 < churn.ci_high
    assert churn.decision == "breach" and churn.metric == "retention_flagged"
    assert "upsell: no control arm" in " ".join(panel.notes)
    fig = report.figure(panel, board.window)
    bars = {t.name: list(t.x) for t in fig.data if t.type == "bar"}
    assert bars["control"][0] == 0.3 and bars["treatment"][0] == 0.2
    (difference,) = [t for t in fig.data if t.name == "difference"]
    assert difference.x[0] == pytest.approx(-0.1)
    (margin,) = [t for t in fig.data if t.name == "margin"]
    spec = seeded.repo.job("churn").guardrail
    assert margin.x[0] == -spec.margin  # better higher: the line is below the control


def test_the_page_names_the_serving_versions_and_the_open_alerts(seeded):
    from mlops.monitoring import alerts

    board = dashboard.gather(seeded, since=MONTH)
    assert board.serving == dict.fromkeys(JOBS)  # no registry here: no champion
    page = report.render(board, plotly_src="/x.js")
    assert "<b>churn</b> heuristic (no champion)" in page and "No open alerts." in page
    alerts.check(seeded, "drift", "churn", {"spend_90d": "spend_90d: PSI 0.31 >= 0.25 <b>"})
    board = dashboard.gather(seeded, since=MONTH, serving={"churn": 3, "eta": None})
    page = report.render(board, plotly_src="/x.js")
    assert "<b>churn</b> v3" in page and "<b>eta</b> heuristic (no champion)" in page
    assert "1 open alert " in page
    assert "<b>drift</b> · churn: spend_90d: PSI 0.31 &gt;= 0.25 &lt;b&gt;" in page


def test_each_panel_names_a_command_the_cli_runs(seeded):
    """Every panel says which command explains it, and that command and its options exist."""
    import typer

    from mlops.cli.app import app

    board = dashboard.gather(seeded, since=MONTH)
    page = report.render(board, plotly_src="/x.js")
    cli = typer.main.get_command(app)
    for panel in board.panels:
        assert panel.command.startswith("mlops "), panel.key
        assert (
            f'<code class="command">{panel.command.replace("<", "&lt;").replace(">", "&gt;")}'
            in page
        )
        words = panel.command.split()[1:]
        command, ctx = cli, typer.Context(cli)
        while hasattr(command, "get_command"):  # a group
            command = command.get_command(ctx, words.pop(0))
            assert command is not None, panel.command
        options = {o for p in command.params for o in getattr(p, "opts", ())}
        assert {w for w in words if w.startswith("--")} <= options, panel.command
    assert {p.command for p in board.panels} >= {"mlops monitor drift", "mlops monitor guardrails"}
    assert _panel(board, "fallbacks").command == "mlops monitor ops --since 30d"


def test_accuracy_trend_keeps_each_periods_latest_check(seeded):
    _monitor_results(seeded)
    board = dashboard.gather(seeded, since=MONTH)
    trend = _panel(board, "accuracy").frames["trend"]
    got = {
        (r.job, r.source, r.period_start.to_pydatetime().date().isoformat()): (
            r.value,
            r.complete,
        )
        for r in trend.itertuples()
    }
    assert got == {
        ("churn", "model", "2026-05-28"): (0.75, True),
        ("churn", "model", "2026-05-29"): (0.76, False),
        ("churn", "heuristic", "2026-05-28"): (0.66, True),
        ("eta", "model", "2026-05-28"): (5.5, True),  # the weekly row is an older check's
    }
    fig = report.figure(_panel(board, "accuracy"), board.window)
    model = [t for t in fig.data if t.name == "model" and t.xaxis == "x"]
    assert [list(t.y) for t in model] == [[0.75, 0.76]]
    assert model[0].marker.color[1] == "#fff"  # hollow: labels not all due


def test_eta_residuals_from_the_labelled_predictions(seeded):
    truth = _eta_answers(seeded)
    board = dashboard.gather(seeded, since=MONTH)
    panel = _panel(board, "residuals")
    hist, over = panel.frames["histogram"], panel.frames["over_time"]
    residuals = defaultdict(list)
    for predicted, actual, source in truth.values():
        residuals[source].append(predicted - actual)
    for source, values in residuals.items():
        assert hist.loc[hist["source"] == source, "count"].sum() == len(values)
        mine = over[over["source"] == source]
        assert mine["count"].sum() == len(values)
        weighted = (mine["mean_residual"] * mine["count"]).sum() / len(values)
        assert math.isclose(weighted, sum(values) / len(values))
        assert math.isclose(
            (mine["mae"] * mine["count"]).sum() / len(values),
            sum(abs(v) for v in values) / len(values),
        )


def test_eta_residuals_binning():
    window = Window(NOW - MONTH, NOW, "day")
    frame = pd.DataFrame(
        {
            "logged_at": [NOW - timedelta(days=1, hours=h) for h in range(4)] + [NOW],
            "source": ["model"] * 4 + ["heuristic"],
            "prediction": [10.0, 20.0, 30.0, 40.0, 50.0],
            "label": [12.0, 20.0, 25.0, 400.0, 45.0],
        }
    )
    out = panel_monitors.residuals(frame, window)
    hist = out["histogram"]
    # -360 lies beyond the 99th percentile of |residual|: counted in the outermost bin.
    model = hist[hist["source"] == "model"]
    assert model["count"].sum() == 4 and model["count"].iloc[0] == 1
    over = out["over_time"].set_index(["bucket", "source"])
    day = pd.Timestamp(NOW - timedelta(days=1)).floor("D")
    assert over.loc[(day, "model"), "mean_residual"] == pytest.approx((-2 + 0 + 5 - 360) / 4)
    assert over.loc[(day, "model"), "mae"] == pytest.approx((2 + 0 + 5 + 360) / 4)
    empty = panel_monitors.residuals(frame.iloc[:0], window)
    assert all(f.empty for f in empty.values())


def test_time_axes_span_the_window_even_for_one_answer():
    """One request logged: the cohort and residual charts' time axes are the window, not a
    few milliseconds around the lone bucket (they read 23:59:59.999 ... 00:00:00.001)."""
    from mlops.monitoring.chart_distributions import cohorts_chart
    from mlops.monitoring.chart_monitors import residuals_chart

    window = Window(NOW - MONTH, NOW, "day")
    logged = pd.DataFrame({"logged_at": [NOW], "entity_id": ["C1"], "prediction": [0.4]})
    cohorts = pd.DataFrame({"entity_id": ["C1"], "plan": ["basic"]})
    panel = Panel("cohorts", "", "", jobs=["churn"])
    panel.frames = {"scores": panel_distributions.cohort_scores(logged, cohorts, window)}
    wanted = [pd.Timestamp(t) for t in chart_style.time_range(window)]
    cohort_fig = cohorts_chart(panel, window)
    assert [pd.Timestamp(t) for t in cohort_fig.layout.xaxis.range] == wanted
    answer = logged.assign(source="model", label=0.5)
    panel = Panel("residuals", "", "", jobs=["eta"])
    panel.frames = panel_monitors.residuals(answer, window)
    residual_fig = residuals_chart(panel, window)
    assert [pd.Timestamp(t) for t in residual_fig.layout.xaxis2.range] == wanted


def test_freshness_against_ttl(refreshed):
    refreshed.clock.set(NOW + timedelta(hours=1))
    board = dashboard.gather(refreshed, since=MONTH)
    fresh = _panel(board, "freshness").frames["freshness"].set_index("job")
    assert fresh.loc["churn", "age_seconds"] == 3600 and not fresh.loc["churn", "stale"]
    assert fresh.loc["eta", "stale"]  # an hour old with a 15-minute TTL
    fig = report.figure(_panel(board, "freshness"), board.window)
    shares = dict(zip(fig.data[0].y, fig.data[0].x, strict=True))
    assert shares["eta"] == 200  # 400% of TTL, drawn to the edge
    assert any("(400%)" in a.text for a in fig.layout.annotations)


def test_rows_stamped_after_the_window_are_left_out(seeded):
    # The window ends at the clock's now, as the fallback, cohort and feature panels do.
    later = NOW + timedelta(hours=1)
    results.write(
        seeded,
        [
            *_drift(later, "churn", "orders_30d", 0.9, "alert"),
            _accuracy(later, "churn", "2026-05-28", "model", 0.5),
        ],
    )
    start_run(
        seeded.store,
        job="churn",
        mode="refresh",
        started_at=later,
        as_of_start=later,
        as_of_end=later,
        scheduled_for=None,
    )
    board = dashboard.gather(seeded, since=MONTH)
    for key in ("drift", "accuracy", "ingestion"):
        assert _panel(board, key).empty, key


# --- empty, broken, and the page ------------------------------------------------------------


def test_a_fresh_store_shows_empty_charts_with_notes(migrated):
    board = dashboard.gather(migrated)
    assert [p.key for p in board.panels] == [s.key for s in dashboard.PANELS]
    assert all(p.error is None for p in board.panels)
    assert all(p.notes for p in board.panels)
    assert all(p.empty for p in board.panels if p.key != "freshness")
    page = report.render(board, plotly_src="/x.js")
    assert page.count("draw(") == len(dashboard.PANELS) + 1  # + the function itself
    assert "No data yet" in page and "never ingested" in page


def test_one_unreadable_panel_does_not_take_the_page_down(seeded, monkeypatch, caplog):
    _answers(seeded, 100)

    def broken(rt, window, panel):
        raise RuntimeError("the drift table is <b>gone</b>")

    specs = [
        dashboard.PanelSpec(s.key, s.title, s.caption, broken) if s.key == "drift" else s
        for s in dashboard.PANELS
    ]
    monkeypatch.setattr(dashboard, "PANELS", specs)
    board = dashboard.gather(seeded)
    broken_panel = next(p for p in board.panels if p.key == "drift")
    assert broken_panel.error == "RuntimeError: the drift table is <b>gone</b>"
    assert not _panel(board, "fallbacks").empty
    assert "dashboard panel failed" in caplog.text
    page = report.render(board, plotly_src="/x.js")
    assert "the drift table is &lt;b&gt;gone&lt;/b&gt;" in page and "<b>gone" not in page


def test_window_must_be_positive(rt):
    with pytest.raises(InputError, match="not positive"):
        dashboard.gather(rt, since=timedelta(0))


def test_strings_cannot_close_the_script(seeded):
    _log(
        seeded,
        [
            {
                "logged_at": NOW,
                "request_id": "x",
                "endpoint": "eta",
                "job": "eta",
                "entity_id": "Z01",
                "prediction": 1.0,
                "source": "heuristic",
                "reason": "</script><b>x",
                "latency_ms": 1.0,
            }
        ],
    )
    page = report.render(dashboard.gather(seeded), plotly_src="/x.js")
    assert "</script><b>x" not in page
    assert "\\u003c/script>\\u003cb>x" in page


def test_report_file_is_self_contained_and_replaced_atomically(refreshed, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "report.html"
    written = report.write_report(refreshed, out)
    page = out.read_text()
    assert written.size == out.stat().st_size and len(written.panels) == len(dashboard.PANELS)
    assert "<script src" not in page.lower() and "cdn.plot.ly/plotly" not in page
    assert report.plotly_js().decode()[:2000] in page  # the library itself, inlined
    assert out.stat().st_mode & 0o777 == 0o644
    before = out.read_bytes()

    # Rendering fails half-way through the panels: the old report stays as it was.
    real = report.figure

    def failing(panel, window):
        if panel.key == "features":
            raise RuntimeError("plotly broke")
        return real(panel, window)

    monkeypatch.setattr(report, "figure", failing)
    with pytest.raises(RuntimeError, match="plotly broke"):
        report.write_report(refreshed, out)
    with pytest.raises(RuntimeError, match="plotly broke"):
        report.write_report(refreshed, folder / "new.html")
    monkeypatch.setattr(report, "figure", real)
    assert out.read_bytes() == before and not (folder / "new.html").exists()

    # Writing fails after part of the bytes reached the disk: no temporary file is left.
    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        report.write_report(refreshed, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["report.html"]


def test_report_refuses_a_folder_or_a_missing_one(seeded, tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        report.write_report(seeded, tmp_path)
    with pytest.raises(InputError, match="no folder"):
        report.write_report(seeded, tmp_path / "nope" / "r.html")


@pytest.fixture
def cli(settings, monkeypatch, capsys):

    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", settings.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", settings.warehouse_db_url)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        return invoke(capsys, *args)

    return run


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_monitor_report_from_the_command_line(cli, seeded, tmp_path):
    _answers(seeded, 200)
    out = tmp_path / "r.html"
    # The command runs on the system clock: a window long enough to reach NOW.
    code, stdout, _ = cli("monitor", "report", "--out", str(out), "--since", "3650d")
    assert code == 0, stdout
    size = out.stat().st_size
    assert f"wrote {out} ({size / 1e6:.1f} MB, {len(dashboard.PANELS)} panels, " in stdout
    assert "Fallback rates by reason" in stdout and "no drift checks" in stdout
    code, _, err = cli("monitor", "report", "--out", str(out), "--since", "a month")
    assert code == 2 and "cannot read duration" in err
    code, _, err = cli("monitor", "report", "--out", str(tmp_path / "no" / "r.html"))
    assert code == 2 and "no folder" in err


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_page_is_drawn_off_the_event_loop(seeded, monkeypatch):
    import threading

    import httpx

    from mlops.runtime import Runtime
    from mlops.serving.app import create_app
    from tests.serving_support import ServerThread

    entered, release = threading.Event(), threading.Event()
    real = report.gather

    def held(rt, *, since, serving):
        entered.set()
        assert release.wait(60)
        return real(rt, since=since, serving=serving)

    monkeypatch.setattr(report, "gather", held)
    settings = seeded.settings.model_copy(update={"log_requests": False})
    app = create_app(Runtime(settings=settings, clock=seeded.clock), poll=False)
    answers = {}
    with ServerThread(app) as server:
        page = threading.Thread(
            target=lambda: answers.update(page=httpx.get(f"{server.url}/dashboard", timeout=90))
        )
        page.start()
        assert entered.wait(60)
        # While a page is being read and drawn, the server still answers.
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
        release.set()
        page.join(90)
    assert answers["page"].status_code == 200 and "Drift status per feature" in answers["page"].text


# --- in a browser ----------------------------------------------------------------------------


def _browse(url: str, screenshot: Path, *, same_origin: str) -> dict:
    """Open ``url`` in headless Chromium, wait until every chart has drawn, and return what
    the page reported; fails on any console error, page error or request elsewhere."""
    from playwright.sync_api import sync_playwright

    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load", timeout=60_000)
            panels = page.locator("section.panel").count()
            page.wait_for_function(
                "n => document.querySelectorAll('.chart.js-plotly-plot').length === n && "
                "[...document.querySelectorAll('.chart')].every(c => c.querySelector('.main-svg'))"
                " && document.body.dataset.rendered === 'true'",
                arg=panels,
                timeout=60_000,
            )
            info = {
                "panels": panels,
                "charts": page.locator(".chart.js-plotly-plot").count(),
                "titles": page.locator("section.panel h2").all_inner_texts(),
                "traces": page.evaluate(
                    "[...document.querySelectorAll('.chart')].map(c => c.data.length)"
                ),
            }
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert all(u.startswith(same_origin) or u.startswith("data:") for u in requests), requests
    return info


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1400 and height > 2500 and len(data) > 100_000


def _filled(rt) -> None:
    _answers(rt)
    _eta_answers(rt)
    _monitor_results(rt)


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@needs_chromium
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_dashboard_in_chromium_from_the_service(serving_rt, tmp_path):
    import httpx

    from mlops.runtime import Runtime
    from mlops.serving.app import create_app
    from tests.serving_support import ServerThread

    _filled(serving_rt)
    settings = serving_rt.settings.model_copy(update={"log_requests": False})
    app = create_app(Runtime(settings=settings, clock=serving_rt.clock), poll=False)
    with ServerThread(app) as server:
        r = httpx.get(f"{server.url}/dashboard", timeout=60)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        assert len(r.content) < 1_000_000  # plotly.js is not in the page
        route = report.plotly_js_route()
        assert f'<script src="{route}"></script>' in r.text
        assert "<b>churn</b> v1" in r.text  # the version the service has loaded
        js = httpx.get(f"{server.url}{route}", timeout=60)
        assert js.content == report.plotly_js()
        assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert httpx.get(f"{server.url}/dashboard?days=0").status_code == 422
        doc = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/dashboard"]["get"]
        assert "Monitoring dashboard" in doc["description"]

        shot = tmp_path / "dashboard.png"
        info = _browse(f"{server.url}/dashboard", shot, same_origin=server.url)
    _check_png(shot)
    assert info["panels"] == info["charts"] == len(dashboard.PANELS)
    assert "Drift status per feature" in info["titles"]
    # With a champion, answers, results and runs, every chart has something drawn.
    assert all(n > 0 for n in info["traces"]), info


@needs_chromium
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_report_file_in_chromium(refreshed, tmp_path):
    _filled(refreshed)
    out = tmp_path / "report.html"
    report.write_report(refreshed, out)
    # Away from the store and the service: the file alone must be enough.
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    shutil.move(out, alone)
    shot = tmp_path / "report.png"
    info = _browse(alone.as_uri(), shot, same_origin="file://")
    _check_png(shot)
    assert info["panels"] == info["charts"] == len(dashboard.PANELS)
