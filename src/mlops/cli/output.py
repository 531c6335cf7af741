"""Console output shared by the commands: errors, progress bars, parsing of flags."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mlops import durations
from mlops.errors import InputError, MlopsError

console = Console()
err_console = Console(stderr=True)


def parse_duration(value: str) -> timedelta:
    """'5m', '6h', '1d', '2w', '30s' -> timedelta."""
    try:
        delta = durations.parse(value)
    except ValueError:
        delta = timedelta(-1)
    if delta < timedelta(0):
        raise InputError(f"cannot read duration {value!r}", "write it like 30s, 5m, 6h, 1d or 2w")
    return delta


def parse_time(value: str, flag: str) -> datetime:
    """An ISO date or date-time, UTC unless it carries an offset."""
    from mlops.clock import to_utc_naive

    try:
        return to_utc_naive(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        raise InputError(
            f"cannot read {flag} {value!r}", "use ISO 8601, e.g. 2026-01-31 or 2026-01-31T02:00"
        ) from None


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """``--since``: a duration back from ``now`` (30d, 12h) or an ISO date or date-time."""
    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except InputError:
        pass
    try:
        return parse_time(value, "--since")
    except InputError:
        raise InputError(
            f"cannot read --since {value!r}", "write a duration like 30d or a date like 2026-05-01"
        ) from None


class Bar:
    """Adapter from library progress callbacks to a rich progress task."""

    def __init__(self, progress: Progress, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, step: int, total: int | None = None) -> None:
        """For callbacks that report increments: ``(step, total)``."""
        self._progress.update(self._task, total=total, advance=step)

    def stage(self, label: str, done: int, total: int) -> None:
        """For callbacks that report a stage and absolute counts: ``(label, done, total)``."""
        self._progress.update(self._task, description=label, completed=done, total=total)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Bar]:
    """A transient progress bar on stderr."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        yield Bar(progress, progress.add_task(description, total=total))


def print_error(exc: MlopsError) -> None:
    """A library error as the user sees it: ``error:`` line, its problems, ``fix:`` line."""
    err_console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
    for problem in getattr(exc, "problems", None) or ():
        err_console.print(f"  - {problem}", highlight=False, markup=False)
    if exc.hint:
        err_console.print(f"[yellow]fix:[/yellow] {escape(exc.hint)}", highlight=False)
