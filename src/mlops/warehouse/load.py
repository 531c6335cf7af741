"""``mlops warehouse load DIR``: raw tables from CSV or Parquet files, validated, all or nothing.

Every file is read and checked before anything is written (types, lengths, the contract's
allowed values and column rules, keys); one problem anywhere means nothing is written.
Problems name the file, the row and the column. Rows are data rows numbered from 1 after the
header (a CSV's row N is its line N + 1 when no quoted value spans lines; a Parquet file's
row N is its N-th row). Only encoding errors, found before any parsing, are
given as a file line and a byte offset.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, Table

from mlops.clock import Clock, SystemClock
from mlops.errors import InputError, ValidationFailed
from mlops.warehouse.contract import Contract, analyze
from mlops.warehouse.load_formats import read_csv, read_parquet
from mlops.warehouse.load_problems import Problems
from mlops.warehouse.load_validation import validate
from mlops.warehouse.load_writing import write_tables

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".csv.gz", ".csv", ".parquet")  # longest first: "x.csv.gz" also ends with ".gz"
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
    contract: Contract,
    directory: Path,
    *,
    replace: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
    clock: Clock | None = None,
) -> LoadSummary:
    """Validate every ``<table>.csv|.csv.gz|.parquet`` in ``directory`` against the tables and
    rules of ``contract`` (``future_slack`` counted from ``clock``, default the system's), then
    write them in one transaction; raise ValidationFailed (nothing written) or InputError
    (rolled back)."""
    now = (clock or SystemClock()).now()
    tables = contract.tables
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory", "give the folder holding the files")
    problems = Problems()
    files = _find_files(directory, tables, problems)
    if not files and not problems.total:
        expected = ", ".join(f"{name}.csv" for name in tables)
        raise InputError(
            f"no table files in {directory}",
            f"expected one or more of {expected} (or .csv.gz, .parquet)",
        )
    frames: dict[str, pd.DataFrame] = {}
    ignored: dict[str, tuple[str, ...]] = {}
    for name, path in files.items():
        result = _read_file(path, tables[name], contract, problems, now)
        if result is not None:
            frames[name], ignored[name] = result
    if problems.total:
        count = problems.total
        raise ValidationFailed(
            f"{count:,} problem{'s' if count != 1 else ''} in {directory}; nothing was written",
            problems.lines(),
            hint=f"fix the files and run again; {ROW_NUMBERS}",
        )
    ordered = {name: frames[name] for name in tables if name in frames}
    deleted = write_tables(engine, contract, ordered, replace=replace, on_progress=on_progress)
    analyze(engine, ordered)
    return LoadSummary(
        directory=directory,
        rows={name: len(frame) for name, frame in ordered.items()},
        ignored_columns={name: ignored[name] for name in ordered},
        replace=replace,
        files={name: files[name].name for name in ordered},
        deleted=deleted,
    )


# --- finding the files ------------------------------------------------------------------------


def _find_files(
    directory: Path, tables: Mapping[str, Table], problems: Problems
) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    known = ", ".join(tables)
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        lower = entry.name.lower()
        suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
        if suffix is None:
            stem = lower.split(".", 1)[0]
            if stem in tables:  # most likely meant as data: say so rather than skip it quietly
                problems.add(
                    f"{entry.name}: unsupported format; "
                    f"name it {stem}.csv, {stem}.csv.gz or {stem}.parquet"
                )
            continue
        stem = lower[: -len(suffix)]
        if stem not in tables:
            close = difflib.get_close_matches(stem, list(tables), n=1)
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


# --- reading and checking one file ------------------------------------------------------------


def _read_file(
    path: Path, table: Table, contract: Contract, problems: Problems, now: datetime
) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
    """The table's columns converted and validated, and the ignored extra columns; None if bad."""
    before = problems.total
    if path.name.lower().endswith(".parquet"):
        read = read_parquet(path, table, problems)
    else:
        read = read_csv(path, table, problems)
    if read is None:
        return None
    raw, header = read
    ignored = tuple(
        name or f"(unnamed column {i + 1})"
        for i, name in enumerate(header)
        if name not in table.columns
    )
    frame = validate(
        path.name, table, raw, header, problems, contract.allowed_values, contract.rules, now
    )
    return (frame, ignored) if problems.total == before else None
