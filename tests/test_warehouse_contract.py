"""The warehouse contract comes from the repository: a tiny repository with its own tables
(names, columns and load rules of its own) seeds, loads and ingests through the same engine; a
repository without a warehouse module works except for seeding, which says what to add; a
module that breaks the protocol is a problem naming its file."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mlops import repository
from mlops.cli import quickstart as quickstart_cli
from mlops.errors import ConfigError
from mlops.repository.scaffold import init
from mlops.warehouse import contract
from mlops.warehouse.contract import Request, Samples
from tests.cli_support import WIDTH, invoke
from tests.repo_support import REPO

# A kiosk's shelves and their restocks: nothing like the marketplace's tables.
TINY = {
    "repository.yaml": """\
name: kiosk
warehouse: tables
""",
    "jobs/stock.yaml": """\
name: stock
owner: kiosk-team
entity: shelf
key: shelf_id
view: shelf_features
ttl: 2d
refresh: "0 * * * *"
retrain: "0 3 * * *"
backfill_every: 1d
task: regression
label: {kind: event, sql: labels_stock}
inputs:
  - {name: kind, dtype: category}
  - {name: weight_kg, dtype: float, range: [0.5, 50]}
  - {name: hour, dtype: int, derive: hour}
heuristic: {function: expected_units, inputs: [units_30d]}
features:
  - {name: restocks_30d, dtype: int, description: Restocks in the last 30 days., range: [0, 1e6]}
  - {name: units_30d, dtype: int, description: Units restocked in 30 days., range: [0, 1e9]}
""",
    "sql/shelf_features.sql": """\
SELECT g.as_of, s.shelf_id,
       COUNT(r.restock_id) AS restocks_30d,
       COALESCE(SUM(r.units), 0) AS units_30d
FROM as_of_grid g
JOIN shelves s ON s.opened_at < g.as_of
LEFT JOIN restocks r
  ON r.shelf_id = s.shelf_id AND r.restocked_at >= g.since_30d AND r.restocked_at < g.as_of
GROUP BY g.as_of, s.shelf_id
""",
    "sql/labels_stock.sql": """\
SELECT restock_id, shelf_id, restocked_at AS event_time, kind, units AS label
FROM restocks WHERE restocked_at >= :start AND restocked_at < :end
""",
    "heuristics.py": """\
def expected_units(units_30d):
    return units_30d / 30.0
""",
    "tables.py": '''\
"""The kiosk's warehouse contract."""

from datetime import timedelta

import pandas as pd
from sqlalchemy import Column, Integer, MetaData, String, Table

from mlops.db.types import Timestamp
from mlops.warehouse.bulk import insert_frame

