"""Add the built-in scheduler's tables: ml_scheduler_runs (every attempt of every scheduled
task, with the slot it was scheduled for) and ml_scheduler_leases (who runs a task now).

Revision ID: 20261127130000
Revises: 20261127120000
Create Date: 2026-11-27 13:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261127130000"
down_revision = "20261127120000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_scheduler_runs",
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("scheduled_for", Timestamp, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index(
        "ix_ml_scheduler_runs_task_slot", "ml_scheduler_runs", ["task", "scheduled_for"]
    )
    op.create_table(
        "ml_scheduler_leases",
        sa.Column("task", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("acquired_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ml_scheduler_leases")
    op.drop_index("ix_ml_scheduler_runs_task_slot", table_name="ml_scheduler_runs")
    op.drop_table("ml_scheduler_runs")
