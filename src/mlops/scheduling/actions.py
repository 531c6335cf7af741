"""What each scheduled task does in the built-in scheduler: the library call behind its
``mlops ...`` command line. Libraries are imported when a task runs, not when the schedule
is built, so ``mlops schedule list`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlops.specs.features import JOBS


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
    """``mlops monitor drift <job>``."""

    job: str

    def __call__(self, rt, scheduled_for: datetime) -> str | None:
        from mlops.monitoring import drift

        return _summary(drift.check(rt, self.job))


@dataclass(frozen=True)
class Ops:
    """``mlops monitor ops``."""

    def __call__(self, rt, scheduled_for: datetime) -> str | None:
        from mlops.monitoring import ops

        return _summary(ops.check(rt))


@dataclass(frozen=True)
class Accuracy:
    """``mlops monitor accuracy``: every job."""

    def __call__(self, rt, scheduled_for: datetime) -> str | None:
        from mlops.monitoring import accuracy

        for job in JOBS:
            accuracy.report(rt, job)
        return f"{len(JOBS)} jobs checked"


@dataclass(frozen=True)
class Guardrails:
    """``mlops monitor guardrails``: every job."""

    def __call__(self, rt, scheduled_for: datetime) -> str | None:
        from mlops.monitoring import guardrails

        for job in JOBS:
            guardrails.check(rt, job)
        return f"{len(JOBS)} jobs checked"


def _summary(result) -> str | None:
    """A short line from whatever a monitor returns (a report, a list of results, nothing)."""
    if result is None:
        return None
    if isinstance(result, list | tuple):
        return f"{len(result)} results"
    return type(result).__name__
