"""What a feature repository's YAML files may say, as pydantic models: ``repository.yaml``
(``RepositoryFile``) and one ``jobs/<job>.yaml`` per job (``JobFile``). Unknown keys are
errors, so a typo never passes silently."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from mlops import durations

# Job names appear in tables, MLflow model names, flags and commands.
JOB_NAME = r"^[a-z][a-z0-9_]{0,39}$"
# Feature, input and key names are SQL columns.
COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
# sql/<name>.sql
SQL_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
# A Python file of the repository, imported as a module.
MODULE = r"^[a-z_][a-z0-9_]{0,62}$"
RESERVED_JOBS = ("all", "ml")


def _duration(value: Any) -> Any:
    return durations.parse(value) if isinstance(value, str) else value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0, e.g. 5m, 6h or 1d")
    return value


def _cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a cron: use five fields, minute hour day-of-month month "
            "day-of-week (UTC), e.g. '0 2 * * *'"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Positive = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
Cron = Annotated[str, AfterValidator(_cron)]
Column = Annotated[str, Field(pattern=COLUMN)]
DType = Literal["float", "int", "category"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Drift(Strict):
    """Drift thresholds of one feature."""

    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    ks_pvalue: float = Field(0.01, gt=0, lt=1)


class Feature(Strict):
    """One column of the job's view."""

    name: Column
    dtype: DType
    description: str = Field(min_length=1)
    owner: str | None = None  # default: the job's owner
    nullable: bool = False
    range: tuple[float | None, float | None] | None = None  # [min, max], either may be null
    allowed: list[str] | None = None  # a category's values; others are rejected
    ttl: Positive | None = None  # default: the job's
    drift: Drift = Drift()


class Input(Strict):
    """A request-time input the model gets besides the stored features."""

    name: Column
    dtype: DType
    description: str = ""
    range: tuple[float | None, float | None] | None = None
    # entity: the entity id; hour, weekday: of the event time (the request's time in serving).
    # Otherwise a column of the label SQL in training, a field of the request in serving.
    derive: Literal["entity", "hour", "weekday"] | None = None


class Label(Strict):
    """The label: ``sql/<sql>.sql``, its kind and how far past its event time it looks."""

    kind: Literal["snapshot", "event"]
    sql: str = Field(pattern=SQL_NAME)
    horizon: Duration = timedelta(0)


class HeuristicDecl(Strict):
    """The rule that answers when the model may not: a function of the repository's
    ``heuristics.py`` called with the named inputs (features or request inputs)."""

    function: Column
    inputs: list[Column] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class OutcomeDecl(Strict):
    """How the accuracy monitor meets a logged prediction with what happened. The rows come
    from an event SQL (``:start``, ``:end``, ``:now``; returning ``event_time``, the entity key
    and ``label``): the job's event label unless ``sql`` names another. A snapshot label needs
    no outcome: each prediction gets the label of the snapshot it was scored from."""

    # sql/<sql>.sql; default the job's label SQL.
    sql: str | None = Field(None, pattern=SQL_NAME)
    # The SQL's column that the logged subject_id is (the offer shown, the delivery): rows are
    # matched on it too, and predictions logged without one have no label.
    subject: Column | None = None
    # The first row of the prediction's entity (and subject) in [logged_at, logged_at + within)
    # is its outcome, known once the window has closed. Without it, the subject's own row,
    # whenever it happened (the subject is then the event's id).
    within: Positive | None = None
    # The label when no row comes within the window (e.g. 1, churned, when no order comes);
    # without it such a prediction has no label.
    otherwise: float | None = None
    # How long after a period until all its labels are in (default: within).
    settles: Positive | None = None


