"""``mlops monitor``: drift, accuracy, operations, A/B guardrails and the HTML report.

The command group only: each command lives in ``cli/monitor_<command>.py``, and what the
commands share in ``cli/monitor_common.py``."""

from __future__ import annotations

import typer

from mlops.cli import (
    monitor_accuracy,
    monitor_drift,
    monitor_guardrails,
    monitor_ops,
    monitor_report,
)

app = typer.Typer(
    help="Watch the models in production: drift, accuracy, operations, A/B guardrails.",
    no_args_is_help=True,
)

app.command("ops")(monitor_ops.ops_command)
app.command("accuracy")(monitor_accuracy.accuracy_command)
app.command("drift")(monitor_drift.drift_command)
app.command("report")(monitor_report.report_command)
app.command("guardrails")(monitor_guardrails.guardrails_command)
