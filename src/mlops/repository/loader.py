"""Load a feature repository folder into a ``Repository``, or say every problem it has.

A repository is a folder with ``repository.yaml``, one ``jobs/<job>.yaml`` per job, the SQL
the jobs name in ``sql/`` and the heuristics in ``heuristics.py``. Every problem found is
reported at once, each with its file and line where there is one, and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlops.errors import ConfigError, ValidationFailed
from mlops.repository.declarations import (
    DEFAULT_WINDOWS,
    RESERVED_JOBS,
    JobFile,
    RepositoryFile,
)
from mlops.repository.python import at, forget, import_module
from mlops.repository.repo import Repository
from mlops.repository.yaml_lines import Document, syntax_line
from mlops.specs.features import (
    FeatureSpec,
    GuardrailSpec,
    InputSpec,
    JobSpec,
    LabelSpec,
    OutcomeSpec,
)
from mlops.training.heuristics import Heuristic
from mlops.warehouse import contract

REPOSITORY_FILE = "repository.yaml"
# Settings that override a job's declared monitoring default, per job (JSON objects by job).
JOB_OVERRIDES = ("auto_fallback", "accuracy_floor", "ab_treatment_share", "guardrail_margin")
HEURISTICS_FILE = "heuristics.py"


class RepositoryInvalid(ValidationFailed):
    """The repository has problems; ``problems`` lists each with its file and line."""

    def __str__(self) -> str:
        # Raised from library code too (a Runtime's first use): a traceback shows every problem.
        return "\n".join([super().__str__(), *(f"  - {p}" for p in self.problems)])


def load(
    path: Path,
    *,
    heuristic_params: Mapping[str, Mapping[str, Any]] | None = None,
    job_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Repository:
    """The repository at ``path``; ``heuristic_params`` override its jobs' heuristic params
    (per job); ``job_overrides`` are the per-job monitoring settings (JOB_OVERRIDES, each a
    mapping of job to value), checked to name jobs of the repository. Raises
    ``RepositoryInvalid`` listing every problem."""
    path = Path(path).expanduser()
    if not (path / REPOSITORY_FILE).is_file():
        raise ConfigError(
            f"no feature repository at {path} (it has no {REPOSITORY_FILE})",
            "point MLOPS_REPO or --repo at a repository folder, or make one with `mlops init DIR`",
        )
    forget(path)
    problems: list[str] = []
    head = _read(path, REPOSITORY_FILE, RepositoryFile, problems)
    files = sorted((path / "jobs").glob("*.yaml"))
    if not files:
        problems.append("jobs/: no job is declared: add a jobs/<job>.yaml (see `mlops init`)")
    declared: list[tuple[str, JobFile]] = []
    docs: dict[str, Document] = {}
    for file in files:
        rel = f"jobs/{file.name}"
        job = _read(path, rel, JobFile, problems, docs)
        if job is not None:
            declared.append((rel, job))
    heuristics = _heuristics(path, problems) if declared else None
    jobs: dict[str, JobSpec] = {}
    overrides = heuristic_params or {}
    for rel, decl in declared:
        found = _check(path, rel, decl, heuristics, jobs, problems)
        found = _check_monitoring(path, rel, decl, docs[rel], problems) and found
        if found and heuristics is not None:
            jobs[decl.name] = _job(decl, heuristics, overrides.get(decl.name, {}))
    unknown = sorted(set(overrides) - {d.name for _, d in declared})
    if unknown:
        problems.append(
            f"MLOPS_HEURISTIC_PARAMS names no job of the repository: {', '.join(unknown)} "
            f"(fix the setting; jobs: {', '.join(d.name for _, d in declared)})"
        )
    if declared:
        _check_overrides(job_overrides or {}, [d.name for _, d in declared], problems)
    if head is not None and head.jobs is not None:
        order = {name: i for i, name in enumerate(head.jobs)}
        stems = [f.stem for f in files]
        missing = [stem for stem in stems if stem not in order]
        absent = [name for name in head.jobs if name not in stems]
        if missing or absent:
            problems.append(
                f"{REPOSITORY_FILE}: jobs lists the jobs in order and must name each file of "
                f"jobs/ once (not listed: {', '.join(missing) or '-'}; no file: "
                f"{', '.join(absent) or '-'})"
            )
        else:
            jobs = dict(sorted(jobs.items(), key=lambda kv: order.get(kv[0], len(order))))
    if head is not None:
        if head.serving is not None:
            import_module(path, head.serving, problems)
        if head.warehouse is not None:
            imported = import_module(path, head.warehouse, problems)
            if imported is not None:
                contract.check(imported, f"{head.warehouse}.py", problems)
    if problems or head is None:
        raise RepositoryInvalid(
            f"the feature repository at {path} has {len(problems)} problem"
            f"{'' if len(problems) == 1 else 's'}",
            problems,
            "fix each file and line named above, then run the command again",
        )
    # Stored as what is subtracted from as_of, like the SQL reads them.
    windows = {
        name: -delta if name.startswith("until_") else delta
        for name, delta in (head.windows or DEFAULT_WINDOWS).items()
    }
    return Repository(
        path=path,
        name=head.name,
        jobs=jobs,
        windows=windows,
        description=head.description,
        serving=head.serving,
        warehouse=head.warehouse,
    )


def _read(
    path: Path,
    rel: str,
    model: type[BaseModel],
    problems: list[str],
    docs: dict[str, Document] | None = None,
) -> Any:
    """The file validated as ``model``, or None with its problems added; its parsed YAML goes
    to ``docs`` (for the line of a later check)."""
    try:
        doc = Document((path / rel).read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"{rel}: cannot be read ({exc.strerror or exc})")
        return None
    except yaml.YAMLError as exc:
        line = syntax_line(exc)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(f"{rel}{at(line)}: not valid YAML: {what} (fix the syntax there)")
        return None
    if docs is not None:
        docs[rel] = doc
    if not isinstance(doc.data, dict):
        problems.append(f"{rel}: must be a mapping of keys to values (key: value per line)")
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            problems.append(f"{rel}{at(doc.line(loc))}: {_describe(loc, error)}")
        return None


def _describe(loc: tuple, error: Any) -> str:
    where = ".".join(str(p) for p in loc) or "the file"
    kind, message = error["type"], error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return f"{where} is missing: add it"
    if kind == "extra_forbidden":
        return f"unknown key {where}: remove it or fix its spelling"
    if kind == "literal_error":
        return f"{where}: {message}"
    return f"{where}: {message} (got {error.get('input')!r})"


def _heuristics(path: Path, problems: list[str]) -> ModuleType | None:
    if not (path / HEURISTICS_FILE).is_file():
        problems.append(f"{HEURISTICS_FILE}: missing: every job's heuristic is a function there")
        return None
    return import_module(path, HEURISTICS_FILE.removesuffix(".py"), problems)


def _check(
    path: Path,
    rel: str,
    decl: JobFile,
    heuristics: ModuleType | None,
    jobs: dict[str, JobSpec],
    problems: list[str],
) -> bool:
    """Checks across files; True when the job can be built."""
    before = len(problems)
    if decl.name in RESERVED_JOBS:
        problems.append(f"{rel}: name {decl.name!r} is reserved: choose another job name")
    if decl.name in jobs:
        problems.append(f"{rel}: job {decl.name!r} is declared twice: rename one of them")
    if Path(rel).stem != decl.name:
        problems.append(f"{rel}: declares job {decl.name!r}: name the file jobs/{decl.name}.yaml")
    for what, name in (("view", decl.view), ("label.sql", decl.label.sql)):
        if not (path / "sql" / f"{name}.sql").is_file():
            problems.append(f"{rel}: {what} {name!r}: there is no sql/{name}.sql: add it")
    names = [f.name for f in decl.features] + [i.name for i in decl.inputs]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{rel}: {name!r} is declared twice among features and inputs")
    for feature in decl.features:
        low, high = feature.range or (None, None)
        if low is not None and high is not None and low > high:
            problems.append(f"{rel}: feature {feature.name}: range min {low:g} > max {high:g}")
        if feature.allowed is not None and feature.dtype != "category":
            problems.append(f"{rel}: feature {feature.name}: allowed is for categories only")
    for key in decl.key_features:
        if key not in [f.name for f in decl.features]:
            problems.append(f"{rel}: key_features: {key!r} is not a feature of the job")
    for key in decl.heuristic.inputs:
        if key not in names:
            problems.append(
                f"{rel}: heuristic input {key!r} is neither a feature nor an input of the job "
                "(declare it, or remove it from heuristic.inputs)"
            )
    if heuristics is not None and not callable(getattr(heuristics, decl.heuristic.function, None)):
        problems.append(
            f"{rel}: heuristic.function {decl.heuristic.function!r} is not a function of "
            f"{HEURISTICS_FILE}: define it there or fix the name"
        )
    if decl.label.kind == "snapshot" and decl.label.horizon <= timedelta(0):
        problems.append(
            f"{rel}: label.horizon: a snapshot label looks past its as_of: give how far (e.g. 30d)"
        )
    return len(problems) == before


def _check_monitoring(
    path: Path, rel: str, decl: JobFile, doc: Document, problems: list[str]
) -> bool:
    """The outcome, guardrail and cohorts declarations against the job and its SQL files;
    True when they are sound. Each problem names the line of the key it is about."""
    before = len(problems)

    def problem(loc: tuple, message: str) -> None:
        problems.append(f"{rel}{at(doc.line(loc))}: {'.'.join(loc)}: {message}")

    def sql_exists(loc: tuple, name: str | None) -> None:
        if name is not None and not (path / "sql" / f"{name}.sql").is_file():
            problem(loc, f"there is no sql/{name}.sql: add it or fix the name")

    sql_exists(("cohorts",), decl.cohorts)
    outcome = decl.outcome
    if outcome is not None:
        sql_exists(("outcome", "sql"), outcome.sql)
        snapshot = outcome.sql is None and decl.label.kind == "snapshot"
        if snapshot and (outcome.within or outcome.subject or outcome.otherwise is not None):
            problem(
                ("outcome",),
                "a snapshot label labels each prediction by the snapshot it was scored from: "
                "within, subject and otherwise are for an event SQL (name it in outcome.sql, "
                "or remove them)",
            )
        if not snapshot and outcome.within is None and outcome.subject is None:
            problem(
                ("outcome",),
                "say how a prediction meets its outcome: within (the first row of the entity "
                "after the prediction, e.g. within: 1d) or subject (the column the logged "
                "subject id is)",
            )
        if outcome.otherwise is not None and outcome.within is None and not snapshot:
            problem(
                ("outcome", "otherwise"),
                "labels a prediction no row came for within the window: add within",
            )
    guardrail = decl.guardrail
    if guardrail is not None:
        sql_exists(("guardrail", "sql"), guardrail.sql)
        if (guardrail.sql is None) != (guardrail.column is None):
            problem(
                ("guardrail",),
                "sql and column go together: the SQL returns the unit's id and the 0/1 column",
            )
        if guardrail.unit == "subject" and (outcome is None or outcome.subject is None):
            problem(("guardrail", "unit"), "a subject unit needs outcome.subject: declare it")
        if outcome is None and guardrail.sql is None and decl.label.kind == "event":
            problem(("guardrail",), "hits come from labelled predictions: declare outcome")
    return len(problems) == before


def _check_overrides(
    overrides: Mapping[str, Mapping[str, Any]], names: list[str], problems: list[str]
) -> None:
    for setting, values in overrides.items():
        unknown = sorted(set(values) - set(names))
        if unknown:
            problems.append(
                f"MLOPS_{setting.upper()} names no job of the repository: {', '.join(unknown)} "
                f"(fix the setting; jobs: {', '.join(names)})"
            )
    shares = overrides.get("ab_treatment_share", {})
    for job, share in shares.items():
        if not 0 <= share <= 1:
            problems.append(
                f"MLOPS_AB_TREATMENT_SHARE: {job} is {share:g}: give a share from 0 to 1"
            )


def _outcome(decl: JobFile) -> OutcomeSpec | None:
    """The declared outcome; a snapshot label is its own outcome unless another is declared."""
    o, label = decl.outcome, decl.label
    if (o is None or o.sql is None) and label.kind == "snapshot":
        settles = (o.settles if o else None) or label.horizon
        return OutcomeSpec(sql=label.sql, kind="snapshot", settles=settles)
    if o is None:
        return None
    return OutcomeSpec(
        sql=o.sql or label.sql,
        subject=o.subject,
        within=o.within,
        otherwise=o.otherwise,
        settles=o.settles or o.within or timedelta(0),
    )


def _guardrail(decl: JobFile) -> GuardrailSpec | None:
    g = decl.guardrail
    if g is None:
        return None
    subject = decl.outcome.subject if decl.outcome else None
    return GuardrailSpec(
        metric=g.metric,
        description=g.description,
        higher_is_better=g.better == "higher",
        margin=g.margin,
        unit=g.unit,
        min_prediction=g.min_prediction,
        hit_label=g.hit_label,
        sql=g.sql,
        column=g.column,
        key_column=(subject or decl.key) if g.unit == "subject" else decl.key,
    )


def _job(decl: JobFile, heuristics: ModuleType | None, override: Mapping[str, Any]) -> JobSpec:
    features = tuple(
        FeatureSpec(
            f.name,
            f.dtype,
            f.description,
            f.owner or decl.owner,
            nullable=f.nullable,
            min_value=_float(f.range, 0),
            max_value=_float(f.range, 1),
            allowed_values=tuple(f.allowed) if f.allowed is not None else None,
            psi_warn=f.drift.psi_warn,
            psi_alert=f.drift.psi_alert,
            ks_pvalue=f.drift.ks_pvalue,
            job=decl.name,
            entity=decl.entity,
            source_view=decl.view,
            ttl=f.ttl or decl.ttl,
        )
        for f in decl.features
    )
    inputs = tuple(
        InputSpec(
            i.name,
            i.dtype,
            derive=i.derive,
            min_value=_float(i.range, 0),
            max_value=_float(i.range, 1),
            description=i.description,
        )
        for i in decl.inputs
    )
    categorical = frozenset(
        [f.name for f in features if f.dtype == "category"]
        + [i.name for i in inputs if i.dtype == "category"]
    )
    h = decl.heuristic
    heuristic = Heuristic(
        name=f"{HEURISTICS_FILE}:{h.function}",
        function=getattr(heuristics, h.function),
        inputs=tuple(h.inputs),
        categorical=categorical & set(h.inputs),
        params={**h.params, **override},
    )
    spec = JobSpec(
        name=decl.name,
        view=decl.view,
        entity=decl.entity,
        entity_key=decl.key,
        refresh_cron=decl.refresh,
        ttl=decl.ttl,
        retrain_cron=decl.retrain,
        default_every=decl.backfill_every,
        features=features,
        drift_window=decl.drift_window,
        task=decl.task,
        label=LabelSpec(decl.label.kind, decl.label.sql, decl.label.horizon),
        inputs=inputs,
        model_params=dict(decl.model.params),
        quickstart_history=decl.quickstart.history if decl.quickstart else None,
        description=decl.description,
        owner=decl.owner,
        key_features=tuple(decl.key_features),
        cohorts=decl.cohorts,
        outcome=_outcome(decl),
        guardrail=_guardrail(decl),
        auto_fallback=decl.auto_fallback,
        accuracy_floor=decl.accuracy_floor,
        ab_treatment_share=decl.ab_treatment_share,
    )
    return replace(spec, heuristic=heuristic)


def _float(bounds: tuple[float | None, float | None] | None, i: int) -> float | None:
    value = bounds[i] if bounds is not None else None
    return None if value is None else float(value)
