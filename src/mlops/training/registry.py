"""Promotion and rollback of a job's ``champion`` alias, with the history in the store.

The gate reads what the training run logged on its validation rows: the model's metric,
``heuristic_<metric>`` (the rules on the same rows) and ``champion_<metric>`` (the champion of
the time, re-evaluated on the same rows, named by the run's ``champion_version`` tag).
A version is promoted when it beats the heuristic and is not worse than the current champion
by more than a relative tolerance; ``force`` promotes anyway and records why.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from mlops.db.schema import model_promotions
from mlops.errors import InputError
from mlops.training import tracking, tracking_versions

if TYPE_CHECKING:
    from mlops.runtime import Runtime

# The metric each job is judged by, and whether higher is better.
# Per task, the metric the gate compares and whether higher is better.
GATE_METRIC: dict[str, tuple[str, bool]] = {
    "binary": ("roc_auc", True),
    "regression": ("mae", False),
}
# How much worse than the champion (a share of the champion's value) a version may be.
DEFAULT_TOLERANCE = 0.01
PROMOTE, FORCE, ROLLBACK = "promote", "force", "rollback"


class GateRefused(InputError):
    """The version failed the promotion gate; ``comparison`` holds the figures."""

    def __init__(self, message: str, comparison: Comparison, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.comparison = comparison


@dataclass(frozen=True)
class Comparison:
    """The gate's figures for one version, all measured on that version's validation rows."""

    job: str
    version: int
    metric: str
    higher_is_better: bool
    model: float | None
    heuristic: float | None
    champion_version: int | None  # the current champion
    champion: float | None  # its metric on the same rows, when the run evaluated it
    evaluated_champion: int | None  # the champion the run evaluated
    tolerance: float
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: every comparison the gate made."""
        m, better = self.metric, "higher" if self.higher_is_better else "lower"
        parts = [f"{m} {_fmt(self.model)} vs heuristic {_fmt(self.heuristic)}, {better} wins"]
        if self.champion_version is None:
            parts.append("no champion yet")
        elif self.evaluated_champion == self.champion_version and self.champion is not None:
            parts.append(
                f"vs champion v{self.champion_version} {_fmt(self.champion)} on the same rows, "
                f"tolerance {self.tolerance:.1%}"
            )
        else:
            parts.append(f"champion v{self.champion_version} not evaluated on these rows")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


@dataclass(frozen=True)
class PromotionResult:
    """One move of the ``champion`` alias, as recorded in ``ml_model_promotions``."""

    job: str
    action: str  # promote | force | rollback
    from_version: int | None
    to_version: int
    actor: str
    at: datetime
    reason: str
    comparison: dict[str, Any]


def _require_migrated(rt: Runtime) -> None:
    from mlops.db import migrate  # Alembic costs 0.3 s to import: only when needed

    migrate.require_current(rt.store)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _tolerance(rt: Runtime, tolerance: float | None) -> float:
    value = (
        tolerance if tolerance is not None else getattr(rt.settings, "promotion_tolerance", None)
    )
    value = DEFAULT_TOLERANCE if value is None else float(value)
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"tolerance must be a share >= 0, got {value}", "e.g. 0.01 for 1%")
    return value


def gate(
    rt: Runtime, job: str, *, version: int | str | None = None, tolerance: float | None = None
) -> Comparison:
    """Compare a version (default: the challenger) with the heuristic and the champion."""
    metric, higher = GATE_METRIC[rt.repo.job(job).task]
    tol = _tolerance(rt, tolerance)
    info = tracking_versions.version_info(
        rt.settings, job, tracking_versions.CHALLENGER if version is None else version
    )
    current = tracking_versions.champion_version(rt.settings, job)
    model = info.metrics.get(metric)
    heuristic = info.metrics.get(f"heuristic_{metric}")
    champion = info.metrics.get(f"champion_{metric}")
    tag = info.tags.get(tracking.CHAMPION_VERSION_TAG, "")
    evaluated = int(tag) if tag.isdigit() else None

    problems = []
    if model is None or heuristic is None:
        problems.append(f"the run of v{info.version} logged no {metric} and heuristic_{metric}")
    elif not (model > heuristic if higher else model < heuristic):
        problems.append(f"{metric} {_fmt(model)} does not beat the heuristic's {_fmt(heuristic)}")
    if current is not None and current != info.version:
        if evaluated != current or champion is None:
            problems.append(
                f"the run of v{info.version} evaluated "
                f"{'no champion' if evaluated is None else f'champion v{evaluated}'} on its "
                f"validation rows, but the champion is v{current}: retrain to compare"
            )
        elif model is not None:
            limit = champion - tol * abs(champion) if higher else champion + tol * abs(champion)
            if not (model >= limit if higher else model <= limit):
                problems.append(
                    f"{metric} {_fmt(model)} is worse than champion v{current}'s "
                    f"{_fmt(champion)} on the same rows beyond the {tol:.1%} tolerance "
                    f"(limit {_fmt(limit)})"
                )
    return Comparison(
        job=job,
        version=info.version,
        metric=metric,
        higher_is_better=higher,
        model=model,
        heuristic=heuristic,
        champion_version=current,
        champion=champion if evaluated == current else None,
        evaluated_champion=evaluated,
        tolerance=tol,
        problems=problems,
    )


