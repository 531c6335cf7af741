from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.errors import InputError
from mlops.store import ingest
from mlops.store.historical import get_historical_features
from tests.repo_support import JOBS, REPO
from tests.store_tables import write_snapshots

BASE = datetime(2026, 3, 1)
ETA = JOBS["eta"]


def _write_history(rt, frame: pd.DataFrame) -> None:
    write_snapshots(rt, ETA, frame, BASE)


def _random_history(rng, zones, points) -> pd.DataFrame:
    rows = []
    for p in points:
        present = [z for z in zones if rng.random() < 0.7]  # gaps: some zones skip a snapshot
        for z in present:
            rows.append({"as_of": p, "entity_id": z})
    frame = pd.DataFrame(rows)
    n = len(frame)
    for f in ETA.features:
        if f.dtype == "int":
            frame[f.name] = rng.integers(0, 50, n)
        else:
            frame[f.name] = rng.random(n) * 10
    frame.loc[rng.random(n) < 0.1, "avg_delivery_minutes_2h"] = np.nan
    return frame


def _brute_force(history, rows, ttl):
    out = []
    for _, r in rows.iterrows():
        cand = history[
            (history.entity_id == r.entity_id)
            & (history.as_of <= r.event_time)
            & (history.as_of >= r.event_time - ttl)
        ]
        out.append(None if cand.empty else cand.sort_values("as_of").iloc[-1])
    return out


def test_point_in_time_matches_brute_force_and_merge_asof(migrated):
    rng = np.random.default_rng(3)
    zones = [f"Z{i:02d}" for i in range(6)]
    points = [BASE + timedelta(minutes=5 * i) for i in range(60)]
    history = _random_history(rng, zones, points)
    _write_history(migrated, history[history.as_of < points[30]])
    _write_history(migrated, history[history.as_of >= points[30]])
    events = pd.DataFrame(
        {
            "entity_id": rng.choice([*zones, "Z99"], 400),
            "event_time": [
                BASE + timedelta(seconds=int(s)) for s in rng.integers(-900, 6 * 3600, 400)
            ],
        }
    )
    events.loc[:5, "event_time"] = [
        points[3],
        points[3],
        points[10],
        points[40],
        points[0],
        points[59],
    ]
    got = get_historical_features(migrated.store, events, ["eta"], repo=REPO)
    assert list(got["entity_id"]) == list(events["entity_id"])  # input order kept
    expected = _brute_force(history, events, ETA.ttl)
    for i, exp in enumerate(expected):
        if exp is None:
            assert pd.isna(got.loc[i, "eta_as_of"])
            assert pd.isna(got.loc[i, "deliveries_1h"])
            continue
        assert got.loc[i, "eta_as_of"] == exp.as_of
        for f in ETA.feature_names:
            a, b = got.loc[i, f], exp[f]
            assert (pd.isna(a) and pd.isna(b)) or a == pytest.approx(b)
    # and the same as a straightforward pandas merge_asof over the whole history
    ref = pd.merge_asof(
        events.assign(_i=range(len(events))).sort_values("event_time"),
        history.sort_values("as_of"),
        left_on="event_time",
        right_on="as_of",
        by="entity_id",
        tolerance=pd.Timedelta(ETA.ttl),
    ).sort_values("_i")
    np.testing.assert_allclose(
        got["courier_load"].to_numpy(dtype=float), ref["courier_load"].to_numpy(dtype=float)
    )


def test_values_after_the_event_never_leak(migrated):
    history = pd.DataFrame(
        {"as_of": [BASE, BASE + timedelta(minutes=10)], "entity_id": ["Z01", "Z01"]}
    )
    for f in ETA.features:
        history[f.name] = [1, 999] if f.dtype == "int" else [1.0, 999.0]
    _write_history(migrated, history)
    events = pd.DataFrame(
        {
            "entity_id": ["Z01"] * 4,
            "event_time": [
                BASE - timedelta(seconds=1),  # before any snapshot
                BASE,  # exactly at a snapshot: it counts (the view saw only rows before it)
                BASE + timedelta(minutes=10) - timedelta(seconds=1),  # a second before the next
                BASE + timedelta(minutes=10, seconds=1) + ETA.ttl,  # past the TTL of both
            ],
        }
    )
    got = get_historical_features(migrated.store, events, ["eta:deliveries_1h"], repo=REPO)
    assert pd.isna(got.loc[0, "deliveries_1h"])
    assert got.loc[1, "deliveries_1h"] == 1
    assert got.loc[2, "deliveries_1h"] == 1
    assert pd.isna(got.loc[3, "deliveries_1h"])


def test_historical_argument_errors(migrated):
    with pytest.raises(InputError, match="event_time"):
        get_historical_features(
            migrated.store, pd.DataFrame({"entity_id": ["a"]}), ["eta"], repo=REPO
        )
    rows = pd.DataFrame({"entity_id": ["a"], "event_time": [BASE]})
    with pytest.raises(InputError, match="different entities"):
        get_historical_features(migrated.store, rows, ["eta", "churn"], repo=REPO)
    with pytest.raises(InputError, match="no feature"):
        get_historical_features(migrated.store, rows, ["eta:nope"], repo=REPO)


def test_features_of_two_jobs_on_one_entity(seeded):
    now = seeded.clock.now()
    ingest.refresh(seeded, "churn")
    ingest.refresh(seeded, "upsell")
    rows = pd.DataFrame({"entity_id": ["C0000001", "C0000002"], "event_time": [now, now]})
    wanted = ["churn", "upsell:acceptance_rate_90d"]
    got = get_historical_features(seeded.store, rows, wanted, repo=REPO)
    assert {"churn:plan", "upsell:plan"}.isdisjoint(got.columns)  # plan only from churn
    assert {"orders_30d", "plan", "acceptance_rate_90d", "churn_as_of", "upsell_as_of"} <= set(
        got.columns
    )
