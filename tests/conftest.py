"""Fixtures: every storage test runs on SQLite, and on PostgreSQL when
MLOPS_TEST_DATABASE_URL is set (each test in a schema of its own, dropped after)."""

from __future__ import annotations

import os

# LightGBM (and scikit-learn's own copy of libgomp) run OpenMP threads that spin while they
# wait; on a loaded 2-core runner two spinning runtimes starve each other and one small fit
# took 10-40 s instead of 0.2 s. Sleeping waits change no result (deterministic=True fixes
# the trees per thread count); libgomp reads this when it loads, which must come after.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import uuid
from datetime import datetime
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from mlops.clock import FrozenClock
from mlops.runtime import Runtime
from mlops.settings import Settings

pytest_plugins = ["tests.serving_support"]

PG_URL = os.environ.get("MLOPS_TEST_DATABASE_URL")
NOW = datetime(2026, 6, 1, 12, 0, 0)


def pytest_report_header(config):
    return f"postgres: {PG_URL or 'skipped (MLOPS_TEST_DATABASE_URL not set)'}"


@pytest.fixture(scope="session")
def pg_admin():
    """An engine on the test PostgreSQL; fails loudly when the URL is set but unreachable."""
    if not PG_URL:
        pytest.skip("PostgreSQL tests need MLOPS_TEST_DATABASE_URL")
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # a configured but dead server must fail, not skip
        pytest.fail(f"MLOPS_TEST_DATABASE_URL={PG_URL} is unreachable: {exc}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema_url(pg_admin):
    """A fresh schema on the test PostgreSQL, reached through search_path in the URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(scope="session")
def pg_migrated_schemas(pg_admin):
    """Schemas Alembic migrated, handed out again once emptied back to exactly what Alembic
    left (see tests/pg_schemas.py)."""
    from tests.pg_schemas import MigratedSchemas

    schemas = MigratedSchemas(pg_admin, PG_URL)
    yield schemas
    schemas.drop_all()


@pytest.fixture
def pg_migrated_url(pg_migrated_schemas):
    """A schema at Alembic's head that no other test is using, holding no rows."""
    schema = pg_migrated_schemas.take()
    yield pg_migrated_schemas.url(schema)
    pg_migrated_schemas.give_back(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request):
    return request.param


@pytest.fixture
def settings(backend, request, tmp_path) -> Settings:
    """Settings on the backend under test; store and warehouse in separate databases on SQLite."""
    home = tmp_path / "home"
    if backend == "sqlite":
        return Settings(
            home=home,
            database_url=f"sqlite:///{tmp_path / 'store.db'}",
            warehouse_url=f"sqlite:///{tmp_path / 'warehouse.db'}",
        )
    # A test that starts from a migrated store (``migrated``, or ``serving_rt``, which migrates
    # first thing) gets a schema Alembic already migrated.
    starts_migrated = {"migrated", "serving_rt"} & set(request.fixturenames)
    url = request.getfixturevalue("pg_migrated_url" if starts_migrated else "pg_schema_url")
    return Settings(home=home, database_url=url, warehouse_url=url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def rt(settings, clock):
    runtime = Runtime(settings=settings, clock=clock)
    yield runtime
    runtime.close()


def migrate_store(rt) -> None:
    from mlops.db import migrate

    migrate.upgrade(rt.store)


@pytest.fixture
def migrated(rt, backend, templates, request):
    """A runtime whose store is migrated to head: by Alembic on PostgreSQL (a schema it migrated
    for this test or emptied after another, see tests/pg_schemas.py), on SQLite as a copy of the
    file Alembic migrated once per session (the same bytes, without the 0.1 s)."""
    if backend == "sqlite":
        templates(request, migrate_store).copy_into(rt)
    elif "pg_migrated_url" not in request.fixturenames:  # asked for by name, after ``settings``
        migrate_store(rt)
    return rt


def seed(rt) -> None:
    """Migrate the store, sync the specs and seed a small synthetic warehouse ending at NOW."""
    from mlops.db import migrate
    from mlops.examples.marketplace.seed import seed_warehouse
    from mlops.specs import sync as specs_sync

    migrate.upgrade(rt.store)
    specs_sync.apply(rt.store, specs_sync.plan(rt.store, rt.repo.jobs), NOW, rt.repo.jobs)
    seed_warehouse(rt.warehouse, customers=300, days=60, seed=7, end=NOW)


def seed_and_refresh(rt) -> None:
    """``seed``, then every job refreshed at NOW."""
    from mlops.store import ingest

    seed(rt)
    for job in rt.repo.names:
        ingest.refresh(rt, job)


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    """``template(request, steps)``: the state ``steps`` builds on the backend of the calling
    test, built once per session (see tests/store_templates.py)."""
    from tests.store_templates import PostgresTemplate, SqliteTemplate

    built = {}

    def template(request, steps):
        backend = request.getfixturevalue("backend")
        key = (backend, steps)
        if key not in built:
            if backend == "sqlite":
                folder = tmp_path_factory.mktemp(f"template-{steps.__name__}")
                built[key] = SqliteTemplate(folder, NOW, steps)
            else:
                admin = request.getfixturevalue("pg_admin")
                built[key] = PostgresTemplate(admin, PG_URL, NOW, steps)
        return built[key]

    yield template
    for made in built.values():
        made.drop()


@pytest.fixture
def seeded(migrated, templates, request):
    """A migrated store, synced specs and a small synthetic warehouse ending at NOW (``seed``
    run once per session, its content copied here)."""
    templates(request, seed).copy_into(migrated)
    return migrated


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """An empty MLflow database at head (``mlflow.db``), created once by MLflow itself and
    copied into the homes of tests that only need one to exist."""
    from mlops.training import tracking_client

    home = tmp_path_factory.mktemp("mlflow-template")
    settings = Settings(home=home)
    tracking_client.configure(settings)  # before MLflow is imported: it sets MLflow's environment
    from mlflow import MlflowClient

    MlflowClient(settings.mlflow_uri).search_experiments()
    return home / "mlflow.db"
