"""The warehouse contract of a feature repository: the raw tables its SQL reads, the rules a
loaded file must follow, and optionally a synthetic generator and sample requests. They come
from the Python file ``repository.yaml`` names as ``warehouse:`` (the bundled example's
``warehouse.py``); the engine applies them without knowing any table.

The module's protocol (only ``metadata`` is required):

``metadata: sqlalchemy.MetaData``
    The raw tables and the indexes the views rely on. ``mlops warehouse load`` loads files
    named after them; ingestion checks that they exist; seeding creates them.
``load_order: Sequence[str]``
    The tables in the order seeding and loading write them (default: as defined).
``allowed_values: Mapping[str, Mapping[str, Sequence[str]]]``
    Table -> text column -> the only values a loaded file may hold there.
``column_rules: Mapping[str, Mapping[str, Mapping[str, Any]]]``
    Table -> column -> what its values mean beyond their type (see ``RULE_KEYS``): ``min``
    and ``max`` (numbers, or datetimes for a timestamp column), ``future_slack`` (a
    timedelta: a timestamp is at most the load's clock plus this), ``not_before`` (another
    column of the table: this one is not less than it where both are set), ``whitespace``
    (``"strip"``: surrounding whitespace is removed before the checks and the write;
    ``"refuse"``: a value with any is a problem). A loaded file that breaks one is refused
    like a type error, by file, row and column.
``seed(engine, *, size, days, seed, end, replace, on_progress) -> summary``
    Write ``days`` of synthetic history before ``end`` for ``size`` entities, all or nothing,
    the same arguments giving the same rows; refuse filled tables unless ``replace``. Progress
    is ``on_progress(label, done, total)``; the summary has ``rows: Mapping[str, int]`` (per
    table). Used by ``mlops warehouse seed`` and ``mlops quickstart``.
``samples(engine) -> Samples``
    What to try once the models serve: the repository's own requests, and an entity id and
    inputs per job for the generic predict route (``mlops quickstart`` prints them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    inspect,
)

from mlops.errors import ConfigError, NotReadyError

if TYPE_CHECKING:
    from mlops.repository import Repository

PROTOCOL = "metadata, and optionally load_order, allowed_values, column_rules, seed and samples"
RULE_KEYS = ("min", "max", "future_slack", "not_before", "whitespace")
WHITESPACE = ("strip", "refuse")
Progress = Callable[[str, int, int], None]


class SeedSummary(Protocol):
    """What a repository's ``seed`` returns: at least the rows written per table."""

    @property
    def rows(self) -> Mapping[str, int]: ...


class Seed(Protocol):
    def __call__(
        self,
        engine: Engine,
        *,
        size: int,
        days: int,
        seed: int,
        end: datetime,
        replace: bool = False,
        on_progress: Progress | None = None,
    ) -> SeedSummary: ...


@dataclass(frozen=True)
class Request:
    """An HTTP request to try: ``GET path``, or ``POST path`` with a JSON body."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Samples:
    """What a repository's ``samples`` returns for ``mlops quickstart`` to print."""

    requests: Sequence[Request] = ()  # the repository's own endpoints
    entities: Mapping[str, str] = field(default_factory=dict)  # job -> an entity id
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # job -> inputs


@dataclass(frozen=True)
class ColumnRule:
    """What one column's values mean beyond their type (``column_rules``, checked)."""

    min: float | datetime | None = None
    max: float | datetime | None = None
    future_slack: timedelta | None = None  # at most the load's clock plus this
    not_before: str | None = None  # another column of the table
    whitespace: str | None = None  # "strip" or "refuse"


@dataclass(frozen=True)
class Contract:
    """A repository's warehouse module, checked."""

    file: str  # the module's file name, for messages
    metadata: MetaData
    tables: dict[str, Table]  # in load order
    allowed_values: dict[tuple[str, str], tuple[str, ...]]
    seed: Seed | None = None
    samples: Callable[[Engine], Samples] | None = None
    rules: dict[tuple[str, str], ColumnRule] = field(default_factory=dict)


