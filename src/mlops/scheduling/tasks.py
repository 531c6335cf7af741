"""The schedule: one table of tasks built from the job specs, shared by the built-in scheduler
and the Airflow and crontab exports, so all three run the same commands at the same times.

A task either has a cron (a *root*) or runs right after another task (``after``), forming a
chain per root: ``ingest:<job>`` -> ``monitor:drift:<job>`` -> ``monitor:ops:<job>``. Crons are
UTC.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from croniter import croniter

from mlops.errors import ConfigError
from mlops.scheduling import actions
from mlops.settings import Settings

if TYPE_CHECKING:
    from mlops.repository import Repository

# A refresh at least this frequent retries fast and must never overrun its slot.
FREQUENT = timedelta(hours=1)

# The task runs in-process in the built-in scheduler: (runtime, slot) -> a one-line summary.
Action = Callable[..., str | None]

# Crons the specs do not give. Accuracy daily at 06:30 UTC: after a night's daily refreshes
# (02:00) and retraining slots (03:00-05:00), so yesterday's outcomes are in the warehouse.
# Guardrails hourly at :15, away from refreshes on the hour and the retraining slots.
ACCURACY_CRON = "30 6 * * *"
GUARDRAILS_CRON = "15 * * * *"


@dataclass(frozen=True)
class Task:
    """One scheduled unit of work, the same in every scheduler."""

    name: str
    description: str
    # The `mlops ...` command line the exports run (without --scheduled-for, see takes_slot).
    command: tuple[str, ...]
    action: Action
    cron: str | None = None
    after: str | None = None
    # "success": run only when the task before succeeded; "done": whatever happened to it.
    when: Literal["success", "done"] = "success"
    retries: int = 2
    retry_delay: timedelta = timedelta(minutes=1)
    max_retry_delay: timedelta = timedelta(minutes=30)
    timeout: timedelta = timedelta(minutes=30)
    # The command accepts --scheduled-for (ingestion records it: scheduler delay).
    takes_slot: bool = False
    # The command queries the warehouse: Airflow runs it in the warehouse's pool, so the
    # refreshes of every job share a bounded number of warehouse slots.
    reads_warehouse: bool = False

    def backoff(self, failures: int) -> timedelta:
        """Wait before the next attempt after ``failures`` failed ones: doubling, capped."""
        return min(self.retry_delay * 2 ** max(failures - 1, 0), self.max_retry_delay)

    @property
    def slug(self) -> str:
        """The name as an identifier (Airflow task ids, lock files): ``ingest_churn``."""
        return self.name.replace(":", "_").replace("-", "_")


@dataclass(frozen=True)
class Schedule:
    """The task table, in order; every chain follows its root."""

    tasks: tuple[Task, ...]

    def __post_init__(self) -> None:
        seen: dict[str, Task] = {}
        for task in self.tasks:
            if task.name in seen:
                raise ConfigError(f"task {task.name!r} is listed twice", "give each task a name")
            if (task.cron is None) == (task.after is None):
                raise ConfigError(
                    f"task {task.name!r} needs exactly one of cron and after",
                    "a root task has a cron; a follower names the task it runs after",
                )
            if task.cron is not None and not croniter.is_valid(task.cron):
                raise ConfigError(
                    f"task {task.name!r} has an invalid cron {task.cron!r}",
                    "use five fields: minute hour day-of-month month day-of-week",
                )
            if task.after is not None and task.after not in seen:
                raise ConfigError(
                    f"task {task.name!r} runs after unknown task {task.after!r}",
                    "list a follower after the task it follows",
                )
            if task.after is not None and any(t.after == task.after for t in seen.values()):
                raise ConfigError(
                    f"task {task.after!r} has two followers", "chains are linear: a -> b -> c"
                )
            seen[task.name] = task

    @property
    def roots(self) -> list[Task]:
        """The tasks with a cron, in order."""
        return [t for t in self.tasks if t.cron is not None]

    def chain(self, root: Task) -> list[Task]:
        """The root and the tasks that follow it, in running order."""
        chain = [root]
        while follower := next((t for t in self.tasks if t.after == chain[-1].name), None):
            chain.append(follower)
        return chain

    def get(self, name: str) -> Task:
        """The task of that name (KeyError if none)."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


