"""Add ml_model_promotions, the history of champion promotions and rollbacks.

Revision ID: 20261126130000
Revises: 20261126120100
Create Date: 2026-11-26 13:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261126130000"
down_revision = "20261126120100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_model_promotions",
        sa.Column("promotion_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("metrics_json", sa.Text, nullable=False),
        sa.Column("promoted_at", Timestamp, nullable=False),
    )
    op.create_index("ix_ml_model_promotions_job", "ml_model_promotions", ["job", "promotion_id"])


def downgrade() -> None:
    op.drop_index("ix_ml_model_promotions_job", table_name="ml_model_promotions")
    op.drop_table("ml_model_promotions")
