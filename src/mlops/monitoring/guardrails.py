"""A/B guardrails: does the treatment arm (the model) do worse than the control arm (the
heuristic) on the job's business metric? A one-sided two-proportion z-test for
non-inferiority decides; a significant regression beyond the agreed margin raises a guardrail
alert and trips the job's fallback (``monitoring.fallback``) where automatic fallback is on.

Each job declares its metric (``guardrail:`` in its job file, a ``GuardrailSpec``): a 0/1
outcome per unit whose share is better higher or lower. A unit is a hit when its labelled
prediction's label is ``hit_label`` (e.g. an offer accepted: 1; a customer retained: 0), or,
when the guardrail names an SQL, when that SQL's ``column`` is 1 for the unit's id (e.g. a
delivery later than the promise the customer was given, read from the warehouse, since the
logged prediction is the model's mean and not the promise). ``min_prediction`` keeps only
predictions at or above it (e.g. entities flagged high risk: each arm flags by its own scores,
so this compares what happens to the entities each arm singles out, as agreed; it is not a
like-for-like comparison of the same entities).

One unit per randomised entity (or the logged subject, ``unit: subject``): its first labelled
prediction in the window at or above ``min_prediction``, so outcomes are independent draws, as
the test assumes. Answers
given while the experiment was suspended for both arms alike (kill switch, drift or guardrail
trip) are left out of both arms, and so are answers logged without an arm. The window starts
at the job's last cleared guardrail trip (an engineer's reset starts a new experiment), or
``since`` when later.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from mlops.db.schema import fallback_trips
from mlops.errors import ConfigError, NotReadyError
from mlops.monitoring import labelling
from mlops.runtime import Runtime
from mlops.serving.arms import CONTROL, TREATMENT
from mlops.specs.features import GuardrailSpec

if TYPE_CHECKING:
    import pandas as pd

    from mlops.monitoring.alerts import Alert
    from mlops.serving.trips import Trip

# Reasons that applied to both arms alike: the experiment was not running.
SUSPENDED = ("flag_off", "drift", "guardrail")
# ml_monitor_results status of each decision.
STATUS = {"insufficient": "insufficient", "ok": "ok", "warn": "warn", "breach": "alert"}


@dataclass(frozen=True)
class Metric:
    """A job's guardrail metric: the share of units with the outcome."""

    name: str
    description: str
    higher_is_better: bool


def metric_of(spec: GuardrailSpec) -> Metric:
    """The declared guardrail's metric."""
    return Metric(spec.metric, spec.description, spec.higher_is_better)


@dataclass(frozen=True)
class Arm:
    """One arm's outcomes: ``hits`` units with the outcome out of ``n``."""

    hits: int
    n: int

    @property
    def rate(self) -> float | None:
        """The share of units with the outcome; None without units."""
        return self.hits / self.n if self.n else None


@dataclass(frozen=True)
class Comparison:
    """The test's figures. ``difference`` is treatment minus control (in the metric's units);
    ``harm`` is how much worse the treatment is (the difference signed so that positive is
    worse); the interval is the difference's two-sided ``confidence`` interval, which is
    ``1 - 2 alpha`` so that its worse-side bound lies past the margin exactly when the
    one-sided test trips."""

    control: Arm
    treatment: Arm
    margin: float
    alpha: float
    min_sample: int
    higher_is_better: bool
    difference: float | None
    harm: float | None
    ci_low: float | None
    ci_high: float | None
    z: float | None
    p_value: float | None
    decision: str

    @property
    def confidence(self) -> float:
        """The interval's two-sided confidence level."""
        return 1 - 2 * self.alpha


def compare(
    control: Arm,
    treatment: Arm,
    *,
    margin: float,
    alpha: float,
    min_sample: int,
    higher_is_better: bool,
) -> Comparison:
    """The one-sided non-inferiority z-test: H0 "the treatment is at most ``margin`` worse",
    rejected (``breach``) when p < alpha; ``insufficient`` when an arm has < ``min_sample``."""
    from scipy.stats import norm

    if margin < 0 or not 0 < alpha < 0.5:
        raise ValueError(f"need margin >= 0 and 0 < alpha < 0.5, got {margin}, {alpha}")
    figures: dict[str, Any] = dict.fromkeys(("difference", "harm", "ci_low", "ci_high", "z", "p"))
    if control.n and treatment.n:
        pc, pt = control.hits / control.n, treatment.hits / treatment.n
        difference = pt - pc
        harm = -difference if higher_is_better else difference
        # Unpooled (Wald) standard error: H0 is a difference of -margin, not of 0, so the
        # pooled estimate under "no difference" would be the wrong null.
        se = math.sqrt(pt * (1 - pt) / treatment.n + pc * (1 - pc) / control.n)
        half = norm.ppf(1 - alpha) * se
        if se > 0:
            z = (harm - margin) / se
            p = float(norm.sf(z))
        else:  # both arms all 0 or all 1: no spread, the point estimate is the answer
            z = math.copysign(math.inf, harm - margin) if harm != margin else 0.0
            p = 0.0 if harm > margin else 1.0
        figures = {
            "difference": difference,
            "harm": harm,
            "ci_low": difference - half,
            "ci_high": difference + half,
            "z": z,
            "p": p,
        }
    if min(control.n, treatment.n) < max(min_sample, 1):
        decision = "insufficient"
    elif figures["p"] < alpha:
        decision = "breach"
    elif figures["harm"] > margin:
        decision = "warn"  # worse than the margin, not (yet) significantly
    else:
        decision = "ok"
    return Comparison(
        control=control,
        treatment=treatment,
        margin=margin,
        alpha=alpha,
        min_sample=min_sample,
        higher_is_better=higher_is_better,
        difference=figures["difference"],
        harm=figures["harm"],
        ci_low=figures["ci_low"],
        ci_high=figures["ci_high"],
        z=figures["z"],
        p_value=figures["p"],
        decision=decision,
    )


