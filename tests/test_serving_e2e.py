"""``mlops serve`` as a real process with two workers: called over HTTP, switched off by
``mlops flags set`` from another process without a restart, stopped cleanly with the prediction
log written."""

import os
import shutil
import signal
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import func, select

from mlops.clock import SystemClock
from mlops.db.schema import prediction_log
from mlops.runtime import Runtime
from mlops.settings import Settings
from mlops.store import ingest
from tests.serving_support import free_port, wait_until


@pytest.fixture
def live_home(trained_home, tmp_path):
    """A copy of the trained home with every job refreshed at the real time (the server runs
    on the system clock, so its features must be fresh by it)."""
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    rt = Runtime(settings=Settings(home=home), clock=SystemClock())
    for job in ("churn", "upsell", "eta"):
        ingest.refresh(rt, job)
    rt.close()
    return home


def _env(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_HOME=str(home), **extra)
    return env


def test_mlops_serve_end_to_end(live_home, tmp_path):
    port = free_port()
    env = _env(
        live_home,
        MLOPS_CONTROL_POLL_SECONDS="0.2",
        MLOPS_PREDICTION_LOG_FLUSH_SECONDS="600",  # rows stay pending until shutdown
    )
    with open(tmp_path / "server.log", "w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlops", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _exercise(server, f"http://127.0.0.1:{port}", live_home)
        finally:
            if server.poll() is None:
                server.kill()
            log.seek(0)
            output = log.read()
    assert '"level": "error"' not in output, output
    rt = Runtime(settings=Settings(home=live_home))
    with rt.store.connect() as conn:
        logged = conn.execute(select(func.count()).select_from(prediction_log)).scalar()
    rt.close()
    assert logged >= 4  # dossier (2) + eta (>= 2), written at shutdown


def _exercise(server, base, home):
    def ready():
        try:
            return httpx.get(f"{base}/readyz", timeout=1).json()["mode"] == "models"
        except httpx.HTTPError:
            assert server.poll() is None, "the server exited"
            return False

    wait_until(ready, timeout=60, step=0.2)
    dossier = httpx.get(f"{base}/v1/customers/C0000001/dossier").json()
    assert dossier["churn"]["source"] == "model" and dossier["churn"]["model_version"] == 1
    eta = {"zone": "Z01", "distance_km": 3.0, "item_count": 2}
    assert httpx.post(f"{base}/v1/deliveries/eta", json=eta).json()["source"] == "model"
    flip = subprocess.run(
        [sys.executable, "-m", "mlops", "flags", "set", "eta", "off", "-r", "e2e test"],
        env=_env(home),
        capture_output=True,
        text=True,
    )
    assert flip.returncode == 0, flip.stderr
    wait_until(
        lambda: httpx.post(f"{base}/v1/deliveries/eta", json=eta).json()["reason"] == "flag_off",
        timeout=10,
    )
    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=30) == 0
