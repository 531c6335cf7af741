"""The CLI end to end, in-process: parse, call the library, format, exit status."""

import subprocess
import sys

import pytest
from sqlalchemy import text

from tests.cli_support import invoke
from tests.repo_support import JOBS


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", settings.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", settings.warehouse_db_url)

    def run(*args: str) -> tuple[int, str, str]:
        return invoke(capsys, *args)

    return run


def test_the_whole_flow_from_the_command_line(cli, settings):
    code, out, _ = cli("db", "migrate")
    assert code == 0 and "20250918120000" in out
    code, out, _ = cli("db", "migrate")
    assert code == 0 and "already up to date" in out
    code, out, _ = cli("specs", "sync", "--dry-run")
    assert code == 0 and "added" in out and "nothing written" in out
    code, out, _ = cli("specs", "sync")
    assert code == 0 and "specs synced" in out and "undo: revert the change" in out
    code, out, _ = cli("warehouse", "seed", "--size", "150", "--days", "40")
    assert code == 0 and "customers" in out and "150" in out
    code, out, _ = cli("ingest", "all", "--dry-run")
    assert code == 0 and "nothing was written" in out and "would write" in out
    code, out, _ = cli(
        "ingest", "churn", "--backfill", "--start", "2020-01-01", "--end", "2020-01-03"
    )
    assert code == 0 and "backfill" in out and "append-only" in out
    code, out, _ = cli("ingest", "all")
    assert code == 0 and out.count("refresh ok") == len(JOBS)
    from mlops.db.engine import make_engine

    engine = make_engine(settings.store_url)
    with engine.connect() as conn:
        jobs = conn.execute(text("SELECT DISTINCT job FROM ml_feature_values")).scalars().all()
    engine.dispose()
    assert sorted(jobs) == sorted(JOBS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ingest", "nope"), "unknown job"),
        (("ingest", "churn", "--backfill"), "--backfill needs --start and --end"),
        (("ingest", "churn", "--start", "2026-01-01"), "only apply with --backfill"),
        (("ingest", "churn", "--as-of", "yesterday"), "cannot read --as-of"),
        (("ingest", "churn"), "mlops db migrate"),
        (("flags", "get"), "mlops db migrate"),
        (("serve",), "mlops db migrate"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out


def test_help_explains_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "mlops", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("quickstart", "ingest", "db", "warehouse", "specs", "serve", "flags"):
        assert command in out
    out = subprocess.run(
        [sys.executable, "-m", "mlops", "ingest", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--dry-run" in out and "--backfill" in out and "exclusive" in out


def test_quickstart_refuses_databases_that_are_not_embedded(cli):
    code, _, err = cli("quickstart")
    assert code == 2
    assert "--force" in err


def test_quickstart_runs_the_loop_and_can_run_again(tmp_path):
    from mlops import quickstart
    from mlops.clock import FrozenClock
    from mlops.runtime import Runtime
    from mlops.settings import Settings
    from mlops.store.online import get_online_features
    from tests.conftest import NOW

    rt = Runtime(Settings(home=tmp_path / "home"), FrozenClock(NOW))
    stages = []
    first = quickstart.run(
        rt,
        size=200,
        days=40,
        on_stage=lambda s, d, t: stages.append(s),
        train_models=False,
        replay=10,
    )
    assert [r.job for r in first.ingestion] == list(JOBS) * 2
    assert all(r.status == "succeeded" and r.rows_written > 0 for r in first.ingestion)
    assert any(s.startswith("backfilling eta") for s in stages)
    zone = "Z01"
    assert (
        get_online_features(rt.store, rt.clock, rt.repo.job("eta"), [zone])[zone].status == "fresh"
    )
    # The monitors ran once: no champion to compare with yet, and drift says what to run.
    checks = first.monitoring
    assert checks.report.is_file() and checks.samples.entities == {
        "churn": "C0000001",
        "upsell": "C0000001",
        "eta": zone,
    }
    assert all("mlops train" in str(r.error) for r in checks.drift)
    # Traffic replayed over the seeded history before the monitors ran: with no model trained,
    # the heuristics answered, and the summary says so.
    replayed = first.replay
    assert "replaying traffic" in stages
    assert replayed.requests == 10 * len(JOBS), replayed.summary()
    assert all(j.answers == {"no_champion": 10} for j in replayed.jobs), replayed.jobs
    assert f"replayed {replayed.requests} requests through the serving path" in replayed.summary()
    again = quickstart.run(rt, size=200, days=40, train_models=False, replay=0)
    assert again.replay is None
    # a second run starts from a fresh warehouse: nothing is skipped as already ingested
    assert all(r.points_skipped == 0 for r in again.ingestion)
    rt.close()


def test_flags_from_the_command_line(cli, migrated):
    code, out, _ = cli("flags", "set", "churn", "off", "--reason", "INC-42")
    assert code == 0 and "churn is off" in out and "undo: mlops flags set churn on" in out
    code, out, _ = cli("flags", "get")
    assert code == 0 and "INC-42" in out and "off" in out
    from mlops.serving import flags

    assert not flags.read(migrated.store)["churn"].enabled
    assert flags.read(migrated.store)["ml"].enabled  # never set means on
    for args, message in [
        (("flags", "set", "churn", "maybe", "-r", "x"), "write on or off"),
        (("flags", "set", "nope", "off", "-r", "x"), "flags are: ml, churn, upsell, eta"),
        (("flags", "set", "eta", "off", "-r", " "), "needs a reason"),
        (("flags", "clear-trips", "nope"), "unknown job"),
    ]:
        code, out, err = cli(*args)
        assert code == 2 and message in err, (args, err)
    from mlops.serving import trips

    trips.record(migrated.store, "eta", "drift", "PSI 0.31", at=migrated.clock.now())
    code, out, _ = cli("flags", "get")
    assert "trip" in out and "PSI 0.31" in out
    code, out, _ = cli("flags", "clear-trips", "eta")
    assert code == 0 and "1 trip(s) cleared" in out
    assert trips.active(migrated.store) == {}


@pytest.mark.parametrize(
    "command", [("db", "migrate"), ("ingest", "churn"), ("flags", "get"), ("monitor", "ops")]
)
def test_a_database_that_is_down_is_one_error_line_and_the_fix(
    capsys, monkeypatch, tmp_path, command
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    code, out, err = invoke(capsys, *command, flat=True)
    assert code == 2, out + err
    assert err.startswith("error: cannot connect to the database (connection failed:")
    assert "fix: check that the database server is up" in err
    assert "Traceback" not in err and "sqlalche.me" not in err
