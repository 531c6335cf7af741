"""The task table built from the specs, `mlops schedule list|export`, and the generated Airflow
module and crontab lines: parsed (AST), executed against a fake `airflow` package (Airflow
itself is not installed here), and, when MLOPS_TEST_AIRFLOW_PYTHON names a Python with
Airflow, loaded by Airflow's DagBag and run by `airflow dags test` with a failing ingestion."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import types
from datetime import datetime, timedelta

import pytest
from croniter import croniter
from pydantic import SecretStr
from typer.testing import CliRunner

from mlops.cli.app import app
from mlops.clock import FrozenClock
from mlops.errors import ConfigError
from mlops.runtime import Runtime
from mlops.scheduling import actions, airflow, crontab
from mlops.scheduling.environment import for_workers
from mlops.scheduling.tasks import Schedule, Task, build, latest_slot, next_slots
from mlops.settings import Settings
from tests.repo_support import JOBS, REPO
from tests.webhook_support import Hook

NOW = datetime(2026, 6, 1, 12, 0, 7)
EXPECTED = {
    "ingest:churn": "0 2 * * *",
    "ingest:upsell": "0 */6 * * *",
    "ingest:eta": "*/5 * * * *",
    "train:churn": "0 3 1 * *",
    "train:upsell": "0 4 1 * *",
    "train:eta": "0 5 * * 1",
    "ingest:ticket": "30 2 * * *",
    "train:ticket": "30 3 1 * *",
    "monitor:accuracy": "30 6 * * *",
    "monitor:guardrails": "15 * * * *",
}


def settings(tmp_path, environment="production") -> Settings:
    return Settings(home=tmp_path, environment=environment)


# --- the task table --------------------------------------------------------------------


def test_the_schedule_follows_the_specs(tmp_path):
    schedule = build(settings(tmp_path), REPO)
    assert {t.name: t.cron for t in schedule.roots} == EXPECTED
    for job in JOBS.values():
        assert schedule.get(f"ingest:{job.name}").cron == job.refresh_cron
        assert schedule.get(f"train:{job.name}").cron == job.retrain_cron
        chain = schedule.chain(schedule.get(f"ingest:{job.name}"))
        assert [(t.name, t.command, t.when) for t in chain] == [
            (f"ingest:{job.name}", ("mlops", "ingest", job.name), "success"),
            (f"monitor:drift:{job.name}", ("mlops", "monitor", "drift", job.name), "success"),
            (f"monitor:ops:{job.name}", ("mlops", "monitor", "ops"), "done"),
        ]
        assert chain[0].action == actions.Ingest(job.name) and chain[0].takes_slot
        assert schedule.get(f"train:{job.name}").action == actions.Train(job.name)
    # ETA refreshes every 5 minutes: its attempts and retries fit inside the slot.
    eta = schedule.get("ingest:eta")
    assert eta.timeout < timedelta(minutes=5)
    assert eta.retry_delay + eta.backoff(2) < timedelta(minutes=5)


def test_staging_trains_with_dry_run(tmp_path):
    schedule = build(settings(tmp_path, "staging"), REPO)
    for job in JOBS:
        task = schedule.get(f"train:{job}")
        assert task.command == ("mlops", "train", job, "--dry-run")
        assert task.action == actions.Train(job, dry_run=True)
    assert schedule.get("ingest:churn").command == ("mlops", "ingest", "churn")


def test_backoff_doubles_up_to_its_cap():
    task = build(Settings(), REPO).get("ingest:churn")
    assert [task.backoff(n) for n in (1, 2, 3, 4, 5)] == [
        timedelta(minutes=m) for m in (5, 10, 20, 30, 30)
    ]


def test_slots_agree_with_croniter():
    for cron in EXPECTED.values():
        it = croniter(cron, NOW)
        assert next_slots(cron, NOW, 3) == [it.get_next(datetime) for _ in range(3)]
        assert latest_slot(cron, NOW) == croniter(cron, NOW).get_prev(datetime)
    exact = datetime(2026, 6, 1, 2, 0)
    assert latest_slot("0 2 * * *", exact) == exact  # a slot at now is due now
    assert next_slots("0 2 * * *", exact, 1) == [datetime(2026, 6, 2, 2, 0)]


def _task(name, **kw) -> Task:
    return Task(name, "", ("true",), lambda rt, slot: None, **kw)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ((_task("a", cron="* * * * *"), _task("a", cron="* * * * *")), "listed twice"),
        ((_task("a"),), "exactly one of cron and after"),
        ((_task("a", cron="every day"),), "invalid cron"),
        ((_task("b", after="a"),), "unknown task"),
        (
            (_task("a", cron="* * * * *"), _task("b", after="a"), _task("c", after="a")),
            "two followers",
        ),
    ],
)
def test_a_bad_task_table_is_refused(tasks, message):
    with pytest.raises(ConfigError, match=message):
        Schedule(tasks)


# --- mlops schedule list / export ------------------------------------------------------


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    from mlops.cli import output

    # The console is made once per process: COLUMNS set now would not reach it.
    monkeypatch.setattr(output.console, "_width", 160)

    def run(*args, environment="production"):
        rt = Runtime(settings=settings(tmp_path, environment), clock=FrozenClock(NOW))
        runner = CliRunner()
        result = runner.invoke(app, list(args), obj=rt, env={"COLUMNS": "160"})
        rt.close()
        return result

    return run


def test_schedule_list_shows_the_next_three_runs_of_each_task(invoke):
    result = invoke("schedule", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, cron in EXPECTED.items():
        row = next(i for i, line in enumerate(lines) if line.strip().startswith(name + " "))
        expected = [f"{t:%m-%d %H:%M}" for t in croniter_next(cron, 3)]
        shown = [lines[row + i] for i in range(3)]
        for line, when in zip(shown, expected, strict=True):
            assert when in line, (name, line)
        assert cron in lines[row]
    assert "└ monitor:drift:eta" in result.output and "then, always" in result.output
    assert "mlops ingest eta --scheduled-for SLOT" in result.output
    assert "18 tasks: 10 on a cron, 8 after another; environment production" in result.output


def croniter_next(cron: str, count: int) -> list[datetime]:
    it = croniter(cron, NOW)
    return [it.get_next(datetime) for _ in range(count)]


def test_schedule_list_in_staging_shows_dry_run_training(invoke):
    result = invoke("schedule", "list", environment="staging")
    assert result.exit_code == 0
    assert "mlops train churn --dry-run" in result.output
    assert "environment staging" in result.output


def test_export_needs_exactly_one_target(tmp_path, capsys, monkeypatch):
    from mlops.cli.app import main

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    for args in ([], ["--crontab", "--airflow", str(tmp_path)]):
        with pytest.raises(SystemExit) as exited:
            main(["schedule", "export", *args])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "choose one of --airflow DIR and --crontab" in err and "fix:" in err


def test_export_airflow_writes_the_dag_module(invoke, tmp_path):
    result = invoke("schedule", "export", "--airflow", str(tmp_path / "dags"))
    assert result.exit_code == 0, result.output
    path = tmp_path / "dags" / "mlops_schedule.py"
    assert path.is_file() and "wrote" in result.output and "10 DAGs" in result.output
    assert not list((tmp_path / "dags").glob("*.tmp"))


def test_export_crontab_prints_lines(invoke):
    result = invoke("schedule", "export", "--crontab")
    assert result.exit_code == 0
    assert sum(1 for line in result.output.splitlines() if "flock -n" in line) == 10


def test_help_texts_explain_the_commands():
    runner = CliRunner()
    for args, words in (
        (["schedule", "--help"], "Airflow"),
        (["schedule", "list", "--help"], "next three runs"),
        (["schedule", "export", "--help"], "catchup"),
        (["scheduler", "run", "--help"], "SIGTERM"),
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0 and words in result.output, args


# --- the Airflow module ----------------------------------------------------------------


def render(environment="production", **settings) -> tuple[str, Schedule]:
    config = Settings(environment=environment, **settings)
    schedule = build(config, REPO)
    return airflow.render(schedule, config, generated_at=NOW), schedule


def _kwargs(call: ast.Call) -> dict:
    return {k.arg: k.value for k in call.keywords}


def parse_dags(source: str) -> dict[str, dict]:
    """DAG id -> its literal arguments, operators (in order) and the >> chain, from the AST."""
    tree = ast.parse(source)
    dags = {}
    for node in tree.body:
        if not isinstance(node, ast.With):
            continue
        call = node.items[0].context_expr
        assert isinstance(call, ast.Call) and call.func.id == "DAG"
        args = {
            k: ast.literal_eval(v)
            for k, v in _kwargs(call).items()
            if k not in ("start_date", "default_args")
        }
        operators, order, teardowns = {}, [], set()
        for stmt in node.body:
            if isinstance(stmt, ast.Assign):
                op = stmt.value
                assert op.func.id == "BashOperator"
                kw = _kwargs(op)
                operators[stmt.targets[0].id] = {
                    "task_id": ast.literal_eval(kw["task_id"]),
                    "bash_command": ast.literal_eval(kw["bash_command"]),
                    "retries": ast.literal_eval(kw["retries"]),
                    "retry_delay": ast.unparse(kw["retry_delay"]),
                    "execution_timeout": ast.unparse(kw["execution_timeout"]),
                    "trigger_rule": ast.literal_eval(kw.get("trigger_rule", ast.Constant(None))),
                    "pool": ast.unparse(kw["pool"]) if "pool" in kw else None,
                }
            elif isinstance(stmt, ast.Expr):
                order = _chain(stmt.value, teardowns)
        dags[args["dag_id"]] = {
            **args,
            "default_args": ast.unparse(_kwargs(call)["default_args"]),
            "operators": operators,
            "order": order,
            "teardowns": teardowns,
        }
    return dags


def _chain(node, teardowns: set[str]) -> list[str]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
        return _chain(node.left, teardowns) + _chain(node.right, teardowns)
    if isinstance(node, ast.Call):  # task.as_teardown()
        assert node.func.attr == "as_teardown" and not node.args and not node.keywords
        teardowns.add(node.func.value.id)
        return [node.func.value.id]
    return [node.id]


def test_the_airflow_module_is_valid_python_without_mlops():
    source, _ = render()
    compile(source, airflow.FILE_NAME, "exec")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert "airflow" in imported and "mlops" not in imported
    assert imported - {"airflow"} <= sys.stdlib_module_names


def test_the_airflow_dags_match_the_schedule():
    source, schedule = render()
    dags = parse_dags(source)
    assert sorted(dags) == sorted(f"mlops_{r.slug}" for r in schedule.roots)
    for root in schedule.roots:
        dag = dags[f"mlops_{root.slug}"]
        assert dag["schedule"] == root.cron
        assert dag["catchup"] is False and dag["max_active_runs"] == 1
        assert dag["default_args"] == "DEFAULT_ARGS"
        chain = schedule.chain(root)
        assert dag["order"] == ([t.slug for t in chain] if len(chain) > 1 else [])
        # What runs whatever happened is a teardown: the run's state is that of the work.
        assert dag["teardowns"] == {t.slug for t in chain if t.when == "done"}
        for task in chain:
            op = dag["operators"][task.slug]
            assert op["task_id"] == task.slug
            assert shlex.split(op["bash_command"])[: len(task.command)] == list(task.command)
            assert op["retries"] == task.retries
            assert op["retry_delay"] == f"timedelta(seconds={task.retry_delay.seconds})"
            assert op["execution_timeout"] == (
                f"timedelta(seconds={int(task.timeout.total_seconds())})"
            )
            assert op["trigger_rule"] is None
            assert op["pool"] == ("POOL" if task.name.startswith("ingest:") else None)
    ingest = dags["mlops_ingest_eta"]
    assert ingest["teardowns"] == {"monitor_ops_eta"}
    assert ingest["order"] == ["ingest_eta", "monitor_drift_eta", "monitor_ops_eta"]
    assert ingest["operators"]["ingest_eta"]["bash_command"] == (
        'mlops ingest eta --scheduled-for "{{ data_interval_end | ts if data_interval_end '
        "else '' }}\""
    )
    assert dags["mlops_train_churn"]["operators"]["train_churn"]["bash_command"] == (
        "mlops train churn"
    )


def test_staging_airflow_training_runs_dry():
    dags = parse_dags(render("staging")[0])
    for job in JOBS:
        command = dags[f"mlops_train_{job}"]["operators"][f"train_{job}"]["bash_command"]
        assert command == f"mlops train {job} --dry-run"


class FakeAirflow:
    """Just enough of Airflow's DAG and BashOperator to execute the generated module."""

    def __init__(self) -> None:
        self.dags: dict[str, dict] = {}
        self.current = None
        fake = self

        class DAG:
            def __init__(self, **kwargs):
                self.kwargs, self.tasks = kwargs, {}
                fake.dags[kwargs["dag_id"]] = {"dag": self, "edges": []}

            def __enter__(self):
                fake.current = self
                return self

            def __exit__(self, *exc):
                fake.current = None

        class BashOperator:
            def __init__(self, **kwargs):
                assert fake.current is not None, "operator outside a DAG"
                # Airflow's rule: the DAG's default_args, then the operator's own arguments.
                self.kwargs = {**fake.current.kwargs.get("default_args", {}), **kwargs}
                self.dag, self.is_teardown = fake.current, False
                fake.current.tasks[kwargs["task_id"]] = self

            def as_teardown(self):
                self.is_teardown = True
                return self

            def __rshift__(self, other):
                fake.dags[self.dag.kwargs["dag_id"]]["edges"].append(
                    (self.kwargs["task_id"], other.kwargs["task_id"])
                )
                return other

        self.modules = {
            "airflow": types.ModuleType("airflow"),
            "airflow.sdk": types.ModuleType("airflow.sdk"),
            "airflow.providers": types.ModuleType("airflow.providers"),
            "airflow.providers.standard": types.ModuleType("airflow.providers.standard"),
            "airflow.providers.standard.operators": types.ModuleType("ops"),
            "airflow.providers.standard.operators.bash": types.ModuleType("bash"),
        }
        self.modules["airflow.sdk"].DAG = DAG
        self.modules["airflow.providers.standard.operators.bash"].BashOperator = BashOperator


