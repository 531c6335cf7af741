"""Labels for logged answers: each prediction of a job joined with the outcome that reached the
warehouse later, once its label is due. The accuracy report and the A/B guardrails both score
these rows, so they are read here once, for either.

A prediction is labelled only once its label is due; one not yet due is left out, never
counted as a negative. The rules (DESIGN.md's labels, applied to a logged answer):

- churn: 1 when the customer places no completed order in ``[logged_at, logged_at + 30 d)``,
  else 0; due when ``logged_at + 30 d <= now``.
- upsell: whether the customer accepted the first impression of the predicted offer
  (``subject_id``) shown in ``[logged_at, logged_at + UPSELL_HORIZON]``; due when
  ``logged_at + UPSELL_HORIZON <= now``. No impression in that window means the offer was
  not shown: no label. A dossier that had no offer to propose logs no offer id: no label.
- eta: the actual minutes from ``dispatched_at`` to ``delivered_at`` of the predicted
  delivery (``subject_id``), once delivered (``delivered_at <= now``). Predictions without a
  delivery id, or for deliveries unknown or still in flight, have no label. The logged
  prediction is the minutes that answered: the model's mean, or the SLA when the heuristic
  answered.

The prediction log lives in the store and the outcomes in the warehouse, which may be another
database: the log is read first, then its keys are pushed down to the warehouse in chunks
(the repository's ``sql/outcomes_*.sql``) and the two are joined in pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from mlops.db.schema import prediction_log
from mlops.errors import InputError
from mlops.runtime import Runtime

if TYPE_CHECKING:
    import pandas as pd

CHURN_HORIZON = timedelta(days=30)
# An offer proposed by the dossier or the order composer is shown, if at all, in the session
# that asked for it; a day covers a composer call whose order is placed later that day.
UPSELL_HORIZON = timedelta(hours=24)
# How long after a period ends until its labels are all due: the label horizons, and for ETA
# time for the period's last deliveries to arrive.
LABEL_DELAY = {"churn": CHURN_HORIZON, "upsell": UPSELL_HORIZON, "eta": timedelta(hours=2)}

# ``labelled()``'s columns, in order (the A/B guardrails and the dashboard read them). "text"
# columns hold Python strings or missing values, in pandas' default string dtype (object on
# pandas 2, str on pandas 3).
LABELLED_COLUMNS = {
    "prediction_id": "int64",  # ml_prediction_log.prediction_id
    "logged_at": "datetime64[ns]",  # when the answer was served (naive UTC)
    "job": "text",  # churn | upsell | eta
    "endpoint": "text",  # dossier | compose | eta
    "entity_id": "text",  # customer (churn, upsell) or zone (eta)
    "subject_id": "text",  # offer id (upsell), delivery id (eta), None (churn)
    "prediction": "float64",  # probability (churn, upsell) or minutes (eta) served
    "source": "text",  # model | heuristic
    "reason": "text",  # the fallback reason when the heuristic answered, else None
    "arm": "text",  # A/B arm (treatment | control) or None
    "model_version": "Int64",  # the version that answered, <NA> for the heuristic
    "label": "float64",  # 1.0/0.0 churned or accepted (churn, upsell); actual minutes (eta)
}
_TYPED = {c: d for c, d in LABELLED_COLUMNS.items() if d != "text"}


def labelled(
    rt: Runtime, job: str, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every prediction of ``job`` logged in ``[since, until)`` whose label is due, with its
    label (columns: LABELLED_COLUMNS, ordered by logged_at)."""
    job = rt.repo.job(job).name
    now = rt.clock.now()
    preds = _predictions(rt, job, since, until, now)
    if preds.empty:
        return _empty()
    if job == "churn":
        frame = _label_churn(rt, preds)
    elif job == "upsell":
        frame = _label_upsell(rt, preds)
    else:
        frame = _label_eta(rt, preds, now)
    frame["job"] = job
    frame = frame.sort_values(["logged_at", "prediction_id"], kind="stable")
    return frame[list(LABELLED_COLUMNS)].astype(_TYPED).reset_index(drop=True)


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
    rt: Runtime, job: str, since: datetime | None, until: datetime | None, now: datetime
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
    ).where(t.c.job == bindparam("job"))
    params: dict[str, Any] = {"job": job}
    if since is not None:
        query = query.where(t.c.logged_at >= bindparam("since"))
        params["since"] = since
    if until is not None:
        query = query.where(t.c.logged_at < bindparam("until"))
        params["until"] = until
    if job != "eta":
        query = query.where(t.c.logged_at <= bindparam("due"))
        params["due"] = now - LABEL_DELAY[job]
    if job != "churn":
        query = query.where(t.c.subject_id.is_not(None))
    frame = _select_frame(rt, query, params)
    frame["logged_at"] = _timestamps(frame["logged_at"])
    return frame


