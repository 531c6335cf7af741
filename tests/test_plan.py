"""``mlops plan`` / ``mlops apply``: a repository copy (``mlops init``) planned against a real
store, edited, planned again; what apply writes, that it is atomic and idempotent, and that
it never deletes or re-points anything in the MLflow registry."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from mlops.clock import FrozenClock
from mlops.db.schema import feature_specs, repository_objects
from mlops.errors import ConfigError, InputError, NotReadyError
from mlops.examples.marketplace.warehouse import create_tables
from mlops.repository import apply as repo_apply
from mlops.repository import plan as repo_plan
from mlops.repository import registered
from mlops.repository.plan import Change
from mlops.repository.scaffold import init
from mlops.repository.state import job_states
from mlops.runtime import Runtime
from mlops.scheduling.tasks import build
from tests.cli_support import invoke
from tests.conftest import NOW
from tests.repo_support import JOBS, edit


def _runtime(settings, path: Path, now: datetime = NOW, **changes) -> Runtime:
    """A fresh Runtime on the repository at ``path`` (it loads the repository once)."""
    return Runtime(
        settings=settings.model_copy(update={"repo": path, **changes}), clock=FrozenClock(now)
    )


def _views_installable(rt: Runtime) -> None:
    """PostgreSQL installs the views, which need the warehouse's tables (SQLite installs none)."""
    if rt.warehouse.dialect.name == "postgresql":
        create_tables(rt.warehouse)


@pytest.fixture
def repo_path(tmp_path) -> Path:
    return init(tmp_path / "repo").path


@pytest.fixture
def fresh(migrated, repo_path):
    """``fresh()``: a new Runtime on the migrated store and the (maybe edited) repository."""
    made: list[Runtime] = []
    _views_installable(migrated)

    def make(now: datetime = NOW, **changes) -> Runtime:
        made.append(_runtime(migrated.settings, repo_path, now, **changes))
        return made[-1]

    yield make
    for rt in made:
        rt.close()


def _rows(rt: Runtime) -> dict[tuple[str, str], dict]:
    with rt.store.connect() as conn:
        return {
            (r["kind"], r["name"]): dict(r)
            for r in conn.execute(select(repository_objects)).mappings()
        }


def _items(plan) -> set[tuple[str, str, str]]:
    return {(i.kind, i.action, i.name) for i in plan.items}


def _register(settings, job: str, mlflow_template, tmp_path: Path) -> None:
    """A registered model for ``job`` with version 1 as champion, as training leaves it."""
    from mlops.training import tracking_client
    from mlops.training.tracking import JOB_TAG

    settings.home.mkdir(parents=True, exist_ok=True)
    if not (settings.home / "mlflow.db").exists():
        shutil.copy(mlflow_template, settings.home / "mlflow.db")
    client = tracking_client.client(settings, write=True)
    client.create_registered_model(job, tags={JOB_TAG: job})
    source = tmp_path / "artifacts" / job
    source.mkdir(parents=True)
    version = client.create_model_version(job, source=str(source))
    client.set_registered_model_alias(job, "champion", version.version)


def test_an_empty_store_plans_everything_added_and_apply_twice_changes_nothing(fresh):
    rt = fresh()
    plan = repo_plan.compute(rt)
    features = sum(len(job.features) for job in rt.repo.jobs.values())
    tasks = len(build(rt.settings, rt.repo).tasks)
    assert {k: len(plan.of(k, "added")) for k in repo_plan.KINDS} == {
        "spec": features,
        "view": len(JOBS),
        "schedule": tasks,
        "model": len(JOBS),
    }
    assert len(plan.items) == features + 2 * len(JOBS) + tasks and not plan.retrain
    assert plan.of("model")[0].note == "no registered model yet: `mlops train churn`"
    done = repo_apply.apply(rt, plan)
    assert done.summary().startswith(f"applied specs {features} added; views {len(JOBS)} added")
    views = [job.view for job in JOBS.values()]
    assert done.views_installed == ([] if rt.warehouse.dialect.name == "sqlite" else views)
    rows = _rows(rt)
    assert rows[("schedule", "ingest:churn")]["job"] == "churn"
    assert '"cron": "0 2 * * *"' in rows[("schedule", "ingest:churn")]["definition"]
    assert rows[("view", "ml_eta_features")]["applied_at"] == NOW
    again = repo_plan.compute(fresh())
    assert again.empty and again.items == []
    assert (
        again.summary() == f"no changes: the repository 'marketplace' is applied "
        f"({features + 2 * len(JOBS) + tasks} objects)"
    )
    assert repo_apply.apply(rt, again).summary().startswith("nothing to apply")
    assert _rows(rt) == rows


