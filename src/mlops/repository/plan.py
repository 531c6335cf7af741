"""``mlops plan``: what applying the feature repository would change, before anything does.

Four kinds of objects are compared with what is there now:

- ``spec``: each feature, with ``ml_feature_specs`` (``specs.sync`` computes that part);
- ``view``: each job's view SQL (and the as_of grid's windows) with what the last apply
  recorded in ``ml_repository_objects``, and on PostgreSQL with the views the warehouse holds;
- ``schedule``: each task of ``scheduling.tasks.build`` with the applied schedule;
- ``model``: what each job's model is trained from (task, features and their types, inputs,
  label, view SQL, LightGBM parameters) with the applied record, and the jobs' registered
  models in MLflow (a job removed from the repository retires its registered model).

Every item is added, changed (with what changed, before and after) or retired. A plan writes
nothing; ``repository.apply`` carries it out.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, select, text

from mlops.db import migrate
from mlops.db.schema import repository_objects
from mlops.repository.registered import RegisteredModel
from mlops.specs import sync as specs_sync

if TYPE_CHECKING:
    from mlops.repository.repo import Repository
    from mlops.runtime import Runtime
    from mlops.scheduling.tasks import Schedule
    from mlops.specs.features import JobSpec

Kind = Literal["spec", "view", "schedule", "model"]
Action = Literal["added", "changed", "retired"]
KINDS: tuple[Kind, ...] = ("spec", "view", "schedule", "model")
ADDED: Action = "added"
CHANGED: Action = "changed"
RETIRED: Action = "retired"
# Kinds recorded in ml_repository_objects (specs live in ml_feature_specs).
RECORDED: tuple[Kind, ...] = ("view", "schedule", "model")
# A registered model's field that is not part of the repository's definition but of its state.
REGISTRY_FIELD = "registry"
WAREHOUSE_FIELD = "warehouse"


@dataclass(frozen=True)
class Change:
    """One field of an item: what it is now and what apply makes it."""

    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Item:
    """One object apply adds, changes or retires."""

    kind: Kind
    action: Action
    name: str
    job: str | None = None
    changes: tuple[Change, ...] = ()
    # What a person should know beyond the fields: "retrain needed", what is kept.
    note: str = ""


@dataclass(frozen=True)
class Declared:
    """An object the repository declares, as ``ml_repository_objects`` records it."""

    kind: Kind
    name: str
    job: str | None
    definition: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.definition)


@dataclass
class Plan:
    """What ``apply`` would do, per kind; ``empty`` when the repository is applied."""

    repository: str
    path: Path
    items: list[Item] = field(default_factory=list)
    unchanged: dict[str, int] = field(default_factory=dict)
    # What apply needs to carry the plan out.
    specs: specs_sync.SyncPlan = field(default_factory=specs_sync.SyncPlan)
    declared: dict[tuple[str, str], Declared] = field(default_factory=dict)
    models: dict[str, RegisteredModel] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.items

    def of(self, kind: Kind, action: Action | None = None) -> list[Item]:
        """The items of one kind (and action), in plan order."""
        return [i for i in self.items if i.kind == kind and action in (None, i.action)]

    @property
    def retrain(self) -> list[str]:
        """Jobs whose model is trained from something that changes: retrain them."""
        return [i.name for i in self.of("model") if i.action != RETIRED and _retrain(i)]

    def summary(self) -> str:
        """One line: the counts per kind and action."""
        if self.empty:
            total = sum(self.unchanged.values())
            return f"no changes: the repository {self.repository!r} is applied ({total} objects)"
        parts = []
        for kind in KINDS:
            counts = [
                f"{len(self.of(kind, action))} {action}"
                for action in (ADDED, CHANGED, RETIRED)
                if self.of(kind, action)
            ]
            if counts:
                parts.append(f"{kind}s {', '.join(counts)}")
        retrain = f"; retrain needed: {', '.join(self.retrain)}" if self.retrain else ""
        return f"{'; '.join(parts)}{retrain}"


def fingerprint(definition: Mapping[str, Any]) -> str:
    """A stable hash of a definition (JSON with sorted keys)."""
    return hashlib.sha256(canonical(definition).encode()).hexdigest()


def canonical(definition: Mapping[str, Any]) -> str:
    """The definition as stored and compared: JSON with sorted keys."""
    return json.dumps(definition, sort_keys=True, default=str)


def compute(rt: Runtime) -> Plan:
    """The plan of the runtime's repository against its store, warehouse and MLflow registry;
    writes nothing."""
    from mlops.repository import registered
    from mlops.scheduling.tasks import build

    repo = rt.repo
    migrate.require_current(rt.store)  # before MLflow: the cheap check, and its fix, first
    return make(
        rt.store,
        repo,
        schedule=build(rt.settings, repo),
        models=registered.read(rt.settings),
        warehouse_views=installed_views(rt.warehouse),
    )


def make(
    store: Engine,
    repo: Repository,
    *,
    schedule: Schedule,
    models: Mapping[str, RegisteredModel],
    warehouse_views: set[str] | None = None,
) -> Plan:
    """The plan from what is there now: ``models`` (registered, by job), ``warehouse_views``
    (the views the warehouse holds, None where views are not installed, as on SQLite)."""
    result = Plan(repository=repo.name, path=repo.path, models=dict(models))
    result.specs = specs_sync.plan(store, repo.jobs)
    _spec_items(result)
    declared = declare(repo, schedule)
    result.declared = {(d.kind, d.name): d for d in declared}
    with store.connect() as conn:
        rows = {(r.kind, r.name): r for r in conn.execute(select(repository_objects))}
    for kind in RECORDED:
        unchanged = 0
        for item in declared:
            if item.kind != kind:
                continue
            found = _compare(item, rows.get((kind, item.name)), models, warehouse_views)
            if found is None:
                unchanged += 1
            else:
                result.items.append(found)
        result.unchanged[kind] = unchanged
        for key, row in rows.items():
            if key[0] == kind and key not in result.declared and row.retired_at is None:
                result.items.append(_retired(kind, row.name, row.job, models, warehouse_views))
    for name, model in models.items():
        key = ("model", name)
        if key in result.declared or model.retired:
            continue
        recorded = rows.get(key)
        if recorded is None or recorded.retired_at is not None:  # retired but not tagged
            result.items.append(_retired("model", name, name, models, warehouse_views))
    return result


def declare(repo: Repository, schedule: Schedule) -> list[Declared]:
    """Every view, schedule task and job model the repository declares."""
    found: list[Declared] = []
    windows = {name: int(delta.total_seconds()) for name, delta in repo.windows.items()}
    seen_views: set[str] = set()
    for job in repo.jobs.values():
        if job.view not in seen_views:
            seen_views.add(job.view)
            definition = {"sql": repo.sql(job.view), "windows": windows}
            found.append(Declared("view", job.view, job.name, definition))
    for task in schedule.tasks:
        found.append(Declared("schedule", task.name, _task_job(task.name, repo), _task(task)))
    for job in repo.jobs.values():
        found.append(Declared("model", job.name, job.name, model_definition(repo, job)))
    return found


def model_definition(repo: Repository, job: JobSpec) -> dict[str, Any]:
    """What a job's model is trained from: a change in any of it makes a retrain needed."""
    label = job.label
    return {
        "task": job.task,
        "features": [
            [f.name, f.dtype, list(f.allowed_values) if f.allowed_values else None]
            for f in job.features
        ],
        "inputs": [[i.name, i.dtype, i.derive] for i in job.inputs],
        "label": None
        if label is None
        else {
            "kind": label.kind,
            "sql": label.sql,
            "horizon_seconds": int(label.horizon.total_seconds()),
            "sql_sha256": _sha(repo.sql(label.sql)),
        },
        "view_sql_sha256": _sha(repo.sql(job.view)),
        "model_params": dict(job.model_params),
    }


