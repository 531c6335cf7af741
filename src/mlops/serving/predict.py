"""The generic endpoint: any job of the repository, for one entity and the request's inputs
(``POST /v1/jobs/{job}/predict``). The champion answers on the entity's fresh features when
the policy allows; otherwise the job's heuristic does, on the request's inputs and whatever
features are stored, and the answer says why. A repository's own endpoints reuse
``request_inputs`` and ``model_path``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field

# pydantic takes typing.TypedDict only from Python 3.12 on.
from typing_extensions import TypedDict

from mlops.clock import to_utc_naive
from mlops.errors import InputError
from mlops.serving.endpoints import Computed, Endpoint, Outcome, record
from mlops.serving.memo import NotInMemory
from mlops.serving.policy import Fallback
from mlops.serving.schemas import Id, Number, Prediction, PredictRequest, a_number
from mlops.specs.features import InputSpec, JobSpec
from mlops.store.online import EntityFeatures, entity
from mlops.training import heuristics, models, split_keys
from mlops.training.models import Model

if TYPE_CHECKING:
    from mlops.serving.champions import Champion
    from mlops.serving.policy import Reason
    from mlops.serving.service import Service

ENDPOINT = "predict"


def endpoint(svc: Service, slo_ms: float = 50.0) -> Endpoint:
    """The generic endpoint of ``svc``: the job and the entity come with each request."""
    return Endpoint(
        ENDPOINT,
        lambda **kw: predict(svc, **kw),
        jobs=lambda inputs: (inputs["job"],),
        unit=lambda inputs: inputs.get("subject_id") or inputs["entity_id"],
        slo_ms=slo_ms,
    )


def request_model(job: JobSpec) -> type[PredictRequest]:
    """The body of ``job``'s route: its declared inputs, each typed and bounded as declared,
    all required, no other; so the OpenAPI schema states what the route takes."""
    declared = [i for i in job.inputs if i.derive is None]
    fields = {i.name: _input_type(i) for i in declared}
    # A TypedDict validates to a plain dict: what ``request_inputs`` and the model take.
    typed_dict: Any = TypedDict
    inputs = typed_dict(f"{_title(job.name)}Inputs", fields)
    inputs.__pydantic_config__ = ConfigDict(extra="forbid")
    example: dict[str, Any] = {
        "entity_id": "E42",
        "inputs": {i.name: _example(i) for i in declared},
    }
    namespace = {
        "__annotations__": {"inputs": inputs},
        "__doc__": f"A request to {job.name}.",
        "inputs": Field(
            ... if fields else {},
            description=f"{job.name}'s request-time inputs (`mlops jobs describe {job.name}`).",
        ),
        "model_config": ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
    }
    return type(f"{_title(job.name)}PredictRequest", (PredictRequest,), namespace)


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _input_type(spec: InputSpec) -> Any:
    """The pydantic type of a declared input (the same rules as ``_checked``)."""
    about = spec.description or None
    if spec.dtype == "category":
        return Annotated[Id, Field(description=about)]
    low, high = spec.min_value, spec.max_value
    if spec.dtype == "float":
        return Annotated[Number, Field(ge=low, le=high, description=about)]
    # The bounds inside the validator's type: outside it, pydantic writes them to the schema
    # as unknown keywords ("ge") rather than minimum and maximum.
    return Annotated[int, Field(ge=low, le=high, description=about), BeforeValidator(a_number)]


def _example(spec: InputSpec) -> Any:
    if spec.dtype == "category":
        return "A"
    value = next((v for v in (spec.min_value, spec.max_value) if v is not None), 0.0)
    return math.ceil(value) if spec.dtype == "int" else float(value)


def request_inputs(
    job: JobSpec, entity_id: str, given: Mapping[str, Any], at: datetime
) -> dict[str, Any]:
    """The job's request-time inputs: the declared ones from ``given`` (checked against their
    dtype and range), the derived ones from the entity id and ``at``. Raises ``InputError``
    naming every problem."""
    declared = {i.name: i for i in job.inputs}
    problems = []
    for name in given:
        if name not in declared:
            known = ", ".join(i.name for i in job.inputs if i.derive is None) or "none"
            problems.append(f"{name!r} is not an input of {job.name} (its inputs: {known})")
        elif declared[name].derive is not None:
            problems.append(f"{name!r} is derived from the {declared[name].derive}: omit it")
    derived = {"entity": entity_id, "hour": at.hour, "weekday": at.weekday()}
    values: dict[str, Any] = {}
    for spec in job.inputs:
        if spec.derive is not None:
            values[spec.name] = derived[spec.derive]
        elif spec.name not in given:
            problems.append(f"{spec.name!r} is missing ({spec.dtype})")
        else:
            value, problem = _checked(spec, given[spec.name])
            values[spec.name] = value
            if problem:
                problems.append(problem)
    if problems:
        raise InputError(
            f"{job.name}: " + "; ".join(problems), f"see `mlops jobs describe {job.name}`"
        )
    return values


def _checked(spec: InputSpec, value: Any) -> tuple[Any, str | None]:
    """The value as the model takes it, or the problem with it."""
    if spec.dtype == "category":
        if not isinstance(value, str):
            return value, f"{spec.name!r} must be a string"
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return value, f"{spec.name!r} must be a finite number"
    if spec.dtype == "int" and value != int(value):
        return value, f"{spec.name!r} must be a whole number"
    low, high = spec.min_value, spec.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        return value, f"{spec.name!r} = {value:g} is outside [{low}, {high}]"
    return (int(value) if spec.dtype == "int" else float(value)), None


def model_path(
    svc: Service,
    champion: Champion,
    job: str,
    entity_id: str,
    request: Mapping[str, Any],
    memory_only: bool = False,
    *,
    score: Callable[[Model, np.ndarray], Any] = models.predict_one,
    by_splits: bool = False,
) -> tuple[Any, EntityFeatures]:
    """``score`` (default: the champion's value) of the entity's fresh features and the
    request's inputs, memoised exactly by the values (``NotInMemory`` when it is not held and
    ``memory_only``). ``by_splits`` keys the memo by the intervals between the trees'
    thresholds instead: for continuous request inputs, which rarely repeat exactly."""
    features = svc.fresh_features(job, entity_id, memory_only)
    model = champion.model
    values = features.values()
    if by_splits:
        x = models.encode_row(model, {**values, **request})[0]
        split = split_keys.split_key(model, x)
        if split is None and memory_only:
            raise NotInMemory
        if split is None:
            return score(model, x), features
        key: tuple = (job, champion.version, score.__qualname__, split)
        compute = None if memory_only else lambda: score(model, x)
    else:
        key = (job, champion.version, score.__qualname__, *values.values(), *request.values())

        def compute() -> Any:
            return score(model, models.encode_row(model, {**values, **request})[0])

    return svc.scores.get(key, None if memory_only else compute), features


def heuristic_value(
    svc: Service,
    job: JobSpec,
    entity_id: str,
    request: Mapping[str, Any],
    outcome: Outcome,
    memory_only: bool = False,
) -> float:
    """The heuristic's value on the request's inputs and the entity's stored features,
    whatever their age (none when the store has none or cannot be read: the heuristic's
    prior). Features read here are kept on ``outcome``: the answer says how old they are."""
    if outcome.features is None and set(heuristics.of(job).inputs) - set(request):
        try:
            row = svc.cache.row(job, entity_id, memory_only=memory_only)
            outcome.features = entity(job, entity_id, row, svc.clock.now())
        except Fallback:
            pass  # the store is unreadable: the rule answers on the request alone
    stored = outcome.features.values() if outcome.features else {}
    return float(heuristics.of(job).row({**stored, **request}))


def predict(
    svc: Service,
    job: str,
    entity_id: str,
    inputs: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    subject_id: str | None = None,
    cut: Reason | None = None,
    memory_only: bool = False,
) -> Computed:
    """One job's value for one entity, with its provenance and the prediction log row."""
    spec = svc.rt.repo.job(job)
    when = to_utc_naive(at) if at else svc.clock.now()
    request = request_inputs(spec, entity_id, inputs or {}, when)
    outcomes = svc.run_models(
        {job: lambda ch: model_path(svc, ch, job, entity_id, request, memory_only)},
        cut,
        subject_id or entity_id,
    )
    outcome = outcomes[job]
    if outcome.reason:
        outcome.value = heuristic_value(svc, spec, entity_id, request, outcome, memory_only)
    answer = Prediction(
        job=job,
        entity_id=entity_id,
        at=when,
        value=float(outcome.value),
        **outcome.provenance(),
    )
    return Computed(
        answer, outcomes, [record(ENDPOINT, job, entity_id, subject_id, answer.value, outcome)]
    )
