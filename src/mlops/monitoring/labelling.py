"""Labels for logged answers: each prediction of a job joined with the outcome that reached the
warehouse later, once its label is due. The accuracy report, the A/B guardrails and the
dashboard all score these rows, so they are read here once, for any of them.

How a job's predictions meet their outcomes is declared in its ``outcome:`` (``OutcomeSpec``):
the rows of an event SQL (the job's event label by default, so a new job needs no SQL of its
own: ``event_time``, the entity key, ``label`` and the ``subject`` column when declared), then

- with ``within``: the first row of the prediction's entity (and subject) in
  ``[logged_at, logged_at + within)``; a prediction is due once that window has closed (one not
  yet due is left out, never counted as a negative); no row in it gives ``otherwise`` when
  declared (an absence that is an outcome, e.g. no order: churned), else no label;
- without ``within``: the row of the prediction's subject (its own event, e.g. a delivery),
  whenever it happened, once the SQL returns it (``:now`` says what has happened by now).

A job whose label is a snapshot label and that names no outcome SQL gets its label SQL's label
of the snapshot each prediction was scored from (``features_computed_at``), once the label's
horizon past it has passed: the label training would have given that row. Predictions scored
without stored features, or for entities outside the label's population, have no label.

Predictions logged without a subject have no label when the outcome names a subject column.

The prediction log lives in the store and the outcomes in the warehouse, which may be another
database: the log is read first, then its keys are pushed down to the warehouse in chunks (a
key filter around the outcome SQL) and the two are joined in pandas.
"""

from __future__ import annotations

import numbers
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, text

from mlops.db.engine import driver
from mlops.db.schema import prediction_log
from mlops.errors import ConfigError, InputError, NotReadyError
from mlops.runtime import Runtime
from mlops.specs.features import JobSpec, OutcomeSpec

if TYPE_CHECKING:
    import pandas as pd

# The start of an outcome SQL's span for subjects matched whenever their event happened.
EPOCH = datetime(1970, 1, 1)
# Columns of the outcome rows once read (apart from the predictions' own).
_AT, _ENTITY, _SUBJECT, _LABEL = "_outcome_at", "_outcome_entity", "_outcome_subject", "_outcome"

# ``labelled()``'s columns, in order (the A/B guardrails and the dashboard read them). "text"
# columns hold Python strings or missing values, in pandas' default string dtype (object on
# pandas 2, str on pandas 3).
LABELLED_COLUMNS = {
    "prediction_id": "int64",  # ml_prediction_log.prediction_id
    "logged_at": "datetime64[ns]",  # when the answer was served (naive UTC)
    "job": "text",  # the job's name
    "endpoint": "text",  # the endpoint that answered
    "entity_id": "text",  # the job's entity
    "subject_id": "text",  # what the prediction is about beyond the entity, or None
    "prediction": "float64",  # the probability (binary) or value (regression) served
    "source": "text",  # model | heuristic
    "reason": "text",  # the fallback reason when the heuristic answered, else None
    "arm": "text",  # A/B arm (treatment | control) or None
    "model_version": "Int64",  # the version that answered, <NA> for the heuristic
    "label": "float64",  # 1.0/0.0 (binary) or the actual value (regression)
}
_TYPED = {c: d for c, d in LABELLED_COLUMNS.items() if d != "text"}


