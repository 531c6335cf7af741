"""The feature views against an independent pandas computation, on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from mlops.examples.marketplace.warehouse import TABLES, create_tables
from mlops.specs.features import JobSpec
from mlops.warehouse import views
from mlops.warehouse.bulk import insert_frame
from tests.reference_features import (
    DAY,
    HOUR,
    LATE_ZONE,
    RUSH_HOURS,
    RUSH_START,
    START,
    make_warehouse,
    reference,
)
from tests.repo_support import JOBS, REPO

SECOND = timedelta(seconds=1)
RTOL = 1e-9


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return make_tables()


def load(engine, tables: dict[str, pd.DataFrame]) -> None:
    create_tables(engine)
    with engine.begin() as conn:
        for name in TABLES:
            insert_frame(conn, name, tables[name])


@pytest.fixture
def warehouse(rt, tables):
    load(rt.warehouse, tables)
    return rt.warehouse


def _at(frame: pd.DataFrame, column: str, mask) -> datetime:
    return frame.loc[mask, column].iloc[0].to_pydatetime()


def daily_grid(w: dict[str, pd.DataFrame]) -> list[datetime]:
    """Points for the customer jobs: regular days plus points exactly on events and on the
    edges of the 30 and 90 day windows (an event exactly at since_Nd counts)."""
    orders, dl = w["orders"], w["deliveries"]
    imp, tk, cust = w["offer_impressions"], w["support_tickets"], w["customers"]
    done = orders["status"] == "completed"
    placed = orders["placed_at"]
    delivered = dl[dl["delivered_at"] > START + 20 * DAY]
    pts = [START - 300 * DAY]  # before every signup: no rows at all
    pts += [START + k * DAY for k in (10, 20, 30, 45)]
    pts += [
        RUSH_START + 3 * HOUR,  # deliveries of recent orders still in flight
        _at(orders, "placed_at", done & (placed > START + 15 * DAY)),
        _at(orders, "placed_at", done & (placed > START + 3 * DAY)) + 30 * DAY,
        _at(orders, "placed_at", done & (placed > START - 70 * DAY)) + 90 * DAY,
        _at(orders, "placed_at", ~done & (placed > START - 65 * DAY)) + 90 * DAY,
        _at(cust, "signup_at", cust["signup_at"] > START + 5 * DAY),
        _at(delivered, "delivered_at", delivered["delivered_at"] > delivered["promised_at"]),
        _at(imp, "shown_at", imp["accepted"] & (imp["shown_at"] > START + 12 * DAY)),
        _at(imp, "shown_at", imp["accepted"] & (imp["shown_at"] > START - 75 * DAY)) + 90 * DAY,
        _at(tk, "opened_at", tk["opened_at"] > START + 8 * DAY),
        _at(tk, "opened_at", tk["opened_at"] > START - 60 * DAY) + 90 * DAY,
    ]
    return sorted(set(pts))


def eta_grid(w: dict[str, pd.DataFrame]) -> list[datetime]:
    """Points for the ETA job: every 30 minutes through the rush plus points exactly on
    dispatches and outcomes and on the edges of the 1, 2 and 3 hour windows."""
    dl = w["deliveries"]
    rush = dl[dl["dispatched_at"] > RUSH_START + HOUR]
    late = rush[rush["delivered_at"] > rush["promised_at"]]
    on_promise = rush[rush["delivered_at"] == rush["promised_at"]]
    in_flight = rush[rush["delivered_at"].isna()]
    first_late_zone = dl.loc[dl["zone"] == LATE_ZONE, "dispatched_at"].min().to_pydatetime()
    pts = [START - 300 * DAY, START + 10 * DAY]
    pts += [RUSH_START + k * timedelta(minutes=30) for k in range(2 * RUSH_HOURS + 2)]
    pts += [
        late["delivered_at"].iloc[0].to_pydatetime(),  # delivered exactly at as_of
        late["delivered_at"].iloc[1].to_pydatetime() + 2 * HOUR,  # 2h window edge
        rush["dispatched_at"].iloc[5].to_pydatetime(),  # dispatched exactly at as_of
        rush["dispatched_at"].iloc[7].to_pydatetime() + HOUR,  # 1h window edge
        in_flight["dispatched_at"].iloc[0].to_pydatetime() + 3 * HOUR,  # open window edge
        on_promise["delivered_at"].iloc[0].to_pydatetime() + SECOND,  # on time, not late
        first_late_zone,  # the zone is not seen yet
        first_late_zone + SECOND,
    ]
    return sorted(set(pts))


def grid(job_name: str) -> list[datetime]:
    w = make_tables()
    return eta_grid(w) if job_name == "eta" else daily_grid(w)


@functools.cache
def make_tables() -> dict[str, pd.DataFrame]:
    return make_warehouse()


@functools.cache
def expected(job_name: str) -> pd.DataFrame:
    """The reference features over the job's grid, computed once per session."""
    return reference(job_name, make_tables(), grid(job_name))