def run_module(monkeypatch, source: str) -> tuple[FakeAirflow, dict]:
    """Execute the generated module against the fake Airflow, without mlops importable."""
    fake = FakeAirflow()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    for name in [m for m in sys.modules if m == "mlops" or m.startswith("mlops.")]:
        monkeypatch.delitem(sys.modules, name)  # proves the module needs no mlops import
    namespace = {"__name__": "mlops_schedule"}
    exec(compile(source, "mlops_schedule.py", "exec"), namespace)
    assert not any(m == "mlops" or m.startswith("mlops.") for m in sys.modules)
    return fake, namespace


def test_the_airflow_module_runs_against_a_fake_airflow(monkeypatch, tmp_path):
    source, schedule = render(home=tmp_path / "home")
    fake, namespace = run_module(monkeypatch, source)
    assert set(fake.dags) == {f"mlops_{r.slug}" for r in schedule.roots}
    for root in schedule.roots:
        entry = fake.dags[f"mlops_{root.slug}"]
        dag = entry["dag"]
        assert dag.kwargs["schedule"] == root.cron and dag.kwargs["catchup"] is False
        assert dag.kwargs["start_date"].tzinfo is not None
        chain = schedule.chain(root)
        assert list(dag.tasks) == [t.slug for t in chain]
        assert entry["edges"] == list(zip(list(dag.tasks), list(dag.tasks)[1:], strict=False))
        for task in chain:
            op = dag.tasks[task.slug].kwargs
            assert op["retries"] == task.retries and op["retry_delay"] == task.retry_delay
            assert op["max_retry_delay"] == task.max_retry_delay
            assert op["execution_timeout"] == task.timeout
            assert op["retry_exponential_backoff"] is True
            assert dag.tasks[task.slug].is_teardown is (task.when == "done")
            assert op["pool"] == namespace["POOL"] if task.reads_warehouse else "pool" not in op
            # Every task: an owner, a failure callback, the settings over the worker's own.
            assert op["owner"] == "mlops" and op["on_failure_callback"] is namespace["post_failure"]
            assert op["env"]["MLOPS_HOME"] == str(tmp_path / "home") and op["append_env"] is True
    assert namespace["POOL"] == airflow.warehouse_pool(Settings(home=tmp_path / "home"))


