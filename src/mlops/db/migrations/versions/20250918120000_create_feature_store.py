"""Create the feature store: ml_feature_specs and ml_feature_values (the runbook's first migration).

Revision ID: 20250918120000
Revises:
Create Date: 2025-09-18 12:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20250918120000"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_feature_specs",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("source_view", sa.String(64), nullable=False),
        sa.Column("ttl_seconds", sa.Integer, nullable=False),
        sa.Column("nullable", sa.Boolean, nullable=False),
        sa.Column("min_value", sa.Float),
        sa.Column("max_value", sa.Float),
        sa.Column("allowed_values", sa.Text),
        sa.Column("psi_warn", sa.Float, nullable=False),
        sa.Column("psi_alert", sa.Float, nullable=False),
        sa.Column("ks_pvalue", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("retired_at", Timestamp),
    )
    op.create_table(
        "ml_feature_values",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(128), primary_key=True),
        sa.Column("computed_at", Timestamp, nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("values_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ml_feature_values")
    op.drop_table("ml_feature_specs")