def check(module: ModuleType, file: str, problems: list[str]) -> Contract | None:
    """The contract ``module`` declares, or None with a problem per thing wrong (each naming
    ``file`` and the fix)."""
    before = len(problems)
    metadata = getattr(module, "metadata", None)
    if not isinstance(metadata, MetaData):
        got = "missing" if metadata is None else f"a {type(metadata).__name__}"
        problems.append(
            f"{file}: metadata is {got}: the warehouse module must define metadata = "
            f"sqlalchemy.MetaData() holding its raw tables (protocol: {PROTOCOL})"
        )
        return None
    if not metadata.tables:
        problems.append(f"{file}: metadata holds no table: define the raw tables the SQL reads")
        return None
    order = list(getattr(module, "load_order", None) or metadata.tables)
    unknown = [name for name in order if name not in metadata.tables]
    if unknown:
        problems.append(f"{file}: load_order names no table of metadata: {', '.join(unknown)}")
    missing = [name for name in metadata.tables if name not in order]
    if missing:
        problems.append(f"{file}: load_order leaves out {', '.join(missing)}: list every table")
    allowed = _allowed_values(file, metadata, getattr(module, "allowed_values", None), problems)
    rules = _column_rules(file, metadata, getattr(module, "column_rules", None), problems)
    functions = {}
    for name in ("seed", "samples"):
        value = getattr(module, name, None)
        if value is not None and not callable(value):
            problems.append(f"{file}: {name} is a {type(value).__name__}: make it a function")
        functions[name] = value if callable(value) else None
    if len(problems) > before:
        return None
    return Contract(
        file=file,
        metadata=metadata,
        tables={name: metadata.tables[name] for name in order},
        allowed_values=allowed,
        seed=functions["seed"],
        samples=functions["samples"],
        rules=rules,
    )


def _allowed_values(
    file: str, metadata: MetaData, declared: Any, problems: list[str]
) -> dict[tuple[str, str], tuple[str, ...]]:
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        problems.append(f"{file}: allowed_values must map table -> column -> values")
        return {}
    allowed: dict[tuple[str, str], tuple[str, ...]] = {}
    for table, columns in declared.items():
        if table not in metadata.tables:
            problems.append(f"{file}: allowed_values: no table {table!r} in metadata")
            continue
        for column, values in dict(columns).items():
            target = metadata.tables[table].columns.get(column)
            if target is None:
                problems.append(f"{file}: allowed_values: {table} has no column {column!r}")
            elif not isinstance(target.type, String | Text):
                problems.append(f"{file}: allowed_values: {table}.{column} is not a text column")
            elif isinstance(values, str) or not all(isinstance(v, str) for v in values):
                problems.append(f"{file}: allowed_values: {table}.{column}: give a list of texts")
            else:
                allowed[(table, column)] = tuple(values)
    return allowed


def _column_rules(
    file: str, metadata: MetaData, declared: Any, problems: list[str]
) -> dict[tuple[str, str], ColumnRule]:
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        problems.append(f"{file}: column_rules must map table -> column -> rule -> value")
        return {}
    rules: dict[tuple[str, str], ColumnRule] = {}
    for table, columns in declared.items():
        if table not in metadata.tables:
            problems.append(f"{file}: column_rules: no table {table!r} in metadata")
            continue
        if not isinstance(columns, Mapping):
            problems.append(f"{file}: column_rules: {table}: map each column to its rules")
            continue
        for column, rule in columns.items():
            target = metadata.tables[table].columns.get(column)
            where = f"{file}: column_rules: {table}.{column}"
            if target is None:
                problems.append(f"{file}: column_rules: {table} has no column {column!r}")
            elif not isinstance(rule, Mapping):
                problems.append(f"{where}: give a mapping of {', '.join(RULE_KEYS)}")
            else:
                found = _column_rule(where, metadata.tables[table], target, rule, problems)
                if found is not None:
                    rules[(table, column)] = found
    return rules