def test_the_exports_carry_the_settings_but_not_the_secrets(monkeypatch, tmp_path):
    """A worker runs in a temporary folder (Airflow) or the user's home (cron), without the
    exporting shell's variables: a relative MLOPS_HOME there is an empty store."""
    monkeypatch.chdir(tmp_path)
    config = Settings(
        home=".mlops",
        environment="staging",
        database_url="postgresql+psycopg://ml:pw-store@db.example/mlops",
        warehouse_url="sqlite:///wh.db",
        slo_ms={"predict": 40},
        ab_salt="salt{{not-a-template}}",
        alert_webhook_url=SecretStr("https://hooks.example/T0K3N"),
    )
    schedule = build(config, REPO)
    expected = {
        "MLOPS_HOME": str(tmp_path / ".mlops"),
        "MLOPS_ENVIRONMENT": "staging",
        "MLOPS_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'wh.db'}",
        "MLOPS_SLO_MS": '{"predict":40.0}',
        "MLOPS_AB_SALT": "salt{{not-a-template}}",
    }
    workers = for_workers(config)
    assert workers.values == expected
    assert workers.secrets == ("MLOPS_ALERT_WEBHOOK_URL", "MLOPS_DATABASE_URL")
    dag_module = airflow.render(schedule, config, generated_at=NOW)
    cron = crontab.render(schedule, config, generated_at=NOW, bin_dir="/opt/mlops/bin")
    for text in (dag_module, cron):
        assert "pw-store" not in text and "T0K3N" not in text
        assert "MLOPS_ALERT_WEBHOOK_URL, MLOPS_DATABASE_URL" in text
    for name, value in expected.items():
        assert f"{name}={value}" in cron.splitlines()
    assert "PATH=/opt/mlops/bin:/usr/local/bin:/usr/bin:/bin" in cron.splitlines()
    _, namespace = run_module(monkeypatch, dag_module)
    # Airflow renders env as Jinja: a value that looks like a template is kept raw.
    env = namespace["ENV"]
    assert env["MLOPS_AB_SALT"] == "{% raw %}salt{{not-a-template}}{% endraw %}"
    assert {k: v for k, v in env.items() if k != "MLOPS_AB_SALT"} == {
        k: v for k, v in expected.items() if k != "MLOPS_AB_SALT"
    }