def promote(
    rt: Runtime,
    job: str,
    *,
    actor: str,
    version: int | str | None = None,
    force: bool = False,
    reason: str | None = None,
    tolerance: float | None = None,
) -> PromotionResult:
    """Move ``champion`` to a version (default: the challenger) if it passes the gate.

    Raises GateRefused with the comparison otherwise, unless ``force`` (recorded as such).
    """
    rt.repo.job(job)
    _require_migrated(rt)
    comparison = gate(rt, job, version=version, tolerance=tolerance)
    target, current = comparison.version, comparison.champion_version
    if target == current:
        raise InputError(
            f"{job} v{target} is already the champion", "`mlops models list` shows the versions"
        )
    if comparison.passed:
        action, why = PROMOTE, reason or f"gate passed: {comparison.summary()}"
    elif force:
        forced = "forced past the gate: " + "; ".join(comparison.problems)
        action, why = FORCE, f"{reason} ({forced})" if reason else forced
    else:
        raise GateRefused(
            f"{job} v{target} not promoted: " + "; ".join(comparison.problems),
            comparison,
            f"compared: {comparison.summary()}; `--force` promotes anyway",
        )
    result = _move(rt, job, action, current, target, actor, why, comparison.as_dict())
    # The challenger is now the champion: leave no alias pointing at it as a contender.
    if tracking_versions.aliases(rt.settings, job).get(tracking_versions.CHALLENGER) == target:
        tracking_versions.delete_alias(rt.settings, job, tracking_versions.CHALLENGER)
    return result


def rollback(rt: Runtime, job: str, *, actor: str, reason: str | None = None) -> PromotionResult:
    """Return ``champion`` to the previous champion in the promotion history."""
    rt.repo.job(job)
    _require_migrated(rt)
    current = tracking_versions.champion_version(rt.settings, job)
    stack = _champion_stack(history(rt, job)[::-1])
    earlier = [v for v in stack if v != current]
    if not earlier:
        raise InputError(
            f"{job} has no previous champion to roll back to"
            + (f" (champion is v{current})" if current is not None else ""),
            f"`mlops models promote {job} --version N` picks a version by hand",
        )
    target = earlier[-1]
    metric, _ = GATE_METRIC[rt.repo.job(job).task]
    figures: dict[str, Any] = {"metric": metric, "from_value": None, "to_value": None}
    if current is not None:
        figures["from_value"] = tracking_versions.version_info(
            rt.settings, job, current
        ).metrics.get(metric)
    figures["to_value"] = tracking_versions.version_info(rt.settings, job, target).metrics.get(
        metric
    )
    why = reason or f"rolled back from v{current} to the previous champion v{target}"
    return _move(rt, job, ROLLBACK, current, target, actor, why, figures)


def _champion_stack(rows: list[dict]) -> list[int]:
    """Champions in the order they took over, undone ones popped (rows oldest first)."""
    stack: list[int] = []
    for row in rows:
        to = row["to_version"]
        if row["action"] == ROLLBACK:
            while stack and stack[-1] != to:
                stack.pop()
            if not stack:
                stack.append(to)
            continue
        if not stack and row["from_version"] is not None:
            stack.append(row["from_version"])
        stack.append(to)
    return stack


def _move(
    rt: Runtime,
    job: str,
    action: str,
    current: int | None,
    target: int,
    actor: str,
    reason: str,
    figures: dict[str, Any],
) -> PromotionResult:
    at = rt.clock.now()
    row = {
        "job": job,
        "action": action,
        "from_version": current,
        "to_version": target,
        "actor": actor,
        "reason": reason,
        "metrics_json": json.dumps(figures, sort_keys=True, default=str),
        "promoted_at": at,
    }
    moved = False
    try:
        # The alias moves inside the store transaction: if MLflow fails, no history row.
        with rt.store.begin() as conn:
            conn.execute(insert(model_promotions).values(**row))
            tracking_versions.set_alias(rt.settings, job, tracking_versions.CHAMPION, target)
            moved = True
    except Exception:
        if moved:  # the commit failed after the alias moved: put it back
            if current is None:
                tracking_versions.delete_alias(rt.settings, job, tracking_versions.CHAMPION)
            else:
                tracking_versions.set_alias(rt.settings, job, tracking_versions.CHAMPION, current)
        raise
    return PromotionResult(job, action, current, target, actor, at, reason, figures)


def history(rt: Runtime, job: str | None = None, limit: int | None = None) -> list[dict]:
    """Promotions and rollbacks, newest first: who, when, job, from, to, action, why, figures."""
    _require_migrated(rt)
    t = model_promotions
    query = select(t).order_by(t.c.promotion_id.desc())
    if job is not None:
        rt.repo.job(job)
        query = query.where(t.c.job == job)
    if limit is not None:
        query = query.limit(limit)
    with rt.store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {
            "id": r["promotion_id"],
            "job": r["job"],
            "action": r["action"],
            "from_version": r["from_version"],
            "to_version": r["to_version"],
            "actor": r["actor"],
            "at": r["promoted_at"],
            "reason": r["reason"],
            "metrics": json.loads(r["metrics_json"]),
        }
        for r in rows
    ]


def list_models(rt: Runtime) -> dict[str, list[dict]]:
    """Per job, its registered versions newest first: aliases, run metrics, tags, created time."""
    out: dict[str, list[dict]] = {}
    for job in rt.repo.names:
        out[job] = [
            {
                "version": v.version,
                "aliases": list(v.aliases),
                "created_at": v.created_at,
                "status": v.status,
                "run_id": v.run_id,
                "metrics": v.metrics,
                "tags": v.tags,
            }
            for v in tracking_versions.list_versions(rt.settings, job)
        ]
    return out