def _select_frame(rt: Runtime, query, params: dict[str, Any]) -> pd.DataFrame:
    """A Core SELECT's rows as a DataFrame, straight from the driver's cursor (a million
    SQLAlchemy Row objects would cost more than the query); timestamps as the driver gives."""
    import pandas as pd

    from mlops.db.connections import Prepared

    prepared = Prepared(query, rt.store.dialect)
    with rt.store.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
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


def _from_epoch(seconds: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(seconds.astype("float64").round(), unit="s").astype("datetime64[ns]")


def _outcomes(rt: Runtime, name: str, params: dict, keys: Sequence[str]) -> pd.DataFrame:
    from mlops.warehouse import views

    with rt.warehouse.connect() as conn:
        return views.run_query_for_keys(conn, rt.repo.sql(name), params, keys)


def _customer_outcomes(
    rt: Runtime, name: str, preds: pd.DataFrame, horizon: timedelta
) -> pd.DataFrame:
    """``name``'s outcomes for the predictions' customers, from the first prediction to the
    last one's horizon."""
    span = {
        "start": preds["logged_at"].min().to_pydatetime(),
        "end": preds["logged_at"].max().to_pydatetime() + horizon,
    }
    return _outcomes(rt, name, span, preds["entity_id"].unique().tolist())


def _first_within(
    preds: pd.DataFrame,
    outcomes: pd.DataFrame,
    at: str,
    by: list[str],
    outcome_by: list[str],
    horizon: timedelta,
) -> pd.DataFrame:
    """Each prediction with the first outcome of its key (``by`` in ``preds``, ``outcome_by``
    in ``outcomes``) at ``at`` in ``[logged_at, logged_at + horizon]``, or NaN/NaT without."""
    import pandas as pd

    return pd.merge_asof(
        preds.sort_values("logged_at", kind="stable"),
        outcomes.sort_values(at, kind="stable"),
        left_on="logged_at",
        right_on=at,
        left_by=by,
        right_by=outcome_by,
        direction="forward",
        tolerance=pd.Timedelta(horizon),
        allow_exact_matches=True,
    )


def _label_churn(rt: Runtime, preds: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    orders = _customer_outcomes(rt, "outcomes_churn", preds, CHURN_HORIZON)
    orders["placed_at"] = _from_epoch(orders["placed_epoch"])
    # The customer's first completed order at or after the prediction: none within the
    # horizon is a churn.
    joined = _first_within(
        preds,
        orders[["customer_id", "placed_at"]],
        "placed_at",
        ["entity_id"],
        ["customer_id"],
        CHURN_HORIZON,
    )
    # tolerance is inclusive; an order exactly 30 days later is already outside the window.
    ordered = joined["placed_at"].notna() & (
        joined["placed_at"] < joined["logged_at"] + pd.Timedelta(CHURN_HORIZON)
    )
    joined["label"] = (~ordered).astype("float64")
    return joined


def _label_upsell(rt: Runtime, preds: pd.DataFrame) -> pd.DataFrame:
    shown = _customer_outcomes(rt, "outcomes_upsell", preds, UPSELL_HORIZON)
    shown["shown_at"] = _from_epoch(shown["shown_epoch"])
    shown["accepted"] = shown["accepted"].astype("float64")
    joined = _first_within(
        preds,
        shown[["customer_id", "offer_id", "shown_at", "accepted"]],
        "shown_at",
        ["entity_id", "subject_id"],
        ["customer_id", "offer_id"],
        UPSELL_HORIZON,
    )
    joined = joined[joined["shown_at"].notna()]
    return joined.assign(label=joined["accepted"])


def _label_eta(rt: Runtime, preds: pd.DataFrame, now: datetime) -> pd.DataFrame:
    delivered = _outcomes(rt, "outcomes_eta", {"now": now}, preds["subject_id"].unique().tolist())
    delivered["minutes"] = delivered["minutes"].astype("float64")
    joined = preds.merge(delivered, left_on="subject_id", right_on="delivery_id", how="inner")
    return joined.assign(label=joined["minutes"])


def _empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=_TYPED.get(c, "object")) for c in LABELLED_COLUMNS})