def test_the_warehouse_pool_is_named_after_the_warehouse_without_its_password(tmp_path):
    url = "postgresql+psycopg://ml:{}@wh.example:5432/analytics"
    pool = airflow.warehouse_pool(Settings(warehouse_url=url.format("one")))
    assert pool.startswith("mlops_warehouse_analytics_") and "one" not in pool
    assert re.fullmatch(r"[a-z0-9_]+", pool)
    # Every export reading that warehouse shares the pool, whatever its password or environment.
    staging = Settings(warehouse_url=url.format("two"), environment="staging")
    assert airflow.warehouse_pool(staging) == pool
    other = Settings(warehouse_url="postgresql+psycopg://ml@other.example/analytics")
    assert airflow.warehouse_pool(other) != pool
    default = airflow.warehouse_pool(Settings(home=tmp_path))
    assert default.startswith("mlops_warehouse_warehouse_")


def test_the_failure_callback_posts_the_failed_task_to_the_webhook(monkeypatch, caplog):
    source, _ = render(alert_webhook_retries=1)
    _, namespace = run_module(monkeypatch, source)
    post_failure = namespace["post_failure"]
    context = {
        "ti": types.SimpleNamespace(dag_id="mlops_ingest_eta", task_id="ingest_eta", try_number=3),
        "run_id": "scheduled__2026-06-01T02:05:00+00:00",
        "exception": RuntimeError("Bash command failed. The command returned exit code 1.\n..."),
    }
    monkeypatch.delenv("MLOPS_ALERT_WEBHOOK_URL", raising=False)
    post_failure(context)  # no webhook: nothing to do, nothing raised
    hook = Hook(statuses=[500])
    try:
        monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", hook.url)
        post_failure(context)
    finally:
        hook.close()
    assert len(hook.received) == 2  # a 500, then retried and accepted
    payload = hook.received[-1]
    assert payload["event"] == "mlops.airflow.task_failed" and payload["status"] == "open"
    assert payload["subject"] == "mlops_ingest_eta.ingest_eta" and payload["try_number"] == 3
    assert payload["message"] == (
        "mlops_ingest_eta.ingest_eta failed: Bash command failed. The command returned exit code 1."
    )
    assert payload["run_id"] == context["run_id"] and payload["environment"] == "production"
    # An unreachable pager is logged, without its URL (it may carry a token), never raised.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook?token=s3cret"
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", dead)
    with caplog.at_level(logging.ERROR, logger="mlops_schedule"):
        post_failure(context)
    assert "alert webhook failed after 2 attempts" in caplog.text and "s3cret" not in caplog.text