def units(spec: GuardrailSpec, labelled: pd.DataFrame) -> pd.DataFrame:
    """One row per unit (columns ``arm``, ``hit``) from ``labelling.labelled`` rows; with a
    guardrail SQL the rows need its hit ``column`` besides (see ``sql_hits``)."""
    import pandas as pd

    frame = labelled[labelled["arm"].isin((TREATMENT, CONTROL))]
    frame = frame[~frame["reason"].isin(SUSPENDED)]
    if spec.min_prediction is not None:
        frame = frame[frame["prediction"] >= spec.min_prediction]
    key = ["subject_id"] if spec.unit == "subject" else ["entity_id"]
    frame = frame.sort_values(["logged_at", "prediction_id"], kind="stable").drop_duplicates(key)
    if spec.column is not None:
        hit = frame[spec.column].astype(bool)
    else:
        hit = frame["label"] == spec.hit_label
    return pd.DataFrame({"arm": frame["arm"].to_numpy(), "hit": hit.to_numpy(dtype=bool)})


def arm_counts(spec: GuardrailSpec, labelled: pd.DataFrame) -> dict[str, Arm]:
    """Each arm's hits and units (see ``units``)."""
    found = units(spec, labelled)
    counts = found.groupby("arm")["hit"].agg(["sum", "count"])
    hits, totals = counts["sum"].to_dict(), counts["count"].to_dict()
    return {
        arm: Arm(int(hits[arm]), int(totals[arm])) if arm in totals else Arm(0, 0)
        for arm in (CONTROL, TREATMENT)
    }


# --- the check ---------------------------------------------------------------------------


@dataclass
class Guardrail:
    """One job's check: the metric, the window, the comparison and what it set off."""

    job: str
    metric: Metric
    since: datetime | None
    comparison: Comparison
    model_version: int | None = None
    opened: list[Alert] = field(default_factory=list)
    trip: Trip | None = None

    @property
    def decision(self) -> str:
        """insufficient, ok, warn or breach."""
        return self.comparison.decision


def check(
    rt: Runtime, job: str | None = None, *, since: datetime | None = None, record: bool = True
) -> list[Guardrail]:
    """Compare the arms of ``job`` (every job when None or "all"). With ``record``, writes
    ``ml_monitor_results`` rows (monitor "guardrail"), raises or resolves the guardrail
    alert, and on a breach trips the job's fallback (when its ``auto_fallback`` is on). With
    every job, those that declare no guardrail are left out; a job named that declares none
    is a ConfigError."""
    from mlops.monitoring import job_settings

    jobs = labelling.job_names(rt, job)
    labelling.require_past(since, rt.clock.now())
    if job in (None, "all"):
        jobs = [name for name in jobs if rt.repo.job(name).guardrail is not None]
    s = rt.settings
    found = []
    for name in jobs:
        spec = guardrail_of(rt, name)
        start = _window_start(rt, name, since)
        labelled = labelling.labelled(rt, name, since=start)
        if spec.sql is not None:
            labelled = sql_hits(rt, spec, labelled)
        counts = arm_counts(spec, labelled)
        metric = metric_of(spec)
        comparison = compare(
            counts[CONTROL],
            counts[TREATMENT],
            margin=job_settings.guardrail_margin(rt, name),
            alpha=s.guardrail_alpha,
            min_sample=s.guardrail_min_sample,
            higher_is_better=metric.higher_is_better,
        )
        versions = labelled.loc[labelled["arm"] == TREATMENT, "model_version"].dropna()
        result = Guardrail(
            name,
            metric,
            start,
            comparison,
            int(versions.mode().iloc[0]) if len(versions) else None,
        )
        if record:
            _record(rt, result)
        found.append(result)
    return found


def guardrail_of(rt: Runtime, job: str) -> GuardrailSpec:
    """The job's declared guardrail, or a ConfigError saying how to declare one."""
    spec = rt.repo.job(job).guardrail
    if spec is None:
        raise ConfigError(
            f"job {job!r} declares no guardrail",
            f"add a guardrail: section to jobs/{job}.yaml (metric, description, better), "
            "or leave the job out of the A/B check",
        )
    return spec