class GuardrailDecl(Strict):
    """The A/B guardrail: a 0/1 outcome per randomised unit, compared between the arms."""

    metric: Column  # its name in results and alerts, e.g. acceptance_rate
    description: str = Field(min_length=1)
    better: Literal["higher", "lower"]  # which way the share of hits is better
    margin: float = Field(0.0, ge=0, le=1)  # how far the treatment may regress (absolute)
    # The unit randomised and counted once: the entity, or the logged subject (outcome.subject).
    unit: Literal["entity", "subject"] = "entity"
    # Only predictions at or above this count (e.g. entities flagged high risk).
    min_prediction: float | None = None
    # A unit is a hit when its label is this (labelled predictions), unless sql is given.
    hit_label: float = 1.0
    # sql/<sql>.sql, run with :keys (the units' ids) and :now: returns the unit's id column and
    # `column`, 1 for a hit; units it does not return are left out.
    sql: str | None = Field(None, pattern=SQL_NAME)
    column: Column | None = None


class ModelDecl(Strict):
    params: dict[str, Any] = Field(default_factory=dict)  # LightGBM parameters


class QuickstartDecl(Strict):
    history: Positive  # how much history `mlops quickstart` backfills


class JobFile(Strict):
    """``jobs/<job>.yaml``."""

    name: str = Field(pattern=JOB_NAME)
    description: str = ""
    owner: str = Field(min_length=1)
    entity: str = Field(pattern=COLUMN)
    key: Column  # the view's entity column
    view: str = Field(pattern=SQL_NAME)  # sql/<view>.sql
    ttl: Positive
    refresh: Cron
    retrain: Cron
    backfill_every: Positive
    drift_window: Positive | None = None
    task: Literal["binary", "regression"]
    label: Label
    inputs: list[Input] = Field(default_factory=list)
    heuristic: HeuristicDecl
    model: ModelDecl = ModelDecl()
    quickstart: QuickstartDecl | None = None
    # The features the dashboard charts (default: the first three).
    key_features: list[Column] = Field(default_factory=list, max_length=6)
    # sql/<cohorts>.sql: the entity key and one column per cohort kind (e.g. plan, region);
    # the dashboard charts the mean score served per cohort (binary jobs).
    cohorts: str | None = Field(None, pattern=SQL_NAME)
    outcome: OutcomeDecl | None = None
    guardrail: GuardrailDecl | None = None
    # Monitoring defaults of the job; the MLOPS_* setting of the same name overrides them.
    auto_fallback: bool = True  # a drift alert or guardrail breach trips the heuristic
    # The accuracy alert line: binary ROC-AUC below it, regression MAE above it.
    accuracy_floor: float | None = None
    ab_treatment_share: float = Field(1.0, ge=0, le=1)  # 1.0: no experiment
    features: list[Feature] = Field(min_length=1)


class RepositoryFile(Strict):
    """``repository.yaml``."""

    name: str = Field(min_length=1)
    description: str = ""
    # The order jobs are listed and run in (default: by name); names every jobs/ file once.
    jobs: list[str] | None = None
    # The as_of_grid's window columns: since_<x> is as_of minus the duration, until_<x> as_of
    # plus it. The default set is DEFAULT_WINDOWS.
    windows: dict[Annotated[str, Field(pattern=r"^(since|until)_[a-z0-9_]+$")], Positive] | None = (
        None
    )
    # Python files of the repository (module names, without .py) the engine calls into:
    # ``serving`` adds the repository's own HTTP endpoints, built on the generic predict path;
    # ``warehouse`` holds its warehouse contract and synthetic data generator.
    serving: Annotated[str, Field(pattern=MODULE)] | None = None
    warehouse: Annotated[str, Field(pattern=MODULE)] | None = None


DEFAULT_WINDOWS = {
    "since_1h": timedelta(hours=1),
    "since_2h": timedelta(hours=2),
    "since_3h": timedelta(hours=3),
    "since_5h": timedelta(hours=5),
    "since_30d": timedelta(days=30),
    "since_90d": timedelta(days=90),
    "until_30d": timedelta(days=30),
}
