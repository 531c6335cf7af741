"""``mlops warehouse load DIR``: raw tables from CSV or Parquet files, validated, all or nothing.

Every file is read and checked before anything is written; one problem anywhere means nothing
is written. Problems name the file, the row and the column. Rows are data rows numbered from 1
after the header (a CSV's row N is its line N + 1 when no quoted value spans lines; a
Parquet file's row N is its N-th row). Only encoding errors, found before any parsing, are
given as a file line and a byte offset.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gzip
import io
import sqlite3
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, Numeric, Table
from sqlalchemy.exc import DataError, IntegrityError

from mlops.errors import InputError, ValidationFailed
from mlops.warehouse.schema import TABLES, analyze, metadata

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

SUFFIXES = (".csv.gz", ".csv", ".parquet")  # longest first: "x.csv.gz" also ends with ".gz"
MAX_PROBLEMS = 200  # lines shown; the rest are counted in a last "... and N more" line
PER_CHECK = 10  # rows listed one by one per (file, column, check); the rest in one line
TRUE_WORDS = ("true", "t", "1", "yes")
FALSE_WORDS = ("false", "f", "0", "no")
ALLOWED_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("orders", "status"): ("completed", "cancelled"),
}
INT32 = 2**31 - 1  # INTEGER is 4 bytes on PostgreSQL; SQLite would take more, so check here
ROW_NUMBERS = "rows count from 1 after the header, so CSV row N is line N + 1"


@dataclass(frozen=True)
class LoadSummary:
    """What a load wrote: rows per table (in load order), ignored extra columns, replace flag."""

    directory: Path
    rows: Mapping[str, int]
    ignored_columns: Mapping[str, tuple[str, ...]]
    replace: bool
    files: Mapping[str, str] = field(default_factory=dict)
    deleted: Mapping[str, int] = field(default_factory=dict)  # rows removed first (replace)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def load_directory(
    engine: Engine,
    directory: Path,
    *,
    replace: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> LoadSummary:
    """Validate every ``<table>.csv|.csv.gz|.parquet`` in ``directory``, then write them in one
    transaction; raise ValidationFailed (nothing written) or InputError (rolled back)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory", "give the folder holding the files")
    problems = _Problems()
    files = _find_files(directory, problems)
    if not files and not problems.total:
        expected = ", ".join(f"{name}.csv" for name in TABLES)
        raise InputError(
            f"no table files in {directory}",
            f"expected one or more of {expected} (or .csv.gz, .parquet)",
        )
    frames: dict[str, pd.DataFrame] = {}
    ignored: dict[str, tuple[str, ...]] = {}
    for name, path in files.items():
        result = _read_file(path, TABLES[name], problems)
        if result is not None:
            frames[name], ignored[name] = result
    if problems.total:
        count = problems.total
        raise ValidationFailed(
            f"{count:,} problem{'s' if count != 1 else ''} in {directory}; nothing was written",
            problems.lines(),
            hint=f"fix the files and run again; {ROW_NUMBERS}",
        )
    ordered = {name: frames[name] for name in TABLES if name in frames}
    deleted = _write(engine, ordered, replace=replace, on_progress=on_progress)
    analyze(engine)
    return LoadSummary(
        directory=directory,
        rows={name: len(frame) for name, frame in ordered.items()},
        ignored_columns={name: ignored[name] for name in ordered},
        replace=replace,
        files={name: files[name].name for name in ordered},
        deleted=deleted,
    )


# --- problems ---------------------------------------------------------------------------------


