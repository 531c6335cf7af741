"""Shared set-up for the benchmarks: a runtime on SQLite or PostgreSQL, a seeded warehouse
(reused between runs when its parameters match), and JSON output."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from mlops.clock import FrozenClock
from mlops.db import migrate
from mlops.runtime import Runtime
from mlops.settings import Settings
from mlops.specs import sync as specs_sync
from mlops.store.reset import clear_feature_data

RESULTS = Path(__file__).parent / "results"
END = datetime(2026, 6, 1, 12, 0, 0)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--database-url",
        default=None,
        help="Store and warehouse URL (e.g. postgresql+psycopg://postgres@127.0.0.1/test); "
        "default: SQLite files under --home.",
    )
    p.add_argument("--home", type=Path, default=Path("/tmp/mlops-bench"))
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--seed", type=int, default=1)
    return p


def runtime(args, tag: str) -> Runtime:
    """A runtime whose warehouse holds the requested synthetic data (seeded once, then reused)."""
    home = args.home / f"{tag}-{args.customers}c-{args.days}d-s{args.seed}"
    settings = Settings(
        home=home,
        database_url=args.database_url or f"sqlite:///{home / 'store.db'}",
        warehouse_url=args.database_url or f"sqlite:///{home / 'warehouse.db'}",
    )
    rt = Runtime(settings=settings, clock=FrozenClock(END))
    migrate.upgrade(rt.store)
    specs_sync.apply(rt.store, specs_sync.plan(rt.store), END)
    marker = f"{args.customers}:{args.days}:{args.seed}"
    if read_marker(rt.warehouse) != marker:
        from mlops.warehouse.seed import seed_warehouse

        began = time.perf_counter()
        seed_warehouse(
            rt.warehouse,
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            end=END,
            replace=True,
        )
        set_marker(rt.warehouse, marker)
        print(f"seeded {marker} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return rt


def read_marker(engine, table: str = "bench_marker") -> str | None:
    """What generated the data in this database (None: nothing yet), so a run can reuse it."""
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT m FROM {table}")).scalar()
    except Exception:  # no marker table yet
        return None


def set_marker(engine, tag: str, table: str = "bench_marker") -> None:
    """Record what generated the data in this database."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (m TEXT)"))
        conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text(f"INSERT INTO {table} VALUES (:m)"), {"m": tag})


def reset_store(rt: Runtime) -> None:
    """Empty the feature store's data tables, keeping specs and the warehouse."""
    clear_feature_data(rt.store)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49], 4),
        "p99_ms": round(q[98], 4),
        "max_ms": round(ordered[-1], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
    }


def write(name: str, rt: Runtime, figures: dict) -> Path:
    """Print the figures and write them as JSON under benchmarks/results/."""
    backend = rt.store.dialect.name
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{backend}.json"
    payload = {
        "benchmark": name,
        "backend": backend,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": datetime.now().isoformat(timespec="seconds"),
        **figures,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(json.dumps(payload, indent=2, default=str))
    return path