def test_a_range_a_view_sql_and_a_cron_edit_are_each_shown_precisely(fresh, repo_path):
    rt = fresh()
    repo_apply.apply(rt, repo_plan.compute(rt))
    edit(repo_path / "jobs" / "churn.yaml", "range: [0, 3650]", "range: [0, 4000]")
    edit(repo_path / "jobs" / "upsell.yaml", 'refresh: "0 */6 * * *"', 'refresh: "30 */6 * * *"')
    sql = repo_path / "sql" / "ml_eta_features.sql"
    sql.write_text(sql.read_text() + "-- zones of the new city\n")
    rt = fresh()
    plan = repo_plan.compute(rt)
    assert _items(plan) == {
        ("spec", "changed", "churn.days_since_last_order"),
        ("view", "changed", "ml_eta_features"),
        ("schedule", "changed", "ingest:upsell"),
        ("model", "changed", "eta"),
    }
    spec, view, task, model = plan.items
    assert spec.changes == (Change("max_value", "3650.0", "4000.0"),)
    assert task.changes == (Change("cron", "0 */6 * * *", "30 */6 * * *"),)
    ((what, after),) = [(c.field, c.after) for c in view.changes]
    lines = len(sql.read_text().splitlines())
    assert what == f"sql (1 line, first at line {lines})" and after == "-- zones of the new city"
    assert model.changes[0].field == "view_sql edited (sha256)"
    assert model.note.startswith("retrain needed: `mlops train eta`, after a backfill")
    assert plan.retrain == ["eta"]
    assert plan.summary() == (
        "specs 1 changed; views 1 changed; schedules 1 changed; models 1 changed; "
        "retrain needed: eta"
    )
    repo_apply.apply(rt, plan)
    rows = _rows(rt)
    assert rows[("model", "eta")]["changed_at"] == NOW
    assert rows[("model", "churn")]["changed_at"] is None  # a range does not change the model
    with rt.store.connect() as conn:
        version = conn.execute(
            select(feature_specs.c.version, feature_specs.c.max_value).where(
                feature_specs.c.name == "days_since_last_order"
            )
        ).one()
    assert tuple(version) == (2, 4000.0)
    assert repo_plan.compute(fresh()).empty


def test_a_feature_added_or_retyped_flags_a_retrain(fresh, repo_path):
    rt = fresh()
    repo_apply.apply(rt, repo_plan.compute(rt))
    churn = repo_path / "jobs" / "churn.yaml"
    edit(churn, "  - name: orders_30d\n    dtype: int", "  - name: orders_30d\n    dtype: float")
    churn.write_text(
        churn.read_text()
        + "  - name: refunds_90d\n    dtype: int\n    description: Refunds in 90 days.\n"
    )
    plan = repo_plan.compute(fresh())
    assert ("spec", "added", "churn.refunds_90d") in _items(plan)
    (model,) = plan.of("model")
    assert set(model.changes) == {
        Change("features.refunds_90d", "-", "added"),
        Change("features.orders_30d", '["int", null]', '["float", null]'),
    }
    assert plan.retrain == ["churn"] and "retrain needed" in model.note