def assert_features_equal(job: JobSpec, got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == ["as_of", "entity_id", *job.feature_names]
    key = ["as_of", "entity_id"]
    got = got.assign(as_of=got["as_of"].astype("datetime64[s]"))
    want = want.assign(as_of=want["as_of"].astype("datetime64[s]"))
    got = got.sort_values(key, ignore_index=True)
    want = want.sort_values(key, ignore_index=True)
    assert not got.duplicated(key).any()
    got_keys = set(zip(got["as_of"], got["entity_id"], strict=True))
    want_keys = set(zip(want["as_of"], want["entity_id"], strict=True))
    assert got_keys == want_keys, (
        f"rows only in the view: {sorted(got_keys - want_keys)[:5]}, "
        f"only in the reference: {sorted(want_keys - got_keys)[:5]}"
    )
    for spec in job.features:
        g, r = got[spec.name], want[spec.name]
        if not spec.nullable:
            assert g.notna().all(), f"{spec.name} has nulls"
        assert (g.isna() == r.isna()).all(), _diff(got, want, spec.name, g.isna() != r.isna())
        if spec.dtype == "category":
            same = g.isna() | (g.astype(object) == r.astype(object))
            assert same.all(), _diff(got, want, spec.name, ~same)
            continue
        # numbers, not Decimal objects (PostgreSQL's AVG of a numeric literal is numeric)
        assert g.dtype.kind in "fiu", f"{spec.name} came back as {g.dtype}"
        gv = g.astype("float64").to_numpy()
        rv = pd.to_numeric(r).astype("float64").to_numpy()
        ok = np.isnan(gv) | np.isclose(gv, rv, rtol=RTOL, atol=1e-12)
        assert ok.all(), _diff(got, want, spec.name, ~ok)
        if spec.dtype == "int":
            assert (np.isnan(gv) | (gv == np.round(gv))).all(), f"{spec.name} is not whole"


def _diff(got, want, name, mask) -> str:
    mask = np.asarray(mask)
    sample = pd.DataFrame(
        {
            "as_of": got["as_of"][mask],
            "entity_id": got["entity_id"][mask],
            "view": got[name][mask],
            "reference": want[name][mask],
        }
    )
    return f"{name} differs in {int(mask.sum())} rows:\n{sample.head(10)}"


@pytest.mark.parametrize("job_name", list(JOBS))
def test_view_matches_reference(warehouse, job_name):
    job = JOBS[job_name]
    with warehouse.connect() as conn:
        got = views.compute(conn, REPO, job, grid(job_name))
    want = expected(job_name)
    assert len(want) > 100  # the grid exercises the job
    assert_features_equal(job, got, want)


def test_reference_exercises_the_edges():
    """The fixture is not degenerate: every nullable feature is both null and set somewhere,
    and the ETA grid sees open deliveries, idle zones and the zone that appears late."""
    for name, job in JOBS.items():
        want = expected(name)
        for spec in job.features:
            if spec.nullable:
                assert want[spec.name].isna().any(), spec.name
            assert want[spec.name].notna().any(), spec.name
    eta = expected("eta")
    assert (eta["open_deliveries"] > 0).any()
    assert ((eta["active_couriers_1h"] == 0) & (eta["open_deliveries"] > 0)).any()
    assert (eta["entity_id"] == LATE_ZONE).any()
    churn = expected("churn")
    assert (churn["order_trend"] > 1).any() and (churn["order_trend"] < 1).any()
    upsell = expected("upsell")
    assert (upsell["category_breadth_90d"] > 1).any()


# --- leakage -------------------------------------------------------------------------------


def _future_rows(tables: dict[str, pd.DataFrame], at: datetime) -> dict[str, pd.DataFrame]:
    """Rows dated exactly at ``at`` and after it, touching every table and entity."""
    when = pd.Series([at, at, at + SECOND, at + HOUR, at + 10 * DAY], dtype="datetime64[s]")
    k = len(when)
    customers = tables["customers"]["customer_id"].tolist()
    zones = sorted(tables["deliveries"]["zone"].unique())
    out: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    out["customers"].append(
        pd.DataFrame(
            {
                "customer_id": [f"new{i}" for i in range(k)],
                "signup_at": when,
                "region": "eu",
                "plan": "premium",
            }
        )
    )
    out["offers"].append(
        pd.DataFrame(
            {"offer_id": ["fx1", "fx2"], "category": ["zzz", "aaa"], "discount_pct": [50.0, 1.0]}
        ).assign(price=9.99)
    )
    for i, cid in enumerate([*customers, "new0"]):
        ids = [f"x{i}_{j}" for j in range(k)]
        out["orders"].append(
            pd.DataFrame(
                {
                    "order_id": ids,
                    "customer_id": cid,
                    "placed_at": when,
                    "status": ["completed", "cancelled", "completed", "completed", "cancelled"],
                    "item_count": 50,
                    "total_amount": 999.99,
                }
            )
        )
        out["deliveries"].append(
            pd.DataFrame(
                {
                    "delivery_id": [f"xd{i}_{j}" for j in range(k)],
                    "order_id": ids,
                    "zone": [*zones, LATE_ZONE, "newzone"][i % (len(zones) + 2)],
                    "courier_id": f"xk{i}",
                    "distance_km": 0.01,
                    "dispatched_at": when,
                    "promised_at": when,
                    "delivered_at": when + timedelta(minutes=1),
                }
            )
        )
        out["offer_impressions"].append(
            pd.DataFrame(
                {
                    "impression_id": [f"xi{i}_{j}" for j in range(k)],
                    "customer_id": cid,
                    "offer_id": ["fx1", "fx2", "fx1", "fx2", "fx1"],
                    "order_id": ids,
                    "shown_at": when,
                    "accepted": True,
                }
            )
        )
        out["support_tickets"].append(
            pd.DataFrame(
                {
                    "ticket_id": [f"xt{i}_{j}" for j in range(k)],
                    "customer_id": cid,
                    "opened_at": when,
                    "reason": "other",
                }
            )
        )
    return {name: pd.concat(frames, ignore_index=True) for name, frames in out.items()}


def test_rows_at_or_after_as_of_do_not_leak(warehouse, tables):
    dl = tables["deliveries"]
    rush = dl[dl["dispatched_at"] > RUSH_START + 2 * HOUR]
    # as_of falls exactly on a delivery outcome, during the rush
    at = rush.loc[rush["delivered_at"].notna(), "delivered_at"].iloc[0].to_pydatetime()
    # sees the injected rows at as_of and one hour after: proves they count when not future
    later = at + timedelta(minutes=90)
    points = [at - 3 * HOUR, at]
    with warehouse.connect() as conn:
        before = {name: views.compute(conn, REPO, job, points) for name, job in JOBS.items()}
        later_before = {name: views.compute(conn, REPO, job, [later]) for name, job in JOBS.items()}
    future = _future_rows(tables, at)
    in_flight = dl.loc[dl["delivered_at"].isna() & (dl["dispatched_at"] < at), "delivery_id"]
    assert len(in_flight)
    with warehouse.begin() as conn:
        for name, frame in future.items():
            insert_frame(conn, name, frame)
        # deliveries in flight at as_of get their outcome exactly at as_of or later
        conn.execute(
            text("UPDATE deliveries SET delivered_at = :at WHERE delivery_id = :id"),
            [{"at": at + (i % 3) * HOUR, "id": d} for i, d in enumerate(in_flight)],
        )
        # an order placed before as_of gets its delivery dispatched exactly at as_of
        old = tables["orders"]
        old = old[(old["placed_at"] < at) & (old["status"] == "cancelled")].iloc[-1]
        conn.execute(
            text(
                "INSERT INTO deliveries (delivery_id, order_id, zone, courier_id, distance_km,"
                " dispatched_at, promised_at, delivered_at)"
                " VALUES ('late1', :order, :zone, 'k0', 1.0, :at, :at, :at)"
            ),
            {"order": old["order_id"], "zone": LATE_ZONE, "at": at},
        )
    with warehouse.connect() as conn:
        for name, job in JOBS.items():
            after = views.compute(conn, REPO, job, points)
            pd.testing.assert_frame_equal(_sorted(after), _sorted(before[name]))
            changed = views.compute(conn, REPO, job, [later])
            assert not _sorted(changed).equals(_sorted(later_before[name])), name


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["as_of", "entity_id"], ignore_index=True)


