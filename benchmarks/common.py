"""Shared set-up for the benchmarks: a runtime on SQLite or PostgreSQL, a seeded warehouse
(reused between runs when its parameters match), JSON output, and for the HTTP benchmarks
(serve.py, soak.py) a quickstart home with `mlops serve` running on it in its own process."""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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
    specs_sync.apply(rt.store, specs_sync.plan(rt.store, rt.repo.jobs), END, rt.repo.jobs)
    marker = f"{args.customers}:{args.days}:{args.seed}"
    if read_marker(rt.warehouse) != marker:
        from mlops.examples.marketplace.seed import seed_warehouse

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


# --- A served home: `mlops` commands in subprocesses on a home built by `mlops quickstart` ---

QUICKSTART_MARKER = "mlops quickstart (default size and seed)"


def served_env(home: Path, **settings: str) -> dict:
    """The environment of `mlops` subprocesses: the caller's, minus its MLOPS_* settings, plus
    MLOPS_HOME and the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_HOME=str(home), **settings)
    return env


def mlops(env: dict, *args: str, log: Path | None = None) -> None:
    """Run `mlops ARGS` (its output appended to ``log``); raise if it fails."""
    print("$ mlops " + " ".join(args), flush=True)
    out = log.open("ab") if log else None
    try:
        subprocess.run([sys.executable, "-m", "mlops", *args], env=env, check=True, stdout=out)
    finally:
        if out:
            out.close()


def prepare_home(env: dict, home: Path, log: Path, rebuild: bool = False) -> None:
    """`mlops quickstart` into ``home`` unless a finished one is there (its marker in the
    warehouse). Callers then refresh the features they serve (`mlops ingest all`)."""
    from mlops.db.engine import make_engine

    home.mkdir(parents=True, exist_ok=True)
    warehouse = make_engine(f"sqlite:///{home / 'warehouse.db'}")
    try:
        if rebuild or read_marker(warehouse) != QUICKSTART_MARKER:
            set_marker(warehouse, "quickstart started")  # an interrupted one is not reused
            mlops(env, "quickstart", log=log)
            set_marker(warehouse, QUICKSTART_MARKER)
    finally:
        warehouse.dispose()


def request_inputs(home: Path, customers: int = 2000) -> tuple[list[str], list[str], list[str]]:
    """Valid request inputs from the home's warehouse: a sample of customer ids (fixed seed),
    the delivery zones and the offer categories."""
    with sqlite3.connect(home / "warehouse.db") as db:
        ids = [r[0] for r in db.execute("SELECT customer_id FROM customers")]
        zones = [r[0] for r in db.execute("SELECT DISTINCT zone FROM deliveries ORDER BY 1")]
        cats = [r[0] for r in db.execute("SELECT DISTINCT category FROM offers ORDER BY 1")]
    return random.Random(0).sample(ids, min(customers, len(ids))), zones, cats


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(
    env: dict, log: Path, *, workers: int, port: int = 0, ready_seconds: float = 120
) -> Iterator[tuple[subprocess.Popen, str, dict]]:
    """`mlops serve` in its own process group, output appended to ``log``. Yields (process,
    base URL, /readyz body) once /readyz reports the champions loaded (exits with the log's tail
    if they never are); on exit stops the server with SIGINT (SIGKILL after 30 s)."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlops", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    with log.open("ab") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        ready, deadline = None, time.monotonic() + ready_seconds
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = json.loads(http_get(f"{base}/readyz", timeout=2))
                if ready.get("mode") == "models":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        if not ready or ready.get("mode") != "models":
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            sys.exit(f"server not ready with models (last /readyz: {ready}); log tail:\n{tail}")
        yield server, base, ready
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def server_log_problems(log: Path) -> dict:
    """Warnings and errors the server logged, by message (JSON lines; others are skipped)."""
    seen: collections.Counter = collections.Counter()
    for raw in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            seen[f"{entry['level']}: {entry.get('message', '')[:160]}"] += 1
    return dict(seen)
