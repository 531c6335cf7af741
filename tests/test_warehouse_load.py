"""``load_directory``: CSV and Parquet into the raw tables, validated first, all or nothing."""

from __future__ import annotations

import gzip
import io
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, inspect, select

from mlops.errors import InputError, ValidationFailed
from mlops.examples.marketplace.warehouse import TABLES
from mlops.warehouse import contract, load_problems
from mlops.warehouse.load import load_directory
from tests.repo_support import REPO

# The bundled example's contract: its tables, load order and allowed values.
CONTRACT = contract.of(REPO)

INJECTION = "Robert'); DROP TABLE customers;--"
UNICODE_ID = "客户-ü-😀"
TRICKY_REASON = 'late, "very" late\nagain; DELETE FROM orders; '

# Text cells as a user's export would have them; EXPECTED is what the warehouse must hold.
GOOD = {
    "customers": {
        "customer_id": ["c-1", "c-2", INJECTION, UNICODE_ID],
        "signup_at": [
            "2025-01-01",
            "2025-01-02T10:00:00+02:00",
            "2025-01-03 04:05:06.789",
            "2025-01-04T00:00:00Z",
        ],
        "region": ["north", "south", "east", "ouest-é"],
        "plan": ["free", "pro", "free", "pro"],
        "notes": ["x", "y", "z", "w"],  # an extra column: ignored
    },
    "offers": {
        "offer_id": ["of-1", "of-2"],
        "category": ["snacks", "drinks"],
        "discount_pct": ["10", "12.5"],
        "price": ["3.99", "10"],
    },
    "orders": {
        "order_id": ["o-1", "o-2", "o-3"],
        "customer_id": ["c-1", "c-2", INJECTION],
        "placed_at": ["2025-02-01T10:00:00Z", "2025-02-02T11:30:00.5Z", "2025-02-03T00:00:00Z"],
        "status": ["completed", "cancelled", "completed"],
        "item_count": ["1", " 2 ", "3"],
        "total_amount": ["12.50", "7", "19.999"],
    },
    "deliveries": {
        "delivery_id": ["d-1", "d-2"],
        "order_id": ["o-1", ""],
        "zone": ["z1", "z2"],
        "courier_id": ["k1", "k2"],
        "distance_km": ["1.5", "3"],
        "dispatched_at": ["2025-02-01 10:05:00", "2025-02-01 11:00:00"],
        "promised_at": ["2025-02-01 10:45:00", "2025-02-01 11:40:00"],
        "delivered_at": ["2025-02-01 10:35:00", ""],
    },
    "offer_impressions": {
        "impression_id": [f"i-{n}" for n in range(8)],
        "customer_id": ["c-1"] * 8,
        "offer_id": ["of-1"] * 8,
        "order_id": ["o-1", "", "", "", "", "", "", ""],
        "shown_at": ["2025-02-01T10:00:00"] * 8,
        "accepted": ["true", "False", "1", "0", "t", "F", "YES", "no"],
    },
    "support_tickets": {
        "ticket_id": ["t-1", UNICODE_ID],
        "customer_id": [UNICODE_ID, INJECTION],
        "opened_at": ["2025-02-05T09:00:00", "2025-02-06T09:00:00"],
        "reason": [TRICKY_REASON, "  spaced  "],
    },
}

T = datetime
EXPECTED = {
    "customers": [
        ("c-1", T(2025, 1, 1), "north", "free"),
        ("c-2", T(2025, 1, 2, 8), "south", "pro"),
        (INJECTION, T(2025, 1, 3, 4, 5, 6), "east", "free"),
        (UNICODE_ID, T(2025, 1, 4), "ouest-é", "pro"),
    ],
    "offers": [("of-1", "snacks", 10.0, 3.99), ("of-2", "drinks", 12.5, 10.0)],
    "orders": [
        ("o-1", "c-1", T(2025, 2, 1, 10), "completed", 1, 12.5),
        ("o-2", "c-2", T(2025, 2, 2, 11, 30), "cancelled", 2, 7.0),
        ("o-3", INJECTION, T(2025, 2, 3), "completed", 3, 20.0),
    ],
    "deliveries": [
        (
            "d-1",
            "o-1",
            "z1",
            "k1",
            1.5,
            T(2025, 2, 1, 10, 5),
            T(2025, 2, 1, 10, 45),
            T(2025, 2, 1, 10, 35),
        ),
        ("d-2", None, "z2", "k2", 3.0, T(2025, 2, 1, 11), T(2025, 2, 1, 11, 40), None),
    ],
    "offer_impressions": [
        (f"i-{n}", "c-1", "of-1", "o-1" if n == 0 else None, T(2025, 2, 1, 10), n % 2 == 0)
        for n in range(8)
    ],
    "support_tickets": [
        ("t-1", UNICODE_ID, T(2025, 2, 5, 9), TRICKY_REASON),
        (UNICODE_ID, INJECTION, T(2025, 2, 6, 9), "  spaced  "),
    ],
}

