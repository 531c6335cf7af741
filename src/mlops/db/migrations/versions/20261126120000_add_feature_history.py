"""Add ml_feature_history (columnar chunks) and ml_feature_snapshots.

Revision ID: 20261126120000
Revises: 20250918120000
Create Date: 2026-11-26 12:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261126120000"
down_revision = "20250918120000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_feature_history",
        sa.Column("chunk_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("min_as_of", Timestamp, nullable=False),
        sa.Column("max_as_of", Timestamp, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("feature_names", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index(
        "ix_ml_feature_history_job_as_of", "ml_feature_history", ["job", "min_as_of", "max_as_of"]
    )
    op.create_table(
        "ml_feature_snapshots",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("as_of", Timestamp, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("chunk_id", sa.Integer, nullable=False),
        sa.Column("entity_count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ml_feature_snapshots")
    op.drop_index("ix_ml_feature_history_job_as_of", table_name="ml_feature_history")
    op.drop_table("ml_feature_history")
