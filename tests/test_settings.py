import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops.clock import FrozenClock, SystemClock, to_utc_naive
from mlops.db.engine import make_engine
from mlops.errors import ConfigError, InputError, MlopsError
from mlops.settings import Settings


def test_defaults_are_embedded_sqlite_under_home(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("MLOPS_HOME", "MLOPS_DATABASE_URL", "MLOPS_WAREHOUSE_URL"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.home == Path(".mlops")
    assert s.store_url == "sqlite:///.mlops/mlops.db"
    assert s.warehouse_db_url == "sqlite:///.mlops/warehouse.db"


def test_environment_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MLOPS_REJECT_THRESHOLD=0.2\nMLOPS_HOME=/tmp/x\n")
    monkeypatch.setenv("MLOPS_HOME", "/tmp/from-env")
    s = Settings()
    assert s.reject_threshold == 0.2
    assert s.home == Path("/tmp/from-env")  # the environment wins over .env


def test_import_does_no_work(tmp_path):
    code = (
        "import os, mlops.cli.app, mlops.runtime, mlops.store.ingest, mlops.settings; "
        "assert not os.path.exists('.mlops'), 'import created .mlops'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_bad_url_says_what_to_write():
    with pytest.raises(ConfigError, match="sqlite:///"):
        make_engine("not a url")


def test_clock_is_naive_utc_seconds():
    now = SystemClock().now()
    assert now.tzinfo is None and now.microsecond == 0
    assert abs(now - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=2)
    aware = datetime(2026, 1, 1, 3, 0, 0, 999, tzinfo=timezone(timedelta(hours=2)))
    assert to_utc_naive(aware) == datetime(2026, 1, 1, 1, 0, 0)
    clock = FrozenClock(datetime(2026, 1, 1))
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 1, 1, 0, 5)


def test_error_hierarchy_carries_hints_and_exit_codes():
    err = InputError("bad", "do this")
    assert isinstance(err, MlopsError) and err.exit_code == 2
    assert str(err) == "bad (do this)"


def test_a_postgresql_server_that_never_answers_times_out(monkeypatch):
    import socket
    import threading

    from sqlalchemy.exc import OperationalError

    from mlops.db import engine as engines

    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    monkeypatch.setattr(engines, "PG_CONNECT_TIMEOUT_SECONDS", 2)  # libpq's least
    raised: list[BaseException] = []

    def connect() -> None:
        try:
            engines.make_engine(f"postgresql://u@127.0.0.1:{port}/db").connect()
        except BaseException as exc:
            raised.append(exc)

    try:
        waiting = threading.Thread(target=connect, daemon=True)  # a hang must not hang pytest
        waiting.start()
        waiting.join(10)
        assert not waiting.is_alive(), "still connecting after 10 s: no connect timeout"
        assert isinstance(raised[0], OperationalError) and "timeout" in str(raised[0])
    finally:
        silent.close()
