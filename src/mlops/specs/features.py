"""What the engine knows of a job: its features (``FeatureSpec``) and everything else its
repository declares (``JobSpec``). Built from a feature repository by ``mlops.repository``;
``mlops specs sync`` copies the features into ``ml_feature_specs``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from mlops.errors import InputError

if TYPE_CHECKING:
    from mlops.training.heuristics import Heuristic

DType = Literal["float", "int", "category"]
Task = Literal["binary", "regression"]
LabelKind = Literal["snapshot", "event"]
# What a request-time input is made of: a field of the request (None), the entity id, or the
# hour or weekday of the event time (the request's time when serving).
Derive = Literal["entity", "hour", "weekday"]
ALL = "all"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: DType
    description: str
    owner: str
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed_values: tuple[str, ...] | None = None
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_pvalue: float = 0.01
    # Filled from the job.
    job: str = ""
    entity: str = ""
    source_view: str = ""
    ttl: timedelta = timedelta(0)

    def fingerprint(self) -> str:
        """A stable hash of everything that defines the feature."""
        data = asdict(self)
        data["ttl"] = self.ttl.total_seconds()
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """A request-time input the model gets besides the stored features."""

    name: str
    dtype: DType
    derive: Derive | None = None
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""


@dataclass(frozen=True)
class LabelSpec:
    """The label's SQL (``sql/<sql>.sql``) and how far past its event time it looks.

    ``snapshot``: run over ``as_of_grid``; returns ``as_of``, the entity key and ``label``.
    ``event``: run with ``:start``, ``:end`` and ``:now``; returns ``event_time``, the entity
    key, ``label`` and every request-time input that is not derived."""

    kind: LabelKind
    sql: str
    horizon: timedelta = timedelta(0)


@dataclass(frozen=True)
class OutcomeSpec:
    """How a logged prediction meets what happened (see ``monitoring/labelling.py``).

    ``event``: rows of ``sql`` (an event SQL), matched on the entity and ``subject`` column,
    the first in ``[logged_at, logged_at + within)``, or the subject's own row when ``within``
    is None; ``otherwise`` labels a prediction no row came for. ``snapshot``: the job's
    snapshot label SQL, run over the snapshots the predictions were scored from. ``settles``
    is how long after a period until its labels are all in."""

    sql: str
    kind: LabelKind = "event"
    subject: str | None = None
    within: timedelta | None = None
    otherwise: float | None = None
    settles: timedelta = timedelta(0)


@dataclass(frozen=True)
class GuardrailSpec:
    """The A/B guardrail metric: the share of units that are hits (see
    ``monitoring/guardrails.py``)."""

    metric: str
    description: str
    higher_is_better: bool
    margin: float = 0.0
    unit: Literal["entity", "subject"] = "entity"
    min_prediction: float | None = None
    hit_label: float = 1.0
    sql: str | None = None
    column: str | None = None  # the sql's hit column; the unit's id is key_column
    key_column: str = ""


@dataclass(frozen=True)
class JobSpec:
    name: str
    view: str
    entity: str
    entity_key: str
    refresh_cron: str
    ttl: timedelta
    retrain_cron: str
    # How far apart backfill snapshots are by default.
    default_every: timedelta
    features: tuple[FeatureSpec, ...] = field(default_factory=tuple)
    # What the drift monitor compares by default: the online values (None), or every snapshot
    # of this last period, for jobs with too few entities to test.
    drift_window: timedelta | None = None
    task: Task = "binary"
    label: LabelSpec | None = None
    inputs: tuple[InputSpec, ...] = field(default_factory=tuple)
    heuristic: Heuristic | None = field(default=None, compare=False)
    # LightGBM overrides of the job's model.
    model_params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # How much history ``mlops quickstart`` backfills.
    quickstart_history: timedelta | None = None
    description: str = ""
    owner: str = ""
    # The features the dashboard charts: the ones a person reading the job looks at first.
    key_features: tuple[str, ...] = ()
    # Monitoring: the cohorts SQL the dashboard charts scores by, how predictions get their
    # outcome, the guardrail, and defaults the MLOPS_* settings override per job.
    cohorts: str | None = None
    outcome: OutcomeSpec | None = None
    guardrail: GuardrailSpec | None = None
    auto_fallback: bool = True
    accuracy_floor: float | None = None
    ab_treatment_share: float = 1.0

    @property
    def dashboard_features(self) -> tuple[str, ...]:
        """``key_features``, or the first three features."""
        return self.key_features or tuple(self.feature_names[:3])

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def model_inputs(self) -> list[str]:
        """The model's columns, in order: stored features, then request-time inputs."""
        return [*self.feature_names, *self.input_names]

    @property
    def categorical(self) -> list[str]:
        """The model's categorical columns."""
        return [f.name for f in self.features if f.dtype == "category"] + [
            i.name for i in self.inputs if i.dtype == "category"
        ]

    @property
    def kind(self) -> Literal["classifier", "regressor"]:
        """The model's kind for the task."""
        return "classifier" if self.task == "binary" else "regressor"

    @property
    def label_horizon(self) -> timedelta:
        return self.label.horizon if self.label else timedelta(0)

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise InputError(
            f"job {self.name!r} has no feature {name!r}",
            f"known features: {', '.join(self.feature_names)}",
        )
