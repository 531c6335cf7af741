"""Converting a file's columns to the warehouse's types and checking every value (types,
ranges, lengths, allowed values, the contract's column rules, required columns, primary
keys), so that everything wrong is found before anything is written."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, Float, Integer, Numeric, Table

from mlops.warehouse.contract import ColumnRule
from mlops.warehouse.load_problems import PER_CHECK, Problems, show

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

TRUE_WORDS = ("true", "t", "1", "yes")
FALSE_WORDS = ("false", "f", "0", "no")
INT32 = 2**31 - 1  # INTEGER is 4 bytes on PostgreSQL; SQLite would take more, so check here
# No cell of a table file is longer (in characters); a longer one is reported by row and
# column before its type is looked at (CSV cells of any size are parsed to get there).
MAX_CELL_CHARS = 1 << 20


def validate(
    file: str,
    table: Table,
    raw: pd.DataFrame,
    header: list[str],
    problems: Problems,
    allowed_values: Mapping[tuple[str, str], Sequence[str]] | None = None,
    rules: Mapping[tuple[str, str], ColumnRule] | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """The table's columns converted for insert_frame; every problem found goes to ``problems``.
    ``allowed_values`` and ``rules`` (the contract's, by (table, column)) say what a column
    may hold beyond its type; ``now`` (the load's clock) bounds ``future_slack``."""
    allowed = allowed_values or {}
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
        if isinstance(series.dtype, pd.StringDtype):
            huge = series.str.len() > MAX_CELL_CHARS
            if huge.any():
                label = f"longer than the {MAX_CELL_CHARS:,} characters a cell may hold"
                problems.rows(file, name, _where(huge), label, series)
                continue
        rule = (rules or {}).get((table.name, name)) or ColumnRule()
        values, null, checks = _convert(series, column, allowed.get((table.name, name)), rule)
        if values is None:
            stored = raw.attrs.get("parquet_types", {}).get(name, series.dtype)
            kind = kind_name(column)
            problems.add(f"{file} column {name}: Parquet type {stored} cannot hold {kind}")
            continue
        if not column.nullable:
            problems.rows(file, name, _where(null), "empty, but the column is required")
        bad = null.copy()
        for mask, label in checks:
            problems.rows(file, name, _where(mask), label, series)
            bad |= mask.fillna(False).astype(bool)
        # A value already refused (not a number...) is not also out of bounds.
        for mask, label in _bounds(values, rule, now):
            problems.rows(file, name, _where(mask & ~bad), label, series)
        if column.primary_key:
            _duplicates(file, name, values.where(~null), problems)
        converted[name] = values
    for (table_name, name), rule in (rules or {}).items():
        other = rule.not_before
        if table_name == table.name and other and name in converted and other in converted:
            early = converted[name] < converted[other]  # False where either is missing
            label = f"before {other} (the contract's not_before)"
            problems.rows(file, name, _where(early), label, raw[name])
    columns = [c.name for c in table.columns]
    if len(converted) < len(columns):
        return pd.DataFrame()
    return pd.DataFrame(converted, index=raw.index)[columns]


def _bounds(values: pd.Series, rule: ColumnRule, now: datetime | None) -> list:
    """[(bad mask, label)] of the rule's min, max and future_slack on converted values."""
    checks = []
    if rule.min is not None:
        checks.append((values < rule.min, f"below the contract's min {_shown(rule.min)}"))
    if rule.max is not None:
        checks.append((values > rule.max, f"above the contract's max {_shown(rule.max)}"))
    if rule.future_slack is not None and now is not None:
        limit = now + rule.future_slack
        label = f"in the future: after {limit:%Y-%m-%d %H:%M:%S} (now + {rule.future_slack})"
        checks.append((values > limit, label))
    return checks


def _shown(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if isinstance(value, datetime) else f"{value:g}"


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


def kind_name(column) -> str:
    kind = column.type
    if isinstance(kind, DateTime):
        return "a timestamp"
    if isinstance(kind, Boolean):
        return "a boolean"
    if isinstance(kind, Integer | Float | Numeric):
        return "a number"
    return "text"


def _convert(
    series: pd.Series,
    column,
    allowed: Sequence[str] | None = None,
    rule: ColumnRule | None = None,
) -> tuple[pd.Series | None, pd.Series, list]:
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
    return _text(series, null, column, allowed, rule.whitespace if rule else None)


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


def _text(series, null, column, allowed: Sequence[str] | None, whitespace: str | None):
    checks = []
    if whitespace == "strip":
        # Before every other check: "  C1 " is the key C1, and its length is C1's.
        series = series.str.strip()
    elif whitespace == "refuse":
        padded = ~null & (series != series.str.strip())
        checks.append((padded, "starts or ends with whitespace (the contract refuses it)"))
    length = getattr(column.type, "length", None)
    if length:
        checks.append((series.str.len() > length, f"longer than {length} characters"))
    checks.append(
        (
            series.str.contains("\x00", regex=False),
            "contains a NUL character (PostgreSQL cannot store it)",
        )
    )
    if allowed:
        label = "not one of " + ", ".join(repr(v) for v in allowed)
        checks.append((~null & ~series.isin(allowed), label))
    return series.mask(null), null, checks


def _duplicates(file: str, column: str, keys: pd.Series, problems: Problems) -> None:
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
            f"{file} rows {listed}, column {column}: primary key {show(key)} "
            f"appears {len(rows)} times"
        )
    if len(firsts) > PER_CHECK:
        rest = len(firsts) - PER_CHECK
        problems.add(f"{file} column {column}: {rest:,} more repeated primary keys", rest)
