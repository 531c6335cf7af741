"""`mlops scheduler run` as a real process: SIGTERM lets the running task finish, records it,
releases the lease and exits 0. The process is the CLI's own entry point with a tiny task table
put in place of the one built from the specs: one task that fires every second and takes a
second (SIGTERM is sent within a poll of its start, so it is still running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from sqlalchemy import select

from mlops.db.schema import scheduler_leases, scheduler_runs

TINY = """
    import sys
    import time
    from datetime import timedelta
    from pathlib import Path

    from mlops.cli.app import main
    from mlops.scheduling import tasks

    OUT = Path({out!r})


    def slow(rt, slot):
        OUT.joinpath("started").write_text(str(slot))
        time.sleep({seconds})
        OUT.joinpath("finished").write_text(str(slot))
        return "slept"


    SCHEDULE = tasks.Schedule(
        (tasks.Task("tiny", "sleeps", ("true",), slow, cron="* * * * * *", retries=0,
                    timeout=timedelta(seconds=30)),)
    )
    tasks.build = lambda settings, repo: SCHEDULE
    main(["scheduler", "run", *sys.argv[1:]])
"""


def start(settings, tmp_path, seconds: float, *extra: str) -> subprocess.Popen:
    script = tmp_path / "tiny_scheduler.py"
    script.write_text(textwrap.dedent(TINY.format(out=str(tmp_path), seconds=seconds)))
    env = {
        **os.environ,
        "MLOPS_HOME": str(settings.home),
        "MLOPS_DATABASE_URL": settings.store_url,
        "MLOPS_WAREHOUSE_URL": settings.warehouse_db_url,
    }
    return subprocess.Popen(
        [sys.executable, str(script), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, proc, seconds=30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"scheduler exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_sigterm_lets_the_running_task_finish_then_exits_cleanly(migrated, tmp_path):
    rt = migrated
    proc = start(rt.settings, tmp_path, 1.0, "--owner", "proc")
    try:
        wait_for(tmp_path / "started", proc)
        assert not (tmp_path / "finished").exists()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert (tmp_path / "finished").exists()  # it was let finish
    assert "scheduler stopped: 1 succeeded; leases released." in out
    with rt.store.connect() as conn:
        runs = conn.execute(select(scheduler_runs)).mappings().all()
        held = conn.execute(select(scheduler_leases)).all()
    assert [(r["task"], r["status"], r["owner"]) for r in runs] == [("tiny", "succeeded", "proc")]
    assert runs[0]["finished_at"] >= runs[0]["started_at"]
    assert held == []


def test_a_second_signal_stops_at_once(migrated, tmp_path):
    proc = start(migrated.settings, tmp_path, 60.0)
    try:
        wait_for(tmp_path / "started", proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # waiting for the task
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "stopped at once" in err
    assert not (tmp_path / "finished").exists()


def test_run_once_exits_after_the_due_run(migrated, tmp_path):
    proc = start(migrated.settings, tmp_path, 0.1, "--once")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "start tiny" in out and "succeeded tiny: slept" in out
    assert "scheduler stopped: 1 succeeded" in out


def test_an_unmigrated_store_is_refused(settings, tmp_path):
    proc = start(settings, tmp_path, 0.1, "--once")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "mlops db migrate" in err
