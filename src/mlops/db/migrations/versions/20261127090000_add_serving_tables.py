"""Add the serving tables: ml_flags (kill switch), ml_fallback_trips, ml_prediction_log.

Revision ID: 20261127090000
Revises: 20261126130000
Create Date: 2026-11-27 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261127090000"
down_revision = "20261126130000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_flags",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "ml_fallback_trips",
        sa.Column("trip_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("tripped_at", Timestamp, nullable=False),
        sa.Column("cleared_at", Timestamp),
        sa.Column("cleared_by", sa.String(128)),
    )
    op.create_index("ix_ml_fallback_trips_job", "ml_fallback_trips", ["job", "cleared_at"])
    op.create_table(
        "ml_prediction_log",
        sa.Column("prediction_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("logged_at", Timestamp, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("subject_id", sa.String(128)),
        sa.Column("prediction", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("model_version", sa.Integer),
        sa.Column("features_computed_at", Timestamp),
        sa.Column("latency_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_ml_prediction_log_job_logged", "ml_prediction_log", ["job", "logged_at"])


def downgrade() -> None:
    op.drop_index("ix_ml_prediction_log_job_logged", table_name="ml_prediction_log")
    op.drop_table("ml_prediction_log")
    op.drop_index("ix_ml_fallback_trips_job", table_name="ml_fallback_trips")
    op.drop_table("ml_fallback_trips")
    op.drop_table("ml_flags")