DAGBAG_SCRIPT = """
import json, sys
from datetime import datetime, timezone
try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
dags = {}
for dag_id, dag in bag.dags.items():
    tasks = {t.task_id: t for t in dag.tasks}
    order = []
    while len(order) < len(tasks):
        order += [i for i, t in tasks.items()
                  if i not in order and set(t.upstream_task_ids) <= set(order)]
    timetable = dag.timetable
    dags[dag_id] = {
        "cron": getattr(timetable, "expression", None) or getattr(timetable, "_expression", None),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "order": order,
        "tasks": {
            i: {"retries": t.retries, "retry_delay": t.retry_delay.total_seconds(),
                "timeout": t.execution_timeout.total_seconds(),
                "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                "teardown": t.is_teardown, "pool": t.pool, "owner": t.owner,
                "callbacks": len(t.on_failure_callback or []),
                "env": t.env, "append_env": t.append_env,
                "command": t.bash_command}
            for i, t in tasks.items()
        },
    }
dag = bag.dags["mlops_ingest_eta"]
task = dag.get_task("ingest_eta")
slot = datetime(2026, 6, 1, 2, 5, tzinfo=timezone.utc)
jinja = dag.get_template_env()
rendered = task.render_template(task.bash_command, {"data_interval_end": slot}, jinja)
env = task.render_template(task.env, {}, jinja)
errors = {k: str(v) for k, v in bag.import_errors.items()}
print(json.dumps({"errors": errors, "dags": dags, "rendered": rendered, "env": env}))
"""