def installed_views(warehouse: Engine) -> set[str] | None:
    """The views the warehouse holds (PostgreSQL: its search path's); None on SQLite, where
    views run as queries and are never installed."""
    if warehouse.dialect.name != "postgresql":
        return None
    with warehouse.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name FROM information_schema.views "
                "WHERE table_schema = ANY (current_schemas(false))"
            )
        )
        return {r[0] for r in rows}


def _spec_items(result: Plan) -> None:
    sync = result.specs
    for change in sync.added:
        result.items.append(Item("spec", ADDED, f"{change.job}.{change.name}", change.job))
    for change in sync.changed:
        fields = tuple(
            Change(name, _text(before), _text(after))
            for name, (before, after) in change.fields.items()
        )
        name = f"{change.job}.{change.name}"
        result.items.append(Item("spec", CHANGED, name, change.job, fields))
    for change in sync.retired:
        result.items.append(
            Item(
                "spec",
                RETIRED,
                f"{change.job}.{change.name}",
                change.job,
                note="retired, not deleted: its history stays readable",
            )
        )
    result.unchanged["spec"] = sync.unchanged


def _compare(
    item: Declared,
    row: Any,
    models: Mapping[str, RegisteredModel],
    warehouse_views: set[str] | None,
) -> Item | None:
    """The plan item for one declared object, or None when it is applied as declared."""
    model = models.get(item.name) if item.kind == "model" else None
    if row is None:
        return Item(
            item.kind, ADDED, item.name, item.job, note=_added_note(item, model, warehouse_views)
        )
    if row.retired_at is not None:
        # Declared again: what differs from the definition it was retired with still counts.
        back = _diff(item.kind, json.loads(row.definition), item.definition)
        note = f"declared again (retired {row.retired_at:%Y-%m-%d %H:%M}); "
        note += _added_note(item, model, warehouse_views)
        if item.kind == "model" and back:
            note += f"; retrain needed: `mlops train {item.name}`"
        return Item(item.kind, ADDED, item.name, item.job, tuple(back), note)
    changes = _diff(item.kind, json.loads(row.definition), item.definition)
    if item.kind == "view" and warehouse_views is not None and item.name not in warehouse_views:
        changes.append(Change(WAREHOUSE_FIELD, "missing", "installed"))
    if model is not None and model.retired:
        changes.append(Change(REGISTRY_FIELD, f"tagged retired {model.retired}", "tag cleared"))
    if not changes:
        return None
    item_changes = tuple(changes)
    note = ""
    if item.kind == "model" and _retrain(Item("model", CHANGED, item.name, changes=item_changes)):
        state = f" (registered: {model.describe()})" if model else ""
        backfill = (
            ", after a backfill (the history holds the old view's values)"
            if any(c.field.startswith("view_sql") for c in changes)
            else ""
        )
        note = f"retrain needed: `mlops train {item.name}`{backfill}{state}"
    elif item.kind == "view":
        note = (
            "reinstalled in the warehouse"
            if warehouse_views is not None
            else "ingestion runs the new SQL (no view is installed on SQLite)"
        )
    return Item(item.kind, CHANGED, item.name, item.job, item_changes, note)


