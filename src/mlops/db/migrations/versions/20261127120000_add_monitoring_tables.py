"""Add the monitoring tables (ml_monitor_results, ml_alerts) and the A/B arm of each logged
prediction.

Revision ID: 20261127120000
Revises: 20261127090000
Create Date: 2026-11-27 12:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261127120000"
down_revision = "20261127090000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_monitor_results",
        sa.Column("result_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("checked_at", Timestamp, nullable=False),
        sa.Column("monitor", sa.String(16), nullable=False),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("statistic", sa.String(32), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sample_size", sa.Integer, nullable=False),
        sa.Column("model_version", sa.Integer),
        sa.Column("detail", sa.Text),
    )
    op.create_index(
        "ix_ml_monitor_results_job_checked",
        "ml_monitor_results",
        ["monitor", "job", "checked_at"],
    )
    op.create_table(
        "ml_alerts",
        sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("opened_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("delivered", sa.Boolean, nullable=False),
    )
    op.create_index("ix_ml_alerts_open", "ml_alerts", ["kind", "job", "subject", "status"])
    with op.batch_alter_table("ml_prediction_log") as batch:
        batch.add_column(sa.Column("arm", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("ml_prediction_log") as batch:
        batch.drop_column("arm")
    op.drop_index("ix_ml_alerts_open", table_name="ml_alerts")
    op.drop_table("ml_alerts")
    op.drop_index("ix_ml_monitor_results_job_checked", table_name="ml_monitor_results")
    op.drop_table("ml_monitor_results")
