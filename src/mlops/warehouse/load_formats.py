"""Reading a table file, CSV (plain or gzip) or Parquet, into a frame indexed by row number,
before any type is checked: what is format-specific (encodings, field counts, Parquet types)
stays here so the checks see one shape of input."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Table

from mlops.warehouse.load_problems import PER_CHECK, Problems, show
from mlops.warehouse.load_validation import kind_name

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

BLOCK_BYTES = 1 << 20  # Arrow's default: a file is parsed a megabyte at a time


def read_csv(path: Path, table: Table, problems: Problems) -> tuple[pd.DataFrame, list[str]] | None:
    """Every field as a string (so conversion and its errors are ours), indexed by row number."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    name = path.name
    data = path.read_bytes()
    if name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            problems.add(f"{name}: cannot decompress ({exc}); the file may be truncated")
            return None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    data = data[bom:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = "uncompressed " if name.lower().endswith(".gz") else ""
        problems.add(
            f"{name}: not valid UTF-8: byte 0x{data[exc.start]:02x} at {where}byte offset "
            f"{exc.start + bom:,} (line {line}); save the file as UTF-8"
        )
        return None
    first = next(csv.reader(io.StringIO(data[: 1 << 20].decode("utf-8", "replace"))), [])
    if not first or data.isspace():
        required = ", ".join(c.name for c in table.columns)
        problems.add(f"{name}: no header line; the first line must name the columns: {required}")
        return None

    width = len(first)
    positions = [str(i) for i in range(width)]
    bad_rows: list[tuple[int, int, str]] = []

    def on_bad_row(row) -> str:
        bad_rows.append((row.number or 0, row.actual_columns, row.text))
        return "skip"

    def parse(block_size: int) -> pa.Table:
        bad_rows.clear()
        return pacsv.read_csv(
            pa.py_buffer(data),
            # one thread: the parser then knows each bad row's number (and is as fast here)
            read_options=pacsv.ReadOptions(
                column_names=positions, use_threads=False, block_size=block_size
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True,
                ignore_empty_lines=False,  # keep blank lines so row numbers match the file
                invalid_row_handler=on_bad_row,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(positions, pa.string()), strings_can_be_null=False
            ),
        )

    try:
        try:
            parsed = parse(BLOCK_BYTES)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            # A record longer than a block (a huge cell): the whole file as one block, so the
            # cell reaches the checks and is reported by row and column.
            parsed = parse(min(len(data) + 1, 2**31 - 1))
    except (pa.ArrowException, OSError) as exc:
        problems.add(f"{name}: cannot parse as CSV ({exc})")
        return None

    # Records the parser skipped are not in `parsed`: number the kept ones as in the file
    # (record 1 is the header, so a record's data row number is one less).
    records = np.arange(1, parsed.num_rows + len(bad_rows) + 1)
    if bad_rows:
        keep = np.ones(len(records), dtype=bool)
        keep[[number - 1 for number, _, _ in bad_rows if 0 < number <= len(records)]] = False
        records = records[keep]
    for number, actual, text in bad_rows[:PER_CHECK]:
        quote = " (an unclosed quote?)" if text.count('"') % 2 else ""
        where = "the header" if number == 1 else f"row {number - 1}" if number else "a row"
        problems.add(
            f"{name} {where}: {actual} fields where the header has {width}{quote}: {show(text)}"
        )
    if len(bad_rows) > PER_CHECK:
        rest = len(bad_rows) - PER_CHECK
        problems.add(f"{name}: {rest:,} more rows with a wrong number of fields", rest)
    if bad_rows and records[0] != 1:
        return None

    frame = parsed.to_pandas()
    header = [str(value).strip() for value in frame.iloc[0]]
    frame = frame.iloc[1:]
    frame.index = records[1:] - 1
    # Blank lines and all-empty records (spreadsheets export trailing ",,,,") carry no data.
    if len(frame):
        frame = frame[(frame != "").any(axis=1)]
    frame.columns = header
    return frame, header


def read_parquet(
    path: Path, table: Table, problems: Problems
) -> tuple[pd.DataFrame, list[str]] | None:
    """The table's columns as pandas Series (typed as stored), indexed by row number from 1."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        header = list(parquet.schema_arrow.names)
        wanted = [c.name for c in table.columns if header.count(c.name) == 1]
        data = parquet.read(columns=wanted, use_threads=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        problems.add(f"{path.name}: cannot read as Parquet ({exc})")
        return None
    index = pd.RangeIndex(1, data.num_rows + 1)
    columns: dict[str, pd.Series] = {}
    for name in wanted:
        series = _arrow_to_series(data.column(name), index)
        if series is None:
            problems.add(
                f"{path.name} column {name}: Parquet type {data.column(name).type} "
                f"cannot hold {kind_name(table.columns[name])}"
            )
        else:
            columns[name] = series
    frame = pd.DataFrame(columns, index=index)
    frame.attrs["parquet_types"] = {name: str(data.column(name).type) for name in wanted}
    return frame, header


def _arrow_to_series(column: pa.ChunkedArray, index: pd.Index) -> pd.Series | None:
    """Strings stay strings (checked like CSV text); other supported types keep their type."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.types as t

    kind = column.type
    if t.is_dictionary(kind):
        kind = kind.value_type
        column = column.cast(kind)
    if t.is_string(kind) or t.is_large_string(kind) or t.is_string_view(kind) or t.is_null(kind):
        series = column.cast(pa.string()).to_pandas()
    elif t.is_date(kind):
        series = column.cast(pa.timestamp("s")).to_pandas()
    elif t.is_decimal(kind):
        series = column.cast(pa.float64()).to_pandas()
    elif t.is_boolean(kind):
        series = column.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
    elif t.is_integer(kind) or t.is_floating(kind) or t.is_timestamp(kind):
        series = column.to_pandas()
    else:
        return None
    series.index = index
    return series