def test_a_removed_job_is_retired_everywhere_and_its_registered_model_is_kept(
    fresh, repo_path, mlflow_template, tmp_path
):
    rt = fresh()
    _register(rt.settings, "upsell", mlflow_template, tmp_path)
    repo_apply.apply(rt, repo_plan.compute(rt))
    (repo_path / "jobs" / "upsell.yaml").unlink()
    edit(
        repo_path / "repository.yaml",
        "jobs: [churn, upsell, eta, ticket]",
        "jobs: [churn, eta, ticket]",
    )
    rt = fresh()
    plan = repo_plan.compute(rt)
    assert {i.action for i in plan.items} == {"retired"}
    assert {(i.kind, i.name) for i in plan.items if i.kind != "spec"} == {
        ("view", "ml_upsell_features"),
        ("schedule", "ingest:upsell"),
        ("schedule", "monitor:drift:upsell"),
        ("schedule", "monitor:ops:upsell"),
        ("schedule", "train:upsell"),
        ("model", "upsell"),
    }
    assert len(plan.of("spec", "retired")) == len(fresh(repo=None).repo.job("upsell").features)
    (model,) = plan.of("model")
    assert model.note == "registered model kept and tagged retired (champion v1, no alias moved)"
    done = repo_apply.apply(rt, plan)
    assert done.models_tagged == ["upsell"]
    kept = registered.read(rt.settings)["upsell"]
    assert kept.aliases == {"champion": 1} and kept.retired == NOW.isoformat()
    assert "removed from the feature repository 'marketplace'" in kept.tags["mlops.retired_reason"]
    assert _rows(rt)[("model", "upsell")]["retired_at"] == NOW
    assert repo_plan.compute(fresh()).empty
    # Declared again: everything comes back, the tag is cleared, the champion never moved.
    shutil.copy(fresh(repo=None).repo.path / "jobs" / "upsell.yaml", repo_path / "jobs")
    edit(
        repo_path / "repository.yaml",
        "jobs: [churn, eta, ticket]",
        "jobs: [churn, upsell, eta, ticket]",
    )
    rt = fresh()
    plan = repo_plan.compute(rt)
    (model,) = plan.of("model")
    assert model.action == "added" and "declared again" in model.note
    assert "registered model kept (champion v1); its retired tag is cleared" in model.note
    assert {i.action for i in plan.of("spec")} == {"changed"}  # revived, not re-created
    assert repo_apply.apply(rt, plan).models_untagged == ["upsell"]
    back = registered.read(rt.settings)["upsell"]
    assert back.retired is None and back.aliases == {"champion": 1}
    assert repo_plan.compute(fresh()).empty


def test_a_model_registered_before_any_apply_is_retired_when_no_job_declares_it(
    fresh, mlflow_template, tmp_path, monkeypatch
):
    rt = fresh()
    _register(rt.settings, "fraud", mlflow_template, tmp_path)
    _register(rt.settings, "churn", mlflow_template, tmp_path)
    monkeypatch.setattr(registered, "PAGE", 1)  # every model on a page of its own
    plan = repo_plan.compute(rt)
    (retired,) = plan.of("model", "retired")
    assert retired.name == "fraud" and "tagged retired" in retired.note
    assert "registered model kept (champion v1)" in plan.of("model", "added")[0].note
    repo_apply.apply(rt, plan)
    assert registered.read(rt.settings)["fraud"].retired == NOW.isoformat()
    assert registered.read(rt.settings)["churn"].retired is None
    assert repo_plan.compute(fresh()).empty


def test_apply_is_one_transaction_a_registry_failure_writes_nothing(
    fresh, repo_path, mlflow_template, tmp_path
):
    rt = fresh()
    _register(rt.settings, "fraud", mlflow_template, tmp_path)
    plan = repo_plan.compute(rt)
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    rt_broken = fresh(mlflow_tracking_uri=f"sqlite:///{broken}")
    with pytest.raises(ConfigError, match=r"MLflow registry .* cannot be used") as caught:
        repo_apply.apply(rt_broken, plan)
    assert "MLOPS_MLFLOW_TRACKING_URI" in caught.value.hint
    with rt.store.connect() as conn:
        assert conn.execute(select(feature_specs)).all() == []
    assert _rows(rt) == {}
    assert len(repo_plan.compute(fresh()).items) == len(plan.items)


def test_plan_refuses_an_unmigrated_store_and_an_unreadable_registry(rt, repo_path, tmp_path):
    with pytest.raises(NotReadyError, match="mlops db migrate"):
        repo_plan.compute(_runtime(rt.settings, repo_path))
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    from mlops.db import migrate

    migrate.upgrade(rt.store)
    with pytest.raises(ConfigError, match="file is not a database"):
        repo_plan.compute(
            _runtime(rt.settings, repo_path, mlflow_tracking_uri=f"sqlite:///{broken}")
        )