def sql_hits(rt: Runtime, spec: GuardrailSpec, labelled: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows whose unit the guardrail SQL returns, with its hit ``column``."""
    from mlops.warehouse import views

    by = "subject_id" if spec.unit == "subject" else "entity_id"
    assert spec.sql is not None and spec.column is not None
    keys = labelled[by].dropna().unique().tolist()
    if not keys:
        return labelled.assign(**{spec.column: False})
    with rt.warehouse.connect() as conn:
        sql = rt.repo.sql(spec.sql)
        # :now is there for the SQL that needs it (what has happened by now).
        params = {"now": rt.clock.now()} if "now" in text(sql).compile().params else {}
        outcome = views.run_query_for_keys(conn, sql, params, keys)
    missing = [c for c in (spec.key_column, spec.column) if c not in outcome.columns]
    if missing:
        raise NotReadyError(
            f"sql/{spec.sql}.sql does not return {', '.join(missing)}",
            f"a guardrail SQL returns the unit's id ({spec.key_column}) and its 0/1 "
            f"{spec.column} column for the ids in :keys",
        )
    hits = dict(
        zip(
            outcome[spec.key_column].astype(str),
            outcome[spec.column].astype(bool),
            strict=True,
        )
    )
    frame = labelled[labelled[by].isin(hits)]
    return frame.assign(**{spec.column: frame[by].map(hits).astype(bool)})


def describe(result: Guardrail) -> str:
    """One line: the arms, the difference and the decision."""
    c, m = result.comparison, result.metric
    arms = f"control {_rate(c.control)} vs treatment {_rate(c.treatment)}"
    if c.difference is None:
        return f"{result.job} {m.name}: {arms}; {c.decision}"
    return (
        f"{result.job} {m.name}: {arms}, difference {c.difference:+.4f} "
        f"({c.confidence:.0%} CI {c.ci_low:+.4f} to {c.ci_high:+.4f}), margin {c.margin:g}, "
        f"p={c.p_value:.3g}; {c.decision}"
    )


def _rate(arm: Arm) -> str:
    return "-" if arm.rate is None else f"{arm.rate:.4f} (n={arm.n:,})"


def _window_start(rt: Runtime, job: str, since: datetime | None) -> datetime | None:
    """``since``, or the job's last cleared guardrail trip when that is later."""
    t = fallback_trips
    with rt.store.connect() as conn:
        reset = conn.execute(
            select(func.max(t.c.cleared_at)).where(
                t.c.job == job, t.c.kind == "guardrail", t.c.cleared_at.is_not(None)
            )
        ).scalar()
    if reset is None or (since is not None and since >= reset):
        return since
    return reset


def _record(rt: Runtime, result: Guardrail) -> None:
    """Write the four result rows, reconcile the guardrail alert and trip on a breach."""
    from mlops.monitoring import alerts, fallback, results

    c, m = result.comparison, result.metric
    common = {
        "checked_at": rt.clock.now(),
        "monitor": "guardrail",
        "job": result.job,
        "feature": m.name,
        "status": STATUS[c.decision],
        "model_version": result.model_version,
        "detail": json.dumps(_detail(result)),
    }
    n = c.control.n + c.treatment.n
    figures = [  # statistic, value, threshold, sample size
        ("control_rate", c.control.rate, None, c.control.n),
        ("treatment_rate", c.treatment.rate, None, c.treatment.n),
        ("difference", c.difference, -c.margin if m.higher_is_better else c.margin, n),
        ("p_value", c.p_value, c.alpha, n),
    ]
    results.write(
        rt,
        [
            {**common, "statistic": name, "value": value, "threshold": line, "sample_size": size}
            for name, value, line, size in figures
        ],
    )
    if c.decision == "insufficient":
        return  # too little to judge: an open incident stays open, none is opened
    firing = {m.name: describe(result)} if c.decision == "breach" else {}
    result.opened = alerts.check(rt, "guardrail", result.job, firing, scope=[m.name])
    if c.decision == "breach":
        result.trip = fallback.trip(rt, result.job, "guardrail", describe(result))


def _detail(result: Guardrail) -> dict[str, Any]:
    c, m = result.comparison, result.metric
    return {
        "metric": m.description,
        "higher_is_better": m.higher_is_better,
        "since": result.since.isoformat() if result.since else None,
        "control": {"hits": c.control.hits, "n": c.control.n, "rate": c.control.rate},
        "treatment": {"hits": c.treatment.hits, "n": c.treatment.n, "rate": c.treatment.rate},
        "difference": c.difference,
        "ci": [c.ci_low, c.ci_high],
        "confidence": c.confidence,
        "z": c.z if c.z is None or math.isfinite(c.z) else None,
        "p_value": c.p_value,
        "margin": c.margin,
        "alpha": c.alpha,
        "min_sample": c.min_sample,
        "decision": c.decision,
    }
