"""The problem list of a load: every problem counted, only the first few of each kind spelled
out, so a file with a million bad rows still gives a short, readable report."""

from __future__ import annotations

from typing import Any

MAX_PROBLEMS = 200  # lines shown; the rest are counted in a last "... and N more" line
PER_CHECK = 10  # rows listed one by one per (file, column, check); the rest in one line


class Problems:
    """Every problem is counted; the text is built only for the first few of each check."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int]] = []  # (text, how many problems it stands for)
        self.total = 0

    def add(self, text: str, weight: int = 1) -> None:
        self.entries.append((text, weight))
        self.total += weight

    def rows(self, where: str, column: str, labels: Any, label: str, values: Any = None) -> None:
        """One line per bad row up to PER_CHECK, then one line for the rest."""
        for row in labels[:PER_CHECK]:
            shown = "" if values is None else f": {show(values.at[row])}"
            self.add(f"{where} row {row}, column {column}: {label}{shown}")
        rest = len(labels) - PER_CHECK
        if rest > 0:
            sample = ", ".join(str(row) for row in labels[PER_CHECK : PER_CHECK + 5])
            more = ", ..." if rest > 5 else ""
            self.add(
                f"{where} column {column}: {label} in {rest:,} more rows ({sample}{more})", rest
            )

    def lines(self) -> list[str]:
        shown = [text for text, _ in self.entries[:MAX_PROBLEMS]]
        rest = sum(weight for _, weight in self.entries[MAX_PROBLEMS:])
        if rest:
            shown.append(f"... and {rest:,} more problem{'s' if rest != 1 else ''}")
        return shown


def show(value: Any, limit: int = 40) -> str:
    if isinstance(value, str):
        if len(value) > limit:
            return f"{value[:limit]!r}... ({len(value):,} characters)"
        return repr(value)
    return str(value)
