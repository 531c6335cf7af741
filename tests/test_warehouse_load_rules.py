"""``load_directory`` against the bundled example's column rules (its warehouse.py): values of
the right type but the wrong meaning (a negative count, an order dated 2099, a delivery
delivered before its dispatch, padded ids) are refused like type errors, by file, row and
column, and nothing is written; ids lose their surrounding whitespace."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mlops.clock import FrozenClock
from mlops.errors import ValidationFailed
from mlops.warehouse.contract import ColumnRule
from mlops.warehouse.load import load_directory
from tests.conftest import NOW
from tests.test_warehouse_load import CONTRACT, counts, fetch, write_files

CLOCK = FrozenClock(NOW)  # 2026-06-01 12:00:00
ORDERS = "order_id,customer_id,placed_at,status,item_count,total_amount\n"
DELIVERIES = (
    "delivery_id,order_id,zone,courier_id,distance_km,dispatched_at,promised_at,delivered_at\n"
)


def refused(rt, tmp_path, files: dict[str, str]) -> list[str]:
    """The problems of loading ``files`` (which must fail), having checked nothing changed."""
    before = counts(rt.warehouse)
    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, CONTRACT, write_files(tmp_path / "in", files), clock=CLOCK)
    assert "nothing was written" in str(caught.value)
    assert counts(rt.warehouse) == before
    return caught.value.problems


def test_values_of_the_right_type_but_the_wrong_meaning_are_refused_by_row_and_column(rt, tmp_path):
    problems = refused(
        rt,
        tmp_path,
        {
            "orders.csv": ORDERS
            + "o1,c1,2026-05-01T10:00:00Z,completed,2,12.50\n"  # fine
            + "o2,c1,2026-05-01T10:00:00Z,completed,-3,12.50\n"
            + "o3,c1,2026-05-01T10:00:00Z,completed,2,-12.50\n"
            + "o4,c1,2099-01-01T00:00:00Z,completed,2,12.50\n"
            + "o5,c1,2026-05-01T10:00:00Z,completed,2,1000000000\n"
            + "o6,c1,2026-05-01T10:00:00Z,completed,x,12.50\n",  # a type error, once
            "deliveries.csv": DELIVERIES
            + "d1,o1,z1,k1,-1.5,2026-05-01 10:05,2026-05-01 10:45,2026-05-01 10:35\n"
            + "d2,o1,z1,k1,1.5,2026-05-01 10:05,2026-05-01 10:45,2026-05-01 09:35\n"
            + "d3,o1,z1,k1,1.5,2026-05-01 10:05,2026-05-01 10:00,\n",
        },
    )
    assert sorted(problems) == sorted(
        [
            "orders.csv row 2, column item_count: below the contract's min 1: '-3'",
            "orders.csv row 3, column total_amount: below the contract's min 0: '-12.50'",
            "orders.csv row 4, column placed_at: in the future: after 2026-06-01 13:00:00 "
            "(now + 1:00:00): '2099-01-01T00:00:00Z'",
            "orders.csv row 5, column total_amount: above the contract's max 1e+06: '1000000000'",
            "orders.csv row 6, column item_count: not a number: 'x'",
            "deliveries.csv row 1, column distance_km: below the contract's min 0: '-1.5'",
            "deliveries.csv row 2, column delivered_at: before dispatched_at (the contract's "
            "not_before): '2026-05-01 09:35'",
            "deliveries.csv row 3, column promised_at: before dispatched_at (the contract's "
            "not_before): '2026-05-01 10:00'",
        ]
    )


def test_the_future_is_the_load_clocks_give_or_take_the_declared_slack(rt, tmp_path):
    soon, late = NOW + timedelta(minutes=59), NOW + timedelta(minutes=61)
    rows = "".join(
        f"o{n},c1,{at:%Y-%m-%d %H:%M:%S},completed,1,5\n" for n, at in enumerate([soon, late])
    )
    problems = refused(rt, tmp_path, {"orders.csv": ORDERS + rows})
    assert len(problems) == 1 and problems[0].startswith("orders.csv row 2, column placed_at: in ")
    # The same file a day later by the clock: both orders are in the past.
    directory = write_files(tmp_path / "later", {"orders.csv": ORDERS + rows})
    later = FrozenClock(NOW + timedelta(days=1))
    load_directory(rt.warehouse, CONTRACT, directory, clock=later)
    assert counts(rt.warehouse)["orders"] == 2


def test_padded_ids_are_the_same_id(rt, tmp_path):
    problems = refused(
        rt,
        tmp_path,
        {
            "customers.csv": "customer_id,signup_at,region,plan\n  CW1  ,2026-01-01,north,free\n"
            "CW1,2026-01-02,north,free\n"
        },
    )
    assert problems == [
        "customers.csv rows 1, 2, column customer_id: primary key 'CW1' appears 2 times"
    ]
    files = {
        "customers.csv": "customer_id,signup_at,region,plan\n  CW1  ,2026-01-01, north,free \n",
        "orders.csv": ORDERS + "o1,CW1 ,2026-05-01T10:00:00Z, completed,2,12.50\n",
    }
    load_directory(rt.warehouse, CONTRACT, write_files(tmp_path / "ok", files), clock=CLOCK)
    assert [row[0::2] for row in fetch(rt.warehouse, "customers")] == [("CW1", "north")]
    assert [row[:4:3] for row in fetch(rt.warehouse, "orders")] == [("o1", "completed")]
    assert fetch(rt.warehouse, "orders")[0][1] == "CW1"


def test_a_column_that_refuses_whitespace_names_the_rows(rt, tmp_path):
    refusing = replace(
        CONTRACT, rules={("customers", "customer_id"): ColumnRule(whitespace="refuse")}
    )
    directory = write_files(
        tmp_path / "in",
        {
            "customers.csv": "customer_id,signup_at,region,plan\nC1 ,2026-01-01,n,free\n"
            'C2,2026-01-01,n,free\n" C3",2026-01-01,n,free\n'
        },
    )
    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, refusing, directory, clock=CLOCK)
    assert caught.value.problems == [
        "customers.csv row 1, column customer_id: starts or ends with whitespace (the contract "
        "refuses it): 'C1 '",
        "customers.csv row 3, column customer_id: starts or ends with whitespace (the contract "
        "refuses it): ' C3'",
    ]


def test_the_examples_own_synthetic_history_meets_its_rules(rt, tmp_path):
    import pandas as pd

    CONTRACT.seed(rt.warehouse, size=60, days=30, seed=1, end=NOW)
    directory = tmp_path / "export"
    directory.mkdir()
    for name in CONTRACT.tables:
        pd.read_sql_table(name, rt.warehouse).to_csv(directory / f"{name}.csv", index=False)
    seeded = counts(rt.warehouse)
    summary = load_directory(rt.warehouse, CONTRACT, directory, replace=True, clock=CLOCK)
    assert dict(summary.rows) == seeded
