"""A dashboard panel's data and the window it covers: what each panel reader (``panel_*``)
fills and each chart builder (``chart_*``) draws. They live apart from ``dashboard``, which
lists the readers, so that the readers can use them without importing it in a circle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd


@dataclass(frozen=True)
class Window:
    """The period charted, ending now, and the time bucket its charts count in."""

    start: datetime
    end: datetime
    bucket: str  # "hour" or "day"

    @property
    def freq(self) -> str:
        """The bucket as a pandas frequency."""
        return "h" if self.bucket == "hour" else "D"


@dataclass
class Panel:
    """One chart's data: small frames, notes for the reader, or the error that stopped it."""

    key: str
    title: str
    caption: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # The repository's jobs, in its order: how the charts lay them out.
    jobs: list[str] = field(default_factory=list)
    # Per job, the features a chart shows (its declared key features).
    charted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The command that explains the panel's figures in a terminal.
    command: str = ""

    @property
    def empty(self) -> bool:
        """Nothing to chart: no frame has a row."""
        return not any(len(frame) for frame in self.frames.values())

    @property
    def points(self) -> int:
        """Rows over all the frames."""
        return sum(len(frame) for frame in self.frames.values())