def test_apply_refuses_a_plan_of_another_repository(fresh, tmp_path):
    other = init(tmp_path / "other").path
    plan = repo_plan.compute(fresh(repo=other))
    with pytest.raises(InputError, match="compute the plan with the same repository"):
        repo_apply.apply(fresh(), plan)


def test_the_cli_plans_applies_and_fails_with_the_fix(migrated, repo_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(migrated.settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", migrated.settings.store_url)
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", migrated.settings.warehouse_db_url)
    _views_installable(migrated)
    repo = ("--repo", str(repo_path))
    code, out, _ = invoke(capsys, *repo, "plan", flat=True)
    assert code == 0 and "+ spec churn.orders_30d added" in out, out
    tasks = len(build(migrated.settings, migrated.repo).tasks)
    assert f"schedules {tasks} added; models {len(JOBS)} added apply it with `mlops apply`" in out
    code, out, _ = invoke(capsys, *repo, "apply", "--dry-run", flat=True)
    assert code == 0 and "dry run: nothing written" in out
    code, out, _ = invoke(capsys, *repo, "plan", flat=True)
    assert f"views {len(JOBS)} added" in out  # the dry run wrote nothing
    code, out, _ = invoke(capsys, *repo, "apply", flat=True)
    assert code == 0 and "applied specs" in out and "undo: revert the change" in out
    edit(repo_path / "jobs" / "eta.yaml", "ttl: 15m", "ttl: 20m")
    code, out, _ = invoke(capsys, *repo, "plan", flat=True)
    assert "~ spec eta.deliveries_1h ttl_seconds: 900 -> 1200" in out
    code, out, _ = invoke(capsys, *repo, "apply", flat=True)
    assert code == 0 and "retrain needed" not in out
    code, out, _ = invoke(capsys, *repo, "apply", flat=True)
    assert code == 0 and out == "nothing to apply: the repository 'marketplace' is applied"
    code, out, _ = invoke(capsys, *repo, "plan", flat=True)
    assert out.startswith("no changes: the repository 'marketplace' is applied")
    edit(repo_path / "jobs" / "eta.yaml", "ttl: 20m", "ttl: soon")
    code, _, err = invoke(capsys, *repo, "plan", flat=True)
    assert code == 2 and "jobs/eta.yaml:" in err and "cannot read duration 'soon'" in err
    monkeypatch.setenv("MLOPS_DATABASE_URL", f"sqlite:///{repo_path / 'empty.db'}")
    edit(repo_path / "jobs" / "eta.yaml", "ttl: soon", "ttl: 20m")
    code, _, err = invoke(capsys, *repo, "apply", flat=True)
    assert code == 2 and "fix: run `mlops db migrate`" in err


def test_plan_and_apply_explain_themselves(capsys):
    code, out, _ = invoke(capsys, "plan", "--help", flat=True)
    assert code == 0 and "Show what `mlops apply` would change, and change nothing" in out
    code, out, _ = invoke(capsys, "apply", "--help", flat=True)
    assert code == 0 and "Running it again changes nothing" in out and "--dry-run" in out


def test_jobs_show_whether_they_are_applied_and_a_champion_older_than_its_definition(
    fresh, repo_path, mlflow_template, tmp_path, capsys, monkeypatch
):
    rt = fresh()
    _register(rt.settings, "churn", mlflow_template, tmp_path)
    states = job_states(rt, repo_plan.compute(rt))
    assert {s.applied for s in states.values()} == {"not applied"}
    assert states["churn"].champion == 1 and states["eta"].champion is None
    repo_apply.apply(rt, repo_plan.compute(rt))
    rt = fresh()
    assert {s.applied for s in job_states(rt, repo_plan.compute(rt)).values()} == {"applied"}
    edit(repo_path / "jobs" / "churn.yaml", "num_leaves: 7", "num_leaves: 15")
    edit(repo_path / "jobs" / "eta.yaml", "ttl: 15m", "ttl: 20m")
    # Applied later than the champion was registered (the registry keeps real time).
    later = datetime(2099, 1, 1)
    rt = fresh(later)
    states = job_states(rt, repo_plan.compute(rt))
    assert states["churn"].applied == states["eta"].applied == "pending"
    assert states["churn"].retrain.startswith("a pending change")
    assert states["eta"].retrain is None and states["upsell"].applied == "applied"
    repo_apply.apply(rt, repo_plan.compute(rt))
    rt = fresh(later)
    churn = job_states(rt, repo_plan.compute(rt))["churn"]
    assert churn.applied == "applied"
    assert "champion v1 was trained" in churn.retrain and "(2099-01-01 00:00)" in churn.retrain
    monkeypatch.setenv("MLOPS_HOME", str(rt.settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", rt.settings.store_url)
    code, out, _ = invoke(capsys, "--repo", str(repo_path), "jobs", "describe", "churn", flat=True)
    assert code == 0 and "champion: v1 retrain needed: champion v1 was trained" in out
    assert "repository: applied (the store matches the declaration)" in out
    code, out, _ = invoke(capsys, "--repo", str(repo_path), "jobs", "list", flat=True)
    assert code == 0 and "applied - - v1 (retrain)" in out, out
    edit(repo_path / "jobs" / "eta.yaml", "ttl: 20m", "ttl: 25m")
    code, out, _ = invoke(capsys, "--repo", str(repo_path), "jobs", "describe", "eta", flat=True)
    assert "repository: 8 change(s) not applied: see `mlops plan`, then `mlops apply`" in out


def test_jobs_list_says_why_it_shows_no_state(rt, backend, repo_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(rt.settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", rt.settings.store_url)
    if backend == "sqlite":
        code, out, _ = invoke(capsys, "--repo", str(repo_path), "jobs", "list", flat=True)
        assert code == 0 and "state not shown: no feature store yet: `mlops db migrate`" in out
        assert "applied" not in out
        with rt.store.connect():  # the file exists now, empty: not migrated
            pass
    code, out, _ = invoke(capsys, "--repo", str(repo_path), "jobs", "list", flat=True)
    assert code == 0 and "state not shown: the feature store is at revision none" in out
    assert "run `mlops db migrate`" in out


def test_postgres_views_are_checked_in_the_warehouse_and_an_uninstallable_one_is_named(
    migrated, backend, repo_path
):
    if backend == "sqlite":
        pytest.skip("views are installed as real views on PostgreSQL only")
    rt = _runtime(migrated.settings, repo_path)
    with pytest.raises(ConfigError, match="cannot install the view ml_churn_features") as caught:
        repo_apply.apply(rt, repo_plan.compute(rt))  # no warehouse tables yet
    assert "nothing was written to the store" in caught.value.hint
    assert _rows(rt) == {}
    create_tables(rt.warehouse)
    repo_apply.apply(rt, repo_plan.compute(rt))
    assert repo_plan.compute(rt).empty
    with rt.warehouse.begin() as conn:
        conn.execute(text("DROP VIEW ml_eta_features"))
    plan = repo_plan.compute(rt)
    assert _items(plan) == {("view", "changed", "ml_eta_features")}
    assert plan.items[0].changes == (Change("warehouse", "missing", "installed"),)
    assert plan.retrain == []
    assert repo_apply.apply(rt, plan).views_installed == ["ml_eta_features"]
    assert repo_plan.compute(rt).empty
    rt.close()


def test_a_registry_failure_clearing_the_retired_tag_leaves_the_job_retired(
    fresh, repo_path, mlflow_template, tmp_path
):
    rt = fresh()
    _register(rt.settings, "fraud", mlflow_template, tmp_path)
    repo_apply.apply(rt, repo_plan.compute(rt))  # fraud is tagged retired
    fraud = repo_path / "jobs" / "fraud.yaml"
    shutil.copy(repo_path / "jobs" / "eta.yaml", fraud)
    edit(fraud, "name: eta", "name: fraud")
    edit(
        repo_path / "repository.yaml",
        "jobs: [churn, upsell, eta, ticket]",
        "jobs: [churn, upsell, eta, ticket, fraud]",
    )
    rt = fresh()
    plan = repo_plan.compute(rt)
    assert "its retired tag is cleared" in plan.of("model", "added")[0].note
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    with pytest.raises(ConfigError, match="file is not a database"):
        repo_apply.apply(fresh(mlflow_tracking_uri=f"sqlite:///{broken}"), plan)
    assert registered.read(rt.settings)["fraud"].retired == NOW.isoformat()
    assert ("model", "fraud") not in _rows(rt)
    assert len(repo_plan.compute(fresh()).items) == len(plan.items)