ORDERS_HEADER = "order_id,customer_id,placed_at,status,item_count,total_amount\n"
ORDER_ROW = "o-9,c-1,2025-03-01T00:00:00Z,completed,1,5.00\n"


def write_csvs(directory: Path, tables: dict[str, dict[str, list[str]]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, columns in tables.items():
        pd.DataFrame(columns, dtype=str).to_csv(directory / f"{name}.csv", index=False)
    return directory


def write_files(directory: Path, files: dict[str, bytes | str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (directory / name).write_bytes(data)
    return directory


def fetch(engine, name: str) -> list[tuple]:
    """Rows sorted by primary key in Python (collations differ), NUMERIC as float."""
    with engine.connect() as conn:
        rows = conn.execute(select(TABLES[name])).all()
    return sort_rows(
        [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in rows]
    )


def counts(engine) -> dict[str, int]:
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in TABLES.items()
            if name in present
        }


def sort_rows(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: row[0])


def load_good(rt) -> None:
    with tempfile.TemporaryDirectory() as folder:
        load_directory(rt.warehouse, CONTRACT, write_csvs(Path(folder) / "good", GOOD))


@pytest.fixture
def loaded(rt, templates, request):
    """A warehouse holding GOOD (``load_good`` run once per session and backend, its content
    copied here); returns its row counts."""
    templates(request, load_good).copy_into(rt)
    return counts(rt.warehouse)


# --- loading good data ------------------------------------------------------------------------


def test_csv_directory_loads_and_round_trips(rt, tmp_path):
    summary = load_directory(rt.warehouse, CONTRACT, write_csvs(tmp_path / "in", GOOD))

    assert summary.rows == {name: len(rows) for name, rows in EXPECTED.items()}
    assert list(summary.rows) == list(TABLES)  # parents first
    assert summary.ignored_columns["customers"] == ("notes",)
    assert summary.ignored_columns["orders"] == ()
    assert summary.files["orders"] == "orders.csv"
    assert summary.replace is False and summary.total_rows == 21
    for name, rows in EXPECTED.items():
        assert fetch(rt.warehouse, name) == sort_rows(rows), name


def test_parquet_and_gzip_files_load_with_their_types(rt, tmp_path):
    directory = tmp_path / "in"
    directory.mkdir()
    placed = pd.to_datetime(["2025-02-01 11:00:00.7", "2025-02-02 12:30:00"], format="ISO8601")
    placed = placed.tz_localize("Europe/Paris")
    pd.DataFrame(
        {
            "order_id": ["o-1", UNICODE_ID],
            "customer_id": pd.Categorical(["c-1", INJECTION]),
            "placed_at": placed,
            "status": ["completed", "cancelled"],
            "item_count": pd.array([1, 2], dtype="int32"),
            "total_amount": [12.5, 7.0],
            "source": ["app", "web"],
        }
    ).to_parquet(directory / "orders.parquet")
    pd.DataFrame(
        {
            "impression_id": ["i-1", "i-2"],
            "customer_id": ["c-1", "c-1"],
            "offer_id": ["of-1", "of-1"],
            "order_id": ["o-1", None],
            "shown_at": pd.to_datetime(["2025-02-01 10:00:00", "2025-02-01 10:01:00"]),
            "accepted": [True, False],
        }
    ).to_parquet(directory / "offer_impressions.parquet")
    with gzip.open(directory / "offers.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("offer_id,category,discount_pct,price\nof-1,snacks,10,3.99\n")

    summary = load_directory(rt.warehouse, CONTRACT, directory)

    assert summary.rows == {"offers": 1, "orders": 2, "offer_impressions": 2}
    assert summary.ignored_columns["orders"] == ("source",)
    assert fetch(rt.warehouse, "orders") == sort_rows(
        [
            ("o-1", "c-1", T(2025, 2, 1, 10), "completed", 1, 12.5),
            (UNICODE_ID, INJECTION, T(2025, 2, 2, 11, 30), "cancelled", 2, 7.0),
        ]
    )
    assert fetch(rt.warehouse, "offer_impressions") == [
        ("i-1", "c-1", "of-1", "o-1", T(2025, 2, 1, 10), True),
        ("i-2", "c-1", "of-1", None, T(2025, 2, 1, 10, 1), False),
    ]
    assert fetch(rt.warehouse, "offers") == [("of-1", "snacks", 10.0, 3.99)]
    # every raw table exists afterwards, so the views can be installed
    assert set(TABLES) <= set(inspect(rt.warehouse).get_table_names())


def test_header_only_file_loads_zero_rows_and_blank_lines_are_skipped(rt, tmp_path):
    directory = write_files(
        tmp_path / "in",
        {
            "offers.csv": "offer_id,category,discount_pct,price\n",
            "orders.csv": "\ufeff" + ORDERS_HEADER + ORDER_ROW + "\n,,,,,\n\r\n",  # BOM, blanks
        },
    )
    summary = load_directory(rt.warehouse, CONTRACT, directory)
    assert summary.rows == {"offers": 0, "orders": 1}


def test_replace_swaps_the_given_tables_only(rt, tmp_path, loaded):
    new = {"customers": {**GOOD["customers"], "customer_id": ["n-1", "n-2", "n-3", "n-4"]}}
    summary = load_directory(
        rt.warehouse, CONTRACT, write_csvs(tmp_path / "new", new), replace=True
    )

    assert summary.replace is True and summary.deleted == {"customers": 4}
    assert [row[0] for row in fetch(rt.warehouse, "customers")] == ["n-1", "n-2", "n-3", "n-4"]
    assert counts(rt.warehouse) == loaded  # same sizes; the other tables untouched
    assert fetch(rt.warehouse, "orders") == sort_rows(EXPECTED["orders"])


def test_progress_reports_each_table_up_to_its_total(rt, tmp_path):
    calls: list[tuple[str, int, int]] = []
    load_directory(
        rt.warehouse,
        CONTRACT,
        write_csvs(tmp_path / "in", GOOD),
        on_progress=lambda *call: calls.append(call),
    )
    finals = {table: (done, total) for table, done, total in calls}
    assert finals == {name: (len(rows), len(rows)) for name, rows in EXPECTED.items()}


# --- what is refused, and that nothing is written ---------------------------------------------


def test_primary_key_already_in_warehouse_rolls_back_every_table(rt, tmp_path, loaded):
    directory = write_files(
        tmp_path / "again",
        {
            "customers.csv": "customer_id,signup_at,region,plan\nc-new,2025-01-01,north,free\n",
            "orders.csv": ORDERS_HEADER + ORDER_ROW.replace("o-9", "o-2"),  # o-2 exists
        },
    )
    with pytest.raises(InputError) as caught:
        load_directory(rt.warehouse, CONTRACT, directory)

    assert not isinstance(caught.value, ValidationFailed)
    assert "orders" in caught.value.message and "nothing was written" in caught.value.message
    assert "--replace" in caught.value.hint
    assert counts(rt.warehouse) == loaded
    assert "c-new" not in [row[0] for row in fetch(rt.warehouse, "customers")]


def test_a_failure_mid_load_leaves_a_fresh_warehouse_without_tables(rt, tmp_path, monkeypatch):
    from mlops.warehouse import bulk

    real = bulk.insert_frame

    def fail_on_orders(conn, table, frame, on_progress=None):
        if table.name == "orders":
            raise RuntimeError("connection lost")
        return real(conn, table, frame, on_progress)

    monkeypatch.setattr(bulk, "insert_frame", fail_on_orders)
    with pytest.raises(RuntimeError, match="connection lost"):
        load_directory(rt.warehouse, CONTRACT, write_csvs(tmp_path / "in", GOOD))
    # customers were inserted before orders failed: they, and the CREATE TABLEs, rolled back
    assert not set(TABLES) & set(inspect(rt.warehouse).get_table_names())


def test_failed_validation_creates_no_tables(rt, tmp_path):
    directory = write_files(tmp_path / "bad", {"orders.csv": ORDERS_HEADER + "o-1,c-1\n"})
    with pytest.raises(ValidationFailed):
        load_directory(rt.warehouse, CONTRACT, directory)
    assert not set(TABLES) & set(inspect(rt.warehouse).get_table_names())


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


GOOD_ORDERS_PARQUET = _parquet(
    pd.DataFrame(
        {
            "order_id": ["o-9"],
            "customer_id": ["c-1"],
            "placed_at": pd.to_datetime(["2025-03-01"]),
            "status": ["completed"],
            "item_count": [1],
            "total_amount": [5.0],
        }
    )
)
CUSTOMERS_HEADER = "customer_id,signup_at,region,plan\n"
LATIN1 = (CUSTOMERS_HEADER + "c-9,2025-01-01,north,free\nc-10,2025-01-01,Zoë,free\n").encode(
    "latin-1"
)
LATIN1_OFFSET = LATIN1.index("ë".encode("latin-1"))
IMPRESSIONS_HEADER = "impression_id,customer_id,offer_id,order_id,shown_at,accepted\n"

# case: (files in the directory, text expected among the problems)
BAD = {
    "missing column": (
        {
            "orders.csv": "order_id,customer_id,placed_at,item_count,total_amount\n"
            "o-9,c-1,2025-03-01,1,5\n"
        },
        "orders.csv: missing required column status",
    ),
    "bad timestamp": (
        {"orders.csv": ORDERS_HEADER + ORDER_ROW + "o-10,c-1,2025-02-30T00:00:00,completed,1,5\n"},
        "orders.csv row 2, column placed_at: not an ISO 8601 timestamp: '2025-02-30T00:00:00'",
    ),
    "not a number": (
        {"orders.csv": ORDERS_HEADER + "o-9,c-1,2025-03-01,completed,two,5\n"},
        "orders.csv row 1, column item_count: not a number: 'two'",
    ),
    "fractional integer": (
        {"orders.csv": ORDERS_HEADER + "o-9,c-1,2025-03-01,completed,2.5,5\n"},
        "orders.csv row 1, column item_count: not a whole number: '2.5'",
    ),
    "integer overflow": (
        {"orders.csv": ORDERS_HEADER + "o-9,c-1,2025-03-01,completed,3000000000,5\n"},
        "orders.csv row 1, column item_count: out of range for INTEGER",
    ),
    "numeric overflow": (
        {"orders.csv": ORDERS_HEADER + "o-9,c-1,2025-03-01,completed,1,1e10\n"},
        "orders.csv row 1, column total_amount: out of range for NUMERIC(12,2)",
    ),
    "bad float": (
        {
            "deliveries.csv": "delivery_id,order_id,zone,courier_id,distance_km,dispatched_at,"
            "promised_at,delivered_at\nd-9,,z1,k1,far,2025-03-01,2025-03-01,\n"
        },
        "deliveries.csv row 1, column distance_km: not a number: 'far'",
    ),
    "infinite float": (
        {
            "deliveries.csv": "delivery_id,order_id,zone,courier_id,distance_km,dispatched_at,"
            "promised_at,delivered_at\nd-9,,z1,k1,inf,2025-03-01,2025-03-01,\n"
        },
        "deliveries.csv row 1, column distance_km: not a finite number: 'inf'",
    ),
    "bad boolean": (
        {"offer_impressions.csv": IMPRESSIONS_HEADER + "i-9,c-1,of-1,,2025-03-01,maybe\n"},
        "offer_impressions.csv row 1, column accepted: not a boolean",
    ),
    "empty required value": (
        {"customers.csv": CUSTOMERS_HEADER + "c-9,2025-01-01,north,free\nc-10,2025-01-01, ,free\n"},
        "customers.csv row 2, column region: empty, but the column is required",
    ),
    "bad status": (
        {"orders.csv": ORDERS_HEADER + ORDER_ROW.replace("completed", "shipped")},
        "orders.csv row 1, column status: not one of 'completed', 'cancelled': 'shipped'",
    ),
    "duplicate key": (
        {"orders.csv": ORDERS_HEADER + ORDER_ROW + ORDER_ROW.replace("o-9", "o-10") + ORDER_ROW},
        "orders.csv rows 1, 3, column order_id: primary key 'o-9' appears 2 times",
    ),
    "id too long": (
        {"orders.csv": ORDERS_HEADER + ORDER_ROW.replace("o-9", "x" * 129)},
        "orders.csv row 1, column order_id: longer than 128 characters: "
        f"'{'x' * 40}'... (129 characters)",
    ),
    "nul character": (
        {"customers.csv": CUSTOMERS_HEADER + "c-9,2025-01-01,north,fr\x00ee\n"},
        "customers.csv row 1, column plan: contains a NUL character",
    ),
    "latin-1 file": (
        {"customers.csv": LATIN1},
        f"customers.csv: not valid UTF-8: byte 0xeb at byte offset {LATIN1_OFFSET} "
        "(line 3); save the file as UTF-8",
    ),
    "too many fields": (
        {"orders.csv": ORDERS_HEADER + ORDER_ROW + ORDER_ROW.replace("\n", ",x\n")},
        "orders.csv row 2: 7 fields where the header has 6",
    ),
    "truncated file": (
        {
            "orders.csv": ORDERS_HEADER
            + ORDER_ROW
            + ORDER_ROW.replace("o-9", "o-10")
            + "o-11,c-1,20"
        },
        "orders.csv row 3: 3 fields where the header has 6: 'o-11,c-1,20'",
    ),
    "unclosed quote": (
        {"orders.csv": ORDERS_HEADER + 'o-9,"c-1,2025-03-01,completed,1,5\n'},
        "orders.csv row 1: 2 fields where the header has 6 (an unclosed quote?)",
    ),
    "row numbers count records and blank lines": (
        {
            "support_tickets.csv": "ticket_id,customer_id,opened_at,reason\n"
            't-9,c-1,2025-03-01,"two\nlines"\n\nt-10,c-1,yesterday,late\n'
        },
        "support_tickets.csv row 3, column opened_at: not an ISO 8601 timestamp: 'yesterday'",
    ),
    "empty file": ({"orders.csv": ""}, "orders.csv: no header line"),
    "bad gzip": ({"orders.csv.gz": b"not gzip at all"}, "orders.csv.gz: cannot decompress"),
    "garbage parquet": (
        {"orders.parquet": b"PAR1 not really"},
        "orders.parquet: cannot read as Parquet",
    ),
    "truncated parquet": (
        {"orders.parquet": GOOD_ORDERS_PARQUET[: len(GOOD_ORDERS_PARQUET) // 2]},
        "orders.parquet: cannot read as Parquet",
    ),
    "parquet column of the wrong type": (
        {
            "customers.parquet": _parquet(
                pd.DataFrame(
                    {
                        "customer_id": ["c-9"],
                        "signup_at": pd.to_datetime(["2025-01-01"]),
                        "region": [1.5],
                        "plan": ["free"],
                    }
                )
            )
        },
        "customers.parquet column region: Parquet type double cannot hold text",
    ),
    "unknown table": (
        {"customer.csv": CUSTOMERS_HEADER},
        "customer.csv: no raw table named 'customer' (did you mean customers.csv?); "
        "known tables: customers, offers, orders, deliveries, offer_impressions, support_tickets",
    ),
    "table given twice": (
        {"orders.csv": ORDERS_HEADER + ORDER_ROW, "orders.parquet": GOOD_ORDERS_PARQUET},
        "orders: given 2 times (orders.csv, orders.parquet)",
    ),
    "unsupported format": ({"orders.json": "[]"}, "orders.json: unsupported format"),
    "semicolon separated": (
        {"orders.csv": ORDERS_HEADER.replace(",", ";") + ORDER_ROW.replace(",", ";")},
        "orders.csv: missing required column order_id (the header is one column",
    ),
    "column name case": (
        {"orders.csv": ORDERS_HEADER.replace("order_id", "Order_ID") + ORDER_ROW},
        "orders.csv: missing required column order_id (found 'Order_ID'",
    ),
    "column given twice": (
        {"orders.csv": ORDERS_HEADER.replace("\n", ",status\n") + ORDER_ROW.replace("\n", ",x\n")},
        "orders.csv column status: appears 2 times (columns 4, 7)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_reported_and_nothing_is_written(rt, tmp_path, loaded, case):
    files, expected = BAD[case]
    # A valid file beside the bad one must not be written either.
    files = {"offers.csv": "offer_id,category,discount_pct,price\nof-new,x,1,1\n", **files}
    directory = write_files(tmp_path / "bad", files)

    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, CONTRACT, directory)

    problems = caught.value.problems
    assert any(expected in problem for problem in problems), problems
    assert caught.value.message.endswith(f"in {directory}; nothing was written")
    assert counts(rt.warehouse) == loaded
    assert "of-new" not in [row[0] for row in fetch(rt.warehouse, "offers")]


def test_every_problem_is_collected_across_files(rt, tmp_path):
    directory = write_files(
        tmp_path / "bad",
        {
            "orders.csv": ORDERS_HEADER + "o-1,c-1,never,lost,x,5\n",
            "customers.csv": CUSTOMERS_HEADER + "c-1,2025-01-01,,free\n",
            "offers.csv": "offer_id,category\nof-1,x\n",
        },
    )
    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, CONTRACT, directory)

    assert caught.value.message == f"6 problems in {directory}; nothing was written"
    assert caught.value.problems == [
        "customers.csv row 1, column region: empty, but the column is required",
        "offers.csv: missing required column discount_pct",
        "offers.csv: missing required column price",
        "orders.csv row 1, column placed_at: not an ISO 8601 timestamp: 'never'",
        "orders.csv row 1, column status: not one of 'completed', 'cancelled': 'lost'",
        "orders.csv row 1, column item_count: not a number: 'x'",
    ]
    assert "row N is line N + 1" in caught.value.hint


def test_many_bad_rows_are_summarized_and_the_list_is_capped(rt, tmp_path, monkeypatch):
    rows = "".join(f"o-{n},c-1,bad-{n},completed,1,5\n" for n in range(1, 26))
    directory = write_files(tmp_path / "bad", {"orders.csv": ORDERS_HEADER + rows})
    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, CONTRACT, directory)
    problems = caught.value.problems
    assert caught.value.message.startswith("25 problems")
    assert len(problems) == 11
    assert problems[9] == "orders.csv row 10, column placed_at: not an ISO 8601 timestamp: 'bad-10'"
    assert problems[10] == (
        "orders.csv column placed_at: not an ISO 8601 timestamp in 15 more rows "
        "(11, 12, 13, 14, 15, ...)"
    )

    monkeypatch.setattr(load_problems, "MAX_PROBLEMS", 4)
    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, CONTRACT, directory)
    assert caught.value.problems[-1] == "... and 21 more problems"
    assert len(caught.value.problems) == 5


def test_a_directory_without_table_files_says_what_is_expected(rt, tmp_path):
    write_files(tmp_path / "empty", {"README.md": "hello"})
    with pytest.raises(InputError, match="no table files") as caught:
        load_directory(rt.warehouse, CONTRACT, tmp_path / "empty")
    assert "customers.csv" in caught.value.hint and ".parquet" in caught.value.hint
    with pytest.raises(InputError, match="not a directory"):
        load_directory(rt.warehouse, CONTRACT, tmp_path / "missing")


@pytest.mark.slow
def test_a_large_orders_file_loads(rt, tmp_path):
    n = 100_000
    frame = pd.DataFrame(
        {
            "order_id": [f"o-{i}" for i in range(n)],
            "customer_id": [f"c-{i % 5000}" for i in range(n)],
            "placed_at": pd.date_range("2025-01-01", periods=n, freq="min").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "status": ["completed", "cancelled"] * (n // 2),
            "item_count": [i % 9 + 1 for i in range(n)],
            "total_amount": [round(i % 1000 * 0.37, 2) for i in range(n)],
        }
    )
    (tmp_path / "big").mkdir()
    frame.to_csv(tmp_path / "big" / "orders.csv", index=False)
    summary = load_directory(rt.warehouse, CONTRACT, tmp_path / "big")
    assert summary.rows == {"orders": n}
    assert counts(rt.warehouse)["orders"] == n
