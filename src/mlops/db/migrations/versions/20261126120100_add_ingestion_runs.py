"""Add ml_ingestion_runs and the rejects table ml_feature_rejects.

Revision ID: 20261126120100
Revises: 20261126120000
Create Date: 2026-11-26 12:01:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261126120100"
down_revision = "20261126120000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_ingestion_runs",
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("as_of_start", Timestamp),
        sa.Column("as_of_end", Timestamp),
        sa.Column("scheduled_for", Timestamp),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_written", sa.Integer, nullable=False),
        sa.Column("rows_rejected", sa.Integer, nullable=False),
        sa.Column("values_written", sa.Integer, nullable=False),
        sa.Column("snapshots_skipped", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_ml_ingestion_runs_job_started", "ml_ingestion_runs", ["job", "started_at"])
    op.create_table(
        "ml_feature_rejects",
        sa.Column("reject_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(128)),
        sa.Column("as_of", Timestamp, nullable=False),
        sa.Column("feature", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("value", sa.Text),
    )
    op.create_index("ix_ml_feature_rejects_run", "ml_feature_rejects", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_ml_feature_rejects_run", table_name="ml_feature_rejects")
    op.drop_table("ml_feature_rejects")
    op.drop_index("ix_ml_ingestion_runs_job_started", table_name="ml_ingestion_runs")
    op.drop_table("ml_ingestion_runs")