@pytest.mark.skipif(
    not os.environ.get("MLOPS_TEST_AIRFLOW_PYTHON"),
    reason="set MLOPS_TEST_AIRFLOW_PYTHON to a Python with apache-airflow installed",
)
def test_airflow_dagbag_loads_the_module_without_errors(tmp_path):
    """Airflow itself parses the export (in its own virtualenv: it pins FastAPI below ours)."""
    config = Settings(environment="staging", home=tmp_path / "home", ab_salt="a{{b}}")
    schedule = build(config, REPO)
    airflow.write(schedule, config, tmp_path / "dags", generated_at=NOW)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out = subprocess.run(
        [os.environ["MLOPS_TEST_AIRFLOW_PYTHON"], "-c", DAGBAG_SCRIPT, str(tmp_path / "dags")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert set(found["dags"]) == {f"mlops_{r.slug}" for r in schedule.roots}
    for root in schedule.roots:
        dag = found["dags"][f"mlops_{root.slug}"]
        assert dag["cron"] == root.cron
        assert dag["catchup"] is False and dag["max_active_runs"] == 1
        chain = schedule.chain(root)
        assert dag["order"] == [t.slug for t in chain]
        for task in chain:
            got = dag["tasks"][task.slug]
            assert got["retries"] == task.retries
            assert got["retry_delay"] == task.retry_delay.total_seconds()
            assert got["timeout"] == task.timeout.total_seconds()
            # Airflow's own rule for a teardown: it runs once the tasks before it are done.
            assert (got["teardown"], got["trigger_rule"]) == (
                (True, "all_done_setup_success") if task.when == "done" else (False, "all_success")
            )
            assert got["pool"] == (
                airflow.warehouse_pool(config) if task.reads_warehouse else ("default_pool")
            )
            assert got["owner"] == "mlops" and got["callbacks"] == 1
            assert got["env"]["MLOPS_HOME"] == str(tmp_path / "home") and got["append_env"]
    # Airflow renders env as a template: a setting that looks like one arrives unchanged.
    assert found["env"]["MLOPS_AB_SALT"] == "a{{b}}"
    assert found["dags"]["mlops_train_eta"]["tasks"]["train_eta"]["command"] == (
        "mlops train eta --dry-run"
    )
    # The slot Airflow hands to ingestion is the cron time that fired, readable by the CLI.
    assert found["rendered"] == 'mlops ingest eta --scheduled-for "2026-06-01T02:05:00+00:00"'


# Migrates Airflow's database (SQLite, in AIRFLOW_HOME) and runs `airflow dags test DAG_ID` in
# the same interpreter: one Airflow start-up instead of two (about 5 s each here).
DAGS_TEST_SCRIPT = """
import sys
from airflow.utils.db import initdb
initdb()
from airflow.__main__ import main
sys.argv = ["airflow", "dags", "test", sys.argv[1]]
main()
"""


@pytest.mark.skipif(
    not os.environ.get("MLOPS_TEST_AIRFLOW_PYTHON"),
    reason="set MLOPS_TEST_AIRFLOW_PYTHON to a Python with apache-airflow installed",
)
def test_airflow_marks_the_run_failed_when_ingestion_fails(tmp_path):
    """A real `airflow dags test` of an exported ingestion chain whose refresh fails: the ops
    check still runs, drift does not, the run ends failed, and the webhook hears of it. One
    small DAG without retries, stand-in `mlops` commands: about 20 s, most of it Airflow."""
    config = Settings(home=tmp_path / "home", alert_webhook_retries=0)
    tasks = (
        _task("ingest:x", cron="*/5 * * * *", takes_slot=True, reads_warehouse=True, retries=0),
        _task("monitor:drift:x", after="ingest:x", retries=0),
        _task("monitor:ops:x", after="monitor:drift:x", when="done", retries=0),
    )
    schedule = Schedule(
        tuple(Task(t.name, "", ("mlops", *t.name.split(":")), t.action, **_shape(t)) for t in tasks)
    )
    airflow.write(schedule, config, tmp_path / "dags", generated_at=NOW)
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    stand_in = bin_dir / "mlops"
    stand_in.write_text(
        f'#!/bin/sh\necho "$1 $MLOPS_HOME" >> {calls}\n[ "$1" = ingest ] && exit 3\nexit 0\n'
    )
    stand_in.chmod(0o755)
    hook = Hook()
    try:
        out = subprocess.run(
            [os.environ["MLOPS_TEST_AIRFLOW_PYTHON"], "-c", DAGS_TEST_SCRIPT, "mlops_ingest_x"],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "PATH": f"{bin_dir}:{os.environ['PATH']}",
                "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
                "MLOPS_ALERT_WEBHOOK_URL": hook.url,
            },
        )
    finally:
        hook.close()
    logs = out.stdout + out.stderr
    finished = [line for line in logs.splitlines() if "DagRun Finished" in line]
    assert finished and "state=failed" in finished[-1], logs[-3000:]
    assert out.returncode != 0
    # ingest failed, drift skipped (upstream_failed), ops ran anyway; all on the export's home.
    assert calls.read_text().splitlines() == [
        f"ingest {tmp_path / 'home'}",
        f"monitor {tmp_path / 'home'}",
    ]
    assert [(p["dag_id"], p["task_id"]) for p in hook.received] == [("mlops_ingest_x", "ingest_x")]


def _shape(task: Task) -> dict:
    return {
        k: getattr(task, k)
        for k in ("cron", "after", "when", "retries", "takes_slot", "reads_warehouse")
    }


# --- crontab ---------------------------------------------------------------------------


def test_crontab_lines_parse_and_run_the_same_commands():
    config = Settings(environment="staging")
    schedule = build(config, REPO)
    text = crontab.render(schedule, config, generated_at=NOW, lock_dir="/locks")
    entries = [
        line for line in text.splitlines() if line and not line.startswith("#") and "=" not in line
    ]
    assert "CRON_TZ=UTC" in text.splitlines()
    assert len(entries) == len(schedule.roots)
    for root, line in zip(schedule.roots, entries, strict=True):
        fields = line.split(None, 5)
        cron = " ".join(fields[:5])
        assert cron == root.cron and croniter.is_valid(cron)
        assert croniter(cron, NOW).get_next(datetime) == next_slots(root.cron, NOW, 1)[0]
        argv = shlex.split(fields[5])
        assert argv[:4] == ["flock", "-n", f"/locks/mlops-{root.slug}.lock", "sh"]
        script = argv[5]
        for task in schedule.chain(root):
            assert f"timeout {int(task.timeout.total_seconds())} {shlex.join(task.command)}" in (
                script
            )
    eta = entries[2].split(None, 5)[5]
    assert "&& timeout 120 mlops monitor drift eta; timeout 120 mlops monitor ops" in eta
    assert r'--scheduled-for "$(date -u +\%Y-\%m-\%dT\%H:\%M:00)"' in eta
    assert "mlops train churn --dry-run" in text


def test_crontab_shell_runs_the_chain_in_order(tmp_path):
    """The shell text of a line, run with stand-in commands: drift only after a successful
    refresh, ops always; the slot is the current UTC minute."""
    schedule = build(Settings(), REPO)
    root = schedule.get("ingest:eta")
    script = shlex.split(crontab.line(schedule, root, "/tmp").split(None, 5)[5])[5]
    script = script.replace("\\%", "%")  # what cron hands to the shell
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    stand_ins = {
        # mlops: logs its arguments; the refresh fails when FAIL=1.
        "mlops": f'echo "mlops $*" >> {log}\n[ "$1" = ingest ] && exit ${{FAIL:-0}}\nexit 0\n',
        # timeout SECONDS COMMAND...: logs the limit, runs the command.
        "timeout": f'echo "timeout $1" >> {log}\nshift\nexec "$@"\n',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["sh", "-c", script], env=env, check=True)
    calls = log.read_text().splitlines()
    mlops_calls = [c for c in calls if c.startswith("mlops ")]
    assert [c.split()[1:3] for c in mlops_calls] == [
        ["ingest", "eta"],
        ["monitor", "drift"],
        ["monitor", "ops"],
    ]
    slot = mlops_calls[0].split("--scheduled-for ")[1]
    assert datetime.fromisoformat(slot).second == 0
    log.unlink()
    subprocess.run(["sh", "-c", script], env={**env, "FAIL": "1"}, check=False)
    mlops_calls = [c for c in log.read_text().splitlines() if c.startswith("mlops ")]
    assert [c.split()[1] for c in mlops_calls] == ["ingest", "monitor"]
    assert mlops_calls[1].split()[2] == "ops"


def test_the_written_module_replaces_the_old_one_whole(tmp_path):
    schedule = build(Settings(), REPO)
    folder = tmp_path / "dags"
    path = airflow.write(schedule, Settings(), folder, generated_at=NOW)
    first = path.read_text()
    staging = airflow.write(schedule, Settings(environment="staging"), folder, generated_at=NOW)
    assert staging == path and "environment: staging" in path.read_text() != first
    assert sorted(p.name for p in folder.iterdir()) == [airflow.FILE_NAME]