metadata = MetaData()
shelves = Table(
    "shelves",
    metadata,
    Column("shelf_id", String(16), primary_key=True),
    Column("opened_at", Timestamp, nullable=False),
)
restocks = Table(
    "restocks",
    metadata,
    Column("restock_id", String(16), primary_key=True),
    Column("shelf_id", String(16), nullable=False),
    Column("restocked_at", Timestamp, nullable=False),
    Column("units", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
)
allowed_values = {"restocks": {"kind": ["full", "partial"]}}
column_rules = {"restocks": {"units": {"min": 1}, "shelf_id": {"whitespace": "refuse"}}}


class Summary:
    def __init__(self, rows):
        self.rows = rows


def seed(engine, *, size, days, seed, end, replace=False, on_progress=None):
    start = end - timedelta(days=days)
    ids = [f"S{i}" for i in range(size)]
    frames = {
        "shelves": pd.DataFrame({"shelf_id": ids, "opened_at": [start] * size}),
        "restocks": pd.DataFrame(
            {
                "restock_id": [f"R{i}" for i in range(size * days)],
                "shelf_id": [ids[i % size] for i in range(size * days)],
                "restocked_at": [start + timedelta(days=i // size) for i in range(size * days)],
                "units": [(seed + i) % 7 + 1 for i in range(size * days)],
                "kind": ["full" if i % 2 else "partial" for i in range(size * days)],
            }
        ),
    }
    metadata.create_all(engine)
    with engine.begin() as conn:
        for name, frame in frames.items():
            if replace:
                conn.execute(metadata.tables[name].delete())
            insert_frame(conn, name, frame)
            if on_progress:
                on_progress(name, 1, 1)
    return Summary({name: len(frame) for name, frame in frames.items()})
''',
}


def tiny(root: Path, **changes: str) -> Path:
    """The kiosk repository at ``root``, with files replaced or (given "") left out."""
    for rel, text in {**TINY, **changes}.items():
        if text:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    return root


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", settings.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", settings.warehouse_db_url)

    def run(*args: str) -> tuple[int, str, str]:
        return invoke(capsys, *args, flat=True)

    return run


def test_a_tiny_repository_with_its_own_tables_seeds_loads_and_ingests(cli, tmp_path):
    repo = str(tiny(tmp_path / "kiosk"))
    assert cli("--repo", repo, "db", "migrate")[0] == 0
    code, out, err = cli("--repo", repo, "ingest", "stock")
    assert code == 2 and "the warehouse has no table shelves, restocks" in err, err
    assert "mlops warehouse seed" in err
    code, out, err = cli("--repo", repo, "warehouse", "seed", "--size", "4", "--days", "10")
    assert code == 0, err
    assert "│ shelves │ 4 │" in out and "│ restocks │ 40 │" in out
    code, out, err = cli("--repo", repo, "ingest", "stock")
    assert code == 0 and "stock refresh ok 1 4 0 8" in out, out + err  # 4 shelves, 2 features

    # The repository's own load rules: a kind outside allowed_values is refused.
    files = tmp_path / "files"
    files.mkdir()
    (files / "restocks.csv").write_text(
        "restock_id,shelf_id,restocked_at,units,kind\nX1,S0,2026-01-01 00:00:00,3,spare\n"
    )
    code, _, err = cli("--repo", repo, "warehouse", "load", str(files), "--replace")
    assert code != 0 and "restocks.csv row 1, column kind: not one of 'full', 'partial'" in err
    # And its column rules: no restock of 0 units, no shelf id with stray spaces.
    (files / "restocks.csv").write_text(
        "restock_id,shelf_id,restocked_at,units,kind\nX1,S0 ,2026-01-01 00:00:00,0,full\n"
    )
    code, _, err = cli("--repo", repo, "warehouse", "load", str(files), "--replace")
    assert code != 0 and "restocks.csv row 1, column units: below the contract's min 1" in err
    assert "restocks.csv row 1, column shelf_id: starts or ends with whitespace" in err
    (files / "restocks.csv").write_text(
        "restock_id,shelf_id,restocked_at,units,kind\nX1,S0,2026-01-01 00:00:00,3,full\n"
    )
    (files / "orders.csv").write_text("order_id\n1\n")  # not a table of this repository
    code, _, err = cli("--repo", repo, "warehouse", "load", str(files), "--replace")
    assert "no raw table named 'orders'" in err and "known tables: shelves, restocks" in err
    (files / "orders.csv").unlink()
    code, out, err = cli("--repo", repo, "warehouse", "load", str(files), "--replace")
    assert code == 0 and "│ restocks │ 1 │" in out, err


def test_without_a_warehouse_module_only_seeding_and_loading_ask_for_one(cli, tmp_path, rt):
    repo = tiny(tmp_path / "kiosk", **{"repository.yaml": "name: kiosk\n", "tables.py": ""})
    loaded = repository.load(repo)
    assert loaded.warehouse is None and contract.of(loaded) is None
    for command in (("seed",), ("load", str(tmp_path))):
        code, _, err = cli("--repo", str(repo), "warehouse", *command)
        assert code == 2, err
        assert "names no warehouse module" in err and f"mlops warehouse {command[0]}" in err
        assert "add `warehouse: warehouse` to its repository.yaml" in err
    from mlops import quickstart

    with pytest.raises(ConfigError, match="mlops quickstart needs the repository's warehouse"):
        quickstart.run(replace(rt, settings=rt.settings.model_copy(update={"repo": repo})))
    # Ingestion leaves the tables to the repository's ETL: the SQL runs, nothing else is
    # checked first.
    from mlops.db import migrate
    from mlops.warehouse.contract import require_tables

    migrate.upgrade(rt.store)
    require_tables(rt.warehouse, loaded)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("metadata", "raw_tables"),  # every use renamed: the module imports
            "tables.py: metadata is missing: the warehouse module must define metadata = "
            "sqlalchemy.MetaData() holding its raw tables",
        ),
        (
            ('{"kind": ["full", "partial"]}', '{"knd": ["full"]}'),
            "tables.py: allowed_values: restocks has no column 'knd'",
        ),
        (
            ('{"kind": ["full", "partial"]}', '{"units": ["1"]}'),
            "tables.py: allowed_values: restocks.units is not a text column",
        ),
        (
            ("class Summary:", "load_order = ['restocks']\n\n\nclass Summary:"),
            "tables.py: load_order leaves out shelves: list every table",
        ),
        (("class Summary:", "samples = 3\n\n\nclass Summary:"), "samples is a int"),
        (
            ('"units": {"min": 1}', '"units": {"minimum": 1}'),
            "tables.py: column_rules: restocks.units: unknown rule 'minimum'; rules are min, ",
        ),
        (
            ('"units": {"min": 1}', '"units": {"min": "1"}'),
            "column_rules: restocks.units: min must be a number, got '1'",
        ),
        (('"units": {"min": 1}', '"units": {"min": 5, "max": 1}'), "min 5 is above max 1"),
        (
            ('"units": {"min": 1}', '"kind": {"max": 1}'),
            "restocks.kind: max applies to number and timestamp columns only",
        ),
        (
            ('"units": {"min": 1}', '"units": {"not_before": "restocked_at"}'),
            "restocks.units: not_before must name another column of the same kind",
        ),
        (
            ('"units": {"min": 1}', '"restocked_at": {"not_before": "opened_at"}'),
            "not_before names no column of restocks: 'opened_at'",
        ),
        (
            ('"units": {"min": 1}', '"units": {"future_slack": timedelta(0)}'),
            "restocks.units: future_slack applies to timestamp columns only",
        ),
        (
            ('"units": {"min": 1}', '"restocked_at": {"future_slack": 3600}'),
            "restocks.restocked_at: future_slack must be a timedelta >= 0, got 3600",
        ),
        (
            ('{"whitespace": "refuse"}', '{"whitespace": "trim"}'),
            "restocks.shelf_id: whitespace must be 'strip' or 'refuse', got 'trim'",
        ),
        (
            ('"units": {"min": 1}', '"units": {"whitespace": "strip"}'),
            "restocks.units: whitespace applies to text columns only",
        ),
        (('column_rules = {"restocks"', 'column_rules = {"restock"'), "no table 'restock'"),
        (('"units": {"min": 1}', '"unit": {"min": 1}'), "restocks has no column 'unit'"),
    ],
)
def test_a_warehouse_module_that_breaks_the_protocol_names_its_file(tmp_path, change, problem):
    old, new = change
    assert old in TINY["tables.py"]
    root = tiny(tmp_path / "kiosk", **{"tables.py": TINY["tables.py"].replace(old, new)})
    with pytest.raises(repository.RepositoryInvalid) as caught:
        repository.load(root)
    assert len(caught.value.problems) == 1 and problem in caught.value.problems[0]


def test_the_bundled_example_declares_its_contract():
    found = contract.of(REPO)
    assert found is not None and found.file == "warehouse.py"
    assert list(found.tables) == [
        "customers",
        "offers",
        "orders",
        "deliveries",
        "offer_impressions",
        "support_tickets",
    ]
    assert found.allowed_values == {("orders", "status"): ("completed", "cancelled")}
    rules = found.rules
    assert rules[("customers", "customer_id")].whitespace == "strip"
    assert (rules[("orders", "item_count")].min, rules[("orders", "item_count")].max) == (1, 1000)
    assert rules[("deliveries", "delivered_at")].not_before == "dispatched_at"
    assert rules[("orders", "placed_at")].future_slack == timedelta(hours=1)
    assert ("support_tickets", "reason") not in rules  # free text, kept as written
    assert found.seed is not None and found.samples is not None


def test_an_init_copy_keeps_the_generator(tmp_path):
    copy = init(tmp_path / "mine")
    found = contract.of(copy)
    assert found is not None and found.seed is not None and copy.warehouse == "warehouse"


def _next_lines(capsys, repo, samples: Samples) -> list[str]:
    from mlops.cli import output
    from mlops.settings import Settings

    width = output.console._width
    output.console._width = WIDTH
    try:
        quickstart_cli.print_next(Settings(), repo, samples, serving=False)
    finally:
        output.console._width = width
    return [line.strip() for line in capsys.readouterr().out.splitlines()]


def test_quickstart_prints_the_repository_requests_and_each_jobs_generic_route(capsys, tmp_path):
    samples = Samples(
        requests=(
            Request("GET", "/v1/customers/C0000001/dossier"),
            Request("POST", "/v1/deliveries/eta", {"zone": "Z01", "distance_km": 3.2}),
        ),
        entities={"churn": "C0000001", "eta": "Z01"},
        inputs={"eta": {"distance_km": 3.2, "item_count": 2}},
    )
    lines = _next_lines(capsys, REPO, samples)
    base = "http://127.0.0.1:8000"
    json = "-H 'content-type: application/json' -d"
    assert f"curl {base}/v1/customers/C0000001/dossier" in lines
    assert f'curl {base}/v1/deliveries/eta {json} \'{{"zone": "Z01", "distance_km": 3.2}}\'' in (
        lines
    )
    route = f"curl -X POST {base}/v1/jobs"
    assert f'{route}/churn/predict {json} \'{{"entity_id": "C0000001", "inputs": {{}}}}\'' in lines
    # upsell: no sample given, so placeholders of each input's type (its range's low end)
    assert (
        f'{route}/upsell/predict {json} \'{{"entity_id": "<customer id>", "inputs": '
        '{"offer_category": "<offer_category>", "discount_pct": 0.0, "offer_price": 0.0}}\''
    ) in lines
    # eta: the derived inputs (zone is the entity, hour and weekday the request's time) left out
    assert (
        f'{route}/eta/predict {json} \'{{"entity_id": "Z01", "inputs": '
        '{"distance_km": 3.2, "item_count": 2}}\''
    ) in lines

    kiosk = repository.load(tiny(tmp_path / "kiosk"))
    lines = _next_lines(capsys, kiosk, Samples())
    assert (
        f'{route}/stock/predict {json} \'{{"entity_id": "<shelf id>", "inputs": '
        '{"kind": "<kind>", "weight_kg": 0.5}}\''
    ) in lines
