"""``load_directory`` with hostile cell values: SQL, COPY markers, unicode and huge text in id
and text columns. Valid values are stored verbatim (byte for byte, no normalisation, unless
a column rule says to strip whitespace); values over a column's length or the cell limit are
refused naming file, row and column, and nothing is written."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
from sqlalchemy import inspect

from mlops.errors import ValidationFailed
from mlops.warehouse.load import load_directory
from mlops.warehouse.load_validation import MAX_CELL_CHARS
from tests.test_warehouse_load import CONTRACT, counts, fetch

# The example's tables without its column rules (which strip its ids): what the engine does
# with a value no rule touches.
VERBATIM = replace(CONTRACT, rules={})

HOSTILE = [
    "'; DROP TABLE support_tickets; --",
    "\\'; DELETE FROM customers; --",
    '"); DROP TABLE customers; --',
    "$$; DROP TABLE orders; $$",
    "1 OR 1=1",
    "%s %(x)s :name ? $1",
    "/* comment */ -- tail",
    "\\N",  # PostgreSQL COPY's NULL marker, as text
    "\\.",  # COPY's end-of-data marker
    "NULL",
    "C:\\temp\\new\\x",
    '=HYPERLINK("http://x")',
    "tab\there",
    "line\nbreak",
    "crlf\r\nbreak",
    "  padded  ",
]
UNICODE = [
    "👨‍👩‍👧‍👦",  # one family: 7 code points joined by ZWJ
    "🇫🇷🏳️‍🌈",
    "مرحبا بالعالم",
    "עברית\u202eevil",  # a right-to-left override inside
    "e\u0301",  # e + combining acute: not the same id as é
    "é",
    "A\u030a\u0323",
    "zero\u200bwidth\u00a0nbsp",
    "\ufeffbom-inside",
    "𝕏𝔂𝔷",
]


def write_tickets(directory, rows: list[tuple[str, str, str]]):
    """support_tickets.csv with (ticket_id, customer_id, reason) rows, written by Python's
    csv module (quoting as a spreadsheet export would)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "support_tickets.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ticket_id", "customer_id", "opened_at", "reason"])
        for ticket, customer, reason in rows:
            writer.writerow([ticket, customer, "2025-02-05T09:00:00", reason])
    return directory


def stored(rt) -> dict[str, tuple[str, str]]:
    return {row[0]: (row[1], row[3]) for row in fetch(rt.warehouse, "support_tickets")}


def test_hostile_and_unicode_cells_round_trip_byte_exact(rt, tmp_path):
    values = HOSTILE + UNICODE
    # Each value as an id, as a customer id and as free text; reason is VARCHAR(64).
    rows = [(f"t{n}-{v}", v, v) for n, v in enumerate(values)]
    rows += [(v, "c", "r") for v in values if v != "\\N"]  # "\\N" is t7-\\N's too
    rows.append(("\\N", "\\N", "\\N"))
    load_directory(rt.warehouse, VERBATIM, write_tickets(tmp_path / "in", rows))
    got = stored(rt)
    assert len(got) == len(rows)
    for ticket, customer, reason in rows:
        assert got[ticket] == (customer, reason), ticket
        assert got[ticket][0].encode() == customer.encode()  # no normalisation, no trimming
    # No value acted as SQL: every table is there, and no row went missing.
    assert set(inspect(rt.warehouse).get_table_names()) >= {"support_tickets"}
    assert counts(rt.warehouse)["support_tickets"] == len(rows)


def test_cells_at_the_column_length_load_whatever_their_bytes(rt, tmp_path):
    # Lengths are in characters: 128 four-byte emoji is 512 bytes and still fits.
    rows = [
        ("😀" * 128, "𝕏" * 128, "é" * 64),
        ("e\u0301" * 64, "ب" * 128, "\u0301" * 64),
    ]
    load_directory(rt.warehouse, CONTRACT, write_tickets(tmp_path / "in", rows))
    got = stored(rt)
    for ticket, customer, reason in rows:
        assert got[ticket] == (customer, reason)