def _added_note(
    item: Declared, model: RegisteredModel | None, warehouse_views: set[str] | None
) -> str:
    if item.kind == "view":
        if warehouse_views is None:
            return "ingestion runs it as a query (no view is installed on SQLite)"
        return "installed in the warehouse"
    if item.kind == "schedule":
        return "the scheduler runs it"
    if model is None:
        return f"no registered model yet: `mlops train {item.name}`"
    retired = "; its retired tag is cleared" if model.retired else ""
    return f"registered model kept ({model.describe()}){retired}"


def _retired(
    kind: Kind,
    name: str,
    job: str | None,
    models: Mapping[str, RegisteredModel],
    warehouse_views: set[str] | None,
) -> Item:
    if kind == "view" and warehouse_views is not None and name in warehouse_views:
        note = f"left in the warehouse: drop it (DROP VIEW {name}) once nothing reads it"
    elif kind == "view":
        note = "no longer run by ingestion (no view is installed)"
    elif kind == "schedule":
        note = "no longer scheduled; its run history is kept"
    else:
        model = models.get(name)
        note = (
            f"registered model kept and tagged retired ({model.describe()}, no alias moved)"
            if model
            else "no registered model: nothing to keep"
        )
    return Item(kind, RETIRED, name, job, note=note)


def _retrain(item: Item) -> bool:
    return any(c.field not in (REGISTRY_FIELD, WAREHOUSE_FIELD) for c in item.changes)


def _diff(kind: Kind, before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if canonical({"v": old}) == canonical({"v": new}):
            continue
        if key == "sql":
            changes.append(_sql_change(str(old or ""), str(new or "")))
        elif key in ("features", "inputs") and isinstance(old, list) and isinstance(new, list):
            changes.extend(_columns_change(key, old, new))
        elif isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if canonical({"v": old.get(sub)}) != canonical({"v": new.get(sub)}):
                    changes.append(_field(f"{key}.{sub}", old.get(sub), new.get(sub)))
        else:
            changes.append(_field(key, old, new))
    return changes


def _field(name: str, old: Any, new: Any) -> Change:
    if name.endswith("_sha256"):  # a file's text, kept as its hash: say it was edited
        short = [str(v)[:8] if v else "-" for v in (old, new)]
        return Change(f"{name.removesuffix('_sha256')} edited (sha256)", short[0], short[1])
    return Change(name, _text(old), _text(new))


def _columns_change(key: str, old: list, new: list) -> list[Change]:
    """Features or inputs ([name, dtype, ...] lists): which were added, removed or retyped."""
    before = {c[0]: c for c in old}
    after = {c[0]: c for c in new}
    changes = [Change(f"{key}.{n}", "-", "added") for n in after if n not in before]
    changes += [Change(f"{key}.{n}", "present", "removed") for n in before if n not in after]
    changes += [
        Change(f"{key}.{n}", _text(before[n][1:]), _text(after[n][1:]))
        for n in after
        if n in before and before[n] != after[n]
    ]
    if not changes:  # the same columns in another order: the model's column order changed
        changes.append(Change(f"{key} order", ", ".join(before), ", ".join(after)))
    return changes


def _sql_change(old: str, new: str) -> Change:
    """The SQL's first differing line, before and after, and how many lines changed."""
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    edits = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    if not edits:  # only trailing whitespace or line endings
        return Change("sql", "(whitespace)", "(whitespace changed)")
    _, i1, i2, j1, j2 = edits[0]
    count = sum(max(e[2] - e[1], e[4] - e[3]) for e in edits)
    line = f"line {j1 + 1}"
    before = a[i1].strip() if i1 < i2 else "(nothing)"
    after = b[j1].strip() if j1 < j2 else "(removed)"
    return Change(f"sql ({count} line{'s' if count != 1 else ''}, first at {line})", before, after)


def _task(task: Any) -> dict[str, Any]:
    return {
        "cron": task.cron,
        "after": task.after,
        "when": task.when,
        "command": list(task.command),
        "retries": task.retries,
        "timeout_seconds": int(task.timeout.total_seconds()),
    }


def _task_job(name: str, repo: Repository) -> str | None:
    job = name.rsplit(":", 1)[-1]
    return job if job in repo.jobs else None


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)