# --- grid handling ---------------------------------------------------------------------------


def test_one_point_equals_its_row_in_a_grid(warehouse):
    """A refresh (grid of one point) computes what the backfill grid computes for it."""
    with warehouse.connect() as conn:
        for name, job in JOBS.items():
            points = grid(name)
            one = points[len(points) // 2]
            full = views.compute(conn, REPO, job, points)
            single = views.compute(conn, REPO, job, [one])
            part = full[full["as_of"] == pd.Timestamp(one)]
            pd.testing.assert_frame_equal(_sorted(single), _sorted(part), check_dtype=False)


def test_a_repeated_point_is_computed_once(warehouse):
    point = START + 20 * DAY
    with warehouse.connect() as conn:
        once = views.compute(conn, REPO, JOBS["churn"], [point])
        twice = views.compute(conn, REPO, JOBS["churn"], [point, point])
    pd.testing.assert_frame_equal(_sorted(twice), _sorted(once))


def test_an_order_delivered_twice_counts_once(warehouse, tables):
    """A re-dispatched order (two delivery rows, which the contract allows) is one order."""
    dl = tables["deliveries"]
    first = dl[dl["order_id"].notna() & dl["delivered_at"].notna()].iloc[50]
    point = first["delivered_at"].to_pydatetime() + DAY
    with warehouse.connect() as conn:
        before = views.compute(conn, REPO, JOBS["churn"], [point])
    with warehouse.begin() as conn:
        insert_frame(conn, "deliveries", pd.DataFrame([first]).assign(delivery_id="again"))
    with warehouse.connect() as conn:
        after = views.compute(conn, REPO, JOBS["churn"], [point])
    pd.testing.assert_frame_equal(_sorted(after), _sorted(before))


# --- installed views (PostgreSQL) ----------------------------------------------------------


def test_install_views_on_postgres(rt, backend):
    if backend != "postgres":
        pytest.skip("real views exist on PostgreSQL only")
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    w = make_warehouse()
    # shift the fixture so that its end is just before now, and some signups after now
    shift = pd.Timestamp(now) - pd.Timestamp(START + 40 * DAY) - pd.Timedelta(hours=1)
    shifted = {}
    for name, frame in w.items():
        cols = {c: frame[c] + shift for c in frame.columns if frame[c].dtype.kind == "M"}
        shifted[name] = frame.assign(**cols)
    future = (
        shifted["customers"]
        .iloc[:3]
        .assign(
            customer_id=["f1", "f2", "f3"],
            signup_at=pd.Series([now + HOUR, now + DAY, now + 30 * DAY], dtype="datetime64[s]"),
        )
    )
    shifted["customers"] = pd.concat([shifted["customers"], future], ignore_index=True)
    load(rt.warehouse, shifted)

    installed = views.install_views(rt.warehouse, REPO, list(JOBS.values()))
    assert installed == [job.view for job in JOBS.values()]
    with rt.warehouse.connect() as conn:
        for job in JOBS.values():
            frame = pd.read_sql(text(f"SELECT * FROM {job.view}"), conn)
            assert list(frame.columns) == ["as_of", job.entity_key, *job.feature_names]
            assert frame["as_of"].nunique() == 1
            assert abs(frame["as_of"].iloc[0] - pd.Timestamp(now)) < pd.Timedelta(minutes=5)
        churn = pd.read_sql(text("SELECT * FROM ml_churn_features"), conn)
    signed_up = shifted["customers"]["signup_at"] < pd.Timestamp(now)
    assert sorted(churn["customer_id"]) == sorted(shifted["customers"]["customer_id"][signed_up])
    assert churn["customer_id"].is_unique
    # the installed view computes what compute() computes at the same instant
    as_of = churn["as_of"].iloc[0].to_pydatetime()
    with rt.warehouse.connect() as conn:
        direct = views.compute(conn, REPO, JOBS["churn"], [as_of])
    want = reference("churn", shifted, [as_of])
    assert_features_equal(JOBS["churn"], churn.rename(columns={"customer_id": "entity_id"}), want)
    assert_features_equal(JOBS["churn"], direct, want)
    # installing again replaces the views in place
    assert views.install_views(rt.warehouse, REPO, list(JOBS.values())) == installed


def test_install_views_elsewhere_is_a_no_op(rt, backend):
    if backend != "sqlite":
        pytest.skip("SQLite only")
    assert views.install_views(rt.warehouse, REPO, list(JOBS.values())) == []