def _column_rule(
    where: str, table: Table, column: Column, rule: Mapping[str, Any], problems: list[str]
) -> ColumnRule | None:
    """The rule, or None with a problem per thing wrong (a key, a value, a column kind)."""
    before = len(problems)
    unknown = [key for key in rule if key not in RULE_KEYS]
    if unknown:
        problems.append(
            f"{where}: unknown rule {', '.join(map(repr, unknown))}; rules are "
            f"{', '.join(RULE_KEYS)}"
        )
    kind = _kind(column)
    for key in ("min", "max"):
        value = rule.get(key)
        if value is None:
            continue
        if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{where}: {key} must be a number, got {value!r}")
        elif kind == "timestamp" and not isinstance(value, datetime):
            problems.append(f"{where}: {key} must be a datetime, got {value!r}")
        elif kind not in ("number", "timestamp"):
            problems.append(f"{where}: {key} applies to number and timestamp columns only")
    low, high = rule.get("min"), rule.get("max")
    if len(problems) == before and low is not None and high is not None and low > high:
        problems.append(f"{where}: min {low!r} is above max {high!r}")
    slack = rule.get("future_slack")
    if slack is not None:
        if kind != "timestamp":
            problems.append(f"{where}: future_slack applies to timestamp columns only")
        elif not isinstance(slack, timedelta) or slack < timedelta(0):
            problems.append(f"{where}: future_slack must be a timedelta >= 0, got {slack!r}")
    other = rule.get("not_before")
    if other is not None:
        partner = table.columns.get(other) if isinstance(other, str) else None
        if partner is None:
            problems.append(f"{where}: not_before names no column of {table.name}: {other!r}")
        elif (
            partner.name == column.name
            or _kind(partner) != kind
            or kind
            not in (
                "number",
                "timestamp",
            )
        ):
            problems.append(
                f"{where}: not_before must name another column of the same kind (both "
                "timestamps or both numbers)"
            )
    space = rule.get("whitespace")
    if space is not None:
        if kind != "text":
            problems.append(f"{where}: whitespace applies to text columns only")
        elif space not in WHITESPACE:
            problems.append(f"{where}: whitespace must be 'strip' or 'refuse', got {space!r}")
    if len(problems) > before:
        return None
    return ColumnRule(min=low, max=high, future_slack=slack, not_before=other, whitespace=space)


def _kind(column: Column) -> str:
    kind = column.type
    if isinstance(kind, DateTime):
        return "timestamp"
    if isinstance(kind, Integer | Float | Numeric):
        return "number"
    if isinstance(kind, String | Text):
        return "text"
    return "other"


def of(repo: Repository) -> Contract | None:
    """The repository's contract, or None when it names no warehouse module."""
    if repo.warehouse is None:
        return None
    problems: list[str] = []
    found = check(repo.module(repo.warehouse), f"{repo.warehouse}.py", problems)
    if found is None:
        raise ConfigError(
            f"the feature repository at {repo.path}: {problems[0]}",
            "fix the file, then run the command again",
        )
    return found


def require(repo: Repository, needed_for: str) -> Contract:
    """The repository's contract, or a ConfigError saying how to declare one."""
    found = of(repo)
    if found is None:
        raise ConfigError(
            f"{needed_for} needs the repository's warehouse contract, and the feature "
            f"repository at {repo.path} names no warehouse module",
            "add `warehouse: warehouse` to its repository.yaml and a warehouse.py defining "
            "metadata (its raw tables) and seed(engine, *, size, days, seed, end, replace, "
            "on_progress); see the bundled example's warehouse.py",
        )
    return found


def require_seed(repo: Repository, needed_for: str) -> Seed:
    """The repository's generator, or a ConfigError saying what to add."""
    found = require(repo, needed_for)
    if found.seed is None:
        raise ConfigError(
            f"{needed_for}: {found.file} of the feature repository at {repo.path} has no seed "
            "function",
            f"define seed(engine, *, size, days, seed, end, replace, on_progress) in {found.file}, "
            "or fill the warehouse with `mlops warehouse load DIR`",
        )
    return found.seed


def analyze(engine: Engine, tables: Iterable[str]) -> None:
    """Refresh the planner's statistics after a bulk load (PostgreSQL; SQLite needs none):
    without them the feature views get nested-loop plans that run for minutes."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE " + ", ".join(f'"{name}"' for name in tables))


def require_tables(engine: Engine, repo: Repository) -> None:
    """Raise with the fix when the warehouse lacks a table the repository declares (a
    repository without a contract leaves its tables to its ETL: nothing to check here)."""
    found = of(repo)
    if found is None:
        return
    present = set(inspect(engine).get_table_names())
    missing = [name for name in found.tables if name not in present]
    if missing:
        fill = "`mlops warehouse seed` or " if found.seed is not None else ""
        raise NotReadyError(
            f"the warehouse has no table {', '.join(missing)}",
            f"run {fill}`mlops warehouse load DIR`",
        )