def build(settings: Settings, repo: Repository) -> Schedule:
    """The production schedule from the repository's jobs; staging trains with --dry-run."""
    dry_run = settings.environment == "staging"
    tasks: list[Task] = []
    for job in repo.jobs.values():
        frequent = interval(job.refresh_cron) < FREQUENT
        tasks += [
            Task(
                f"ingest:{job.name}",
                f"refresh {job.view} into the feature store",
                ("mlops", "ingest", job.name),
                actions.Ingest(job.name),
                cron=job.refresh_cron,
                retries=2 if frequent else 3,
                retry_delay=timedelta(seconds=30) if frequent else timedelta(minutes=5),
                timeout=timedelta(minutes=4) if frequent else timedelta(minutes=30),
                takes_slot=True,
                reads_warehouse=True,
            ),
            Task(
                f"monitor:drift:{job.name}",
                f"drift of {job.name}'s online values against the champion's reference",
                ("mlops", "monitor", "drift", job.name),
                actions.Drift(job.name),
                after=f"ingest:{job.name}",
                retries=1,
                retry_delay=timedelta(seconds=30),
                timeout=timedelta(minutes=2) if frequent else timedelta(minutes=10),
            ),
            Task(
                f"monitor:ops:{job.name}",
                f"operations check after {job.name}'s refresh (runs even when it failed)",
                ("mlops", "monitor", "ops"),
                actions.Ops(),
                after=f"monitor:drift:{job.name}",
                when="done",
                retries=1,
                retry_delay=timedelta(seconds=30),
                timeout=timedelta(minutes=2) if frequent else timedelta(minutes=5),
            ),
        ]
    for job in repo.jobs.values():
        command = ("mlops", "train", job.name, *(("--dry-run",) if dry_run else ()))
        tasks.append(
            Task(
                f"train:{job.name}",
                f"retrain {job.name} as a dry run (staging: nothing is written)"
                if dry_run
                else f"retrain {job.name}; promote it if it passes the gate",
                command,
                actions.Train(job.name, dry_run=dry_run),
                cron=job.retrain_cron,
                retries=1,
                retry_delay=timedelta(minutes=15),
                timeout=timedelta(hours=2),
            )
        )
    tasks += [
        Task(
            "monitor:accuracy",
            "accuracy of logged predictions against outcomes, every job",
            ("mlops", "monitor", "accuracy"),
            actions.Accuracy(),
            cron=ACCURACY_CRON,
            retries=2,
            retry_delay=timedelta(minutes=5),
            timeout=timedelta(minutes=30),
        ),
        Task(
            "monitor:guardrails",
            "A/B guardrails of every job (may trip the fallback)",
            ("mlops", "monitor", "guardrails"),
            actions.Guardrails(),
            cron=GUARDRAILS_CRON,
            retries=2,
            retry_delay=timedelta(minutes=2),
            timeout=timedelta(minutes=10),
        ),
    ]
    return Schedule(tuple(tasks))


def interval(cron: str) -> timedelta:
    """The shortest gap between the cron's next 48 firings (a cron may be uneven)."""
    it = croniter(cron, datetime(2026, 1, 5))
    times = [it.get_next(datetime) for _ in range(48)]
    return min(b - a for a, b in itertools.pairwise(times))


def latest_slot(cron: str, now: datetime) -> datetime:
    """The most recent time at or before ``now`` the cron fires."""
    return croniter(cron, now + timedelta(seconds=1)).get_prev(datetime)


def next_slots(cron: str, now: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` times strictly after ``now`` the cron fires."""
    it = croniter(cron, now)
    return [it.get_next(datetime) for _ in range(count)]


def human(delta: timedelta) -> str:
    """A duration as people write it: ``30 s``, ``5 min``, ``2 h``."""
    if delta.total_seconds() < 60:
        return f"{delta.total_seconds():g} s"
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
