"""What each scheduled task does in the built-in scheduler: the library call behind its
``mlops ...`` command line. Libraries are imported when a task runs, not when the schedule
is built, so ``mlops schedule list`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Ingest:
    """``mlops ingest <job> --scheduled-for <slot>``: one all-or-nothing refresh."""

    job: str

    def __call__(self, rt, scheduled_for: datetime) -> str:
        from mlops.store import ingest

        report = ingest.refresh(rt, self.job, scheduled_for=scheduled_for)
        return f"{report.rows_written:,} rows written, {report.rows_rejected:,} rejected"


@dataclass(frozen=True)
class Train:
    """``mlops train <job> [--dry-run]``: retrain, and promote when the gate passes."""

    job: str
    dry_run: bool = False

    def __call__(self, rt, scheduled_for: datetime) -> str:
        from mlops.training.train import train

        report = train(rt, self.job, dry_run=self.dry_run)
        if report.dry_run:
            return "dry run: nothing written"
        return f"v{report.version}, {'promoted' if report.promoted else 'not promoted'}"


@dataclass(frozen=True)
class Drift:
    """``mlops monitor drift <job>``: written to ml_monitor_results, alerts, maybe a trip."""

    job: str

    def __call__(self, rt, scheduled_for: datetime) -> str:
        from mlops.monitoring import drift

        parts = []
        for result in drift.check(rt, self.job):
            # No champion yet is not a failure to retry: the next refresh checks again.
            state = f"not checked ({result.error})" if result.error else result.status
            parts.append(f"{result.job} {state}" + _opened(result.opened))
        return "; ".join(parts)


@dataclass(frozen=True)
class Ops:
    """``mlops monitor ops``: stale-features and failed-ingestion alerts for every job."""

    def __call__(self, rt, scheduled_for: datetime) -> str:
        from mlops.monitoring import ops

        found = ops.check(rt)
        return f"{len(found.report.jobs)} jobs checked" + _opened(found.opened)


@dataclass(frozen=True)
class Accuracy:
    """``mlops monitor accuracy``: every job, per day, model and heuristic apart."""

    def __call__(self, rt, scheduled_for: datetime) -> str:
        from mlops.monitoring import accuracy

        found = accuracy.report(rt)
        return f"{found.written} results written" + _opened(found.opened)


@dataclass(frozen=True)
class Guardrails:
    """``mlops monitor guardrails``: every job's A/B arms; a breach may trip the fallback."""

    def __call__(self, rt, scheduled_for: datetime) -> str:
        from mlops.monitoring import guardrails

        found = guardrails.check(rt)
        return "; ".join(
            f"{g.job} {g.decision}" + (" (fallback tripped)" if g.trip else "") for g in found
        )


def _opened(alerts) -> str:
    return f", {len(alerts)} alerts opened" if alerts else ""