class _Problems:
    """Every problem is counted; the text is built only for the first few of each check."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int]] = []  # (text, how many problems it stands for)
        self.total = 0

    def add(self, text: str, weight: int = 1) -> None:
        self.entries.append((text, weight))
        self.total += weight

    def rows(self, where: str, column: str, labels: Any, label: str, values: Any = None) -> None:
        """One line per bad row up to PER_CHECK, then one line for the rest."""
        for row in labels[:PER_CHECK]:
            shown = "" if values is None else f": {_show(values.at[row])}"
            self.add(f"{where} row {row}, column {column}: {label}{shown}")
        rest = len(labels) - PER_CHECK
        if rest > 0:
            sample = ", ".join(str(row) for row in labels[PER_CHECK : PER_CHECK + 5])
            more = ", ..." if rest > 5 else ""
            self.add(
                f"{where} column {column}: {label} in {rest:,} more rows ({sample}{more})", rest
            )

    def lines(self) -> list[str]:
        shown = [text for text, _ in self.entries[:MAX_PROBLEMS]]
        rest = sum(weight for _, weight in self.entries[MAX_PROBLEMS:])
        if rest:
            shown.append(f"... and {rest:,} more problem{'s' if rest != 1 else ''}")
        return shown


def _show(value: Any, limit: int = 40) -> str:
    if isinstance(value, str):
        if len(value) > limit:
            return f"{value[:limit]!r}... ({len(value):,} characters)"
        return repr(value)
    return str(value)


# --- finding the files ------------------------------------------------------------------------


def _find_files(directory: Path, problems: _Problems) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    known = ", ".join(TABLES)
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        lower = entry.name.lower()
        suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
        if suffix is None:
            stem = lower.split(".", 1)[0]
            if stem in TABLES:  # most likely meant as data: say so rather than skip it quietly
                problems.add(
                    f"{entry.name}: unsupported format; "
                    f"name it {stem}.csv, {stem}.csv.gz or {stem}.parquet"
                )
            continue
        stem = lower[: -len(suffix)]
        if stem not in TABLES:
            close = difflib.get_close_matches(stem, TABLES, n=1)
            guess = f" (did you mean {close[0]}{suffix}?)" if close else ""
            problems.add(f"{entry.name}: no raw table named {stem!r}{guess}; known tables: {known}")
            continue
        found.setdefault(stem, []).append(entry)
    files: dict[str, Path] = {}
    for name, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.add(f"{name}: given {len(paths)} times ({names}); keep one file per table")
        else:
            files[name] = paths[0]
    return files


# --- reading ----------------------------------------------------------------------------------


def _read_file(
    path: Path, table: Table, problems: _Problems
) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
    """The table's columns converted and validated, and the ignored extra columns; None if bad."""
    before = problems.total
    if path.name.lower().endswith(".parquet"):
        read = _read_parquet(path, table, problems)
    else:
        read = _read_csv(path, table, problems)
    if read is None:
        return None
    raw, header = read
    ignored = tuple(
        name or f"(unnamed column {i + 1})"
        for i, name in enumerate(header)
        if name not in table.columns
    )
    frame = _validate(path.name, table, raw, header, problems)
    return (frame, ignored) if problems.total == before else None


def _read_csv(
    path: Path, table: Table, problems: _Problems
) -> tuple[pd.DataFrame, list[str]] | None:
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

    try:
        parsed = pacsv.read_csv(
            pa.py_buffer(data),
            # one thread: the parser then knows each bad row's number (and is as fast here)
            read_options=pacsv.ReadOptions(column_names=positions, use_threads=False),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True,
                ignore_empty_lines=False,  # keep blank lines so row numbers match the file
                invalid_row_handler=on_bad_row,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(positions, pa.string()), strings_can_be_null=False
            ),
        )
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
            f"{name} {where}: {actual} fields where the header has {width}{quote}: {_show(text)}"
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