def labelled(
    rt: Runtime, job: str, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every prediction of ``job`` logged in ``[since, until)`` whose label is due, with its
    label (columns: LABELLED_COLUMNS, ordered by logged_at)."""
    spec = rt.repo.job(job)
    rule = outcome_of(spec)
    now = rt.clock.now()
    preds = _predictions(rt, spec.name, rule, since, until, now)
    if preds.empty:
        return _empty()
    if rule.kind == "snapshot":
        frame = _match_snapshots(rt, spec, preds)
    else:
        frame = _match(preds, _outcomes(rt, spec, rule, preds, now), rule)
    frame["job"] = spec.name
    frame = frame.sort_values(["logged_at", "prediction_id"], kind="stable")
    return frame[list(LABELLED_COLUMNS)].astype(_TYPED).reset_index(drop=True)


def outcome_of(job: JobSpec) -> OutcomeSpec:
    """The job's declared outcome, or a ConfigError saying how to declare one."""
    if job.outcome is None:
        raise ConfigError(
            f"job {job.name!r} declares no outcome: its predictions cannot be labelled",
            f"add an outcome: section to jobs/{job.name}.yaml (within: how long after a "
            "prediction its outcome comes, or subject: the column the logged subject id is)",
        )
    return job.outcome


def label_delay(job: JobSpec) -> timedelta:
    """How long after a period ends until its labels are all due."""
    return job.outcome.settles if job.outcome else timedelta(0)


def job_names(rt: Runtime, job: str | None) -> list[str]:
    """Every job for None or "all", else ``[job]``; an unknown job is an InputError."""
    return [spec.name for spec in rt.repo.resolve(job)]


def require_past(since: datetime | None, now: datetime) -> None:
    """InputError when ``since`` is given and not before ``now``."""
    if since is not None and since >= now:
        raise InputError(
            f"since {since:%Y-%m-%d %H:%M:%S} is not in the past (now is {now:%Y-%m-%d %H:%M})",
            "pass an earlier date, or a duration such as 30d",
        )


# --- reading and labelling -------------------------------------------------------------


def _predictions(
    rt: Runtime,
    job: str,
    rule: OutcomeSpec,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> pd.DataFrame:
    t = prediction_log
    query = select(
        t.c.prediction_id,
        t.c.logged_at,
        t.c.endpoint,
        t.c.entity_id,
        t.c.subject_id,
        t.c.prediction,
        t.c.source,
        t.c.reason,
        t.c.arm,
        t.c.model_version,
        t.c.features_computed_at,
    ).where(t.c.job == bindparam("job"))
    params: dict[str, Any] = {"job": job}
    if since is not None:
        query = query.where(t.c.logged_at >= bindparam("since"))
        params["since"] = since
    if until is not None:
        query = query.where(t.c.logged_at < bindparam("until"))
        params["until"] = until
    if rule.kind == "snapshot":  # due once the snapshot's label horizon has passed
        query = query.where(t.c.features_computed_at <= bindparam("due"))
        params["due"] = now - rule.settles
    elif rule.within is not None:  # due once the window has closed
        query = query.where(t.c.logged_at <= bindparam("due"))
        params["due"] = now - rule.within
    if rule.subject is not None:
        query = query.where(t.c.subject_id.is_not(None))
    frame = _select_frame(rt, query, params)
    frame["logged_at"] = _timestamps(frame["logged_at"])
    computed = frame["features_computed_at"]
    frame["features_computed_at"] = _timestamps(computed.dropna()).reindex(computed.index)
    return frame


def _select_frame(rt: Runtime, query, params: dict[str, Any]) -> pd.DataFrame:
    """A Core SELECT's rows as a DataFrame, straight from the driver's cursor (a million
    SQLAlchemy Row objects would cost more than the query); timestamps as the driver gives."""
    import pandas as pd

    from mlops.db.connections import Prepared

    prepared = Prepared(query, rt.store.dialect)
    with rt.store.connect() as conn:
        cursor = driver(conn).cursor()
        try:
            cursor.execute(prepared.sql, prepared.parameters(params))
            rows = cursor.fetchall()
        finally:
            cursor.close()
    return pd.DataFrame.from_records(rows, columns=[c.key for c in query.selected_columns])


def _timestamps(values: pd.Series) -> pd.Series:
    import pandas as pd

    from mlops.db.types import SQLITE_TS_FORMAT

    if len(values) and isinstance(values.iloc[0], str):  # SQLite's text timestamps
        return pd.to_datetime(values, format=SQLITE_TS_FORMAT).astype("datetime64[ns]")
    return pd.to_datetime(values).astype("datetime64[ns]")


def _event_times(values: pd.Series) -> pd.Series:
    """An outcome SQL's event_time: epoch seconds (numbers) or timestamps."""
    import pandas as pd

    known = values.dropna()
    # PostgreSQL's numeric comes as Decimal objects, not a numeric dtype.
    epoch = pd.api.types.is_numeric_dtype(values) or (
        len(known) > 0 and isinstance(known.iloc[0], numbers.Number)
    )
    if epoch:
        return pd.to_datetime(values.astype("float64").round(), unit="s").astype("datetime64[ns]")
    return _timestamps(values)


def keyed(sql: str, column: str) -> str:
    """``sql`` wrapped in a filter of ``column`` by the ``:keys`` list: the keys pushed down to
    the warehouse (which plans the filter into the query)."""
    body = sql.strip().rstrip(";")
    return f"SELECT * FROM (\n{body}\n) keyed WHERE keyed.{column} IN :keys"


def _outcomes(
    rt: Runtime, job: JobSpec, rule: OutcomeSpec, preds: pd.DataFrame, now: datetime
) -> pd.DataFrame:
    """The outcome SQL's rows for the predictions' entities or subjects (whichever is the
    more selective filter), over the span their outcomes can fall in."""
    from mlops.warehouse import views

    if rule.within is not None:
        start = preds["logged_at"].min().to_pydatetime()
        end = preds["logged_at"].max().to_pydatetime() + rule.within
    else:
        start, end = EPOCH, now
    entities = preds["entity_id"].dropna().unique().tolist()
    subjects = preds["subject_id"].dropna().unique().tolist()
    by_subject = rule.subject is not None and len(subjects) > len(entities)
    column = rule.subject if by_subject and rule.subject is not None else job.entity_key
    sql = keyed(rt.repo.sql(rule.sql), column)
    # The SQL may leave out any of its parameters (an event label needs not name :now).
    named = text(sql).compile().params
    params = {k: v for k, v in {"start": start, "end": end, "now": now}.items() if k in named}
    with rt.warehouse.connect() as conn:
        rows = views.run_query_for_keys(conn, sql, params, subjects if by_subject else entities)
    wanted = ["event_time", job.entity_key, "label", *([rule.subject] if rule.subject else [])]
    missing = [c for c in wanted if c not in rows.columns]
    if missing:
        raise NotReadyError(
            f"sql/{rule.sql}.sql does not return {', '.join(missing)}",
            f"an outcome SQL returns {', '.join(wanted)} (see outcome in jobs/{job.name}.yaml)",
        )
    out = {
        _AT: _event_times(rows["event_time"]),
        _ENTITY: rows[job.entity_key].astype(str),
        _LABEL: rows["label"].astype("float64"),
    }
    if rule.subject is not None:
        out[_SUBJECT] = rows[rule.subject].astype(str)
    import pandas as pd

    # A row without a time cannot be placed in a window (and would stop merge_asof).
    return pd.DataFrame(out).dropna(subset=[_AT])


def _match_snapshots(rt: Runtime, job: JobSpec, preds: pd.DataFrame) -> pd.DataFrame:
    """Each prediction with the label its snapshot (``features_computed_at``, the as_of of the
    features it was scored from) has in the job's snapshot label SQL: what training would
    have labelled that row. Entities outside the label's population have no label."""
    import pandas as pd

    from mlops.warehouse import views

    assert job.label is not None  # only jobs with a snapshot label are matched here
    points = [p.to_pydatetime() for p in sorted(preds["features_computed_at"].unique())]
    with rt.warehouse.connect() as conn:
        rows = views.run_over_grid(conn, rt.repo.sql(job.label.sql), points, rt.repo.windows)
    missing = [c for c in ("as_of", job.entity_key, "label") if c not in rows.columns]
    if missing:
        raise NotReadyError(
            f"sql/{job.label.sql}.sql does not return {', '.join(missing)}",
            f"a snapshot label returns as_of, {job.entity_key} and label",
        )
    labels = pd.DataFrame(
        {
            "features_computed_at": _event_times(rows["as_of"]),
            "entity_id": rows[job.entity_key].astype(str),
            "label": rows["label"].astype("float64"),
        }
    ).drop_duplicates(["features_computed_at", "entity_id"])
    return preds.merge(labels, on=["features_computed_at", "entity_id"], how="inner")


def _match(preds: pd.DataFrame, outcomes: pd.DataFrame, rule: OutcomeSpec) -> pd.DataFrame:
    """Each prediction with its outcome's ``label`` (see the module's rules); predictions
    without a label are left out."""
    import pandas as pd

    if rule.within is None:  # the subject's own event, whenever it happened
        first = outcomes.sort_values(_AT, kind="stable").drop_duplicates(_SUBJECT)
        joined = preds.merge(first, left_on="subject_id", right_on=_SUBJECT, how="inner")
        return joined.assign(label=joined[_LABEL])
    by, outcome_by = ["entity_id"], [_ENTITY]
    if rule.subject is not None:
        by, outcome_by = [*by, "subject_id"], [*outcome_by, _SUBJECT]
    joined = pd.merge_asof(
        preds.sort_values("logged_at", kind="stable"),
        outcomes.sort_values(_AT, kind="stable"),
        left_on="logged_at",
        right_on=_AT,
        left_by=by,
        right_by=outcome_by,
        direction="forward",
        tolerance=pd.Timedelta(rule.within),
        allow_exact_matches=True,
    )
    # tolerance is inclusive; a row exactly `within` later is already outside the window.
    came = joined[_AT].notna() & (joined[_AT] < joined["logged_at"] + pd.Timedelta(rule.within))
    if rule.otherwise is None:
        joined = joined[came]
        return joined.assign(label=joined[_LABEL])
    return joined.assign(label=joined[_LABEL].where(came, rule.otherwise))


def _empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=_TYPED.get(c, "object")) for c in LABELLED_COLUMNS})