HUGE = "x" * 1_000_000


@pytest.mark.parametrize(
    "row, column, length",
    [
        (("😀" * 129, "c", "r"), "ticket_id", 128),
        (("t", "ب" * 129, "r"), "customer_id", 128),
        (("t", "c", "é" * 65), "reason", 64),
        (("t", "c", "e\u0301" * 33), "reason", 64),  # 66 code points
        (("t", "c", HUGE), "reason", 64),
        ((HUGE, "c", "r"), "ticket_id", 128),
        (("t", "c", "'; DROP TABLE customers; --" * 3), "reason", 64),
    ],
    ids=["emoji-id", "rtl-customer", "accents", "combining", "huge-text", "huge-id", "sql"],
)
def test_over_long_cells_are_refused_by_file_row_and_column(rt, tmp_path, row, column, length):
    load_directory(rt.warehouse, CONTRACT, write_tickets(tmp_path / "good", [("t0", "c0", "ok")]))
    before = counts(rt.warehouse)
    ok = ("t1", "c1", "fine")
    with pytest.raises(ValidationFailed) as caught:
        load_directory(
            rt.warehouse, CONTRACT, write_tickets(tmp_path / "bad", [ok, row]), replace=True
        )
    (problem,) = caught.value.problems
    assert problem.startswith(f"support_tickets.csv row 2, column {column}: ")
    assert f"longer than {length} characters" in problem
    assert len(problem) < 300  # a huge value is shown cut, with its length
    assert counts(rt.warehouse) == before
    assert stored(rt) == {"t0": ("c0", "ok")}


def test_a_text_value_spelled_like_the_copy_null_marker_stays_text_next_to_real_nulls(rt, tmp_path):
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "deliveries.csv").write_text(
        "delivery_id,order_id,zone,courier_id,distance_km,dispatched_at,promised_at,delivered_at\n"
        "d1,\\N,z1,k1,1.5,2025-02-01 10:05:00,2025-02-01 10:45:00,\n"
        "d2,,z1,k1,1.5,2025-02-01 10:05:00,2025-02-01 10:45:00,\n",
        encoding="utf-8",
    )
    load_directory(rt.warehouse, CONTRACT, directory)
    got = {row[0]: row[1] for row in fetch(rt.warehouse, "deliveries")}
    assert got == {"d1": "\\N", "d2": None}


def test_a_ten_megabyte_cell_is_reported_by_row_and_column_not_by_the_parser(rt, tmp_path):
    # Longer than the CSV parser's block: it failed with "straddling object straddles two
    # block boundaries" before. Now any cell reaches the checks, and the limit per cell is
    # said by row and column, whatever the column's type.
    import pandas as pd

    huge = "9" * 10_000_000
    header = "order_id,customer_id,placed_at,status,item_count,total_amount\n"
    files = {
        "orders.csv": header + "o1,c1,2025-02-01T10:00:00Z,completed,1,5\n"
        f"o2,c1,2025-02-01T10:00:00Z,completed,1,{huge}\n",
    }
    directory = tmp_path / "in"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    pd.DataFrame(
        {
            "ticket_id": ["t1", "t2"],
            "customer_id": ["c", "c"],
            "opened_at": pd.to_datetime(["2025-02-05", "2025-02-05"]),
            "reason": ["ok", huge],
        }
    ).to_parquet(directory / "support_tickets.parquet")
    with pytest.raises(ValidationFailed) as caught:
        load_directory(rt.warehouse, CONTRACT, directory)
    limit = f"longer than the {MAX_CELL_CHARS:,} characters a cell may hold: '{'9' * 40}'... "
    assert caught.value.problems == [
        f"orders.csv row 2, column total_amount: {limit}(10,000,000 characters)",
        f"support_tickets.parquet row 2, column reason: {limit}(10,000,000 characters)",
    ]
    assert counts(rt.warehouse).get("orders", 0) == 0