def _read_parquet(
    path: Path, table: Table, problems: _Problems
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
                f"cannot hold {_kind_name(table.columns[name])}"
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


# --- validation -------------------------------------------------------------------------------


def _validate(
    file: str, table: Table, raw: pd.DataFrame, header: list[str], problems: _Problems
) -> pd.DataFrame:
    """The table's columns converted for insert_frame; every problem found goes to ``problems``."""
    import pandas as pd

    converted: dict[str, pd.Series] = {}
    for column in table.columns:
        name = column.name
        if header.count(name) > 1:
            at = ", ".join(str(i + 1) for i, h in enumerate(header) if h == name)
            problems.add(f"{file} column {name}: appears {header.count(name)} times (columns {at})")
            continue
        if name not in header:
            problems.add(f"{file}: missing required column {name}{_guess(name, header)}")
            continue
        if name not in raw.columns:  # a Parquet column of an unsupported type, reported
            continue
        series = raw[name]
        values, null, checks = _convert(series, column)
        if values is None:
            stored = raw.attrs.get("parquet_types", {}).get(name, series.dtype)
            kind = _kind_name(column)
            problems.add(f"{file} column {name}: Parquet type {stored} cannot hold {kind}")
            continue
        if not column.nullable:
            problems.rows(file, name, _where(null), "empty, but the column is required")
        for mask, label in checks:
            problems.rows(file, name, _where(mask), label, series)
        if column.primary_key:
            _duplicates(file, name, values.where(~null), problems)
        converted[name] = values
    columns = [c.name for c in table.columns]
    if len(converted) < len(columns):
        return pd.DataFrame()
    return pd.DataFrame(converted, index=raw.index)[columns]


def _where(mask: pd.Series) -> pd.Index:
    return mask.index[mask.to_numpy(dtype=bool, na_value=False)]


def _guess(name: str, header: list[str]) -> str:
    same = [h for h in header if h.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, header, n=1)
    if close:
        return f" (found {close[0]!r}: names are case-sensitive and exact)"
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        return " (the header is one column: separate the fields with commas)"
    return ""


def _kind_name(column) -> str:
    kind = column.type
    if isinstance(kind, DateTime):
        return "a timestamp"
    if isinstance(kind, Boolean):
        return "a boolean"
    if isinstance(kind, Integer | Float | Numeric):
        return "a number"
    return "text"


def _convert(series: pd.Series, column) -> tuple[pd.Series | None, pd.Series, list]:
    """(values ready to insert, null mask, [(bad mask, label)]); values None if the type is wrong.

    CSV columns arrive as strings; Parquet columns may already be typed."""
    import pandas as pd

    text = isinstance(series.dtype, pd.StringDtype)
    clean = None  # for typed columns read as text: stripped, NaN where empty
    if text:
        stripped = series.str.strip()
        null = series.isna() | (stripped == "")
        clean = stripped.where(~null)
    else:
        null = series.isna()
    kind = column.type
    if isinstance(kind, DateTime):
        return _timestamps(series, clean, null)
    if isinstance(kind, Boolean):
        return _booleans(series, clean, null)
    if isinstance(kind, Integer | Float | Numeric):  # Float and Integer before Numeric
        return _numbers(series, clean, null, kind)
    if not text:
        if not pd.api.types.is_integer_dtype(series):
            return None, null, []
        series = series.astype("str")  # integer ids stored as numbers: their decimal text
    return _text(series, null, column)


def _arrow_cast(clean: pd.Series, to: pa.DataType) -> pd.Series | None:
    """Arrow's strict cast: ~20x faster than pandas' parsers, None if any value does not parse."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        cast = pc.cast(pa.array(clean.array), to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    result = cast.to_pandas()
    result.index = clean.index
    return result


def _timestamps(series, clean, null):
    import pandas as pd
    import pyarrow as pa

    if clean is not None:
        # Arrow parses a column that is all zoned or all naive; mixed or unusual ISO 8601
        # forms, and bad values (to locate them), go through pandas.
        parsed = _arrow_cast(clean, pa.timestamp("us", tz="UTC"))
        if parsed is None:
            parsed = _arrow_cast(clean, pa.timestamp("us"))
        if parsed is None:
            parsed = pd.to_datetime(clean, errors="coerce", utc=True, format="ISO8601")
        checks = [(parsed.isna() & ~null, "not an ISO 8601 timestamp")]
    elif pd.api.types.is_datetime64_any_dtype(series):
        parsed, checks = series, []
    else:
        return None, null, []
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed.dt.floor("s"), null, checks


def _booleans(series, clean, null):
    import pandas as pd

    if clean is not None:
        lowered = clean.str.lower()
        true, false = lowered.isin(TRUE_WORDS), lowered.isin(FALSE_WORDS)
    elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        true, false = series.eq(1).fillna(False), series.eq(0).fillna(False)
    else:
        return None, null, []
    bad = ~null & ~true & ~false
    checks = [(bad, f"not a boolean ({', '.join(TRUE_WORDS)} / {', '.join(FALSE_WORDS)})")]
    values = true.astype(bool)
    if null.any():
        values = values.astype("boolean").mask(null)
    return values, null, checks


def _numbers(series, clean, null, kind):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if clean is not None:
        number = _arrow_cast(clean, pa.int64()) if isinstance(kind, Integer) else None
        if number is None:
            number = _arrow_cast(clean, pa.float64())
        if number is None:
            number = pd.to_numeric(clean, errors="coerce")
        checks = [(number.isna() & ~null, "not a number")]
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        number, checks = series, []
    else:
        return None, null, []
    as_float = number.astype("float64")
    known = ~null & number.notna()
    finite = np.isfinite(as_float)
    checks.append((known & ~finite, "not a finite number"))
    if isinstance(kind, Integer):
        whole = finite & (as_float == np.floor(as_float))
        checks.append((known & finite & ~whole, "not a whole number"))
        checks.append(
            (known & whole & (as_float.abs() > INT32), f"out of range for INTEGER (±{INT32:,})")
        )
        values = number.where(known & whole & (as_float.abs() <= INT32), 0).astype("int64")
        if null.any():
            values = values.astype("Int64").mask(null)
        return values, null, checks
    values = as_float.where(known)
    if not isinstance(kind, Float) and kind.scale is not None:
        # Rounded here so SQLite (which stores the float) and PostgreSQL (which rounds) agree.
        values = values.round(kind.scale)
        if kind.precision is not None:
            limit = 10.0 ** (kind.precision - kind.scale)
            label = f"out of range for NUMERIC({kind.precision},{kind.scale}) (below {limit:,.0f})"
            checks.append((known & finite & (values.abs() >= limit), label))
    return values, null, checks


def _text(series, null, column):
    checks = []
    length = getattr(column.type, "length", None)
    if length:
        checks.append((series.str.len() > length, f"longer than {length} characters"))
    checks.append(
        (
            series.str.contains("\x00", regex=False),
            "contains a NUL character (PostgreSQL cannot store it)",
        )
    )
    allowed = ALLOWED_VALUES.get((column.table.name, column.name))
    if allowed:
        label = "not one of " + ", ".join(repr(v) for v in allowed)
        checks.append((~null & ~series.isin(allowed), label))
    return series.mask(null), null, checks


def _duplicates(file: str, column: str, keys: pd.Series, problems: _Problems) -> None:
    """One problem per repeated key, naming the rows that share it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = keys.dropna()
    if len(pc.unique(pa.array(keys.array))) == len(keys):  # the usual case, at Arrow's speed
        return
    repeated = keys[keys.duplicated(keep=False)]
    if repeated.empty:
        return
    firsts = repeated[~repeated.duplicated()]
    for key in firsts.iloc[:PER_CHECK]:
        rows = repeated.index[(repeated == key).to_numpy()]
        listed = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        problems.add(
            f"{file} rows {listed}, column {column}: primary key {_show(key)} "
            f"appears {len(rows)} times"
        )
    if len(firsts) > PER_CHECK:
        rest = len(firsts) - PER_CHECK
        problems.add(f"{file} column {column}: {rest:,} more repeated primary keys", rest)


# --- writing ----------------------------------------------------------------------------------


def _write(
    engine: Engine,
    frames: dict[str, pd.DataFrame],
    *,
    replace: bool,
    on_progress: Callable[[str, int, int], None] | None,
) -> dict[str, int]:
    """All tables in one transaction (the DDL too); returns rows deleted per table."""
    from mlops.warehouse.bulk import insert_frame

    deleted: dict[str, int] = {}
    current: str | None = None
    try:
        with engine.begin() as conn:
            driver = conn.connection.driver_connection
            if conn.dialect.name == "sqlite" and not driver.in_transaction:
                # pysqlite only opens its transaction at the first INSERT: begin it here so that
                # the CREATE TABLE and DELETE statements roll back with the rows on failure.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            metadata.create_all(conn)
            if replace:
                for name in frames:
                    deleted[name] = conn.execute(TABLES[name].delete()).rowcount
            for name, frame in frames.items():
                current = name
                total, done = len(frame), 0
                if on_progress:
                    on_progress(name, 0, total)

                def advance(step: int, name: str = name, total: int = total) -> None:
                    nonlocal done
                    done += step
                    if on_progress:
                        on_progress(name, done, total)

                insert_frame(conn, TABLES[name], frame.reset_index(drop=True), advance)
    except Exception as exc:
        rejected = _rejected_by_database(exc) if current else None
        if rejected is None:
            raise
        if rejected == "integrity":
            hint = (
                f"a primary key already in the warehouse? rerun with --replace to replace the "
                f"rows of {', '.join(frames)}, or leave the rows already loaded out of the files"
            )
        else:
            hint = f"fix the value the database names in {current}'s file and run again"
        raise InputError(
            f"the warehouse rejected rows of {current} ({_detail(exc)}); nothing was written", hint
        ) from exc
    return deleted


def _rejected_by_database(exc: BaseException) -> str | None:
    """'integrity' or 'data' when the input is at fault, None for anything else."""
    # psycopg errors raised by COPY are not wrapped by SQLAlchemy: go by SQLSTATE class
    # (23 integrity constraint violation, 22 data exception).
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(exc, IntegrityError | sqlite3.IntegrityError) or str(state).startswith("23"):
        return "integrity"
    if isinstance(exc, DataError | sqlite3.DataError) or str(state).startswith("22"):
        return "data"
    return None


def _detail(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        detail = getattr(diag, "message_detail", None)
        return diag.message_primary + (f": {detail}" if detail else "")
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]
